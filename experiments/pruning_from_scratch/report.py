"""The tables of one Pruning-from-Scratch study from its workdirs (written by run.sh).

  python experiments/pruning_from_scratch/report.py vgg16 --runs runs/pfs/vgg16 --minutes 31

Writes ``<study>.csv`` (every trained network), ``<study>.md`` (the summary table: accuracy
mean +/- std per group, MAC reduction, gate selection, diversity) and copies the diversity
figure to ``<study>_diversity.png`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from jaxprune.report import format_table, to_csv
from jaxprune.train import write_text_atomic

HERE = Path(__file__).resolve().parent


def _mean_std(values) -> str:
    a = 100 * np.asarray(values, np.float64)
    return f"{a.mean():.2f} +/- {a.std(ddof=1):.2f}" if len(a) > 1 else f"{a.mean():.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study")
    p.add_argument("--runs", required=True)
    p.add_argument("--minutes", type=float, default=None, help="wall time of run.sh")
    args = p.parse_args(argv)
    runs = Path(args.runs)
    load = lambda f: json.loads((runs / f).read_text())
    searches = {g: load(f"search_{g}/search.json") for g in ("random", "trained")}
    config = load("search_random/config.json")
    trained = {g: load(f"train_{g}/results.json") for g in ("random", "trained")}
    div = load("diversity/diversity.json")
    rows = [dict(r, group="standard" if r["network"] == "standard" else f"PfS ({g} weights)")
            for g, res in trained.items() for r in res["runs"]]
    write_text_atomic(HERE / f"{args.study}.csv", to_csv(
        rows, ["group", "seed", "epochs", "test_accuracy", "macs", "reduction"]))
    spread = {d["group"]: d for d in div["groups"]}
    table = []
    order = ["standard", "PfS (random weights)", "PfS (trained weights)"]
    for group in [g for g in order if any(r["group"] == g for r in rows)]:
        sel = [r for r in rows if r["group"] == group]
        g = "random" if "random" in group else "trained" if "trained" in group else None
        found = searches[g]["found"] if g else []
        d = spread.get(g, {})
        table.append({
            "network": group, "trained nets": len(sel),
            "epochs": "/".join(sorted({str(r["epochs"]) for r in sel})),
            "MAC reduction": f"{np.mean([r['reduction'] for r in sel]):.4f}",
            "test acc % (mean +/- std)": _mean_std([r["test_accuracy"] for r in sel]),
            "searched": len(found) or "",
            "gates met r": f"{sum(f['met_target'] for f in found)}/{len(found)}" if g else "",
            "pairwise L1": f"{d['L1 mean']:.4f} +/- {d['L1 std']:.4f}" if d else "",
            "cosine": f"{d['cosine mean']:.4f}" if d else "",
            "layer spread": f"{d['layer spread']:.4f}" if d else "",
        })
    test = div["tests"][0]
    wall = f", {args.minutes:.0f} min wall" if args.minutes is not None else ""
    text = (f"`bash experiments/pruning_from_scratch/run.sh {args.study}`: {config['model']} on "
            f"{config['dataset']}, expansion x{config['expansion']:g}, target "
            f"{config['reduction']:.0%} fewer MACs than the standard model{wall}\n\n"
            + format_table(table) + "\n\n"
            f"Random-init structures more diverse than trained-init ones: mean pairwise L1 "
            f"{test['l1_a']:.4f} vs {test['l1_b']:.4f}; mean distance to the group's mean "
            f"structure {test['spread_a']:.4f} vs {test['spread_b']:.4f}, one-sided permutation "
            f"p = {test['p_value']:.4f} (PERMDISP).\n")
    write_text_atomic(HERE / f"{args.study}.md", text)
    shutil.copyfile(runs / "diversity" / "diversity.png", HERE / f"{args.study}_diversity.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
