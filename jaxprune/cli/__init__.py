"""The ``jaxprune`` command: parses flags, calls the library, prints tables, writes files.

One module per command family, each a thin layer over one library function:

  train            train                  jaxprune.train.train_and_evaluate
  info             models, datasets, flops  jaxprune.models, jaxprune.data, jaxprune.flops
  pai              prune, sweep, demo     jaxprune.studies.pai.prune_and_train / sweep
  structured       prune --structured     jaxprune.studies.structured.run
  lottery          lottery, autos train   jaxprune.studies.lottery.run / autos.train_scorer
  scratch          scratch search         jaxprune.studies.scratch.find_architectures
  scratch_results  scratch train, diversity  jaxprune.studies.scratch.train_from_scratch / diversity

Flags several commands take are defined once (:mod:`jaxprune.cli.flags`); the rest they share is
in :mod:`jaxprune.cli.common`. A flag that does not apply to a command is refused, never ignored.
Run ``jaxprune --help`` or ``jaxprune <command> --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jaxprune.cli import info, lottery, pai, scratch, train

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxprune`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="jaxprune",
        description="Neural-network pruning research in JAX/Flax.",
        epilog="Examples:\n  jaxprune demo\n  jaxprune models\n"
               "  jaxprune prune --model lenet_300_100 --dataset mnist --criterion synflow "
               "--compression 100 --seeds 3 --workdir runs/synflow\n"
               "  jaxprune prune --model mypkg.nets:ConvNet --dataset cifar10 --criterion snip "
               "--sparsity 0.9 --workdir runs/mine\n"
               "  jaxprune train --preset mnist_lenet --model lenet_300_100 --data-dir DATA "
               "--workdir runs/lenet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, info, pai, lottery, scratch):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxprune`` console script: bad input is one line on stderr and exit
    code 2, Ctrl-C one line and 130."""
    args = build_parser().parse_args(argv)
    if os.getcwd() not in sys.path:  # --model pkg.module:attr imports from here, as python -m
        sys.path.insert(0, os.getcwd())
    try:
        return args.func(args)
    except KeyboardInterrupt:
        resumable = getattr(args, "workdir", None) or getattr(args, "out", None)
        print(f"\njaxprune {args.command}: interrupted"
              + ("; rerun the same command to resume from the last checkpoint" if resumable
                 else ""), file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        message = getattr(e, "brief", None) or str(e)
        print(f"jaxprune {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
