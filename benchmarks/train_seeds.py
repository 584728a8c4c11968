"""Several seeds of a conv net trained together (``fit(seeds=...)``) under each strategy.

  python -m benchmarks.train_seeds                       # VGG-16 x1/4, WRN-16-2 x1/2, 3 seeds
  python -m benchmarks.train_seeds --model vgg16 --width 0.25 --seeds 3

Answers the structured studies' question (issue 16): do the seeds of a conv-net study train
faster together (one vmapped program) than one after another (the loop)? Each (model, strategy)
runs in a fresh process: one epoch of 1,024 random 32x32x3 images at batch 64 to compile, then a
second, timed ``fit`` of the same setup (its programs are cached, so it times training alone).
Prints one JSON line per row and a table with the loop / strategy ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

ROWS = [("vgg16", 0.25), ("wrn", 0.5)]
STRATEGIES = ("loop", "vmap", "chunked")


def row(model: str, width: float, strategy: str, seeds: int, images: int = 1024) -> dict:
    """One (model, strategy) row: compile with a first epoch of `images` random images, then
    time a second `fit` of the same setup."""
    import jax
    import numpy as np

    from jaxprune import models
    from jaxprune.train import Split, TrainConfig, fit

    opts = {"width_multiplier": width}
    if model == "wrn":
        opts.update(depth=16, widen_factor=2)
    net = models.get(model, num_classes=10, **opts)
    rng = np.random.default_rng(0)
    train = Split(rng.random((images, 32, 32, 3), np.float32),
                  rng.integers(0, 10, images).astype(np.int32))
    test = Split(train.images[:256], train.labels[:256])
    keys = jax.random.split(jax.random.key(0), seeds)
    stacked = jax.vmap(lambda k: net.init(k, train.images[:1], train=False))(keys)
    cfg = TrainConfig(model=model, dataset="random", batch_size=64, epochs=1, augment=True,
                      learning_rate=0.05, schedule="constant", weight_decay=1e-4)
    t0 = time.perf_counter()
    fit(net, stacked, train, test, cfg, seeds=list(range(seeds)), strategy=strategy,
        progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit(net, stacked, train, test, cfg, seeds=list(range(seeds)), strategy=strategy,
        progress=False)
    return {"model": model, "width": width, "strategy": strategy, "seeds": seeds,
            "first_s": round(first, 2), "epoch_s": round(time.perf_counter() - t0, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model")
    p.add_argument("--width", type=float)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--strategy", help=argparse.SUPPRESS)  # one row in this process
    args = p.parse_args(argv)
    rows = [(args.model, args.width)] if args.model else ROWS
    if args.strategy:
        print(json.dumps(row(args.model, args.width, args.strategy, args.seeds)), flush=True)
        return 0
    results = []
    for model, width in rows:
        for strategy in STRATEGIES:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.train_seeds", "--model", model, "--width",
                 str(width), "--seeds", str(args.seeds), "--strategy", strategy],
                capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, {args.seeds} seeds, one epoch of "
          "1,024 images at batch 64 (second fit: compiled programs cached)")
    print(f"{'model':<8} {'width':>5} {'strategy':<8} {'epoch s':>8} {'loop / this':>11}")
    for r in results:
        loop = next(x for x in results if x["model"] == r["model"] and x["strategy"] == "loop")
        print(f"{r['model']:<8} {r['width']:>5} {r['strategy']:<8} {r['epoch_s']:>8.2f} "
              f"{loop['epoch_s'] / r['epoch_s']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
