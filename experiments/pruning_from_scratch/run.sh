#!/usr/bin/env bash
# Pruning from Scratch at CPU scale: one study per argument (diversity | vgg16 | resnet20), each:
# gates on N frozen RANDOM networks and on N networks TRAINED first, one architecture per
# network at the target MAC reduction, those architectures trained from scratch (Scratch-B)
# beside the standard network, the diversity of the two groups, and the tables (report.py).
# Usage (from the repository root):  bash experiments/pruning_from_scratch/run.sh diversity
set -euo pipefail
cd "$(dirname "$0")/../.."
study=${1:?usage: run.sh diversity|vgg16|resnet20}
runs=runs/pfs/$study
data=../shared/data
case $study in
  diversity)  # the large-N run: VGG-11 x1/8 (widths 8..64, x1.25 gated), 32 random networks
    # and 8 trained ones, 2,500 CIFAR-10 images
    if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then
      python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
    fi
    data=runs/data
    common=(--model vgg11 --dataset cifar10 --options '{"classifier_widths": []}'
            --width-multiplier 0.125 --init pfs --expansion 1.25 --reduction 0.5
            --tolerance 0.01 --gate-epochs 5 --batch-size 32 --train-subset 2500
            --val-size 1000 --data-dir "$data")
    rand=(--seeds 32); trained=(--seeds 8 --pretrain-epochs 10)
    train=(--epochs 10 --train-subset 2500 --test-subset 2000 --seed-index 0 1 2 3)
    ;;
  vgg16)  # CIFAR-10 (JPEG q75), VGG-16 x1/4 with a linear classifier, 3 networks per group
    if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then
      python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
    fi
    data=runs/data
    common=(--model vgg16 --dataset cifar10 --options '{"classifier_widths": []}'
            --width-multiplier 0.25 --init pfs --expansion 1.25 --reduction 0.5
            --gate-epochs 10 --batch-size 64 --train-subset 3000 --val-size 1000
            --data-dir "$data")
    rand=(--seeds 3); trained=(--seeds 3 --pretrain-epochs 10)
    train=(--epochs 10 --train-subset 4000 --test-subset 2000)
    ;;
  resnet20)  # CIFAR-10, ResNet-20 x1/2, block-internal channels gated, 3 networks per group
    if [ ! -d runs/data/cifar10/cifar-10-batches-py ]; then
      python ../shared/data/cifar10_jpeg/make_cifar10_py.py runs/data/cifar10
    fi
    data=runs/data
    common=(--model resnet20 --dataset cifar10 --width-multiplier 0.5 --init pfs
            --expansion 1.5 --reduction 0.5 --tolerance 0.01 --gate-epochs 10 --batch-size 64
            --train-subset 3000 --val-size 1000 --data-dir "$data")
    rand=(--seeds 3); trained=(--seeds 3 --pretrain-epochs 10)
    train=(--epochs 10 --train-subset 4000 --test-subset 2000)
    ;;
  *) echo "unknown study $study (diversity | vgg16 | resnet20)" >&2; exit 2 ;;
esac
start=$(date +%s)
python -m jaxprune scratch search "${common[@]}" "${rand[@]}" --workdir "$runs/search_random" --no-progress
python -m jaxprune scratch search "${common[@]}" "${trained[@]}" --workdir "$runs/search_trained" --no-progress
python -m jaxprune scratch train --from "$runs/search_random" "${train[@]}" --standard \
  --workdir "$runs/train_random" --no-progress
python -m jaxprune scratch train --from "$runs/search_trained" "${train[@]}" \
  --workdir "$runs/train_trained" --no-progress
python -m jaxprune scratch diversity --from "$runs/search_random" "$runs/search_trained" \
  --labels random trained --out "$runs/diversity"
python experiments/pruning_from_scratch/report.py "$study" --runs "$runs" \
  --minutes $(( ($(date +%s) - start) / 60 ))
