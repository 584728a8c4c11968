"""Rewinding to the init vs late rewinding, side by side, from the two runs of run.sh.

  python experiments/lottery_conv/compare.py experiments/lottery_conv

Reads ``init/summary.csv`` and ``late/summary.csv`` (written by ``jaxprune lottery --out``) and
writes ``comparison.csv`` and ``comparison.png``; prints the table.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from jaxprune.report import format_table, plot_lottery, to_csv


def main(folder: str) -> int:
    root = Path(folder)
    rows = []
    for run, label in (("init", "rewind to init"), ("late", "rewind to step 100")):
        with open(root / run / "summary.csv") as f:
            for r in csv.DictReader(f):
                row = {k: (float(v) if k not in ("arm",) else v) for k, v in r.items()}
                row["arm"] = f"{r['arm']}, {label}"
                rows.append(row)
    (root / "comparison.csv").write_text(to_csv(rows))
    plot_lottery(rows, str(root / "comparison.png"),
                 title="IMP, Conv-2 (width x0.25) on 10k CIFAR-10 (JPEG q75) images, 3 seeds")
    fmt = lambda m, s: f"{100 * m:.2f} +/- {100 * s:.2f}"
    print(format_table([
        {"level": int(r["level"]), "remaining %": f"{r['remaining %']:.2f}", "arm": r["arm"],
         "final acc %": fmt(r["acc"], r["acc std"]),
         "acc at early stop %": fmt(r["acc at early stop"], r["acc at early stop std"]),
         "early stop": f"{r['early stop']:.0f} +/- {r['early stop std']:.0f}"} for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "experiments/lottery_conv"))
