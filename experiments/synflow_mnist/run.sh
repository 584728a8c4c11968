#!/usr/bin/env bash
# Synaptic-Flow's MNIST setting (its `fc` model, main.py defaults) with the zoo's init and with
# PyTorch's, then the side-by-side tables and plot. Rerunning resumes (each sweep's workdir).
#   bash experiments/synflow_mnist/run.sh [DATA_DIR]      # default ../shared/data
set -euo pipefail
DATA=${1:-../shared/data}
for INIT in default torch; do
  jaxprune sweep --model mlp_6x100 --dataset mnist --data-dir "$DATA" --init "$INIT" \
    --optimizer adam --lr 1e-3 --schedule constant --weight-decay 0 --batch-size 64 \
    --epochs 10 --no-augment --normalize \
    --methods random magnitude snip grasp synflow --log10-compressions 0.5 1 1.5 2 2.5 3 \
    --seeds 6 --per-class 10 --score-sampling random --score-bn eval \
    --out "runs/synflow_mnist/$INIT"
done
python experiments/synflow_mnist/compare.py runs/synflow_mnist experiments/synflow_mnist
