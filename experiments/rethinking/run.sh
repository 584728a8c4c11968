#!/usr/bin/env bash
# The four Rethinking tables at CPU scale (VGG-16 x1/4 and ResNet-56 x1/4, 5,000 CIFAR-10 (JPEG
# q75) training images, 2,000 test images, 3 seeds). Usage (from the repository root):
#   bash experiments/rethinking/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then  # the official python layout, once
  python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
fi
python experiments/rethinking/run.py l1 --no-progress
python experiments/rethinking/run.py l1-resnet --no-progress
python experiments/rethinking/run.py slimming --no-progress
python experiments/rethinking/run.py unstructured --epochs 8 --no-progress
