"""``jaxprune lottery`` (:func:`jaxprune.studies.lottery.run`) and ``jaxprune autos train``
(:func:`jaxprune.studies.autos.train_scorer` on lottery workdirs' survival counts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxprune.cli import common, flags


def register(sub) -> None:
    p = sub.add_parser("lottery", help="lottery tickets: iterative magnitude pruning with "
                       "rewinding for N seeds, with the reinit/shuffle/random controls")
    flags.add_train_flags(p)
    g = p.add_argument_group("iterative pruning")
    g.add_argument("--levels", type=int, required=True, help="pruning levels after the dense one")
    g.add_argument("--rate", type=float, default=0.2,
                   help="fraction of the remaining prunable weights removed per level")
    g.add_argument("--last-layer-rate", type=float,
                   help="the output layer's rate (Frankle & Carbin: half of --rate)")
    g.add_argument("--layer-rate", action="append", metavar="PATH=RATE",
                   help="a layer's own rate, e.g. fc2/kernel=0.1 (repeatable)")
    g.add_argument("--allocation", choices=("layer", "global"), default="layer",
                   help="layer: each layer loses its rate (Frankle & Carbin); global: one "
                   "threshold over all layers")
    g.add_argument("--rewind-step", type=int, default=0,
                   help="rewind to the weights after this many steps of dense training (0: init)")
    g.add_argument("--criterion", default="magnitude",
                   help="score of the trained weights (a registered criterion)")
    g.add_argument("--keep-dense", action="append", metavar="PATH",
                   help="a parameter never pruned, e.g. fc1/kernel (repeatable)")
    g.add_argument("--controls", nargs="+", default=["reinit", "shuffle", "random"],
                   help="controls trained beside the ticket at every level")
    g.add_argument("--no-controls", action="store_true", help="train the tickets only")
    g.add_argument("--eval-every", type=int, default=0,
                   help="evaluate every N steps to find the early-stop step (0: every epoch)")
    g.add_argument("--validation", type=int, default=0,
                   help="hold out this many training examples for the early stop (Frankle & "
                   "Carbin: 5000); 0: read it off the test loss")
    flags.add_per_class(g)
    flags.add_subsets(g)
    flags.add_seeds(p)
    p.add_argument("--workdir", required=True, help="every level's files; rerun to resume")
    p.add_argument("--out", help="also write summary.csv, lottery.png and results.json here "
                   "(e.g. an experiment's folder; the workdir holds checkpoints)")
    flags.add_progress(p)
    p.set_defaults(func=cmd_lottery)

    p = sub.add_parser("autos", help="AutoS: learn a pruning-at-init scorer from lottery runs")
    autos_sub = p.add_subparsers(dest="autos_command", required=True, metavar="SUBCOMMAND")
    q = autos_sub.add_parser("train", help="train a scorer on lottery workdirs' survival counts")
    q.add_argument("--from", dest="sources", nargs="+", required=True, metavar="WORKDIR",
                   help="lottery workdirs (several seeds or models are pooled)")
    q.add_argument("--out", required=True, help="folder for the scorer (variables, scorer.json, "
                   "curves.jsonl)")
    q.add_argument("--data-dir", help="where the workdirs' dataset lives (default: "
                   "$JAXPRUNE_DATA_DIR)")
    q.add_argument("--holdout", choices=("run", "layer"), default="run",
                   help="held-out rows: the last run whole, or the last layer of every run")
    q.add_argument("--standardize", default="none", help="none | layer (per-layer features)")
    q.add_argument("--widths", help="hidden widths, e.g. 16,64,1024,1024,64 (the paper's)")
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--batch-size", type=int, default=1024)
    q.add_argument("--lr", type=float, default=0.01)
    q.add_argument("--max-train", type=int, help="train on at most this many weights")
    q.add_argument("--per-class", type=int, default=10, help="scoring examples per class (g_0)")
    q.add_argument("--seed", type=int, default=0)
    flags.add_progress(q)
    q.set_defaults(func=cmd_autos_train)


def cmd_lottery(args: argparse.Namespace) -> int:
    """``lottery``: iterative magnitude pruning with rewinding for N seeds, controls beside."""
    from jaxprune.report import format_table, plot_lottery, to_csv
    from jaxprune.studies import lottery
    from jaxprune.train import write_json_atomic, write_text_atomic

    layer_rates = {}
    for item in args.layer_rate or []:
        path, sep, rate = item.partition("=")
        try:
            layer_rates[path] = float(rate)
        except ValueError:
            sep = ""
        if not sep or not path:
            raise ValueError(f"--layer-rate takes PATH=RATE, e.g. fc3/kernel=0.1; got {item!r}")
    lc = lottery.LotteryConfig(
        levels=args.levels, rate=args.rate, layer_rates=layer_rates,
        last_layer_rate=args.last_layer_rate, allocation=args.allocation,
        rewind_step=args.rewind_step, criterion=args.criterion,
        keep_dense=tuple(args.keep_dense or ()),
        controls=() if args.no_controls else tuple(args.controls),
        eval_every=args.eval_every, per_class=args.per_class)
    lc.validate()
    config = flags.config_from_args(args)
    train, test = common.load_splits(config.dataset, config.data_dir)
    train, test = common.subset(train, args.train_subset), common.subset(test, args.test_subset)
    validation = None
    if args.validation:
        train, validation = lottery.holdout(train, args.validation)
    model = common.build_model(config)
    seeds = common.seed_list(config.seed, args.seeds)
    if args.out:  # the results folder belongs to this run too (checked first, then claimed)
        lc.validate(config.epochs * (len(train.labels) // config.batch_size))
        common.claim(Path(args.out), lottery.identity(model, train, test, config, lc, seeds,
                                                validation))
    res = lottery.run(model, train, test, config, lc, seeds=seeds, validation=validation,
                      workdir=args.workdir, progress=not args.no_progress)
    rows = lottery.arm_rows(res.levels)
    wd = Path(args.out or args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    write_text_atomic(wd / "summary.csv", to_csv(rows))
    if args.out:
        write_json_atomic(wd / "results.json", {"levels": res.levels})
    title = f"IMP, {config.model} on {config.dataset}, {common.plural(len(seeds), 'seed')}"
    plot_lottery(rows, str(wd / "lottery.png"), title=title)
    arms = list(res.levels[-1]["arms"])
    print(f"\n{config.model} on {config.dataset}: test accuracy (%) at the end of training and "
          "the ticket's early-stop step, "
          + (f"mean +/- std over {len(seeds)} seeds" if len(seeds) > 1 else "one seed"))
    table = []
    for level in res.levels:
        by_arm = {r["arm"]: r for r in rows if r["level"] == level["level"]}
        ticket = by_arm["ticket"]
        table.append({"level": level["level"], "remaining %": f"{ticket['remaining %']:.2f}"}
                     | {arm: common.mean_std(by_arm.get(arm), "acc", 100) for arm in arms}
                     | {"ticket early stop": common.mean_std(ticket, "early stop", 1, 0)})
    print(format_table(table))
    print(f"\nwrote {wd / 'summary.csv'}, {wd / 'lottery.png'}, {wd / 'results.json'}; "
          f"{args.workdir} holds survival.npz and a folder per level (masks.npz, summary.json, "
          "train/)")
    print(common.diverged_line([e for level in res.levels for arm in level["arms"].values()
                          for e in arm.get("diverged_epoch", [None] * len(seeds))],
                         "trained networks (every level and arm)"))
    return 0


def cmd_autos_train(args: argparse.Namespace) -> int:
    """``autos train``: a scorer from lottery workdirs' survival counts."""
    from jaxprune.criteria import learned as crit
    from jaxprune.report import format_table
    from jaxprune.studies import autos
    from jaxprune.train import fingerprint

    widths = flags.parse_shape(args.widths, "--widths") if args.widths else crit.PAPER_WIDTHS
    if args.standardize not in crit.STANDARDIZE:
        raise ValueError(f"--standardize must be one of {list(crit.STANDARDIZE)}")
    ds = autos.dataset_from_lottery(args.sources, data_dir=args.data_dir,
                                    standardize=args.standardize, per_class=args.per_class)
    train_rows, held_rows = autos.split(ds, args.holdout)
    out = Path(args.out)
    common.claim(out, {"command": "autos train", "sources": [str(Path(s).resolve()) for s in
                                                       args.sources],
                 "data_fingerprint": fingerprint((ds.features, ds.labels)),
                 "holdout": args.holdout, "standardize": args.standardize,
                 "widths": list(widths), "epochs": args.epochs, "batch_size": args.batch_size,
                 "learning_rate": args.lr, "max_train": args.max_train, "seed": args.seed,
                 "per_class": args.per_class})
    print(f"{len(ds.labels):,} weights from {len(ds.runs)} runs; held out: "
          f"{int(held_rows.sum()):,} ({args.holdout})")
    scorer, curve = autos.train_scorer(
        ds, train_rows, held_rows, widths=widths, standardize=args.standardize,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        max_train=args.max_train, seed=args.seed, progress=not args.no_progress)
    autos.save_scorer(scorer, out, curve)
    print(format_table(curve))
    print(f"best epoch {scorer.info['best_epoch']}: held-out MSE {scorer.info['heldout_mse']:.5f}"
          f", rank correlation with the survival counts {scorer.info['heldout_spearman']:.4f}"
          + (f" (|theta_0|: {scorer.info['heldout_spearman_magnitude']:.4f}, |theta_0 g_0|: "
             f"{scorer.info['heldout_spearman_snip']:.4f})"
             if "heldout_spearman_snip" in scorer.info else "") + f"; wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# scratch: Pruning from Scratch (jaxprune.studies.scratch does the work; these parse and print).
# ---------------------------------------------------------------------------------------------
