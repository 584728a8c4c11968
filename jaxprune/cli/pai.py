"""``jaxprune prune`` (weights, at initialization), ``sweep`` and ``demo``: the PaI study
(:mod:`jaxprune.studies.pai`). ``prune --structured`` is :mod:`jaxprune.cli.structured`."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxprune.cli import common, flags
from jaxprune.cli import structured as structured_cmd

#: ``prune`` flags of weight pruning only: refused with ``--structured``.
WEIGHT_FLAGS = {"sparsity": "--sparsity", "compression": "--compression", "seeds": "--seeds",
                "allocation": "--allocation", "rounds": "--rounds",
                "keep_first_last": "--keep-first-last", "scorer": "--scorer"}


def register(sub) -> None:
    p = sub.add_parser("prune", help="prune random inits at initialization, save masks "
                       "(and train them with --epochs); --structured: prune channels")
    flags.add_train_flags(p)
    p.add_argument("--criterion", required=True, help="weights: random | magnitude | snip | "
                   "grasp | synflow | iterative_snip | autos; --structured: l1 | random | "
                   "bn_scale | fisher")
    p.add_argument("--sparsity", type=float, help="fraction of prunable weights removed")
    p.add_argument("--compression", type=float, help="or 1/density, e.g. 100")
    flags.add_seeds(p, default=None, what="random inits (default 1)")
    p.add_argument("--allocation", help="global (default) | uniform | erk")
    p.add_argument("--rounds", type=int, default=None,
                   help="pruning rounds (default: 100 for synflow/iterative_snip, else 1)")
    flags.add_per_class(p)
    flags.add_scoring_flags(p)
    p.add_argument("--keep-first-last", action="store_true",
                   help="never prune the first and last layer")
    p.add_argument("--workdir", required=True, help="writes masks.npz and summary.json here")
    flags.add_progress(p)
    structured_cmd.add_flags(p)
    p.set_defaults(func=cmd_prune, epochs=0)

    p = sub.add_parser("sweep", help="criteria x compressions x seeds, all trained together; "
                       "table, CSV and plot")
    flags.add_train_flags(p)
    _add_sweep_flags(p, epochs=None, out="sweep")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("demo", help="the offline pruning demo on MNIST-1D (no files, no network)")
    _add_sweep_flags(p, epochs=30, out="demo")
    p.set_defaults(func=cmd_demo)


def sparsity_from_args(args: argparse.Namespace) -> float:
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


def cmd_prune(args: argparse.Namespace) -> int:
    if args.structured:
        flags.refuse(args, WEIGHT_FLAGS, "to --structured (channel pruning); drop them")
        return structured_cmd.cmd_prune_structured(args)
    flags.refuse(args, structured_cmd.CHANNEL_FLAGS, "without --structured (they set channel "
                  "pruning)")
    import jax
    import numpy as np

    from jaxprune import masks
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.train import write_json_atomic, write_npz_atomic

    sparsity = sparsity_from_args(args)
    pai.check_method(args.criterion)
    config = flags.config_from_args(args)
    seeds = common.seed_list(config.seed, 1 if args.seeds is None else args.seeds)
    allocation = args.allocation or "global"
    train, test = common.load_splits(config.dataset, config.data_dir)
    wd = Path(args.workdir)
    options = flags.scorer_options(args, [args.criterion])
    res = pai.prune_and_train(
        common.build_model(config), train, test, config, criterion=args.criterion,
        sparsity=sparsity, seeds=seeds, allocation=allocation, rounds=args.rounds,
        per_class=args.per_class, score_sampling=args.score_sampling,
        keep_first_last=args.keep_first_last, criterion_options=options,
        workdir=str(wd / "train"), progress=not args.no_progress,
        on_checked=lambda rounds: common.claim(wd, {
            "command": "prune", **config.to_dict(), "criterion": args.criterion,
            "sparsity": sparsity, "seeds": seeds, "allocation": allocation, "rounds": rounds,
            "per_class": args.per_class, "keep_first_last": args.keep_first_last,
            "data_fingerprint": common.data_fingerprint(train, test),
            **flags.scorer_identity(args), **flags.scoring_identity(args)}))
    print(f"layer densities of seed {seeds[0]}"
          + (f" (1 of {len(seeds)} seeds; every seed's are in summary.json)"
             if len(seeds) > 1 else ""))
    print(masks.format_report(res.reports[0]))
    flat = {masks.path_str(kp): np.asarray(leaf)  # (seeds, ...) each
            for kp, leaf in jax.tree_util.tree_leaves_with_path(res.masks)}
    write_npz_atomic(wd / "masks.npz", flat)
    summary = {"model": config.model, "dataset": config.dataset, "criterion": args.criterion,
               "sparsity": sparsity, "allocation": allocation, "seeds": seeds,
               "rounds": res.rounds, "keep_dense": [masks.path_str(p) for p in res.keep_dense],
               **res.summary()}
    write_json_atomic(wd / "summary.json", summary)
    rows = summary["per_seed"]
    print(format_table([{k: r.get(k) for k in ("seed", "sparsity", "remaining_params",
                                               "remaining_macs", "test_accuracy")}
                        | {"collapsed layers": len(r["collapsed_layers"])}
                        | ({"at chance": "yes" if r["at_chance"] else "no",
                            "diverged": common.diverged_cell(r["diverged_epoch"])}
                           if "at_chance" in r else {}) for r in rows]))
    print(f"wrote {wd / 'masks.npz'} and {wd / 'summary.json'}")
    if config.epochs > 0:
        print(common.diverged_line([r["diverged_epoch"] for r in rows], "seeds"))
    return 0


def _add_sweep_flags(p: argparse.ArgumentParser, *, epochs: int | None, out: str) -> None:
    from jaxprune.studies import pai

    p.add_argument("--methods", nargs="+", default=["random", "magnitude", "snip", "grasp",
                                                    "synflow"], choices=pai.METHODS,
                   help="criteria to compare")
    p.add_argument("--log10-compressions", nargs="+", type=float,
                   default=[0.5, 1.0, 1.5, 2.0, 2.5],
                   help="compressions as powers of ten (1.0 = 10x = 90%% sparsity)")
    p.add_argument("--densities", nargs="+", type=float,
                   help="densities instead of --log10-compressions, e.g. 0.8 0.1 0.01")
    flags.add_seeds(p, default=3, what="random inits per point")
    flags.add_per_class(p)
    flags.add_scoring_flags(p)
    p.add_argument("--out", default=out, help="folder for networks.csv, summary.csv, the plot and "
                   "the training checkpoints (rerun the same command to resume)")
    flags.add_subsets(p)
    flags.add_progress(p)
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs)


def run_sweep(args: argparse.Namespace, config, *, title: str, command: str) -> int:
    """Shared by ``demo`` and ``sweep``: :func:`jaxprune.studies.pai.sweep`, a table, CSV, PNG."""
    from jaxprune.report import format_table, plot_accuracy_vs_compression, to_csv
    from jaxprune.studies import pai
    from jaxprune.train import write_text_atomic

    seeds = common.seed_list(config.seed, args.seeds)
    for e in args.log10_compressions:
        if not e >= 0:
            raise ValueError(f"--log10-compressions are powers of ten of compressions >= 1, so "
                             f"each >= 0; got {e}")
    options = flags.scorer_options(args, list(args.methods))
    if args.densities:
        if any(not 0 < d <= 1 for d in args.densities):
            raise ValueError(f"--densities are fractions of weights kept, in (0, 1]; got "
                             f"{args.densities}")
        sparsities = [1.0 - d for d in args.densities]
    else:
        sparsities = [pai.compression_to_sparsity(10 ** e) for e in args.log10_compressions]
    train, test = common.load_splits(config.dataset, config.data_dir)
    train, test = common.subset(train, args.train_subset), common.subset(test, args.test_subset)
    out = Path(args.out)
    target = ({"densities": list(args.densities)} if args.densities else
              {"log10_compressions": list(args.log10_compressions)})
    common.claim(out, {"command": command, **config.to_dict(), "methods": list(args.methods),
                       **target, "seeds": args.seeds, "per_class": args.per_class,
                       "data_fingerprint": common.data_fingerprint(train, test),
                       **flags.scorer_identity(args), **flags.scoring_identity(args)})
    rows = pai.sweep(common.build_model(config), train, test, config, methods=args.methods,
                     sparsities=sparsities, seeds=seeds, per_class=args.per_class,
                     score_sampling=args.score_sampling, workdir=str(out / "train"),
                     progress=not args.no_progress, criterion_options=options)
    table = pai.aggregate(rows)
    write_text_atomic(out / "networks.csv", to_csv(rows))
    write_text_atomic(out / "summary.csv", to_csv(table))
    plot_accuracy_vs_compression(table, str(out / "accuracy_vs_compression.png"), title=title)
    print(f"\n{title}: test accuracy, "
          + (f"mean +/- std over {args.seeds} seeds" if args.seeds > 1 else "one seed (no spread)"))
    print(format_table([{"method": r["method"], "compression": f"{r['compression']:.3g}x",
                         "accuracy": f"{100 * r['acc_mean']:.2f}"
                                     + (f" +/- {100 * r['acc_std']:.2f}" if r["seeds"] > 1 else ""),
                         "collapsed runs": r["collapsed_runs"],
                         "at chance": r["at_chance_runs"],
                         "diverged": r["diverged_runs"]} for r in table]))
    print("\ncollapsed: a layer lost every weight; at chance: accuracy not above always "
          "predicting the most frequent class (one-sided binomial test, 1%)")
    print(f"wrote {out / 'networks.csv'}, {out / 'summary.csv'}, "
          f"{out / 'accuracy_vs_compression.png'}")
    print(common.diverged_line([r["diverged_epoch"] for r in rows], "networks"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jaxprune.train import TrainConfig

    config = TrainConfig(
        model="mlp_6x100", dataset="mnist1d", epochs=args.epochs, batch_size=100,
        optimizer="adam", learning_rate=2e-3, schedule="cosine", weight_decay=0.0,
    )
    return run_sweep(args, config, title="MNIST-1D, SynFlow's 6x100 MLP, pruned at init",
                     command="demo")


def cmd_sweep(args: argparse.Namespace) -> int:
    config = flags.config_from_args(args)
    return run_sweep(args, config, title=f"{config.dataset}, {config.model}, pruned at init",
                     command="sweep")
