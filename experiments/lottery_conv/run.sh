#!/usr/bin/env bash
# Lottery tickets on Conv-2 / CIFAR-10 (JPEG q75) at CPU scale: IMP rewinding to the init vs late
# rewinding (to step 100), 3 seeds, the reinit control beside each ticket. About 40 min on 2 cores.
# Usage (from the repository root): bash experiments/lottery_conv/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then  # the official python layout, once
  python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
fi
for rewind in 0 100; do
  name=$([ "$rewind" = 0 ] && echo init || echo late)
  jaxprune lottery --model conv2 --width-multiplier 0.25 --dataset cifar10 --data-dir runs/data \
    --train-subset 12000 --test-subset 5000 --validation 2000 \
    --optimizer adam --lr 2e-4 --schedule constant --batch-size 60 --epochs 10 \
    --levels 5 --rate 0.4 --layer-rate conv1/kernel=0.2 --layer-rate conv2/kernel=0.2 \
    --last-layer-rate 0.2 --controls reinit --eval-every 166 --seeds 3 \
    --rewind-step "$rewind" --workdir "runs/lottery_conv/$name" \
    --out "experiments/lottery_conv/$name" --no-progress
done
python experiments/lottery_conv/compare.py experiments/lottery_conv
