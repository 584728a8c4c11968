"""The ``jaxprune`` command: parses flags, calls the library, prints tables, writes files.

Run ``jaxprune --help`` or ``jaxprune <command> --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Config fields the ``train`` flags can override, with their argparse type.
_TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    # field: (flag, type, help)
    "model": ("--model", str, "zoo model name (see `jaxprune models`) or pkg.module:attr, a "
              "Linen or NNX module class or a function returning one"),
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
    p.add_argument("--init", default=None, choices=_init_schemes(),
                   help="initialization scheme: default (the zoo's), torch (PyTorch's module "
                   "defaults) or a reference code's (synflow, rethinking, pytorch_prunes, pfs)")


def _init_schemes() -> list[str]:
    from jaxprune.models._init import schemes

    return schemes()


def _add_scoring_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--score-sampling", default="balanced", choices=["balanced", "random"],
                   help="scoring batch: --per-class examples of every class (balanced) or "
                   "--per-class x classes random training examples (random: Synaptic-Flow's)")
    p.add_argument("--score-bn", default="eval", choices=["eval", "train"],
                   help="batch norm while scoring: running statistics (eval: Synaptic-Flow's "
                   "default) or the scoring batch's (train)")


def _presets() -> list[str]:
    from jaxprune.train import PRESETS

    return sorted(PRESETS)


def _config_from_args(args: argparse.Namespace):
    from jaxprune.train import TrainConfig, preset

    overrides = {f: getattr(args, f) for f in [*_TRAIN_FLAGS, "nesterov", "augment", "normalize"]}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    model_options = {}
    if args.width_multiplier is not None:
        model_options["width_multiplier"] = args.width_multiplier
    if args.init not in (None, "default"):  # "default" stays out: old workdirs keep resuming
        model_options["init"] = args.init
    if model_options:
        overrides["model_options"] = model_options
    return preset(args.preset, **overrides) if args.preset else TrainConfig(**overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from jaxprune.report import format_table
    from jaxprune.train import train_and_evaluate

    config = _config_from_args(args)
    config.validate()
    print(f"training {config.model} on {config.dataset} for {_plural(config.epochs, 'epoch')}"
          + (f" (workdir {args.workdir})" if args.workdir else ""))
    res = train_and_evaluate(config, args.workdir, progress=not args.no_progress).results
    print(format_table([{k: res[k] for k in ("epochs", "test_accuracy", "test_loss",
                                              "train_seconds", "images_per_second")}]))
    return 0


def _parse_shape(text: str, flag: str = "--input-shape") -> tuple[int, ...]:
    """``"32,32,3"`` -> ``(32, 32, 3)``, or a one-line error."""
    try:
        shape = tuple(int(t) for t in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"{flag} takes positive integers separated by commas, e.g. 32,32,3; "
                         f"got {text!r}")
    return shape


def cmd_models(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from jaxprune import flops, models
    from jaxprune.report import format_table

    forced = _parse_shape(args.input_shape) if args.input_shape else None
    rows, unfit = [], []
    for name in models.names():
        shape = forced or models.default_input_shape(name)
        model = models.get(name, num_classes=args.num_classes)
        try:
            variables = jax.eval_shape(lambda m=model, s=shape: m.init(
                jax.random.key(0), jnp.zeros((1, *s)), train=False))
        except Exception:  # noqa: BLE001 - this model cannot take the forced shape
            unfit.append(name)
            continue
        rows.append({
            "model": name,
            "input": "x".join(map(str, shape)),
            "params": flops.count_params(variables["params"]),
            "MACs": flops.count_macs(model, variables, shape),
            "description": models.describe(name),
        })
    if not rows:
        raise ValueError(f"no model of the zoo takes inputs of shape {forced} (--input-shape is "
                         "one example's shape without the batch, e.g. 28,28,1 or 32,32,3)")
    print(format_table(rows))
    print("\nMACs: multiply-accumulates of conv/dense layers for one example, counted once.")
    if unfit:
        print(f"not listed (cannot take inputs of shape {forced}): {', '.join(unfit)}")
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


def _structured_policy(args, structure):
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
        kwargs["on_empty"] = args.on_empty
    return study.get_policy(args.policy, structure, **kwargs)


def _modes(args) -> tuple[str, ...]:
    from jaxprune.studies import structured as study

    if args.modes is not None and args.scratch:
        raise ValueError("give --modes or --scratch (= --modes scratch-e), not both")
    return study.check_modes(args.modes or (["scratch-e"] if args.scratch else ["finetune"]))


def cmd_prune_structured(args: argparse.Namespace) -> int:
    """``prune --structured``: channel scores, a policy, surgery; then fine-tune / Scratch-E /
    Scratch-B (:mod:`jaxprune.studies.structured` does the work; this parses and prints)."""
    import jax

    from jaxprune import data
    from jaxprune import structured as st
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.studies import structured as study
    from jaxprune.train import fingerprint, init_model, save_tree, write_json_atomic

    config = _config_from_args(args)
    config.validate()
    if args.score_bn != "eval":
        raise ValueError("--score-bn applies to weight criteria; the channel criteria of "
                         "--structured score in their own fixed mode (see jaxprune.structured)")
    st.criteria.REGISTRY.check(args.criterion)
    modes = _modes(args)
    finetune = config.replace(**{k: v for k, v in (
        ("epochs", args.finetune_epochs), ("learning_rate", args.finetune_lr),
        ("schedule", args.finetune_schedule)) if v is not None})
    finetune.validate()
    train, test = _load_splits(config.dataset, config.data_dir)
    num_classes = data.info(config.dataset).num_classes
    input_shape = tuple(train.images.shape[1:])
    structure = st.channel_groups(config.model, residual=args.residual, num_classes=num_classes,
                                  **config.model_options)
    policy = _structured_policy(args, structure)
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    variables = init_model(structure.model, key, train.images, model_name=config.model)
    if args.from_workdir:
        variables = _restore_matching(args.from_workdir, variables, config)
    xs, ys = pai.score_batches(train, [config.seed], args.per_class, normalize=config.normalize,
                               sampling=args.score_sampling)
    sel = study.select(structure, variables, criterion=args.criterion, policy=policy,
                       batch=(xs[0], ys[0]), input_shape=input_shape,
                       key=jax.random.fold_in(jax.random.key(config.seed), 3))
    wd = Path(args.workdir)  # claimed only now: a policy that fails writes nothing
    _claim(wd, {
        "command": "prune --structured", **config.to_dict(), "criterion": args.criterion,
        "policy": args.policy, "ratio": args.ratio, "residual": args.residual,
        "per_class": args.per_class, "scratch": args.scratch, "from_workdir": args.from_workdir,
        "start_fingerprint": fingerprint(variables) if args.from_workdir else None,
        "data_fingerprint": _data_fingerprint(train, test), **_scoring_identity(args),
        **({} if args.modes is None else {"modes": list(modes)}),
        **({} if finetune == config else {"finetune": finetune.to_dict()}),
        **({} if args.on_empty == "raise" else {"on_empty": args.on_empty}),
        **({} if args.scratch_b_cap is None else {"scratch_b_cap": args.scratch_b_cap}),
    })
    red = st.reduction(sel.dense, sel.pruned)
    options = st.narrow_options(structure, sel.keep)
    rows = [{"": "dense", "params": sel.dense.params, "MACs": sel.dense.macs},
            {"": "pruned", "params": sel.pruned.params, "MACs": sel.pruned.macs},
            {"": "removed %", "params": 100 * red["params"], "MACs": 100 * red["macs"]}]
    print(f"{config.model}: {args.criterion} scores, policy {args.policy}")
    print(format_table(rows))
    print("narrow model options:", json.dumps(options))

    summary = {"model": config.model, "dataset": config.dataset, "criterion": args.criterion,
               "policy": args.policy, "ratio": args.ratio, "residual": args.residual,
               "from_workdir": args.from_workdir, "narrow_options": options,
               "dense": sel.dense._asdict(), "pruned": sel.pruned._asdict(), "removed": red,
               "keep": {g: [int(i) for i in idx] for g, idx in sel.keep.items()}}
    pruned = st.prune_channels(structure, variables, sel.keep, input_shape=input_shape)
    save_tree(wd / "pruned_variables", pruned.variables)
    if config.epochs > 0:
        scratch_key = jax.random.fold_in(jax.random.key(config.seed), 4)
        rows, summary["modes"] = [], {}
        for mode in modes:
            start = study.start_point(mode, structure, variables, sel.keep, key=scratch_key,
                                      input_shape=input_shape)
            cfg = study.mode_config(mode, config, finetune, sel.dense.macs, sel.pruned.macs,
                                    cap=args.scratch_b_cap)
            # workdir names of the first version: finetune/ and scratch/ (= scratch-e)
            sub = {"finetune": "finetune", "scratch-e": "scratch"}.get(mode, mode)
            res = study.fit_mode(start.model, start.variables, train, test, cfg, name=sub,
                                 workdir=str(wd), progress=not args.no_progress,
                                 extra={"narrow_options": options})
            summary["modes"][mode] = res
            rows.append({"mode": mode, "epochs": cfg.epochs,
                         "test accuracy": res["test_accuracy"]})
        if len(modes) == 1:
            summary["test_accuracy"] = summary["modes"][modes[0]]["test_accuracy"]
        print(format_table(rows))
    write_json_atomic(wd / "summary.json", summary)
    print(f"wrote {wd / 'summary.json'} and {wd / 'pruned_variables'}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.structured:
        return cmd_prune_structured(args)
    import jax
    import numpy as np

    from jaxprune import criteria, data, masks, models
    from jaxprune.report import format_table
    from jaxprune.studies import pai
    from jaxprune.train import fit, write_json_atomic, write_npz_atomic

    sparsity = _sparsity_from_args(args)
    pai.check_method(args.criterion)
    if args.seeds < 1:
        raise ValueError(f"--seeds is the number of random inits, at least 1; got {args.seeds}")
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
    rounds = args.rounds if args.rounds is not None else criteria.default_rounds(args.criterion)
    options = _scorer_options(args, [args.criterion])
    one = jax.tree.map(lambda a: a[0], variables["params"])
    pai.budget(one, sparsity, args.allocation, keep_dense=keep_dense, rounds=rounds)
    wd = Path(args.workdir)
    _claim(wd, {
        "command": "prune", **config.to_dict(), "criterion": args.criterion,
        "sparsity": sparsity, "seeds": seeds, "allocation": args.allocation, "rounds": rounds,
        "per_class": args.per_class, "keep_first_last": args.keep_first_last,
        "data_fingerprint": _data_fingerprint(train, test), **_scorer_identity(args),
        **_scoring_identity(args),
    })
    batches = None
    if criteria.needs_data(args.criterion):
        batches = pai.score_batches(train, seeds, args.per_class, normalize=config.normalize,
                                    sampling=args.score_sampling)
    with warnings.catch_warnings():  # collapsed layers are reported in the tables below
        warnings.simplefilter("ignore", masks.LayerCollapseWarning)
        stacked = pai.prune_seeds(model, variables, args.criterion, sparsity, seeds=seeds,
                                  batches=batches, input_shape=input_shape,
                                  allocation=args.allocation, keep_dense=keep_dense,
                                  rounds=rounds, criterion_options=options)
    reports = pai.mask_reports(model, variables, stacked, input_shape, keep_dense=keep_dense)
    print(f"layer densities of seed {seeds[0]}"
          + (f" (1 of {len(seeds)} seeds; every seed's are in summary.json)"
             if len(seeds) > 1 else ""))
    print(masks.format_report(reports[0]))
    flat = {masks.path_str(kp): np.asarray(leaf)  # (seeds, ...) each
            for kp, leaf in jax.tree_util.tree_leaves_with_path(stacked)}
    write_npz_atomic(wd / "masks.npz", flat)
    summary = {
        "model": config.model, "dataset": config.dataset, "criterion": args.criterion,
        "sparsity": sparsity, "allocation": args.allocation, "seeds": seeds, "rounds": rounds,
        "keep_dense": [masks.path_str(p) for p in keep_dense],
        "per_seed": [{"seed": s, "sparsity": r.sparsity, "remaining_params": r.remaining_params,
                      "remaining_macs": round(r.remaining_macs), "macs": r.macs,
                      "collapsed_layers": [masks.path_str(p) for p in r.collapsed],
                      "layer_density": {masks.path_str(row.path): row.density for row in r.rows}}
                     for s, r in zip(seeds, reports, strict=True)],
    }
    if config.epochs > 0:
        res = fit(model, variables, train, test, config, mask=stacked, seeds=seeds,
                  workdir=str(wd / "train"), progress=not args.no_progress).results
        chance, threshold = pai.chance_accuracy(test.labels)
        summary["chance_accuracy"] = chance
        for row, acc in zip(summary["per_seed"], res["test_accuracy"], strict=True):
            row["test_accuracy"] = acc
            row["at_chance"] = bool(acc <= threshold)
    write_json_atomic(wd / "summary.json", summary)
    print(format_table([{k: r.get(k) for k in ("seed", "sparsity", "remaining_params",
                                               "remaining_macs", "test_accuracy")}
                        | {"collapsed layers": len(r["collapsed_layers"])}
                        | ({"at chance": "yes" if r["at_chance"] else "no"}
                           if "at_chance" in r else {})
                        for r in summary["per_seed"]]))
    print(f"wrote {wd / 'masks.npz'} and {wd / 'summary.json'}")
    return 0


def _subset(split, size: int | None):
    """``size`` examples of ``split`` drawn at random with ``key(0)`` (in their original order),
    or the whole split; the choice is fixed, and the run's data fingerprint records it."""
    import jax
    import numpy as np

    if size is None:
        return split
    n = len(split.labels)
    if not 0 < size <= n:
        raise ValueError(f"a subset of {size} examples needs 0 < size <= {n} (the split)")
    idx = np.sort(np.asarray(jax.random.permutation(jax.random.key(0), n))[:size])
    return type(split)(split.images[idx], split.labels[idx])


