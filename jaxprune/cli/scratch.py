"""``jaxprune scratch search | train | diversity``: Pruning from Scratch
(:mod:`jaxprune.studies.scratch` does the work; these parse and print)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxprune.cli import common, flags, scratch_results


def register(sub) -> None:
    p = sub.add_parser("scratch", help="Pruning from Scratch: gates on frozen random networks, "
                       "architectures at a MAC budget, trained from scratch; diversity")
    scratch_sub = p.add_subparsers(dest="scratch_command", required=True, metavar="SUBCOMMAND")
    q = scratch_sub.add_parser("search", help="learn gates on N frozen networks and find one "
                               "architecture per network at --reduction")
    q.add_argument("--model", required=True, help="a zoo model with channel groups")
    q.add_argument("--dataset", required=True)
    q.add_argument("--width-multiplier", type=float, help="the STANDARD model's width (CPU "
                   "scale); the expanded one is this times --expansion")
    q.add_argument("--options", help="more model options as JSON")
    q.add_argument("--init", default=None, choices=flags.init_schemes(),
                   help="initialization scheme (pfs: the official code's, VGG and ResNet)")
    q.add_argument("--gate-layers", nargs="+", help="channel groups to gate and prune "
                   "(default: all; e.g. only the convs of a net with a hidden classifier)")
    q.add_argument("--expansion", type=float, default=1.25,
                   help="width expansion e >= 1 of the gated network (official VGG: 80/64)")
    q.add_argument("--reduction", type=float, default=0.5,
                   help="target MAC reduction against the standard model, in (0, 1)")
    q.add_argument("--tolerance", type=float, default=1e-3,
                   help="accepted relative error of the reduction (official: 0.001)")
    q.add_argument("--seeds", type=int, default=1, help="random networks, searched together")
    q.add_argument("--first-seed", type=int, default=0)
    q.add_argument("--gate-epochs", type=int, default=10)
    q.add_argument("--gate-lr", type=float, default=0.01, help="Adam's learning rate")
    q.add_argument("--penalty", type=float, default=0.5, help="lambda of (mean|g| - r)^2")
    q.add_argument("--target", type=float, default=0.2,
                   help="r in (0, 1): the mean gate pulled toward, and the nonzero fraction "
                   "an epoch needs to be selected")
    q.add_argument("--batch-size", type=int, default=128)
    q.add_argument("--data-seed", type=int, default=0, help="batch order and augmentation")
    q.add_argument("--pretrain-epochs", type=int, default=0,
                   help="train the expanded networks first (gates on TRAINED weights: the "
                   "diversity study's baseline)")
    q.add_argument("--val-size", type=int, default=5000,
                   help="validation examples held out from the end of the training split")
    q.add_argument("--train-subset", type=int, help="train on this many examples (CPU scale)")
    q.add_argument("--test-subset", type=int)
    q.add_argument("--strategy", default="auto", choices=["auto", "vmap", "loop"],
                   help="how the networks run together")
    q.add_argument("--data-dir")
    q.add_argument("--workdir", required=True)
    flags.add_progress(q)
    q.set_defaults(func=cmd_search)
    q = scratch_sub.add_parser("train", help="train a search's architectures from scratch "
                               "(Scratch-B: int(epochs / (1 - reduction)) epochs)")
    q.add_argument("--from", dest="source", required=True, metavar="WORKDIR",
                   help="a `scratch search` workdir")
    q.add_argument("--epochs", type=int, default=160, help="the standard model's epochs")
    q.add_argument("--lr", type=float, default=0.1)
    q.add_argument("--seed-index", type=int, nargs="+", help="only these of the search's "
                   "networks (0-based)")
    q.add_argument("--standard", action="store_true",
                   help="also train the standard network (--epochs) for each seed")
    q.add_argument("--train-subset", type=int)
    q.add_argument("--test-subset", type=int)
    q.add_argument("--data-dir")
    q.add_argument("--workdir", required=True)
    flags.add_progress(q)
    q.set_defaults(func=scratch_results.cmd_train)
    q = scratch_sub.add_parser("diversity", help="compare the architectures of several "
                               "searches: distances, spread, permutation test, CSV and PNG")
    q.add_argument("--from", dest="sources", nargs="+", required=True, metavar="WORKDIR")
    q.add_argument("--labels", nargs="+", help="one label per workdir (default: folder names)")
    q.add_argument("--permutations", type=int, default=2000)
    q.add_argument("--out", required=True)
    q.set_defaults(func=scratch_results.cmd_diversity)


def _splits(args, dataset: str):
    """(gate-training split, validation split, test split): the validation split is the last
    ``--val-size`` training examples (as the official code holds out part of the training
    set), ``--train-subset`` draws from the rest."""
    from jaxprune.train import Split

    train, test = common.load_splits(dataset, args.data_dir)
    if not 0 < args.val_size < len(train.labels):
        raise ValueError(f"--val-size must lie in (0, {len(train.labels)}), got {args.val_size}")
    cut = len(train.labels) - args.val_size
    val = Split(train.images[cut:], train.labels[cut:])
    rest = common.subset(Split(train.images[:cut], train.labels[:cut]), args.train_subset)
    return rest, val, common.subset(test, args.test_subset)


def cmd_search(args: argparse.Namespace) -> int:
    """``scratch search``: gates on N frozen networks (random, or trained first), one
    architecture per network at the target MAC reduction."""
    import json

    import numpy as np

    from jaxprune import data
    from jaxprune.report import format_table
    from jaxprune.studies import scratch
    from jaxprune.train import write_json_atomic, write_npz_atomic

    gate_cfg = scratch.GateConfig(epochs=args.gate_epochs, batch_size=args.batch_size,
                                  learning_rate=args.gate_lr, penalty=args.penalty,
                                  target=args.target, seed=args.data_seed).validate()
    options = json.loads(args.options) if args.options else {}
    if args.width_multiplier is not None:
        options["width_multiplier"] = args.width_multiplier
    if args.init not in (None, "default"):
        options["init"] = args.init
    info = data.info(args.dataset)
    options["num_classes"] = info.num_classes
    structure, standard = scratch.expanded_structure(args.model, options, args.expansion)
    reference = scratch.standard_macs(args.model, **standard)
    names = args.gate_layers or structure.group_names
    unknown = sorted(set(names) - set(structure.group_names))
    if unknown:
        raise ValueError(f"--gate-layers {unknown} are not channel groups of {args.model}; "
                         f"valid: {', '.join(structure.group_names)}")
    ones = {n: np.ones(structure.group(n).width) for n in names}
    scratch.search(structure, ones, args.reduction, reference_macs=reference,
                   tolerance=float("inf"))  # a target no structure reaches fails here, first
    train, val, _ = _splits(args, args.dataset)
    if args.batch_size > len(train.labels):
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(train.labels)} "
                         "gate-training examples (after --val-size and --train-subset)")
    seeds = common.seed_list(args.first_seed, args.seeds, "random networks")
    wd = Path(args.workdir)
    common.claim(wd, {"command": "scratch search", "model": args.model, "dataset": args.dataset,
                "options": standard, "expansion": args.expansion, "seeds": seeds,
                "reduction": args.reduction, "tolerance": args.tolerance,
                "gate_layers": names,
                "gates": gate_cfg.to_dict(), "pretrain_epochs": args.pretrain_epochs,
                "val_size": args.val_size, "train_subset": args.train_subset,
                "test_subset": args.test_subset, "strategy": args.strategy,
                "data_fingerprint": common.data_fingerprint(train, val), "data_dir": args.data_dir})
    pretrain = None
    if args.pretrain_epochs:
        pretrain = scratch.train_config(args.pretrain_epochs, 0.0, model=args.model,
                                        dataset=args.dataset, data_dir=args.data_dir,
                                        augment=train.images.ndim == 4)
        print(f"training the {len(seeds)} expanded networks first ({args.pretrain_epochs} "
              "epochs), then ", end="")
    print(f"learning gates on {len(seeds)} frozen {args.model} networks "
          f"(x{args.expansion:g} widths, {sum(structure.group(n).width for n in names):,} "
          f"gates in {len(names)} layers)")
    result, found, how = scratch.find_architectures(
        structure, seeds, train, val, gate_cfg, args.reduction, reference_macs=reference,
        tolerance=args.tolerance, groups=names, pretrain=pretrain, strategy=args.strategy,
        workdir=str(wd), progress=not args.no_progress)
    write_npz_atomic(wd / "gates.npz", {n: result.gates[n] for n in names})
    records = [{"seed": f.seed, "selected_epoch": f.selected_epoch, "met_target": f.met_target,
                "val_accuracy": f.val_accuracy, "reduction": f.searched.reduction,
                "macs": f.searched.counts.macs, "params": f.searched.counts.params,
                "widths": [f.searched.widths[n] for n in names],
                "keep": {n: [int(i) for i in k] for n, k in f.searched.keep.items()}}
               for f in found]
    write_json_atomic(wd / "search.json", {
        "groups": names, "full_widths": [structure.group(n).width for n in names],
        "reference_macs": reference, "initialization": how, "strategy": result.strategy,
        "found": records, "history": result.history})
    print(format_table([{k: r[k] for k in ("seed", "selected_epoch", "met_target",
                                           "val_accuracy", "reduction", "macs", "params")}
                        for r in records]))
    missed = [r["seed"] for r in records if not r["met_target"]]
    if missed:
        print(f"seeds {missed}: no epoch reached <= {args.target:g} nonzero gates; their last "
              "epoch was used (as the official code does); more --gate-epochs move more gates "
              "to zero")
    print(f"wrote {wd / 'search.json'} and {wd / 'gates.npz'}")
    return 0
