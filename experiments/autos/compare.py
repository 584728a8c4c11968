"""The AutoS tables: both sweeps of each target merged, the scorers' held-out fit.

  python experiments/autos/compare.py runs/autos experiments/autos

Reads the sweeps' ``summary.csv`` (``<model>_<dataset>`` with the raw-feature scorer and the
baselines, ``<model>_<dataset>_layer`` with the per-layer standardized scorer) and the scorers'
``scorer.json``; writes ``<model>_<dataset>.csv`` / ``.png``, ``scorers.json`` and prints the
tables.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from jaxprune.report import format_table, plot_accuracy_vs_compression, to_csv

TARGETS = {"lenet_300_100_mnist": "LeNet-300-100 / MNIST (in distribution)",
           "mlp_6x100_fashion_mnist": "6x100 MLP / Fashion-MNIST (transfer)"}


def _rows(path: Path, rename: dict[str, str] | None = None) -> list[dict]:
    with open(path) as f:
        out = []
        for r in csv.DictReader(f):
            r = {k: (v if k == "method" else float(v)) for k, v in r.items()}
            r["method"] = (rename or {}).get(r["method"], r["method"])
            out.append(r)
        return out


def main(runs: str, out: str) -> int:
    runs_dir, out_dir = Path(runs), Path(out)
    scorers = {std: json.loads((runs_dir / f"scorer_{std}" / "scorer.json").read_text())
               for std in ("none", "layer")}
    (out_dir / "scorers.json").write_text(json.dumps(scorers, indent=2, sort_keys=True) + "\n")
    print("scorers (held out: seed 2 of the lottery run, 266,200 weights):")
    print(format_table([{"features": std, "best epoch": s["best_epoch"],
                         "held-out MSE": s["heldout_mse"],
                         "rank correlation": s["heldout_spearman"],
                         "|theta_0|": s.get("heldout_spearman_magnitude"),
                         "|theta_0 g_0|": s.get("heldout_spearman_snip")}
                        for std, s in scorers.items()]))
    for name, title in TARGETS.items():
        rows = _rows(runs_dir / name / "summary.csv", {"autos": "autos"})
        rows += [r for r in _rows(runs_dir / f"{name}_layer" / "summary.csv",
                                  {"autos": "autos (layer-std)"}) if r["method"] != "dense"]
        (out_dir / f"{name}.csv").write_text(to_csv(rows))
        plot_accuracy_vs_compression(rows, str(out_dir / f"{name}.png"),
                                     title=f"{title}, pruned at init, 3 seeds")
        densities = sorted({1 - r["sparsity"] for r in rows if r["method"] != "dense"},
                           reverse=True)
        table = []
        for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"):
            row = {"method": method}
            for d in densities:
                (r,) = [r for r in rows if r["method"] == method
                        and math.isclose(1 - r["sparsity"], d)]
                marks = [f"{int(r[k])}{tag}" for k, tag in (("collapsed_runs", "c"),
                                                             ("at_chance_runs", "ch")) if r[k]]
                mark = f" ({', '.join(marks)})" if marks else ""
                row[f"{d:g}"] = f"{100 * r['acc_mean']:.2f} +/- {100 * r['acc_std']:.2f}{mark}"
            table.append(row)
        (dense,) = [r for r in rows if r["method"] == "dense"]
        print(f"\n{title}: test accuracy (%) by density, mean +/- std over 3 seeds; (Nc): N "
              f"runs with a collapsed layer, (Nch): N runs at chance; dense "
              f"{100 * dense['acc_mean']:.2f} +/- "
              f"{100 * dense['acc_std']:.2f}")
        print(format_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*(sys.argv[1:3] if len(sys.argv) > 2 else
                            ("runs/autos", "experiments/autos"))))
