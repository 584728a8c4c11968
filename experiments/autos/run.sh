#!/usr/bin/env bash
# AutoS at CPU scale: scorers learned from experiments/lottery_mnist's IMP survival counts
# (LeNet-300-100 / MNIST, 3 seeds), with the paper's raw features and with per-layer
# standardized ones, applied once to fresh inits of LeNet-300-100 on MNIST (in distribution)
# and of the 6x100 MLP on Fashion-MNIST (transfer), against random, magnitude, SNIP, GraSP and
# SynFlow at densities 0.8 ... 0.003. About 35 min on 2 cores after the lottery run.
# Usage (from the repository root): bash experiments/autos/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${JAXPRUNE_DATA_DIR:-../shared/data}
if [ ! -f runs/lottery_mnist/survival.npz ]; then
  echo "needs runs/lottery_mnist: run the command in experiments/lottery_mnist/README.md first" >&2
  exit 2
fi
for std in none layer; do
  jaxprune autos train --from runs/lottery_mnist --data-dir "$DATA" --standardize "$std" \
    --epochs 10 --max-train 200000 --out "runs/autos/scorer_$std" --no-progress
done
COMMON=(--preset synflow_mlp --epochs 5 --seeds 3 --seed 10 --data-dir "$DATA" --no-progress
        --densities 0.8 0.5 0.3 0.1 0.05 0.01 0.003)
for target in "lenet_300_100 mnist" "mlp_6x100 fashion_mnist"; do
  set -- $target
  jaxprune sweep "${COMMON[@]}" --model "$1" --dataset "$2" \
    --methods random magnitude snip grasp synflow autos --scorer runs/autos/scorer_none \
    --out "runs/autos/$1_$2"
  jaxprune sweep "${COMMON[@]}" --model "$1" --dataset "$2" --methods autos \
    --scorer runs/autos/scorer_layer --out "runs/autos/$1_$2_layer"
done
python experiments/autos/compare.py runs/autos experiments/autos
