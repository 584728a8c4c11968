"""``jaxprune scratch train`` (the found architectures from scratch:
:func:`jaxprune.studies.scratch.train_from_scratch`) and ``scratch diversity``
(:func:`jaxprune.studies.scratch.diversity`, :func:`~jaxprune.studies.scratch.more_diverse`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxprune.cli import common


def cmd_train(args: argparse.Namespace) -> int:
    """``scratch train``: every architecture of a search from a new random init
    (:func:`jaxprune.studies.scratch.train_from_scratch`), Scratch-B's budget; optionally the
    standard network beside them."""
    import numpy as np

    from jaxprune import models
    from jaxprune.report import format_table
    from jaxprune.studies import scratch
    from jaxprune.train import write_json_atomic

    if args.epochs < 1:
        raise ValueError(f"--epochs (the standard model's budget) must be >= 1, got "
                         f"{args.epochs}")
    config, search = read_search(args.source)
    structure, standard = scratch.expanded_structure(config["model"], config["options"],
                                                     config["expansion"])
    found = search["found"]
    picked = found if args.seed_index is None else [found[i] for i in args.seed_index
                                                    if 0 <= i < len(found)]
    if args.seed_index is not None and len(picked) != len(args.seed_index):
        raise ValueError(f"--seed-index must lie in [0, {len(found)}), got {args.seed_index}")
    data_dir = args.data_dir or config.get("data_dir")
    train, test = common.load_splits(config["dataset"], data_dir)
    train, test = common.subset(train, args.train_subset), common.subset(test, args.test_subset)
    cfg = scratch.train_config(args.epochs, config["reduction"], model=config["model"],
                               dataset=config["dataset"], augment=train.images.ndim == 4,
                               learning_rate=args.lr)
    wd = Path(args.workdir)
    common.claim(wd, {
        "command": "scratch train", "from_workdir": str(Path(args.source).resolve()),
        "found": [r["seed"] for r in picked], "epochs": args.epochs, "lr": args.lr,
        "model": config["model"], "options": standard, "expansion": config["expansion"],
        "widths": [r["widths"] for r in picked], "standard": args.standard,
        "train_subset": args.train_subset, "test_subset": args.test_subset,
        "data_fingerprint": common.data_fingerprint(train, test)})
    jobs = [("pruned", r) for r in picked] + [("standard", r) for r in picked if args.standard]
    rows = []
    for kind, r in jobs:
        pruned = kind == "pruned"
        keep = {n: np.asarray(k) for n, k in r["keep"].items()} if pruned else None
        run_cfg = cfg if pruned else cfg.replace(epochs=args.epochs)
        print(f"{kind} network of seed {r['seed']}: {run_cfg.epochs} epochs")
        res = scratch.train_from_scratch(
            structure, keep, r["seed"], train, test, run_cfg,
            model=None if pruned else models.get(config["model"], **standard),
            workdir=str(wd / f"{kind}_seed{r['seed']}"), progress=not args.no_progress)
        rows.append({"network": kind, **res,
                     "macs": r["macs"] if pruned else search["reference_macs"],
                     "reduction": r["reduction"] if pruned else 0.0})
    summary = []
    for kind in dict.fromkeys(r["network"] for r in rows):
        acc = np.array([r["test_accuracy"] for r in rows if r["network"] == kind])
        summary.append({"network": kind, "runs": len(acc), "test acc % mean": 100 * acc.mean(),
                        "std": 100 * acc.std(ddof=1) if len(acc) > 1 else None})
    write_json_atomic(wd / "results.json", {"runs": rows, "summary": summary,
                                            "initialization": search["initialization"]})
    print(format_table([{k: v for k, v in r.items() if k != "diverged_epoch"}
                        | {"diverged": common.diverged_cell(r["diverged_epoch"])} for r in rows]))
    print(format_table(summary))
    print(f"wrote {wd / 'results.json'}")
    print(common.diverged_line([r["diverged_epoch"] for r in rows], "networks"))
    return 0


def cmd_diversity(args: argparse.Namespace) -> int:
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
        config, search = read_search(src)
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
    common.claim(out, {"command": "scratch diversity",
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


def read_search(workdir: str) -> tuple[dict, dict]:
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
