"""The ``jaxprune`` command: parses flags, calls the library, prints tables, writes files.

Run ``jaxprune --help`` or ``jaxprune <command> --help``.
"""

from __future__ import annotations

import argparse
import json
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


def _load_splits(dataset: str, data_dir: str | None):
    from jaxprune import data
    from jaxprune.train import Split

    return (Split(*data.load(dataset, "train", data_dir)),
            Split(*data.load(dataset, "test", data_dir)))


def _sparsity_from_args(args: argparse.Namespace) -> float:
    from jaxprune.studies.pai import compression_to_sparsity

    if (args.sparsity is None) == (args.compression is None):
        raise ValueError("give exactly one of --sparsity (fraction removed) or --compression "
                         "(1/density)")
    if args.compression is not None:
        return compression_to_sparsity(args.compression)
    if not 0 <= args.sparsity <= 1:
        raise ValueError(f"--sparsity is the fraction of weights removed, in [0, 1]; got "
                         f"{args.sparsity}")
    return args.sparsity


STRUCTURED_POLICIES = ("ratio", "global", "macs", "li-vgg16-a", "li-resnet56-a",
                       "li-resnet56-b")


def _structured_keep(args, structure, scores, input_shape):
    """Keep-sets from the chosen ``--policy``."""
    from jaxprune import structured as st

    if args.policy in ("ratio", "global", "macs") and args.ratio is None:
        raise ValueError(f"--policy {args.policy} needs --ratio (fraction of channels, or of "
                         "MACs for 'macs', to remove)")
    if args.policy == "ratio":
        return st.prune_by_ratio(structure, scores, args.ratio)
    if args.policy == "global":
        return st.prune_by_global_threshold(structure, scores, ratio=args.ratio)
    if args.policy == "macs":
        dense = st.count_pruned(structure, input_shape=input_shape).macs
        return st.prune_to_budget(structure, scores, macs=int((1 - args.ratio) * dense),
                                  input_shape=input_shape).keep
    if args.policy == "li-vgg16-a":
        if structure.name != "vgg16":
            raise ValueError("--policy li-vgg16-a needs --model vgg16")
        widths = {f"conv{i + 1}": w for i, w in enumerate(st.LI_VGG16_A_WIDTHS)}
        return st.prune_to_widths(structure, scores, widths)
    variant = args.policy[-1].upper()
    if not structure.name.startswith("resnet"):
        raise ValueError(f"--policy {args.policy} needs a CIFAR ResNet (e.g. --model resnet56)")
    return st.prune_by_ratio(structure, scores,
                             st.li_resnet_ratios(structure, **st.LI_RESNET56[variant]))


