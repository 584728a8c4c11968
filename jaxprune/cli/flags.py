"""Flags the commands share, each defined once, and what they turn into (a training config, a
criterion's options, the identity a workdir records)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

MODEL_HELP = ("zoo model name (see `jaxprune models`) or pkg.module:attr, a Linen or NNX "
              "module class or a function returning one")

# Config fields the training flags can override: field -> (flag, type, help).
TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    "model": ("--model", str, MODEL_HELP),
    "dataset": ("--dataset", str, "dataset name (see `jaxprune datasets`)"),
    "epochs": ("--epochs", int, "passes over the training split"),
    "batch_size": ("--batch-size", int, "training batch size"),
    "optimizer": ("--optimizer", str, "sgd | adam | adamw"),
    "learning_rate": ("--lr", float, "peak learning rate"),
    "momentum": ("--momentum", float, "SGD momentum"),
    "weight_decay": ("--weight-decay", float, "L2 coefficient"),
    "schedule": ("--schedule", str, "constant | step | cosine"),
    "warmup_epochs": ("--warmup-epochs", int, "linear warm-up epochs"),
    "bn_l1": ("--bn-l1", float, "Network Slimming's sparsity s: s*sign(gamma) on every "
              "batch-norm scale's gradient (0: off; the paper's CIFAR value 1e-4)"),
    "label_smoothing": ("--label-smoothing", float, "label smoothing in [0, 1)"),
    "seed": ("--seed", int, "seed for init, batch order and augmentation"),
    "checkpoint_every": ("--checkpoint-every", int, "checkpoint every N epochs"),
    "data_dir": ("--data-dir", str, "folder with official dataset files (default: "
                 "$JAXPRUNE_DATA_DIR, then TFDS)"),
}

def init_schemes() -> list[str]:
    from jaxprune import models

    return models.init_schemes()


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """The training recipe's flags (a ``--preset`` and overrides of its fields)."""
    from jaxprune.train import PRESETS

    p.add_argument("--preset", help="start from a recipe: " + ", ".join(sorted(PRESETS)))
    for field, (flag, typ, help_) in TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=help_)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="pad-4 random crop + horizontal flip (image datasets)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="per-channel normalization with training-split statistics")
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="scale every layer width of the model")
    p.add_argument("--init", default=None, choices=init_schemes(),
                   help="initialization scheme: default (the zoo's), torch (PyTorch's module "
                   "defaults) or a reference code's (synflow, rethinking, pytorch_prunes, pfs)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_seeds(p: argparse.ArgumentParser, default: int | None = 1, what: str = "random inits"
              ) -> None:
    p.add_argument("--seeds", type=int, default=default,
                   help=f"{what} (seeds --seed, --seed + 1, ...)")


def add_per_class(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-class", type=int, default=10,
                   help="scoring examples per class (criteria that score on data)")


def add_subsets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-subset", type=int,
                   help="train (and score) on this many training examples (a fixed random "
                   "subset)")
    p.add_argument("--test-subset", type=int,
                   help="evaluate on this many test examples (a fixed random subset)")


def add_scoring_flags(p: argparse.ArgumentParser, *, scorer: bool = True) -> None:
    p.add_argument("--score-sampling", default="balanced", choices=["balanced", "random"],
                   help="scoring batch: --per-class examples of every class (balanced) or "
                   "--per-class x classes random training examples (random: Synaptic-Flow's)")
    p.add_argument("--score-bn", default="eval", choices=["eval", "train"],
                   help="batch norm while scoring: running statistics (eval: Synaptic-Flow's "
                   "default) or the scoring batch's (train)")
    if scorer:
        p.add_argument("--scorer", help="a trained AutoS scorer (for the autos criterion)")


def config_from_args(args: argparse.Namespace):
    """The :class:`jaxprune.train.TrainConfig` of the training flags (validated)."""
    from jaxprune.train import TrainConfig, preset

    fields = [*TRAIN_FLAGS, "nesterov", "augment", "normalize"]
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    model_options = {}
    if args.width_multiplier is not None:
        model_options["width_multiplier"] = args.width_multiplier
    if args.init not in (None, "default"):  # "default" stays out: old workdirs keep resuming
        model_options["init"] = args.init
    if model_options:
        overrides["model_options"] = model_options
    config = preset(args.preset, **overrides) if args.preset else TrainConfig(**overrides)
    config.validate()
    return config


def parse_shape(text: str, flag: str = "--input-shape") -> tuple[int, ...]:
    """``"32,32,3"`` -> ``(32, 32, 3)``, or a one-line error."""
    try:
        shape = tuple(int(t) for t in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"{flag} takes positive integers separated by commas, e.g. 32,32,3; "
                         f"got {text!r}")
    return shape


def scorer_options(args: argparse.Namespace, criteria: list[str]) -> dict[str, Any] | None:
    """Criterion options from the flags: ``{"scorer": DIR}`` for the autos criterion (checked
    now, before any work), ``{"batch_norm": "train"}`` for ``--score-bn train``."""
    from jaxprune.criteria.learned import load_scorer

    if "autos" in criteria and not args.scorer:
        raise ValueError("the autos criterion needs --scorer DIR (a scorer from "
                         "`jaxprune autos train`)")
    options: dict[str, Any] = {}
    if getattr(args, "score_bn", "eval") != "eval":
        options["batch_norm"] = args.score_bn
    if args.scorer:
        load_scorer(args.scorer)  # a clear error now for a missing or outdated scorer
        options["scorer"] = str(args.scorer)
    return options or None


def scoring_identity(args: argparse.Namespace) -> dict[str, Any]:
    """The scoring settings that differ from the defaults (absent when default, so workdirs
    written before these flags existed still resume)."""
    out = {}
    if args.score_sampling != "balanced":
        out["score_sampling"] = args.score_sampling
    if args.score_bn != "eval":
        out["score_bn"] = args.score_bn
    return out


def scorer_identity(args: argparse.Namespace) -> dict[str, Any]:
    """The scorer's folder (a location) and a fingerprint of what it holds."""
    if not getattr(args, "scorer", None):
        return {}
    text = (Path(args.scorer) / "scorer.json").read_bytes()
    return {"scorer": str(args.scorer), "scorer_fingerprint": hashlib.blake2b(
        text, digest_size=12).hexdigest()}


def refuse(args: argparse.Namespace, flags: dict[str, str], why: str) -> None:
    """One-line ``ValueError`` when any of ``flags`` (dest -> flag) was given: a flag that does
    not apply is refused, never silently ignored."""
    given = [flag for dest, flag in flags.items() if getattr(args, dest, None) not in
             (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply "
                         f"{why}")

