#!/usr/bin/env bash
# Crowley et al. at CPU scale: WRN-16-2 x1/2 on 4,000 CIFAR-10 (JPEG q75) training images,
# 2,000 test images, 6 epochs, a channel removed every 5 fine-tuning steps, 3 seeds.
# Usage (from the repository root): bash experiments/crowley/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then  # the official python layout, once
  python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
fi
python experiments/crowley/run.py --no-progress