def _scorer_options(args: argparse.Namespace, methods: list[str]) -> dict[str, Any] | None:
    """Criterion options from the flags: ``{"scorer": DIR}`` for the autos criterion (checked
    now, before any work), ``{"batch_norm": "train"}`` for ``--score-bn train``."""
    from jaxprune.criteria.learned import load_scorer

    if "autos" in methods and not args.scorer:
        raise ValueError("the autos criterion needs --scorer DIR (a scorer from "
                         "`jaxprune autos train`)")
    options: dict[str, Any] = {}
    if getattr(args, "score_bn", "eval") != "eval":
        options["batch_norm"] = args.score_bn
    if args.scorer:
        load_scorer(args.scorer)  # a clear error now for a missing or outdated scorer
        options["scorer"] = str(args.scorer)
    return options or None


def _scoring_identity(args: argparse.Namespace) -> dict[str, Any]:
    """The scoring settings that differ from the defaults (absent when default, so workdirs
    written before these flags existed still resume)."""
    out = {}
    if args.score_sampling != "balanced":
        out["score_sampling"] = args.score_sampling
    if args.score_bn != "eval":
        out["score_bn"] = args.score_bn
    return out


def _scorer_identity(args: argparse.Namespace) -> dict[str, Any]:
    """The scorer's folder (a location) and a fingerprint of what it holds."""
    import hashlib

    if not getattr(args, "scorer", None):
        return {}
    text = (Path(args.scorer) / "scorer.json").read_bytes()
    return {"scorer": str(args.scorer), "scorer_fingerprint": hashlib.blake2b(
        text, digest_size=12).hexdigest()}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _claim(workdir: Path, identity: dict[str, Any]) -> None:
    """Create ``workdir`` and write its ``config.json``, or refuse a different configuration:
    nothing in a workdir is overwritten by another run's results."""
    from jaxprune.train import check_or_write_config

    workdir.mkdir(parents=True, exist_ok=True)
    check_or_write_config(workdir / "config.json", identity)


