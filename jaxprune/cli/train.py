"""``jaxprune train``: one network, one recipe (:func:`jaxprune.train.train_and_evaluate`)."""

from __future__ import annotations

import argparse

from jaxprune.cli import common, flags


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (resumes if --workdir holds a checkpoint)")
    flags.add_train_flags(p)
    p.add_argument("--workdir", help="write config, metrics.jsonl, checkpoints, results.json here")
    flags.add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxprune.report import format_table
    from jaxprune.train import train_and_evaluate

    config = flags.config_from_args(args)
    print(f"training {config.model} on {config.dataset} for "
          f"{common.plural(config.epochs, 'epoch')}"
          + (f" (workdir {args.workdir})" if args.workdir else ""))
    res = train_and_evaluate(config, args.workdir, progress=not args.no_progress).results
    print(format_table([{k: res[k] for k in ("epochs", "test_accuracy", "test_loss",
                                              "train_seconds", "images_per_second")}
                        | {"diverged": common.diverged_cell(res["diverged_epoch"])}]))
    print(common.diverged_line([res["diverged_epoch"]], "network"))
    return 0