def cmd_prune_structured(args: argparse.Namespace) -> int:
    """``prune --structured``: channel scores, a policy, surgery; optionally fine-tune/scratch."""
    import jax
    import orbax.checkpoint as ocp

    from jaxprune import data
    from jaxprune import structured as st
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.train import fit, init_model, restore_variables, write_json_atomic

    config = _config_from_args(args)
    config.validate()
    if args.policy is None:
        raise ValueError(f"--structured needs --policy, one of {list(STRUCTURED_POLICIES)}")
    train, test = _load_splits(config.dataset, config.data_dir)
    num_classes = data.info(config.dataset).num_classes
    input_shape = tuple(train.images.shape[1:])
    structure = st.channel_groups(config.model, residual=args.residual, num_classes=num_classes,
                                  **config.model_options)
    if args.from_workdir:
        variables = restore_variables(args.from_workdir)
    else:
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
        variables = init_model(structure.model, key, train.images, model_name=config.model)
    xs, ys = pai.score_batches(train, [config.seed], args.per_class, normalize=config.normalize)
    score_fn = st.criteria.get(args.criterion, structure=structure)
    scores = score_fn(variables, batch=(xs[0], ys[0]),
                      key=jax.random.fold_in(jax.random.PRNGKey(config.seed), 3))
    keep = _structured_keep(args, structure, scores, input_shape)
    pruned = st.prune_channels(structure, variables, keep, input_shape=input_shape)
    before = st.count_pruned(structure, input_shape=input_shape)
    after = st.count_pruned(structure, keep, input_shape=input_shape)
    red = st.reduction(before, after)
    options = st.narrow_options(structure, keep)
    rows = [{"": "dense", "params": before.params, "MACs": before.macs},
            {"": "pruned", "params": after.params, "MACs": after.macs},
            {"": "removed %", "params": 100 * red["params"], "MACs": 100 * red["macs"]}]
    print(f"{config.model}: {args.criterion} scores, policy {args.policy}")
    print(format_table(rows))
    print("narrow model options:", json.dumps(options))

    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    summary = {"model": config.model, "dataset": config.dataset, "criterion": args.criterion,
               "policy": args.policy, "ratio": args.ratio, "residual": args.residual,
               "from_workdir": args.from_workdir, "narrow_options": options,
               "dense": before._asdict(), "pruned": after._asdict(), "removed": red,
               "keep": {g: [int(i) for i in idx] for g, idx in keep.items()}}
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save((wd / "pruned_variables").absolute(), pruned.variables, force=True)
    if config.epochs > 0:
        if args.scratch:  # Scratch-E: the pruned architecture, fresh random init
            start = st.fresh_init(structure, keep, input_shape=input_shape,
                                  key=jax.random.fold_in(jax.random.PRNGKey(config.seed), 4))
        else:
            start = pruned
        res = fit(start.model, start.variables, train, test, config,
                  workdir=str(wd / ("scratch" if args.scratch else "finetune")),
                  extra_config={"narrow_options": options}, progress=not args.no_progress)
        summary["test_accuracy"] = res.results["test_accuracy"]
        print(f"{'scratch' if args.scratch else 'fine-tuned'} for {config.epochs} epochs: "
              f"test accuracy {res.results['test_accuracy']:.4f}")
    write_json_atomic(wd / "summary.json", summary)
    print(f"wrote {wd / 'summary.json'} and {wd / 'pruned_variables'}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.structured:
        return cmd_prune_structured(args)
    import jax
    import numpy as np

    from jaxprune import data, masks, models
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.train import fit, write_json_atomic

    sparsity = _sparsity_from_args(args)
    pai.check_method(args.criterion)
    config = _config_from_args(args)
    config.validate()
    train, test = _load_splits(config.dataset, config.data_dir)
    model = models.get(config.model, num_classes=data.info(config.dataset).num_classes,
                       **config.model_options)
    input_shape = train.images.shape[1:]
    seeds = list(range(config.seed, config.seed + args.seeds))
    variables = pai.init_seeds(model, input_shape, seeds)
    keep_dense = ()
    if args.keep_first_last:
        keep_dense = pai.first_and_last_layers(
            model, jax.tree.map(lambda a: a[0], variables), input_shape)
    batches = pai.score_batches(train, seeds, args.per_class, normalize=config.normalize)
    stacked = pai.prune_seeds(model, variables, batches, seeds, args.criterion, sparsity,
                              allocation=args.allocation, keep_dense=keep_dense,
                              rounds=args.rounds)
    reports = pai.mask_reports(model, variables, stacked, input_shape, keep_dense=keep_dense)
    print(masks.format_report(reports[0]))
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(map(str, masks.path_tuple(kp))): np.asarray(leaf)  # (seeds, ...) each
            for kp, leaf in jax.tree_util.tree_leaves_with_path(stacked)}
    tmp = wd / "masks.tmp.npz"
    np.savez_compressed(tmp, **flat)
    tmp.replace(wd / "masks.npz")
    summary = {
        "model": config.model, "dataset": config.dataset, "criterion": args.criterion,
        "sparsity": sparsity, "allocation": args.allocation, "seeds": seeds,
        "keep_dense": ["/".join(p) for p in keep_dense],
        "per_seed": [{"seed": s, "sparsity": r.sparsity, "remaining_params": r.remaining_params,
                      "remaining_macs": r.remaining_macs, "macs": r.macs,
                      "collapsed_layers": ["/".join(p) for p in r.collapsed],
                      "layer_density": {"/".join(row.path): row.density for row in r.rows}}
                     for s, r in zip(seeds, reports, strict=True)],
    }
    if config.epochs > 0:
        res = fit(model, variables, train, test, config, mask=stacked, seeds=seeds,
                  workdir=str(wd / "train"), progress=not args.no_progress).results
        for row, acc in zip(summary["per_seed"], res["test_accuracy"], strict=True):
            row["test_accuracy"] = acc
    write_json_atomic(wd / "summary.json", summary)
    print(format_table([{k: r.get(k) for k in ("seed", "sparsity", "remaining_params",
                                               "remaining_macs", "test_accuracy")}
                        | {"collapsed": len(r["collapsed_layers"])}
                        for r in summary["per_seed"]]))
    print(f"wrote {wd / 'masks.npz'} and {wd / 'summary.json'}")
    return 0


