"""Pruning from Scratch's gate learning for N networks: one vmapped program vs a loop.

  python -m benchmarks.gate_seeds                        # LeNet-5 x1.5 and cnn1d x1.5, 32 nets
  python -m benchmarks.gate_seeds --model lenet5 --seeds 32

Each (model, strategy) runs in a fresh process: one gate epoch on 2,048 random examples at batch
64 to compile, then a second, timed ``learn_gates`` of the same setup (its programs are cached,
so it times the gate learning alone). Prints one JSON line per row and a table with the
loop / vmap ratio. The loop is exactly a per-network loop of the single-network program
(``tests/test_scratch.py`` checks the results are equal bit for bit).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

ROWS = [("lenet5", (28, 28, 1)), ("cnn1d_mnist1d", (40, 1))]
STRATEGIES = ("loop", "vmap")


def _one(model: str, strategy: str, seeds: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxprune import seeds as seeds_lib
    from jaxprune.studies import scratch
    from jaxprune.train import Split

    shape = dict(ROWS)[model]
    structure, _ = scratch.expanded_structure(model, {}, 1.5)
    rng = np.random.default_rng(0)
    train = Split(rng.random((2048, *shape), np.float32),
                  rng.integers(0, 10, 2048).astype(np.int32))
    val = Split(train.images[:512], train.labels[:512])
    stacked = seeds_lib.init_seeds(lambda k, x: structure.model.init(k, x, train=False),
                                   jax.random.split(jax.random.key(0), seeds),
                                   jnp.zeros((1, *shape)))
    cfg = scratch.GateConfig(epochs=1, batch_size=64, augment=False)
    run = lambda: scratch.learn_gates(structure, stacked, train, val, cfg, stacked=True,
                                      strategy=strategy, progress=False)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    return {"model": model, "strategy": strategy, "seeds": seeds, "first_s": round(first, 2),
            "epoch_s": round(time.perf_counter() - t0, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=[m for m, _ in ROWS])
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--strategy", help=argparse.SUPPRESS)  # one row in this process
    args = p.parse_args(argv)
    if args.strategy:
        print(json.dumps(_one(args.model, args.strategy, args.seeds)), flush=True)
        return 0
    results = []
    for model in [args.model] if args.model else [m for m, _ in ROWS]:
        for strategy in STRATEGIES:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.gate_seeds", "--model", model, "--seeds",
                 str(args.seeds), "--strategy", strategy],
                capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, {args.seeds} networks, one gate "
          "epoch of 2,048 examples at batch 64 (second call: compiled programs cached)")
    print(f"{'model':<14} {'strategy':<8} {'epoch s':>8} {'loop / this':>11}")
    for r in results:
        loop = next(x["epoch_s"] for x in results if x["model"] == r["model"]
                    and x["strategy"] == "loop")
        print(f"{r['model']:<14} {r['strategy']:<8} {r['epoch_s']:>8.2f} "
              f"{loop / r['epoch_s']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
