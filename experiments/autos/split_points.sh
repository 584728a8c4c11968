#!/usr/bin/env bash
# The in-distribution points where the 3 seeds of run.sh split between working and chance
# (density 0.003: random, AutoS with per-layer features) rerun with 6 seeds (10-15; 10-12 are
# run.sh's networks, recomputed). About 3 min on 2 cores after run.sh.
# Usage (from the repository root): bash experiments/autos/split_points.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${JAXPRUNE_DATA_DIR:-../shared/data}
COMMON=(--preset synflow_mlp --epochs 5 --seeds 6 --seed 10 --data-dir "$DATA" --no-progress
        --densities 0.003 --model lenet_300_100 --dataset mnist)
jaxprune sweep "${COMMON[@]}" --methods random autos --scorer runs/autos/scorer_none \
  --out runs/autos/split_lenet
jaxprune sweep "${COMMON[@]}" --methods autos --scorer runs/autos/scorer_layer \
  --out runs/autos/split_lenet_layer
python - <<'PY'
import csv
rows = []
for run, tag in (("split_lenet", ""), ("split_lenet_layer", " (layer-std)")):
    for r in csv.DictReader(open(f"runs/autos/{run}/networks.csv")):
        if r["method"] == "dense" and tag:
            continue
        rows.append({"method": r["method"] + (tag if r["method"] == "autos" else ""),
                     "density": r["density"], "seed": r["seed"],
                     "test_accuracy": r["test_accuracy"], "collapsed_layers": r["collapsed_layers"],
                     "at_chance": r["at_chance"]})
with open("experiments/autos/split_points.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
for m in dict.fromkeys(r["method"] for r in rows):
    rs = [r for r in rows if r["method"] == m]
    accs = [100 * float(r["test_accuracy"]) for r in rs]
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
    print(f"{m}: {mean:.2f} +/- {std:.2f} over {len(rs)} seeds; at chance "
          f"{sum(r['at_chance'] == 'True' for r in rs)}, collapsed "
          f"{sum(int(r['collapsed_layers']) > 0 for r in rs)}; per seed "
          + ", ".join(f"{a:.1f}" for a in accs))
PY