def run_sweep(args: argparse.Namespace, config, *, title: str) -> int:
    """Shared by ``demo`` and ``sweep``: prune, train, print, write CSV + PNG."""
    from jaxprune import data, models
    from jaxprune.report import format_table, plot_accuracy_vs_compression, to_csv
    from jaxprune.studies import pai
    from jaxprune.train import write_text_atomic

    train, test = _load_splits(config.dataset, config.data_dir)
    model = models.get(config.model, num_classes=data.info(config.dataset).num_classes,
                       **config.model_options)
    sparsities = [pai.compression_to_sparsity(10 ** e) for e in args.log10_compressions]
    rows = pai.sweep(model, train, test, config, methods=args.methods, sparsities=sparsities,
                     seeds=range(args.seeds), per_class=args.per_class,
                     progress=not args.no_progress)
    table = pai.aggregate(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "networks.csv", to_csv(rows))
    write_text_atomic(out / "summary.csv", to_csv(table))
    plot_accuracy_vs_compression(table, str(out / "accuracy_vs_compression.png"), title=title)
    print(f"\n{title}: test accuracy, mean +/- std over {args.seeds} seeds")
    print(format_table([{"method": r["method"], "compression": f"{r['compression']:.3g}x",
                         "accuracy": f"{100 * r['acc_mean']:.2f} +/- {100 * r['acc_std']:.2f}",
                         "collapsed runs": r["collapsed_runs"]} for r in table]))
    print(f"\nwrote {out / 'networks.csv'}, {out / 'summary.csv'}, "
          f"{out / 'accuracy_vs_compression.png'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jaxprune.train import TrainConfig

    config = TrainConfig(
        model="mlp_6x100", dataset="mnist1d", epochs=args.epochs, batch_size=100,
        optimizer="adam", learning_rate=2e-3, schedule="cosine", weight_decay=0.0,
    )
    return run_sweep(args, config, title="MNIST-1D, SynFlow's 6x100 MLP, pruned at init")


def cmd_sweep(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    config.validate()
    return run_sweep(args, config, title=f"{config.dataset}, {config.model}, pruned at init")


def _add_sweep_flags(p: argparse.ArgumentParser, *, epochs: int | None, out: str) -> None:
    from jaxprune.studies.pai import METHODS

    p.add_argument("--methods", nargs="+", default=["random", "magnitude", "snip", "grasp",
                                                    "synflow"], choices=METHODS)
    p.add_argument("--log10-compressions", nargs="+", type=float,
                   default=[0.5, 1.0, 1.5, 2.0, 2.5],
                   help="compressions as powers of ten (1.0 = 10x = 90%% sparsity)")
    p.add_argument("--seeds", type=int, default=3, help="random inits per point")
    p.add_argument("--per-class", type=int, default=10, help="scoring examples per class")
    p.add_argument("--out", default=out, help="folder for networks.csv, summary.csv and the plot")
    p.add_argument("--no-progress", action="store_true")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs)


def cmd_flops(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxprune import data, flops, masks, models
    from jaxprune.report import format_table

    if args.input_shape:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    elif args.dataset:
        shape = data.info(args.dataset).input_shape
    else:
        shape = models.default_input_shape(args.model)
    options = json.loads(args.options) if args.options else {}
    model = models.get(args.model, num_classes=args.num_classes, **options)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)),
                                                  train=False))
    layers = flops.trace_layers(model, variables, jnp.zeros((1, *shape)))
    rows = [{"layer": "/".join(layer.path[:-1]), "kind": layer.kind,
             "kernel": "x".join(map(str, layer.kernel_shape)),
             "output": "x".join(map(str, layer.output_shape[1:])), "MACs": layer.macs}
            for layer in layers]
    if args.masks:
        saved = np.load(args.masks)
        leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
        mask = jax.tree_util.tree_unflatten(
            jax.tree.structure(variables["params"]),
            [saved["/".join(map(str, masks.path_tuple(kp)))][args.seed_index].astype(bool)
             for kp, _ in leaves])
        kept = {layer.path: float(np.asarray(_get_path(mask, layer.path)).mean())
                for layer in layers}
        for row, layer in zip(rows, layers, strict=True):
            row["density"] = kept[layer.path]
            row["MACs left"] = round(layer.macs * kept[layer.path])
    print(format_table(rows))
    total = flops.count_macs(model, variables, shape)
    print(f"\n{args.model}, input {shape}: {flops.count_params(variables['params']):,} params, "
          f"{total:,} MACs per example (multiply-accumulates counted once; FLOPs ~ 2x MACs)")
    if args.masks:
        left = flops.count_macs(model, variables, shape, mask=mask)
        print(f"under the mask (seed index {args.seed_index}): {left:,} MACs "
              f"({100 * left / total:.2f}%), "
              f"{flops.count_params(variables['params'], mask=mask):,} params kept")
    return 0


