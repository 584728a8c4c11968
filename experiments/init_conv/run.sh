#!/usr/bin/env bash
# The zoo init vs PyTorch's on a small convolutional net: Conv-4 at 1/8 width on 5,000 CIFAR-10
# (JPEG q75) training images, magnitude / SNIP / SynFlow at 10x, 100x, 1000x, 6 seeds each.
# Usage (from the repository root): bash experiments/init_conv/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then  # the official python layout, once
  python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
fi
for INIT in default torch; do
  jaxprune sweep --model conv4 --width-multiplier 0.125 --dataset cifar10 --data-dir runs/data \
    --train-subset 5000 --test-subset 2000 --init "$INIT" \
    --optimizer adam --lr 1e-3 --schedule constant --weight-decay 0 --batch-size 64 \
    --epochs 5 --no-augment --normalize \
    --methods magnitude snip synflow --log10-compressions 1 2 3 \
    --seeds 6 --per-class 10 --score-sampling random --score-bn eval \
    --no-progress --out "runs/init_conv/$INIT"
done
python experiments/synflow_mnist/compare.py runs/init_conv experiments/init_conv \
  "Conv-4 (x1/8) on 5k CIFAR-10 images (Adam 1e-3, 5 epochs)"
