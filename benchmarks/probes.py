"""Small standalone probes quoted in docs/benchmarks.md (outside the interleaved harness).

    python -m benchmarks.probes peak                  # float32 GEMM peak, XLA and PyTorch
    python -m benchmarks.probes strategies [N] [what] # LeNet SNIP: map vs loop vs pre-split loop
    python -m benchmarks.probes shared-batch [N]      # one scoring batch for all seeds vs PyTorch

``what`` is ``scores`` (the criterion alone) or ``prune`` (score + 90% global mask). Each probe
prints the median of interleaved rounds (``peak``: the best of 5); no PyTorch in
``strategies``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import workloads as W
from jaxprune import seeds

MLP = "lenet_300_100"


def _medians(impls: dict[str, Callable], rounds: int, stat=np.median) -> dict[str, float]:
    for f in impls.values():
        jax.block_until_ready(f())
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(rounds):
        for k, f in impls.items():
            t = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t)
    return {k: float(stat(v)) for k, v in times.items()}


def peak() -> None:
    import torch

    for n in (1024, 2048):
        a = jnp.ones((n, n), jnp.float32)
        ta = torch.ones(n, n)
        best = _medians({"xla": jax.jit(lambda a=a: a @ a), "torch": lambda ta=ta: ta @ ta}, 5,
                        stat=np.min)
        print(n, {k: f"{2 * n**3 / v / 1e9:.0f} GFLOP/s (best of 5)" for k, v in best.items()})


def strategies(n: int = 32, what: str = "scores") -> None:
    v, b, k = W.score_inputs(MLP, n)
    fn = W.score_only_fn(MLP, "snip") if what == "scores" else W.prune_fn(
        MLP, "snip", 1, "float32", "probe")
    single = jax.jit(fn)
    per = [(seeds.unstack(v, i), seeds.unstack(b, i), k[i]) for i in range(n)]
    impls = {s: (lambda s=s: seeds.map_stacked(fn, v, b, k, strategy=s)) for s in ("map", "loop")}
    impls["presplit_loop"] = lambda: [single(*a) for a in per]
    for name, t in _medians(impls, 15).items():
        print(f"{name:14s} {t * 1e3:8.1f} ms")


def shared_batch(n: int = 32) -> None:
    import torch

    from benchmarks import torch_ref

    v, b, k = W.score_inputs(MLP, n)
    b0 = seeds.unstack(b, 0)  # one scoring batch for every seed
    fn = W.score_only_fn(MLP, "snip")
    axes = (0, None, 0)
    impls = {f"shared_{s}": (lambda s=s: seeds.map_stacked(fn, v, b0, k, in_axes=axes,
                                                          strategy=s))
             for s in ("vmap", "map", "loop", "auto")}
    tm = [torch_ref.load_flax(torch_ref.build(MLP), seeds.unstack(v, i)) for i in range(n)]
    tx = torch_ref.to_nchw(np.array(b0[0]))
    ty = torch.from_numpy(np.asarray(b0[1], np.int64))
    impls["torch_loop"] = lambda: [torch_ref.snip_scores(m.eval(), tx, ty) for m in tm]
    print("auto picks", seeds.choose_strategy(fn, (v, b0, k), in_axes=axes))
    for name, t in _medians(impls, 7).items():
        print(f"{name:14s} {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    probe, args = sys.argv[1], sys.argv[2:]
    if probe == "peak":
        peak()
    elif probe == "strategies":
        strategies(int(args[0]) if args else 32, args[1] if len(args) > 1 else "scores")
    elif probe == "shared-batch":
        shared_batch(int(args[0]) if args else 32)
    else:
        raise SystemExit(f"unknown probe {probe!r}: peak, strategies, shared-batch")