def _get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxprune",
        description="Neural-network pruning research in JAX/Flax.",
        epilog="Examples:\n  jaxprune demo\n  jaxprune models\n"
               "  jaxprune prune --model lenet_300_100 --dataset mnist --criterion synflow "
               "--compression 100 --seeds 3 --workdir runs/synflow\n"
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

    p = sub.add_parser("prune", help="prune random inits at initialization, save masks "
                       "(and train them with --epochs)")
    _add_train_flags(p)
    p.add_argument("--criterion", required=True, help="random | magnitude | snip | grasp | "
                   "synflow | iterative_snip")
    p.add_argument("--sparsity", type=float, help="fraction of prunable weights removed")
    p.add_argument("--compression", type=float, help="or 1/density, e.g. 100")
    p.add_argument("--seeds", type=int, default=1, help="random inits (seeds --seed, ...)")
    p.add_argument("--allocation", default="global", help="global | uniform | erk")
    p.add_argument("--rounds", type=int, default=None,
                   help="pruning rounds (default: 100 for synflow/iterative_snip, else 1)")
    p.add_argument("--per-class", type=int, default=10, help="scoring examples per class")
    p.add_argument("--keep-first-last", action="store_true",
                   help="never prune the first and last layer")
    p.add_argument("--workdir", required=True, help="writes masks.npz and summary.json here")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group(
        "structured (channel) pruning",
        "--structured prunes whole channels and builds the narrower model; --criterion is then "
        "l1 | random | bn_scale | fisher")
    g.add_argument("--structured", action="store_true", help="prune channels, not weights")
    g.add_argument("--policy", choices=STRUCTURED_POLICIES,
                   help="ratio: --ratio of every group; global: one threshold; macs: remove "
                   "--ratio of the MACs; li-*: Li et al. 2017's VGG-16-A / ResNet-56-A/B")
    g.add_argument("--ratio", type=float, help="fraction of channels (or MACs) to remove")
    g.add_argument("--residual", action="store_true",
                   help="also prune residual-stream channels of ResNets/WRNs (coupled per stage)")
    g.add_argument("--from-workdir", help="prune the trained network of this `train` workdir "
                   "(default: a fresh init)")
    g.add_argument("--scratch", action="store_true",
                   help="with --epochs: train the pruned architecture from a fresh init "
                   "(Scratch-E) instead of fine-tuning")
    p.set_defaults(func=cmd_prune, epochs=0)

    p = sub.add_parser("flops", help="per-layer MACs and parameters of a model (optionally "
                       "under saved masks)")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", help="use this dataset's input shape")
    p.add_argument("--input-shape", help="per-example shape, e.g. 32,32,3")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--options", help='model options as JSON, e.g. \'{"width_multiplier": 0.5}\'')
    p.add_argument("--masks", help="masks.npz written by `jaxprune prune`")
    p.add_argument("--seed-index", type=int, default=0, help="which seed's mask in --masks")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("sweep", help="methods x compressions x seeds, all trained together; "
                       "table, CSV and plot")
    _add_train_flags(p)
    _add_sweep_flags(p, epochs=None, out="sweep")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("demo", help="the offline pruning demo on MNIST-1D (no files, no network)")
    _add_sweep_flags(p, epochs=30, out="demo")
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
