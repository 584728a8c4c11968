"""A Closer Look at Structured Pruning (Crowley et al. 2018) at CPU scale: Fisher-pruned and
fine-tuned WRNs vs reduced (uniformly thinner or shallower) WRNs and the pruned architectures
trained from scratch, at equal parameter counts.

  python experiments/crowley/run.py            # the CPU-scale table (see README.md)
  python experiments/crowley/run.py --full     # the reference's setting (GPU)

Per seed: train WRN-16-2 (x1/2 width at CPU scale); greedy Fisher pruning of the block-internal
channels (``jaxprune.studies.crowley.fisher_prune``), the network recorded after removing 25%,
50% and 75% of them; at each point four networks with the same parameter count budget:
  pruned    the Fisher-pruned network, fine-tuned along the way (the pruning-and-tuning result)
  scratch   its architecture, newly initialized, trained like the large network
  reduced   WRN-16-2 uniformly thinned to the same number of parameters
            (``structured.reduce_to_budget``), trained like the large network
  shallower WRN-10-2 (half the blocks) at the widest width within the same number of
            parameters, trained like the large network
Writes ``crowley.csv``, ``crowley.md`` and ``crowley.png`` (error vs parameters and vs MACs).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import data, flops, models
from jaxprune import structured as st
from jaxprune.data import batching, preprocess
from jaxprune.report import format_table, to_csv
from jaxprune.studies import crowley
from jaxprune.train import (
    Split,
    TrainConfig,
    fit,
    init_model,
    write_json_atomic,
    write_text_atomic,
)
from jaxprune.train.loop import evaluate
from jaxprune.train.steps import make_eval_step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FRACTIONS = (0.25, 0.5, 0.75)
SHALLOW = 10  # the depth-reduced arm: WRN-10-2
ARMS = [("pruned", "o-"), ("scratch", "s-"), ("reduced", "^-"), ("shallower", "v-")]


def recipes(args):
    """The reference's WRN recipe (lr 0.1, x0.2 at 30/60/80% of the run, wd 5e-4, batch 128,
    crop+flip) scaled to ``args.epochs``; its pruning recipe (SGD lr 8e-4, momentum 0.9,
    wd 5e-4)."""
    opts = {"depth": 16, "widen_factor": 2, "width_multiplier": args.width}
    large = TrainConfig(model="wrn", dataset="cifar10", model_options=opts, epochs=args.epochs,
                        batch_size=args.batch_size, optimizer="sgd", learning_rate=0.1,
                        momentum=0.9, weight_decay=5e-4, schedule="step",
                        milestones=(0.3, 0.6, 0.8), lr_decay=0.2, augment=True, normalize=True,
                        data_dir=args.data_dir)
    prune = large.replace(learning_rate=8e-4, schedule="constant")
    return large, prune


def batch_fn(train: Split, batch_size: int, key: jax.Array):
    """``step -> (x, y)``: shuffled epochs, normalized with the split's statistics, crop+flip."""
    mean, std = (jnp.asarray(v) for v in preprocess.channel_stats(train.images))
    steps = len(train.labels) // batch_size
    aug = jax.jit(lambda k, x: preprocess.normalize(preprocess.random_crop_flip(k, x), mean, std))

    @functools.lru_cache(maxsize=2)
    def order(epoch):
        return np.asarray(batching.epoch_batches(jax.random.fold_in(key, epoch),
                                                 len(train.labels), batch_size))

    def get(step):
        idx = order(step // steps)[step % steps]
        x = aug(jax.random.fold_in(key, 10_000_000 + step), jnp.asarray(train.images[idx]))
        return x, jnp.asarray(train.labels[idx])

    return get


def accuracy(model, variables, train: Split, test: Split) -> float:
    mean, std = (jnp.asarray(v) for v in preprocess.channel_stats(train.images))
    step = jax.jit(make_eval_step(model, preprocess=lambda x: preprocess.normalize(x, mean, std)))
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    return float(evaluate(step, params, state, test, 500)["accuracy"])


def run_seed(args, seed, train, test, rows):
    large_cfg, prune_cfg = recipes(args)
    large_cfg = large_cfg.replace(seed=seed)
    wd = Path(args.workdir) / f"seed{seed}"
    input_shape = tuple(train.images.shape[1:])
    structure = st.channel_groups("wrn", **large_cfg.model_options)
    model = structure.model
    init = init_model(model, jax.random.key(seed), train.images, model_name="wrn")
    res = fit(model, init, train, test, large_cfg, workdir=str(wd / "large"),
              progress=not args.no_progress)
    trained = res.variables
    dense = st.count_pruned(structure, input_shape=input_shape)
    base = {"seed": seed}
    rows.append({**base, "arm": "large", "removed": 0, "params": dense.params,
                 "macs": dense.macs, "test_accuracy": res.results["test_accuracy"]})

    total = sum(g.width for g in structure.groups)
    record = [int(round(f * total)) for f in FRACTIONS]
    prune_file = wd / "prune.json"
    if prune_file.exists():  # a finished pruning run is not redone
        done = json.loads(prune_file.read_text())
    else:
        t0 = time.time()
        run = crowley.fisher_prune(structure, trained,
                                   batch_fn(train, args.batch_size,
                                            jax.random.fold_in(jax.random.key(seed), 11)),
                                   channels=record[-1], steps_between=args.steps_between,
                                   config=prune_cfg, key=jax.random.key(seed), record=record,
                                   input_shape=input_shape, progress=not args.no_progress)
        done = {"seconds": time.time() - t0, "removed": run.removed, "points": {}}
        for n, p in run.points.items():
            narrow = st.prune_channels(structure, trained, p.keep, input_shape=input_shape)
            done["points"][str(n)] = {
                "keep": {g: [int(i) for i in k] for g, k in p.keep.items()},
                "options": st.narrow_options(structure, p.keep),
                "params": p.counts.params, "macs": p.counts.macs,
                "test_accuracy": accuracy(narrow.model, p.variables, train, test)}
        write_json_atomic(prune_file, done)
    for n in record:
        p = done["points"][str(n)]
        keep = {g: np.asarray(k) for g, k in p["keep"].items()}
        rows.append({**base, "arm": "pruned", "removed": n, "params": p["params"],
                     "macs": p["macs"], "test_accuracy": p["test_accuracy"]})
        fresh = st.fresh_init(structure, keep, key=jax.random.fold_in(jax.random.key(seed), n),
                              input_shape=input_shape)
        r = fit(fresh.model, fresh.variables, train, test, large_cfg,
                workdir=str(wd / f"scratch_{n}"), extra_config={"narrow_options": p["options"]},
                progress=not args.no_progress)
        rows.append({**base, "arm": "scratch", "removed": n, "params": p["params"],
                     "macs": p["macs"], "test_accuracy": r.results["test_accuracy"]})
        # Reduced networks at the pruned network's parameter count, the widest in budget:
        # WRN-16-2 thinner; WRN-10-2 (one block per stage instead of two), wider than the
        # large network where the budget allows.
        for arm, depth, fold in (("reduced", 16, 1000), ("shallower", SHALLOW, 2000)):
            red = st.reduce_to_budget("wrn", params=p["params"], input_shape=input_shape,
                                      depth=depth, widen_factor=2)
            rmodel = models.get(red.name, num_classes=10, **red.options)
            rvars = init_model(rmodel, jax.random.fold_in(jax.random.key(seed), fold + n),
                               train.images)
            r = fit(rmodel, rvars, train, test, large_cfg.replace(model_options=red.options),
                    workdir=str(wd / f"{arm}_{n}"), progress=not args.no_progress)
            rows.append({**base, "arm": arm, "removed": n, "params": red.counts.params,
                         "macs": red.counts.macs, "test_accuracy": r.results["test_accuracy"],
                         "width_multiplier": red.width_multiplier})
            assert flops.count_params(rvars["params"]) == red.counts.params
    print(f"seed {seed}: " + ", ".join(f"{r['arm']}@{r['removed']} {r['test_accuracy']:.4f}"
                                       for r in rows if r["seed"] == seed), flush=True)


def summarize(rows):
    out = []
    for arm, n in dict.fromkeys((r["arm"], r["removed"]) for r in rows):
        sel = [r for r in rows if r["arm"] == arm and r["removed"] == n]
        err = np.array([100 * (1 - r["test_accuracy"]) for r in sel])
        out.append({"arm": arm, "channels removed": n, "seeds": len(sel),
                    "params": int(np.mean([r["params"] for r in sel])),
                    "MACs": int(np.mean([r["macs"] for r in sel])),
                    "test error %": f"{err.mean():.2f} +/- {err.std(ddof=1):.2f}"
                    if len(sel) > 1 else f"{err.mean():.2f}",
                    "_mean": err.mean(), "_std": err.std(ddof=1) if len(sel) > 1 else 0.0})
    return out


def paired(rows):
    """Per removal count, paired (same seed) differences in test error between arms, points:
    mean +/- std over seeds and how many seeds the first arm was worse in."""
    pairs = [("reduced", "pruned"), ("shallower", "pruned"), ("scratch", "pruned"),
             ("scratch", "reduced"), ("shallower", "reduced")]
    err = {(r["arm"], r["removed"], r["seed"]): 100 * (1 - r["test_accuracy"]) for r in rows}
    out = []
    for n in sorted({r["removed"] for r in rows if r["removed"]}):
        line = {"removed": n}
        for a, b in pairs:
            d = np.array([err[a, n, s] - err[b, n, s] for s in sorted({r["seed"] for r in rows})
                          if (a, n, s) in err and (b, n, s) in err])
            if d.size:
                line[f"{a} - {b}"] = (f"{d.mean():+.2f} +/- {d.std(ddof=1):.2f} "
                                      f"({int((d > 0).sum())}/{d.size} worse)"
                                      if d.size > 1 else f"{d.mean():+.2f}")
        out.append(line)
    return out


def plot(table, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, x in zip(axes, ("params", "MACs"), strict=True):
        for arm, style in ARMS:
            sel = sorted((r for r in table if r["arm"] == arm), key=lambda r: r[x])
            ax.errorbar([r[x] for r in sel], [r["_mean"] for r in sel],
                        yerr=[r["_std"] for r in sel], fmt=style, capsize=3, label=arm)
        large = next(r for r in table if r["arm"] == "large")
        ax.axhline(large["_mean"], color="k", ls="--", lw=1, label="large (unpruned)")
        ax.set_xlabel(x)
        ax.set_ylabel("test error (%)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--width", type=float, default=0.5, help="width multiplier of WRN-16-2")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps-between", type=int, default=5,
                   help="fine-tuning steps between two removals (reference: 100)")
    p.add_argument("--train-subset", type=int, default=4000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--full", action="store_true", help="the reference's setting (GPU)")
    p.add_argument("--data-dir", default=str(ROOT / "runs" / "data"))
    p.add_argument("--workdir", default=str(ROOT / "runs" / "crowley"))
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.full:  # WRN-16-2 on all of CIFAR-10 (the reference prunes WRN-40-2: --depth)
        args.epochs, args.width, args.batch_size, args.steps_between = 200, 1.0, 128, 100
        args.train_subset = args.test_subset = 0
    t0 = time.time()
    train = Split(*data.load("cifar10", "train", args.data_dir))
    test = Split(*data.load("cifar10", "test", args.data_dir))
    if args.train_subset:
        train = Split(train.images[:args.train_subset], train.labels[:args.train_subset])
    if args.test_subset:
        test = Split(test.images[:args.test_subset], test.labels[:args.test_subset])
    rows = []
    for seed in range(args.seeds):
        run_seed(args, seed, train, test, rows)
    table = summarize(rows)
    out = Path(args.out)
    write_text_atomic(out / "crowley.csv", to_csv(rows, ["seed", "arm", "removed", "params",
                                                         "macs", "test_accuracy",
                                                         "width_multiplier"]))
    shown = [{k: v for k, v in r.items() if not k.startswith("_")} for r in table]
    command = " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"`python experiments/crowley/run.py {command}`: {args.seeds} seeds, "
            f"{(time.time() - t0) / 60:.1f} min wall\n\n" + format_table(shown) + "\n\n"
            "Paired differences in test error (points; positive: the first arm is worse)\n\n"
            + format_table(paired(rows)) + "\n")
    write_text_atomic(out / "crowley.md", text)
    plot(table, out / "crowley.png",
         f"WRN-16-2 x{args.width:g}, CIFAR-10 {args.train_subset or 50000} imgs, {args.epochs} "
         f"epochs, Fisher pruning every {args.steps_between} steps, {args.seeds} seeds")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
