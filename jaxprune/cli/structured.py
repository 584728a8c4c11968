"""``jaxprune prune --structured``: channel pruning with surgery, then fine-tuning / Scratch-E /
Scratch-B: :func:`jaxprune.studies.structured.run` (with ``key = fold_in(key(seed), 7)``, as the
rethinking runner), parsed and printed here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jaxprune.cli import common, flags

#: ``prune`` flags of channel pruning only: refused without ``--structured``.
CHANNEL_FLAGS = {"policy": "--policy", "ratio": "--ratio", "on_empty": "--on-empty",
                 "residual": "--residual", "from_workdir": "--from-workdir",
                 "scratch": "--scratch", "modes": "--modes",
                 "finetune_epochs": "--finetune-epochs", "finetune_lr": "--finetune-lr",
                 "finetune_schedule": "--finetune-schedule", "scratch_b_cap": "--scratch-b-cap"}

#: The study's key: ``fold_in(key(seed), STREAM)`` (stream 0 initializes the large network).
STREAM = 7
#: Recorded in the workdir: the pipeline's version (1: the command's own loop, before it called
#: ``studies.structured.run``; other random streams and folder names, so it cannot resume).
PIPELINE = 2


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "structured (channel) pruning",
        "--structured prunes whole channels and builds the narrower model; --criterion is then "
        "l1 | random | bn_scale | fisher")
    g.add_argument("--structured", action="store_true", help="prune channels, not weights")
    g.add_argument("--policy",
                   help="ratio: --ratio of every group; global: one threshold (Network "
                   "Slimming); macs / params: remove --ratio of the MACs / params; li-vgg16-a, "
                   "li-resnet56-a, li-resnet56-b: Li et al. 2017's settings")
    g.add_argument("--ratio", type=float, help="fraction of channels (or MACs) to remove")
    g.add_argument("--on-empty", choices=["raise", "clamp"],
                   help="a ratio that empties a layer: raise (default) or keep its best channel")
    g.add_argument("--residual", action="store_true",
                   help="also prune residual-stream channels of ResNets/WRNs (coupled per stage)")
    g.add_argument("--from-workdir", help="prune the trained network of this `train` workdir "
                   "(default: a fresh init)")
    g.add_argument("--scratch", action="store_true",
                   help="with --epochs: train the pruned architecture from a fresh init "
                   "(Scratch-E) instead of fine-tuning")
    g.add_argument("--modes", nargs="+", choices=["finetune", "scratch-e", "scratch-b"],
                   help="with --epochs: which of Rethinking's trainings to run (default "
                   "finetune); the training flags are the large network's recipe (Scratch-E "
                   "trains it as is, Scratch-B for its FLOPs: epochs x dense/pruned MACs)")
    g.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (default --epochs)")
    g.add_argument("--finetune-lr", type=float, help="fine-tuning learning rate (default --lr)")
    g.add_argument("--finetune-schedule", help="fine-tuning schedule (default --schedule)")
    g.add_argument("--scratch-b-cap", type=float,
                   help="cap Scratch-B's epoch factor (the paper's ImageNet rule: 2; default "
                   "uncapped, as the CIFAR code)")


def _policy(args, structure):
    """The ``--policy`` from the library's registry, with ``--ratio`` where it takes one."""
    from jaxprune.studies import structured as study

    if args.policy is None:
        raise ValueError(f"--structured needs --policy, one of {study.policy_names()}")
    study.POLICIES.check(args.policy)
    takes_ratio = study.POLICIES.info(args.policy)["ratio"]
    if takes_ratio and args.ratio is None:
        raise ValueError(f"--policy {args.policy} needs --ratio (the fraction of channels, or of "
                         "MACs / params for 'macs' / 'params', to remove)")
    if not takes_ratio and args.ratio is not None:
        raise ValueError(f"--policy {args.policy} is a fixed published setting; drop --ratio")
    kwargs = {"ratio": args.ratio} if takes_ratio else {}
    if args.policy in ("ratio", "global"):
        kwargs["on_empty"] = args.on_empty or "raise"
    return study.get_policy(args.policy, structure, **kwargs)


def _modes(args) -> tuple[str, ...]:
    from jaxprune.studies import structured as study

    if args.modes is not None and args.scratch:
        raise ValueError("give --modes or --scratch (= --modes scratch-e), not both")
    return study.check_modes(args.modes or (["scratch-e"] if args.scratch else ["finetune"]))


def _refuse_old_pipeline(wd: Path) -> None:
    cfg = wd / "config.json"
    if cfg.is_file():
        old = json.loads(cfg.read_text())
        if old.get("command") == "prune --structured" and "pipeline" not in old:
            raise ValueError(f"workdir {wd} was written by an older `prune --structured`, which "
                             "drew other random streams and named its folders differently: it "
                             "cannot resume; use a new --workdir")


