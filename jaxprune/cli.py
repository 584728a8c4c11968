"""The ``jaxprune`` command: parses flags, calls the library, prints tables, writes files.

Run ``jaxprune --help`` or ``jaxprune <command> --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Config fields the ``train`` flags can override, with their argparse type.
_TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    # field: (flag, type, help)
    "model": ("--model", str, "model name (see `jaxprune models`)"),
    "dataset": ("--dataset", str, "dataset name (see `jaxprune datasets`)"),
    "epochs": ("--epochs", int, "passes over the training split"),
    "batch_size": ("--batch-size", int, "training batch size"),
    "optimizer": ("--optimizer", str, "sgd | adam | adamw"),
    "learning_rate": ("--lr", float, "peak learning rate"),
    "momentum": ("--momentum", float, "SGD momentum"),
    "weight_decay": ("--weight-decay", float, "L2 coefficient"),
    "schedule": ("--schedule", str, "constant | step | cosine"),
    "warmup_epochs": ("--warmup-epochs", int, "linear warm-up epochs"),
    "label_smoothing": ("--label-smoothing", float, "label smoothing in [0, 1)"),
    "seed": ("--seed", int, "seed for init, batch order and augmentation"),
    "checkpoint_every": ("--checkpoint-every", int, "checkpoint every N epochs"),
    "data_dir": ("--data-dir", str, "folder with official dataset files (default: "
                 "$JAXPRUNE_DATA_DIR, then TFDS)"),
}


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="start from a recipe: " + ", ".join(_presets()))
    for field, (flag, typ, help_) in _TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=help_)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="pad-4 random crop + horizontal flip (image datasets)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="per-channel normalization with training-split statistics")
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="scale every layer width of the model")


def _presets() -> list[str]:
    from jaxprune.train import PRESETS

    return sorted(PRESETS)


def _config_from_args(args: argparse.Namespace):
    from jaxprune.train import TrainConfig, preset

    overrides = {f: getattr(args, f) for f in [*_TRAIN_FLAGS, "nesterov", "augment", "normalize"]}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.width_multiplier is not None:
        overrides["model_options"] = {"width_multiplier": args.width_multiplier}
    return preset(args.preset, **overrides) if args.preset else TrainConfig(**overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from jaxprune.report import format_table
    from jaxprune.train import train_and_evaluate

    config = _config_from_args(args)
    config.validate()
    print(f"training {config.model} on {config.dataset} for {config.epochs} epochs"
          + (f" (workdir {args.workdir})" if args.workdir else ""))
    res = train_and_evaluate(config, args.workdir, progress=not args.no_progress).results
    print(format_table([{k: res[k] for k in ("epochs", "test_accuracy", "test_loss",
                                              "train_seconds", "images_per_second")}]))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from jaxprune import flops, models
    from jaxprune.report import format_table

    rows = []
    for name in models.names():
        shape = models.default_input_shape(name)
        if args.input_shape:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        model = models.get(name, num_classes=args.num_classes)
        variables = jax.eval_shape(lambda m=model, s=shape: m.init(
            jax.random.PRNGKey(0), jnp.zeros((1, *s)), train=False))
        rows.append({
            "model": name,
            "input": "x".join(map(str, shape)),
            "params": flops.count_params(variables["params"]),
            "MACs": flops.count_macs(model, variables, shape),
            "description": models.describe(name),
        })
    print(format_table(rows))
    print("\nMACs: multiply-accumulates of conv/dense layers for one example, counted once.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from jaxprune import data
    from jaxprune.report import format_table

    rows = []
    for name in data.names():
        i = data.info(name)
        rows.append({"dataset": name, "input": "x".join(map(str, i.input_shape)),
                     "classes": i.num_classes, "train": i.train_size, "test": i.test_size,
                     "source": i.source})
    print(format_table(rows))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jaxprune.report import format_table
    from jaxprune.train import TrainConfig, train_and_evaluate

    rows = []
    for seed in range(args.seeds):
        config = TrainConfig(
            model="cnn1d_mnist1d", dataset="mnist1d", epochs=args.epochs, batch_size=100,
            optimizer="adam", learning_rate=3e-3, schedule="cosine", weight_decay=0.0,
            seed=seed,
        )
        workdir = str(Path(args.workdir) / f"seed{seed}") if args.workdir else None
        res = train_and_evaluate(config, workdir, progress=not args.no_progress).results
        rows.append({"seed": seed, "test_accuracy": res["test_accuracy"],
                     "test_loss": res["test_loss"], "train_seconds": res["train_seconds"]})
    print("\nMNIST-1D, 1-D CNN (5,210 parameters), Adam, dense training:")
    print(format_table(rows))
    if args.workdir:
        from jaxprune.train import write_json_atomic

        write_json_atomic(Path(args.workdir) / "demo.json", rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxprune",
        description="Neural-network pruning research in JAX/Flax.",
        epilog="Examples:\n  jaxprune demo\n  jaxprune models\n"
               "  jaxprune train --preset mnist_lenet --model lenet_300_100 --data-dir DATA "
               "--workdir runs/lenet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (resumes if --workdir holds a checkpoint)")
    _add_train_flags(p)
    p.add_argument("--workdir", help="write config, metrics.jsonl, checkpoints, results.json here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("models", help="list the model zoo with parameter and MAC counts")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--input-shape", help="per-example shape, e.g. 32,32,3 (default: the "
                   "model's usual dataset)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the datasets and where they come from")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("demo", help="the offline demo on MNIST-1D (no files, no network)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workdir", default=None, help="keep each seed's run here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxprune`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"jaxprune {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