def _data_fingerprint(train, test) -> str:
    from jaxprune.train import fingerprint

    return fingerprint((train.images, train.labels, test.images, test.labels))


def _restore_matching(workdir: str, like, config):
    """The variables of ``workdir``'s run, refused unless they fit the model being pruned."""
    import jax

    from jaxprune import masks
    from jaxprune.train import restore_variables

    cfg_path = Path(workdir) / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        for field in ("model", "model_options"):
            if field in old and old[field] != getattr(config, field):
                raise ValueError(
                    f"--from-workdir {workdir} holds a {old.get('model')!r} run with "
                    f"{field}={old[field]!r}, not {getattr(config, field)!r}: pass the same "
                    "--model (and width options) as that run")
    restored = restore_variables(workdir)
    want = {masks.path_str(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(like)}
    got = {masks.path_str(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(restored)}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:3]
        raise ValueError(
            f"--from-workdir {workdir} holds variables of another model than {config.model!r} "
            f"(e.g. {', '.join(f'{k}: {got.get(k)} vs {want.get(k)}' for k in diff)}); pass the "
            "--model and options that run was trained with")
    return restored


def cmd_lottery(args: argparse.Namespace) -> int:
    """``lottery``: iterative magnitude pruning with rewinding for N seeds, controls beside."""
    from jaxprune import data, models
    from jaxprune.report import format_table, plot_lottery, to_csv
    from jaxprune.studies import lottery
    from jaxprune.train import write_json_atomic, write_text_atomic

    if args.seeds < 1:
        raise ValueError(f"--seeds is the number of random inits, at least 1; got {args.seeds}")
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
    config = _config_from_args(args)
    config.validate()
    train, test = _load_splits(config.dataset, config.data_dir)
    train, test = _subset(train, args.train_subset), _subset(test, args.test_subset)
    validation = None
    if args.validation:
        train, validation = lottery.holdout(train, args.validation)
    model = models.get(config.model, num_classes=data.info(config.dataset).num_classes,
                       **config.model_options)
    seeds = list(range(config.seed, config.seed + args.seeds))
    if args.out:  # the results folder belongs to this run too (checked first, then claimed)
        lc.validate(config.epochs * (len(train.labels) // config.batch_size))
        _claim(Path(args.out), lottery.identity(model, train, test, config, lc, seeds,
                                                validation))
    res = lottery.run(model, train, test, config, lc, seeds=seeds, validation=validation,
                      workdir=args.workdir, progress=not args.no_progress)
    rows = lottery.arm_rows(res.levels)
    wd = Path(args.out or args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    write_text_atomic(wd / "summary.csv", to_csv(rows))
    if args.out:
        write_json_atomic(wd / "results.json", {"levels": res.levels})
    title = f"IMP, {config.model} on {config.dataset}, {_plural(len(seeds), 'seed')}"
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
                     | {arm: _mean_std(by_arm.get(arm), "acc", 100) for arm in arms}
                     | {"ticket early stop": _mean_std(ticket, "early stop", 1, 0)})
    print(format_table(table))
    print(f"\nwrote {wd / 'summary.csv'}, {wd / 'lottery.png'}, {wd / 'results.json'}; "
          f"{args.workdir} holds survival.npz and a folder per level (masks.npz, summary.json, "
          "train/)")
    return 0


def _mean_std(row: dict[str, Any] | None, key: str, scale: float, digits: int = 2) -> str:
    """``"mean +/- std"`` of ``row[key]`` (just the mean for one seed, "" without a value)."""
    if row is None or key not in row:
        return ""
    mean, std = scale * row[key], scale * row[f"{key} std"]
    return f"{mean:.{digits}f}" + ("" if std != std else f" +/- {std:.{digits}f}")


def cmd_autos_train(args: argparse.Namespace) -> int:
    """``autos train``: a scorer from lottery workdirs' survival counts."""
    from jaxprune.criteria import learned as crit
    from jaxprune.report import format_table
    from jaxprune.studies import autos
    from jaxprune.train import fingerprint

    widths = _parse_shape(args.widths, "--widths") if args.widths else crit.PAPER_WIDTHS
    if args.standardize not in crit.STANDARDIZE:
        raise ValueError(f"--standardize must be one of {list(crit.STANDARDIZE)}")
    ds = autos.dataset_from_lottery(args.sources, data_dir=args.data_dir,
                                    standardize=args.standardize, per_class=args.per_class)
    train_rows, held_rows = autos.split(ds, args.holdout)
    out = Path(args.out)
    _claim(out, {"command": "autos train", "sources": [str(Path(s).resolve()) for s in
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


def _scratch_splits(args, dataset: str):
    """(gate-training split, validation split, test split): the validation split is the last
    ``--val-size`` training examples (as the official code holds out part of the training
    set), ``--train-subset`` draws from the rest."""
    from jaxprune.train import Split

    train, test = _load_splits(dataset, args.data_dir)
    if not 0 < args.val_size < len(train.labels):
        raise ValueError(f"--val-size must lie in (0, {len(train.labels)}), got {args.val_size}")
    cut = len(train.labels) - args.val_size
    val = Split(train.images[cut:], train.labels[cut:])
    rest = _subset(Split(train.images[:cut], train.labels[:cut]), args.train_subset)
    return rest, val, _subset(test, args.test_subset)


def cmd_scratch_search(args: argparse.Namespace) -> int:
    """``scratch search``: gates on N frozen networks (random, or trained first), one
    architecture per network at the target MAC reduction."""
    import json

    import jax.numpy as jnp
    import numpy as np

    from jaxprune import data
    from jaxprune import seeds as seeds_lib
    from jaxprune.report import format_table
    from jaxprune.studies import scratch
    from jaxprune.train import fit, write_json_atomic, write_npz_atomic

    if args.seeds < 1:
        raise ValueError(f"--seeds is the number of random networks, at least 1; got {args.seeds}")
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
    train, val, _ = _scratch_splits(args, args.dataset)
    if args.batch_size > len(train.labels):
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(train.labels)} "
                         "gate-training examples (after --val-size and --train-subset)")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    wd = Path(args.workdir)
    _claim(wd, {"command": "scratch search", "model": args.model, "dataset": args.dataset,
                "options": standard, "expansion": args.expansion, "seeds": seeds,
                "reduction": args.reduction, "tolerance": args.tolerance,
                "gate_layers": names,
                "gates": gate_cfg.to_dict(), "pretrain_epochs": args.pretrain_epochs,
                "val_size": args.val_size, "train_subset": args.train_subset,
                "test_subset": args.test_subset, "strategy": args.strategy,
                "data_fingerprint": _data_fingerprint(train, val), "data_dir": args.data_dir})
    keys = seeds_lib.seed_keys(seeds, 0)
    variables = seeds_lib.init_seeds(
        lambda k, x: structure.model.init(k, x, train=False), keys,
        jnp.zeros((1, *train.images.shape[1:]), jnp.float32))
    how = "random"
    if args.pretrain_epochs:
        cfg = scratch.train_config(args.pretrain_epochs, 0.0, model=args.model,
                                   dataset=args.dataset, data_dir=args.data_dir,
                                   augment=train.images.ndim == 4)
        print(f"training the {len(seeds)} expanded networks first ({args.pretrain_epochs} "
              "epochs)")
        res = fit(structure.model, variables, train, val, cfg, seeds=seeds,
                  workdir=str(wd / "pretrain"), progress=not args.no_progress)
        variables = {"params": res.state.params, **res.state.model_state}
        how = f"trained {args.pretrain_epochs} epochs"
    print(f"learning gates on {len(seeds)} frozen {how} {args.model} networks "
          f"(x{args.expansion:g} widths, {sum(structure.group(n).width for n in names):,} "
          f"gates in {len(names)} layers)")
    result, found = scratch.search_seeds(
        structure, variables, seeds, train, val, gate_cfg, args.reduction,
        reference_macs=reference, tolerance=args.tolerance, groups=names,
        strategy=args.strategy, progress=not args.no_progress)
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


def _read_search(workdir: str) -> tuple[dict, dict]:
    import json

    wd = Path(workdir)
    for f in ("config.json", "search.json"):
        if not (wd / f).is_file():
            raise FileNotFoundError(f"{wd} holds no {f}: is it a `jaxprune scratch search` "
                                    "workdir that finished?")
    config = json.loads((wd / "config.json").read_text())
    if config.get("command") != "scratch search":
        raise ValueError(f"{wd} is not a `jaxprune scratch search` workdir")
    return config, json.loads((wd / "search.json").read_text())


def cmd_scratch_train(args: argparse.Namespace) -> int:
    """``scratch train``: every architecture of a search, from a new random init, with
    Scratch-B's budget; optionally the standard network beside them."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxprune import models
    from jaxprune import structured as st
    from jaxprune.report import format_table
    from jaxprune.studies import scratch
    from jaxprune.train import fit, write_json_atomic

    if args.epochs < 1:
        raise ValueError(f"--epochs (the standard model's budget) must be >= 1, got "
                         f"{args.epochs}")
    config, search = _read_search(args.source)
    structure, standard = scratch.expanded_structure(config["model"], config["options"],
                                                     config["expansion"])
    found = search["found"]
    picked = found if args.seed_index is None else [found[i] for i in args.seed_index
                                                    if 0 <= i < len(found)]
    if args.seed_index is not None and len(picked) != len(args.seed_index):
        raise ValueError(f"--seed-index must lie in [0, {len(found)}), got {args.seed_index}")
    args.data_dir = args.data_dir or config.get("data_dir")
    train, test = _load_splits(config["dataset"], args.data_dir)
    train, test = _subset(train, args.train_subset), _subset(test, args.test_subset)
    p = config["reduction"]
    cfg = scratch.train_config(args.epochs, p, model=config["model"], dataset=config["dataset"],
                               augment=train.images.ndim == 4, learning_rate=args.lr)
    wd = Path(args.workdir)
    _claim(wd, {"command": "scratch train", "from_workdir": str(Path(args.source).resolve()),
                "found": [r["seed"] for r in picked], "epochs": args.epochs, "lr": args.lr,
                "model": config["model"], "options": standard, "expansion": config["expansion"],
                "widths": [r["widths"] for r in picked],
                "standard": args.standard, "train_subset": args.train_subset,
                "test_subset": args.test_subset,
                "data_fingerprint": _data_fingerprint(train, test)})
    x0 = jnp.zeros((1, *train.images.shape[1:]), jnp.float32)
    rows = []
    jobs = [("pruned", r) for r in picked]
    if args.standard:
        jobs += [("standard", r) for r in picked]
    for kind, r in jobs:
        key = jax.random.fold_in(jax.random.key(r["seed"]), 2)
        if kind == "pruned":
            keep = {n: np.asarray(k) for n, k in r["keep"].items()}
            net = st.fresh_init(structure, keep, key=key, input_shape=train.images.shape[1:])
            model, variables, run_cfg = net.model, net.variables, cfg
        else:
            model = models.get(config["model"], **standard)
            variables = model.init(key, x0, train=False)
            run_cfg = cfg.replace(epochs=args.epochs)
        print(f"{kind} network of seed {r['seed']}: {run_cfg.epochs} epochs")
        res = fit(model, variables, train, test, run_cfg.replace(seed=r["seed"]),
                  workdir=str(wd / f"{kind}_seed{r['seed']}"), progress=not args.no_progress)
        rows.append({"network": kind, "seed": r["seed"], "epochs": run_cfg.epochs,
                     "test_accuracy": float(res.results["test_accuracy"]),
                     "macs": r["macs"] if kind == "pruned" else search["reference_macs"],
                     "reduction": r["reduction"] if kind == "pruned" else 0.0})
    summary = []
    for kind in dict.fromkeys(r["network"] for r in rows):
        acc = np.array([r["test_accuracy"] for r in rows if r["network"] == kind])
        summary.append({"network": kind, "runs": len(acc), "test acc % mean": 100 * acc.mean(),
                        "std": 100 * acc.std(ddof=1) if len(acc) > 1 else None})
    write_json_atomic(wd / "results.json", {"runs": rows, "summary": summary,
                                            "initialization": search["initialization"]})
    print(format_table(rows))
    print(format_table(summary))
    print(f"wrote {wd / 'results.json'}")
    return 0


def cmd_scratch_diversity(args: argparse.Namespace) -> int:
    """``scratch diversity``: compare the architectures of several searches (e.g. from random
    and from trained weights): distances, spread, a permutation test, CSV and PNG."""
    import json

    import numpy as np

    from jaxprune.report import format_table, plot_structure_diversity, to_csv
    from jaxprune.studies import scratch
    from jaxprune.train import write_json_atomic, write_text_atomic

    labels = args.labels or [Path(s).name for s in args.sources]
    if len(labels) != len(args.sources) or len(set(labels)) != len(labels):
        raise ValueError("--labels needs one distinct label per --from workdir")
    groups, layers, full, ident = {}, None, None, None
    for label, src in zip(labels, args.sources, strict=True):
        config, search = _read_search(src)
        key = (config["model"], json.dumps(config["options"], sort_keys=True),
               config["expansion"], config["reduction"])
        if ident is not None and key != ident:
            raise ValueError(f"{src} searched another model, expansion or target than "
                             f"{args.sources[0]}; compare searches of the same setting")
        ident, layers, full = key, search["groups"], search["full_widths"]
        groups[label] = np.array([r["widths"] for r in search["found"]], np.float64)
        if len(groups[label]) < 2:
            raise ValueError(f"{src} holds {len(groups[label])} structure(s); diversity needs "
                             "at least two (more --seeds)")
    out = Path(args.out)
    _claim(out, {"command": "scratch diversity",
                 "sources": [str(Path(s).resolve()) for s in args.sources], "labels": labels,
                 "permutations": args.permutations})
    rows = []
    for label, w in groups.items():
        d = scratch.diversity(w, full)
        rows.append({"group": label, "runs": d["runs"], "L1 mean": d["l1_mean"],
                     "L1 std": d["l1_std"], "cosine mean": d["cosine_mean"],
                     "cosine std": d["cosine_std"], "layer spread": d["layer_spread_mean"]})
    print(format_table(rows))
    tests = []
    for a, b in zip(labels, labels[1:], strict=False):
        t = scratch.more_diverse(groups[a], groups[b], full, permutations=args.permutations)
        tests.append({"more diverse": a, "than": b, **t})
        verdict = "yes" if t["difference"] > 0 and t["p_value"] < 0.05 else "no"
        print(f"{a} more diverse than {b}? {verdict}: mean pairwise L1 {t['l1_a']:.4f} vs "
              f"{t['l1_b']:.4f}; distance to the group mean {t['spread_a']:.4f} vs "
              f"{t['spread_b']:.4f}, one-sided permutation p = {t['p_value']:.4f}")
    write_text_atomic(out / "diversity.csv", to_csv(rows))
    write_text_atomic(out / "widths.csv", to_csv(
        [{"group": g, "run": i, **dict(zip(layers, map(int, w), strict=True))}
         for g, ws in groups.items() for i, w in enumerate(ws)]))
    write_json_atomic(out / "diversity.json", {"groups": rows, "tests": tests,
                                               "layers": layers, "full_widths": full})
    plot_structure_diversity(groups, layers, full, str(out / "diversity.png"),
                             title=f"{ident[0]} x{ident[2]:g}, {ident[3]:.0%} fewer MACs")
    print(f"wrote {out / 'diversity.csv'}, {out / 'widths.csv'}, {out / 'diversity.png'}")
    return 0


def run_sweep(args: argparse.Namespace, config, *, title: str, command: str) -> int:
    """Shared by ``demo`` and ``sweep``: prune, train, print, write CSV + PNG."""
    from jaxprune import data, models
    from jaxprune.report import format_table, plot_accuracy_vs_compression, to_csv
    from jaxprune.studies import pai
    from jaxprune.train import write_text_atomic

    if args.seeds < 1:
        raise ValueError(f"--seeds is the number of random inits, at least 1; got {args.seeds}")
    for e in args.log10_compressions:
        if not e >= 0:
            raise ValueError(f"--log10-compressions are powers of ten of compressions >= 1, so "
                             f"each >= 0; got {e}")
    options = _scorer_options(args, list(args.methods))
    if args.densities:
        if any(not 0 < d <= 1 for d in args.densities):
            raise ValueError(f"--densities are fractions of weights kept, in (0, 1]; got "
                             f"{args.densities}")
        sparsities = [1.0 - d for d in args.densities]
    else:
        sparsities = [pai.compression_to_sparsity(10 ** e) for e in args.log10_compressions]
    train, test = _load_splits(config.dataset, config.data_dir)
    train, test = _subset(train, args.train_subset), _subset(test, args.test_subset)
    model = models.get(config.model, num_classes=data.info(config.dataset).num_classes,
                       **config.model_options)
    seeds = list(range(config.seed, config.seed + args.seeds))
    out = Path(args.out)
    target = ({"densities": list(args.densities)} if args.densities else
              {"log10_compressions": list(args.log10_compressions)})
    _claim(out, {"command": command, **config.to_dict(), "methods": list(args.methods),
                 **target, "seeds": args.seeds, "per_class": args.per_class,
                 "data_fingerprint": _data_fingerprint(train, test), **_scorer_identity(args),
                 **_scoring_identity(args)})
    rows = pai.sweep(model, train, test, config, methods=args.methods, sparsities=sparsities,
                     seeds=seeds, per_class=args.per_class, score_sampling=args.score_sampling,
                     workdir=str(out / "train"),
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
                         "at chance": r["at_chance_runs"]} for r in table]))
    print("\ncollapsed: a layer lost every weight; at chance: accuracy not above always "
          "predicting the most frequent class (one-sided binomial test, 1%)")
    print(f"wrote {out / 'networks.csv'}, {out / 'summary.csv'}, "
          f"{out / 'accuracy_vs_compression.png'}")
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
    config = _config_from_args(args)
    config.validate()
    return run_sweep(args, config, title=f"{config.dataset}, {config.model}, pruned at init",
                     command="sweep")


def _add_sweep_flags(p: argparse.ArgumentParser, *, epochs: int | None, out: str) -> None:
    from jaxprune.studies.pai import METHODS

    p.add_argument("--methods", nargs="+", default=["random", "magnitude", "snip", "grasp",
                                                    "synflow"], choices=METHODS)
    p.add_argument("--log10-compressions", nargs="+", type=float,
                   default=[0.5, 1.0, 1.5, 2.0, 2.5],
                   help="compressions as powers of ten (1.0 = 10x = 90%% sparsity)")
    p.add_argument("--seeds", type=int, default=3, help="random inits per point")
    p.add_argument("--per-class", type=int, default=10, help="scoring examples per class")
    _add_scoring_flags(p)
    p.add_argument("--out", default=out, help="folder for networks.csv, summary.csv, the plot and "
                   "the training checkpoints (rerun the same command to resume)")
    p.add_argument("--scorer", help="a trained AutoS scorer (for the autos method)")
    p.add_argument("--densities", nargs="+", type=float,
                   help="densities instead of --log10-compressions, e.g. 0.8 0.1 0.01")
    p.add_argument("--train-subset", type=int,
                   help="train (and score) on this many training examples (a fixed random "
                   "subset)")
    p.add_argument("--test-subset", type=int,
                   help="evaluate on this many test examples (a fixed random subset)")
    p.add_argument("--no-progress", action="store_true")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs)


def cmd_flops(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from jaxprune import contract, data, flops, models
    from jaxprune.report import format_table

    if args.input_shape:
        shape = _parse_shape(args.input_shape)
    elif args.dataset:
        shape = data.info(args.dataset).input_shape
    elif contract.is_spec(args.model):
        raise ValueError(f"{args.model} is not a zoo model: give its input with --dataset or "
                         "--input-shape (e.g. 28,28,1)")
    else:
        shape = models.default_input_shape(args.model)
    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--options must be a JSON object, e.g. '{{\"width_multiplier\": 0.5}}'"
                         f"; got {args.options!r} ({e})") from None
    model = contract.as_model(models.get(args.model, num_classes=args.num_classes, **options))
    example = jnp.zeros((1, *shape))
    try:
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), example))
        jax.eval_shape(lambda v: model.apply(v, example), variables)
    except Exception as e:  # noqa: BLE001 - one line instead of a trace
        raise ValueError(f"{args.model} cannot take inputs of shape {tuple(shape)}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    layers = flops.trace_layers(model, variables, example)
    rows = [{"layer": "/".join(layer.path[:-1]), "kind": layer.kind,
             "kernel": "x".join(map(str, layer.kernel_shape)),
             "output": "x".join(map(str, layer.output_shape)), "MACs": layer.macs}
            for layer in layers]
    mask = None
    if args.masks:
        mask = _load_mask(args.masks, variables["params"], args.seed_index, args.model)
        for row, layer in zip(rows, layers, strict=True):
            kept = float(jnp.mean(_get_path(mask, layer.path)))
            row["density"] = kept
            row["MACs left"] = round(layer.macs * kept)
    print(format_table(rows))
    total = flops.count_macs(model, variables, shape)
    print(f"\n{args.model}, input {shape}: {flops.count_params(variables['params']):,} params, "
          f"{total:,} MACs per example (multiply-accumulates counted once; FLOPs ~ 2x MACs)")
    if mask is not None:
        left = flops.count_macs(model, variables, shape, mask=mask)
        print(f"under the mask (seed index {args.seed_index}): {left:,} MACs "
              f"({100 * left / total:.2f}%), "
              f"{flops.count_params(variables['params'], mask=mask):,} params kept")
    return 0


def _load_mask(path: str, params, seed_index: int, model: str):
    """One seed's mask from a ``prune`` masks file, checked against ``params`` leaf by leaf."""
    import jax
    import numpy as np

    from jaxprune import masks

    try:
        saved = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"--masks {path} is not a masks.npz written by `jaxprune prune` "
                         f"({type(e).__name__}: {e})") from None
    with saved:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        names = [masks.path_str(kp) for kp, _ in leaves]
        if set(names) != set(saved.files):
            missing = sorted(set(names) - set(saved.files))[:3]
            raise ValueError(
                f"--masks {path} was not written for {model} with these options: it lacks "
                f"{missing or 'nothing'} and holds {sorted(set(saved.files) - set(names))[:3]}; "
                "pass the --model (and --options) it was pruned with")
        out = []
        for name, (_, leaf) in zip(names, leaves, strict=True):
            arr = saved[name]
            if arr.ndim != len(leaf.shape) + 1 or arr.shape[1:] != leaf.shape:
                raise ValueError(f"--masks {path}: {name} has shape {arr.shape[1:]} per seed but "
                                 f"{model} has {leaf.shape}; pass the --model, --options and "
                                 "--dataset it was pruned with")
            if not -arr.shape[0] <= seed_index < arr.shape[0]:
                raise ValueError(f"--seed-index {seed_index} is out of range: {path} holds "
                                 f"{arr.shape[0]} seeds (indices 0..{arr.shape[0] - 1})")
            out.append(arr[seed_index].astype(bool))
    return jax.tree_util.tree_unflatten(treedef, out)


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
    _add_scoring_flags(p)
    p.add_argument("--keep-first-last", action="store_true",
                   help="never prune the first and last layer")
    p.add_argument("--workdir", required=True, help="writes masks.npz and summary.json here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--scorer", help="a trained AutoS scorer (for --criterion autos)")
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
    g.add_argument("--on-empty", choices=["raise", "clamp"], default="raise",
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
    p.set_defaults(func=cmd_prune, epochs=0)

    p = sub.add_parser("lottery", help="lottery tickets: iterative magnitude pruning with "
                       "rewinding for N seeds, with the reinit/shuffle/random controls")
    _add_train_flags(p)
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
    g.add_argument("--per-class", type=int, default=10,
                   help="scoring examples per class (criteria that score on data)")
    g.add_argument("--train-subset", type=int,
                   help="train on this many training examples (a fixed random subset)")
    g.add_argument("--test-subset", type=int,
                   help="evaluate on this many test examples (a fixed random subset)")
    p.add_argument("--seeds", type=int, default=1, help="random inits (seeds --seed, ...)")
    p.add_argument("--workdir", required=True, help="every level's files; rerun to resume")
    p.add_argument("--out", help="also write summary.csv, lottery.png and results.json here "
                   "(e.g. an experiment's folder; the workdir holds checkpoints)")
    p.add_argument("--no-progress", action="store_true")
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
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_autos_train)

    p = sub.add_parser("scratch", help="Pruning from Scratch: gates on frozen random networks, "
                       "architectures at a MAC budget, trained from scratch; diversity")
    scratch_sub = p.add_subparsers(dest="scratch_command", required=True, metavar="SUBCOMMAND")
    q = scratch_sub.add_parser("search", help="learn gates on N frozen networks and find one "
                               "architecture per network at --reduction")
    q.add_argument("--model", required=True)
    q.add_argument("--dataset", required=True)
    q.add_argument("--width-multiplier", type=float, help="the STANDARD model's width (CPU "
                   "scale); the expanded one is this times --expansion")
    q.add_argument("--options", help="more model options as JSON")
    q.add_argument("--init", default=None, choices=_init_schemes(),
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
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_scratch_search)
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
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_scratch_train)
    q = scratch_sub.add_parser("diversity", help="compare the architectures of several "
                               "searches: distances, spread, permutation test, CSV and PNG")
    q.add_argument("--from", dest="sources", nargs="+", required=True, metavar="WORKDIR")
    q.add_argument("--labels", nargs="+", help="one label per workdir (default: folder names)")
    q.add_argument("--permutations", type=int, default=2000)
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_scratch_diversity)

    p = sub.add_parser("flops", help="per-layer MACs and parameters of a model (optionally "
                       "under saved masks)")
    p.add_argument("--model", required=True, help=_TRAIN_FLAGS["model"][2])
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