def cmd_prune_structured(args: argparse.Namespace) -> int:
    import jax

    from jaxprune import data
    from jaxprune import structured as st
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.studies import structured as study
    from jaxprune.train import fingerprint, init_model, save_tree, write_json_atomic

    config = flags.config_from_args(args)
    if args.score_bn != "eval":
        raise ValueError("--score-bn applies to weight criteria; the channel criteria of "
                         "--structured score in their own fixed mode (see jaxprune.structured)")
    st.criteria.REGISTRY.check(args.criterion)
    modes = _modes(args) if config.epochs > 0 else ()
    finetune = config.replace(**{k: v for k, v in (
        ("epochs", args.finetune_epochs), ("learning_rate", args.finetune_lr),
        ("schedule", args.finetune_schedule)) if v is not None})
    finetune.validate()
    train, test = common.load_splits(config.dataset, config.data_dir)
    input_shape = tuple(train.images.shape[1:])
    structure = st.channel_groups(config.model, residual=args.residual,
                                  num_classes=data.info(config.dataset).num_classes,
                                  **config.model_options)
    policy = _policy(args, structure)
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    variables = init_model(structure.model, key, train.images, model_name=config.model)
    if args.from_workdir:
        variables = common.restore_matching(args.from_workdir, variables, config)
    xs, ys = pai.score_batches(train, [config.seed], args.per_class, normalize=config.normalize,
                               sampling=args.score_sampling)
    wd = Path(args.workdir)
    _refuse_old_pipeline(wd)
    summary = {"model": config.model, "dataset": config.dataset, "criterion": args.criterion,
               "policy": args.policy, "ratio": args.ratio, "residual": args.residual,
               "from_workdir": args.from_workdir}

    def selected(sel, options):  # claimed only now: a policy that fails writes nothing
        common.claim(wd, {
            "command": "prune --structured", "pipeline": PIPELINE, **config.to_dict(),
            "criterion": args.criterion, "policy": args.policy, "ratio": args.ratio,
            "residual": args.residual, "per_class": args.per_class, "modes": list(modes),
            "from_workdir": args.from_workdir,
            "start_fingerprint": fingerprint(variables) if args.from_workdir else None,
            "data_fingerprint": common.data_fingerprint(train, test),
            **flags.scoring_identity(args),
            **({} if finetune == config else {"finetune": finetune.to_dict()}),
            **({} if args.on_empty in (None, "raise") else {"on_empty": args.on_empty}),
            **({} if args.scratch_b_cap is None else {"scratch_b_cap": args.scratch_b_cap})})
        red = st.reduction(sel.dense, sel.pruned)
        print(f"{config.model}: {args.criterion} scores, policy {args.policy}")
        print(format_table([
            {"": "dense", "params": sel.dense.params, "MACs": sel.dense.macs},
            {"": "pruned", "params": sel.pruned.params, "MACs": sel.pruned.macs},
            {"": "removed %", "params": 100 * red["params"], "MACs": 100 * red["macs"]}]))
        print("narrow model options:", json.dumps(options))
        summary.update({"narrow_options": options, "dense": sel.dense._asdict(),
                        "pruned": sel.pruned._asdict(), "removed": red,
                        "keep": {g: [int(i) for i in idx] for g, idx in sel.keep.items()}})
        pruned = st.prune_channels(structure, variables, sel.keep, input_shape=input_shape)
        save_tree(wd / "pruned_variables", pruned.variables)

    res = study.run(structure, variables, train, test, criterion=args.criterion, policy=policy,
                    config=config, finetune_config=finetune,
                    key=jax.random.fold_in(jax.random.key(config.seed), STREAM), modes=modes,
                    batch=(xs[0], ys[0]), input_shape=input_shape, cap=args.scratch_b_cap,
                    workdir=str(wd), progress=not args.no_progress, on_selected=selected)
    if modes:
        summary["modes"] = res.modes
        if len(modes) == 1:
            summary["test_accuracy"] = res.modes[modes[0]]["test_accuracy"]
        print(format_table([{"mode": m, "epochs": r["epochs"], "test accuracy":
                             r["test_accuracy"], "diverged": common.diverged_cell(
                                 r["diverged_epoch"])} for m, r in res.modes.items()]))
    write_json_atomic(wd / "summary.json", summary)
    print(f"wrote {wd / 'summary.json'} and {wd / 'pruned_variables'}")
    if modes:
        print(common.diverged_line([r["diverged_epoch"] for r in res.modes.values()], "modes"))
    return 0
