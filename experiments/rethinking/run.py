"""Rethinking the Value of Network Pruning (Liu et al. 2019) at CPU scale: fine-tune vs Scratch-E vs
Scratch-B, through ``jaxprune.studies.structured``.

  python experiments/rethinking/run.py l1            # Li et al.'s VGG-16-A
  python experiments/rethinking/run.py l1-resnet     # Li et al.'s ResNet-56-A and -B
  python experiments/rethinking/run.py slimming      # Network Slimming, two global ratios
  python experiments/rethinking/run.py unstructured  # magnitude pruning of conv weights

Each study trains the large network per seed (``runs/rethinking/<study>/seed<k>/large``), prunes it
and trains the result three ways; every ``fit`` has a workdir, so a killed run resumes. Writes
``experiments/rethinking/<study>.csv`` (one row per network), ``<study>.md`` (the table) and
``<study>.png``. ``--full`` gives the paper's setting (all of CIFAR-10, full width, 160 epochs,
40 fine-tuning epochs): a GPU job.

Seeds run one after another: on CPU, conv nets train fastest one at a time (the multi-seed
engine's ``auto`` picks the loop for them; vmapped convolutions become grouped ones,
docs/benchmarks.md), and Slimming / magnitude give every seed its own architecture or mask.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxprune import data, models
from jaxprune import structured as st
from jaxprune.report import format_table, to_csv
from jaxprune.studies import structured as study
from jaxprune.train import Split, fit, init_model, preset, write_json_atomic, write_text_atomic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# study -> (model, width multiplier at CPU scale, arms). An arm: (label, kind, argument).
STUDIES = {
    "l1": ("vgg16", 0.25, [("VGG-16-A", "policy", ("l1", "li-vgg16-a", {}))]),
    "l1-resnet": ("resnet56", 0.25, [
        ("ResNet-56-A", "policy", ("l1", "li-resnet56-a", {})),
        ("ResNet-56-B", "policy", ("l1", "li-resnet56-b", {})),
    ]),
    "slimming": ("vgg16", 0.25, [
        ("40% channels", "policy", ("bn_scale", "global", {"ratio": 0.4})),
        ("60% channels", "policy", ("bn_scale", "global", {"ratio": 0.6})),
    ]),
    "unstructured": ("vgg16", 0.25, [
        ("50% weights", "weights", 0.5),
        ("95% weights", "weights", 0.95),
    ]),
}
#: --full: the paper's networks and ratios where the CPU scale departs from them (Slimming and
#: weight-level pruning on VGG-19; Slimming at 70%; weight-level at 30% and 80%, plus 95%).
FULL = {
    "slimming": ("vgg19", 1.0, [("70% channels", "policy", ("bn_scale", "global",
                                                           {"ratio": 0.7}))]),
    "unstructured": ("vgg19", 1.0, [("30% weights", "weights", 0.3),
                                    ("80% weights", "weights", 0.8),
                                    ("95% weights", "weights", 0.95)]),
}
MODES = ("finetune", "scratch-e", "scratch-b")


def model_options(args):
    """The width, and with --full the reference's single linear classifier for the VGG-19 of
    Network Slimming and weight-level pruning (the zoo's default is Li et al.'s 512-BN-10)."""
    opts = {"width_multiplier": args.width}
    if args.full and args.study in FULL:
        opts["classifier_widths"] = ()
    return opts


def recipes(args):
    """The large network's recipe and the fine-tuning recipe (Rethinking's, scaled)."""
    large = preset("cifar_resnet", model=STUDIES[args.study][0], batch_size=64,
                   weight_decay=1e-4, epochs=args.epochs, data_dir=args.data_dir,
                   model_options=model_options(args),
                   bn_l1=1e-4 if args.study == "slimming" else 0.0)
    finetune = large.replace(epochs=args.finetune_epochs, learning_rate=1e-3,
                             schedule="constant", bn_l1=0.0)
    return large, finetune


def splits(args):
    train = Split(*data.load("cifar10", "train", args.data_dir))
    test = Split(*data.load("cifar10", "test", args.data_dir))
    if args.train_subset:
        train = Split(train.images[:args.train_subset], train.labels[:args.train_subset])
    if args.test_subset:
        test = Split(test.images[:args.test_subset], test.labels[:args.test_subset])
    return train, test


def run_seed(args, seed, train, test, rows):
    model_name = STUDIES[args.study][0]
    large_cfg, ft_cfg = recipes(args)
    large_cfg, ft_cfg = large_cfg.replace(seed=seed), ft_cfg.replace(seed=seed)
    wd = Path(args.workdir) / f"seed{seed}"
    model = models.get(model_name, num_classes=10, **model_options(args))
    init = init_model(model, jax.random.key(seed), train.images, model_name=model_name)
    t0 = time.time()
    res = fit(model, init, train, test, large_cfg, workdir=str(wd / "large"),
              progress=not args.no_progress)
    trained = res.variables
    input_shape = tuple(train.images.shape[1:])
    structure = st.channel_groups(model_name, **model_options(args))
    dense = st.count_pruned(structure, input_shape=input_shape)
    base = {"study": args.study, "model": model_name, "seed": seed}
    rows.append({**base, "arm": "unpruned", "mode": "large", "epochs": large_cfg.epochs,
                 "test_accuracy": res.results["test_accuracy"],
                 "best_accuracy": max(h["test_accuracy"] for h in res.history),
                 "params": dense.params, "macs": dense.macs, "seconds": time.time() - t0})
    key = jax.random.fold_in(jax.random.key(seed), 7)
    scratch_cfg = large_cfg.replace(bn_l1=0.0)  # the reference's main_E/main_B: no -sr
    for label, kind, arg in STUDIES[args.study][2]:
        t0 = time.time()
        name = label.replace("%", "pct").replace(" ", "_")
        if kind == "policy":
            criterion, policy, kwargs = arg
            out = study.run(structure, trained, train, test, criterion=criterion,
                            policy=study.get_policy(policy, structure, **kwargs),
                            config=scratch_cfg, finetune_config=ft_cfg, key=key,
                            input_shape=input_shape, workdir=str(wd / name),
                            progress=not args.no_progress)
            params, macs = out.selection.pruned.params, out.selection.pruned.macs
            extra = {"widths": json.dumps(out.narrow_options)}
        else:
            out = study.run_unstructured(model, trained, train, test, sparsity=arg,
                                         config=scratch_cfg, finetune_config=ft_cfg, key=key,
                                         input_shape=input_shape, cap=args.cap,
                                         workdir=str(wd / name), progress=not args.no_progress)
            from jaxprune import flops
            params = flops.count_params(trained["params"], out.mask)
            macs, extra = out.pruned_macs, {}
        for mode, r in out.modes.items():
            rows.append({**base, "arm": label, "mode": mode, "epochs": r["epochs"],
                         "test_accuracy": r["test_accuracy"],
                         "best_accuracy": max(r["history"]), "params": params, "macs": macs,
                         "seconds": time.time() - t0, **extra})
        print(f"seed {seed} {label}: " + ", ".join(
            f"{m} {r['test_accuracy']:.4f} ({r['epochs']} ep)" for m, r in out.modes.items()),
            flush=True)


def summarize(rows):
    """mean +/- std per (arm, mode), in the order the study ran them."""
    table, seen = [], []
    for r in rows:
        if (r["arm"], r["mode"]) not in seen:
            seen.append((r["arm"], r["mode"]))
    for arm, mode in seen:
        sel = [r for r in rows if r["arm"] == arm and r["mode"] == mode]
        acc = np.array([100 * r["test_accuracy"] for r in sel])
        best = np.array([100 * r["best_accuracy"] for r in sel])
        table.append({"arm": arm, "mode": mode, "seeds": len(sel),
                      "epochs": "/".join(sorted({str(r["epochs"]) for r in sel})),
                      "test acc % (final)": f"{acc.mean():.2f} +/- {acc.std(ddof=1):.2f}"
                      if len(sel) > 1 else f"{acc.mean():.2f}",
                      "best epoch %": f"{best.mean():.2f} +/- {best.std(ddof=1):.2f}"
                      if len(sel) > 1 else f"{best.mean():.2f}",
                      "params": int(np.mean([r["params"] for r in sel])),
                      "MACs": int(np.mean([r["macs"] for r in sel])),
                      "_mean": acc.mean(), "_std": acc.std(ddof=1) if len(sel) > 1 else 0.0})
    return table


def plot(table, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in dict.fromkeys(r["arm"] for r in table) if a != "unpruned"]
    base = next(r for r in table if r["arm"] == "unpruned")
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(arms), 3.6))
    width = 0.25
    for i, mode in enumerate(MODES):
        sel = [next((r for r in table if r["arm"] == a and r["mode"] == mode), None)
               for a in arms]
        xs = np.arange(len(arms)) + (i - 1) * width
        ax.bar(xs, [r["_mean"] for r in sel], width, yerr=[r["_std"] for r in sel],
               capsize=3, label=mode)
    ax.axhline(base["_mean"], color="k", ls="--", lw=1,
               label=f"unpruned {base['_mean']:.1f}")
    ax.set_xticks(np.arange(len(arms)), arms)
    ax.set_ylabel("test accuracy (%)")
    lo = min(r["_mean"] - r["_std"] for r in table)
    ax.set_ylim(max(0, lo - 5), max(r["_mean"] + r["_std"] for r in table) + 2)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10, help="large network / Scratch-E epochs")
    p.add_argument("--finetune-epochs", type=int, default=4)
    p.add_argument("--width", type=float, default=None, help="width multiplier")
    p.add_argument("--train-subset", type=int, default=5000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--cap", type=float, default=None,
                   help="cap on Scratch-B's epoch factor (unstructured default: 2)")
    p.add_argument("--full", action="store_true", help="the paper's scale (GPU)")
    p.add_argument("--data-dir", default=str(ROOT / "runs" / "data"))
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.full:
        args.epochs, args.finetune_epochs, args.width = 160, 40, 1.0
        args.train_subset = args.test_subset = 0
        STUDIES.update(FULL)
    if args.width is None:
        args.width = STUDIES[args.study][1]
    if args.cap is None and args.study == "unstructured" and not args.full:
        args.cap = 2.0
    args.workdir = args.workdir or str(ROOT / "runs" / "rethinking" / args.study)
    t0 = time.time()
    train, test = splits(args)
    rows = []
    for seed in range(args.seeds):
        run_seed(args, seed, train, test, rows)
    table = summarize(rows)
    out = Path(args.out)
    cols = ["study", "model", "seed", "arm", "mode", "epochs", "test_accuracy", "best_accuracy",
            "params", "macs", "seconds", "widths"]
    write_text_atomic(out / f"{args.study}.csv", to_csv(rows, [c for c in cols if any(
        c in r for r in rows)]))
    shown = [{k: v for k, v in r.items() if not k.startswith("_")} for r in table]
    minutes = (time.time() - t0) / 60
    command = " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"`python experiments/rethinking/run.py {command}`: {args.seeds} seeds, "
            f"{minutes:.1f} min wall\n\n" + format_table(shown) + "\n")
    write_text_atomic(out / f"{args.study}.md", text)
    write_json_atomic(Path(args.workdir) / "table.json", shown)
    plot(table, out / f"{args.study}.png",
         f"{args.study}: {STUDIES[args.study][0]} x{args.width:g}, CIFAR-10 "
         f"{args.train_subset or 50000} imgs, {args.epochs} epochs, {args.seeds} seeds")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
