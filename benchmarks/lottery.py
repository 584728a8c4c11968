"""IMP for N seeds in one program (``studies.lottery.run(seeds=range(N))``) vs a loop over seeds.

  python -m benchmarks.lottery                    # N = 8, LeNet-300-100, 3 repeats: ~12 min here
  python -m benchmarks.lottery --seeds 8 --repeats 5 --out benchmarks/results/x.json

The workload is LeNet-300-100 IMP as in ``experiments/lottery_mnist`` but short: random 28x28
"MNIST" (6,000 training and 1,000 test images, 10 classes), batch 60, Adam 1.2e-3, 2 levels of
500 steps each (5 epochs; rate 0.2, output layer 0.1), evaluations every 100 steps on a
500-image validation split, with the three controls (4 arms per level) or without. (The real
experiment trains 4,580 steps per level: per-level costs that do not grow with the steps, such
as moving the data to the device, weigh less there than here.) Both sides are the same
library call: the loop calls ``lottery.run(seeds=[s])`` for each seed. Each side runs once to
compile (reported as ``first_s``), then the two alternate ``repeats`` times; the table gives
medians and ``loop/multi`` (above 1: one program is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import jax
import numpy as np

from benchmarks import harness
from jaxprune import models
from jaxprune.studies import lottery
from jaxprune.train import Split, TrainConfig


def _data(seed: int = 0) -> tuple[Split, Split, Split]:
    rng = np.random.default_rng(seed)

    def split(n: int) -> Split:
        y = rng.integers(0, 10, n).astype(np.int32)
        x = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.5
        x[:, :10, :, 0] += 0.1 * y[:, None, None]  # learnable
        return Split(x, y)

    return split(6000), split(1000), split(500)


def _run(model, data, seeds, controls) -> float:
    train, test, val = data
    cfg = TrainConfig(epochs=5, batch_size=60, optimizer="adam", learning_rate=1.2e-3,
                      schedule="constant")
    lc = lottery.LotteryConfig(levels=2, rate=0.2, last_layer_rate=0.1, eval_every=100,
                               controls=controls)
    t0 = time.perf_counter()
    res = lottery.run(model, train, test, cfg, lc, seeds=seeds, validation=val, progress=False)
    harness.block(res.masks)
    return time.perf_counter() - t0


def measure(n: int, repeats: int, controls: tuple[str, ...]) -> dict[str, Any]:
    model = models.get("lenet_300_100")
    data = _data()
    seeds = list(range(n))
    multi = lambda: _run(model, data, seeds, controls)
    loop = lambda: sum(_run(model, data, [s], controls) for s in seeds)
    first = {"multi": multi(), "loop": loop()}
    times: dict[str, list[float]] = {"multi": [], "loop": []}
    for r in range(repeats):
        for name, fn in (("multi", multi), ("loop", loop))[:: 1 if r % 2 == 0 else -1]:
            times[name].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"seeds": n, "controls": list(controls), "first_s": first, "times_s": times,
            "median_s": med, "loop_over_multi": med["loop"] / med["multi"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    report = {"command": "python -m benchmarks.lottery " + " ".join(argv or []),
              "date": harness.now(), "machine": harness.machine(),
              "versions": harness.versions(), "loadavg_start": harness.loadavg(), "rows": []}
    print(f"IMP, LeNet-300-100, {args.seeds} seeds, 2 levels x 500 steps; "
          f"median of {args.repeats} (s)")
    print(f"{'controls':<22} {'multi':>8} {'loop':>8} {'loop/multi':>11} {'first: multi':>13} "
          f"{'loop':>8}")
    for controls in (lottery.CONTROLS, ()):
        row = measure(args.seeds, args.repeats, controls)
        report["rows"].append(row)
        m = row["median_s"]
        print(f"{','.join(controls) or 'none':<22} {m['multi']:>8.2f} {m['loop']:>8.2f} "
              f"{row['loop_over_multi']:>11.2f} {row['first_s']['multi']:>13.2f} "
              f"{row['first_s']['loop']:>8.2f}")
    report["loadavg_end"] = harness.loadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    jax.clear_caches()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
