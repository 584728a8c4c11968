"""Two sweeps of one setting (zoo init, PyTorch init) side by side: tables, CSV, one plot.

  python experiments/synflow_mnist/compare.py RUNS_DIR OUT_DIR [TITLE]

(also used by ``experiments/init_conv/run.sh``).

Reads ``RUNS_DIR/{default,torch}/networks.csv`` (written by ``jaxprune sweep``) and writes
``OUT_DIR/networks.csv`` (every network, with its init), ``OUT_DIR/summary.csv`` (mean, std,
collapsed and at-chance counts per init, method and compression) and
``OUT_DIR/accuracy_vs_compression.png`` (one panel per init); prints the README's tables.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from jaxprune.report import plot_accuracy_panels, to_csv

INITS = {"default": "zoo init (--init default)", "torch": "PyTorch init (--init torch)"}
TITLE = "Synaptic-Flow's MNIST setting (fc 6x100, Adam 1e-3, 10 epochs)"


def _read(path: Path, init: str) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({"init": init, "method": r["method"], "compression": float(r["compression"]),
                    "seed": int(r["seed"]), "test_accuracy": float(r["test_accuracy"]),
                    "collapsed_layers": int(r["collapsed_layers"]),
                    "at_chance": r["at_chance"] == "True",
                    "remaining_params": int(r["remaining_params"])})
    return out


def summarize(networks: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in networks:
        groups.setdefault((r["init"], r["method"], round(r["compression"], 6)), []).append(r)
    table = []
    for (init, method, _), rs in groups.items():
        accs = [r["test_accuracy"] for r in rs]
        table.append({"init": init, "method": method, "compression": rs[0]["compression"],
                      "seeds": len(rs), "acc_mean": statistics.fmean(accs),
                      "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                      "collapsed_runs": sum(r["collapsed_layers"] > 0 for r in rs),
                      "at_chance_runs": sum(r["at_chance"] for r in rs),
                      "remaining_params": rs[0]["remaining_params"]})
    return table


def markdown(table: list[dict], init: str) -> str:
    rows = [r for r in table if r["init"] == init]
    comps = sorted({r["compression"] for r in rows if r["method"] != "dense"})
    head = "| method | " + " | ".join(f"{c:.3g}x" for c in comps) + " |"
    lines = [head, "|" + "---|" * (len(comps) + 1)]
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"):
        cells = []
        for c in comps:
            r = next(x for x in rows if x["method"] == method and x["compression"] == c)
            tag = []
            if r["collapsed_runs"]:
                tag.append(f"{r['collapsed_runs']}c")
            if r["at_chance_runs"]:
                tag.append(f"{r['at_chance_runs']}ch")
            cells.append(f"{100 * r['acc_mean']:.2f} ± {100 * r['acc_std']:.2f}"
                         + (f" ({', '.join(tag)})" if tag else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    dense = [r for r in rows if r["method"] == "dense"]
    if dense:
        d = dense[0]
        lines.append(f"\nDense: {100 * d['acc_mean']:.2f} ± {100 * d['acc_std']:.2f}.")
    return "\n".join(lines)


def survivors(table: list[dict], init: str) -> str:
    """Per method: the highest compression where no run sat at chance."""
    out = []
    for method in dict.fromkeys(r["method"] for r in table if r["method"] != "dense"):
        ok = [r["compression"] for r in table if r["init"] == init and r["method"] == method
              and r["at_chance_runs"] == 0]
        out.append(f"{method} {max(ok):.3g}x" if ok else f"{method} none")
    return ", ".join(out)


def main(runs: str, folder: str, title: str = TITLE) -> int:
    runs_dir, out = Path(runs), Path(folder)
    networks = [r for init in INITS for r in _read(runs_dir / init / "networks.csv", init)]
    table = summarize(networks)
    (out / "networks.csv").write_text(to_csv(networks))
    (out / "summary.csv").write_text(to_csv(table))
    plot_accuracy_panels(
        {label: [r for r in table if r["init"] == init] for init, label in INITS.items()},
        str(out / "accuracy_vs_compression.png"),
        title=f"{title}, {max(r['seeds'] for r in table)} seeds")
    for init, label in INITS.items():
        print(f"\n### {label}\n")
        print(markdown(table, init))
        print(f"\nHighest compression with no run at chance: {survivors(table, init)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
