"""Multi-seed MLP work against the machine's XLA GEMM peak, measured in the same process.

    python -m benchmarks.roofline                          # ~3 min on 2 cores
    python -m benchmarks.roofline --out benchmarks/results/x.json

The peak is the best of 5 float32 ``a @ a`` at 2048^3 (and 1024^3) under ``jax.jit``. Then, on
LeNet-300-100 with 32 seeds (medians of interleaved rounds, after one warm call):

- SNIP scores, a batch of 100 per seed, as ``pai.prune_seeds`` computes them, under each
  multi-seed strategy (``map``, ``vmap``, ``loop``);
- the same scores with one scoring batch shared by every seed, as ``vmap`` (batched matmuls)
  and ``fused``: a hand-written MLP whose first layer is ONE matmul over all seeds'
  concatenated kernels (``x @ [W1_1 | ... | W1_N]``: 784 x 9600, and its weight gradient one
  ``x^T @ dH``), the later layers batched (``einsum``); the math allows the fusion only when
  the seeds share their input;
- masked training: one SGD step of N = 8 and 32 networks vmapped (``fit``'s multi-seed step),
  batch 128 each.

FLOPs are counted by hand (2 per multiply-add): per network and example, forward
``2 * sum(fan_in * fan_out)``, backward the weight gradients of every layer plus the input
gradients of every layer but the first. Elementwise work (ReLU, softmax, |g * w|, the masks)
is not counted, so GFLOP/s is matmul throughput, comparable with the GEMM peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from benchmarks import workloads as W
from benchmarks.probes import interleaved_medians
from jaxprune import models, seeds
from jaxprune.train.steps import create_state, make_train_step

MLP = "lenet_300_100"
SIZES = (784, 300, 100, 10)
BATCH = 100


def mlp_flops(batch: int, backward: bool) -> float:
    pairs = list(zip(SIZES[:-1], SIZES[1:], strict=True))
    fwd = sum(2 * batch * i * o for i, o in pairs)
    if not backward:
        return fwd
    wgrad = fwd
    dgrad = sum(2 * batch * i * o for i, o in pairs[1:])
    return fwd + wgrad + dgrad


def gemm_peak() -> dict[str, float]:
    out = {}
    for n in (1024, 2048):
        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda a: a @ a)
        best = interleaved_medians({"x": lambda a=a, f=f: f(a)}, 5, stat=np.min)["x"]
        out[str(n)] = 2 * n**3 / best / 1e9
    return out


def fused_snip(n: int):
    """Hand-written SNIP scores for N LeNet-300-100s on one shared batch, the first layer fused."""
    def loss(params, x, y):
        (w1, b1), (w2, b2), (w3, b3) = params
        x = x.reshape(x.shape[0], -1)
        h = jax.nn.relu(x @ w1.transpose(1, 0, 2).reshape(SIZES[0], -1) + b1.reshape(1, -1))
        h = h.reshape(x.shape[0], n, SIZES[1]).transpose(1, 0, 2)          # (N, B, 300)
        h = jax.nn.relu(jnp.einsum("nbi,nio->nbo", h, w2) + b2[:, None])
        logits = jnp.einsum("nbi,nio->nbo", h, w3) + b3[:, None]
        ce = optax.softmax_cross_entropy_with_integer_labels(
            logits, jnp.broadcast_to(y, (n, y.shape[0])))
        return ce.mean(axis=1).sum()  # seeds independent: the gradient of the sum is per seed

    @jax.jit
    def scores(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return [jnp.abs(g[0] * p[0]) for g, p in zip(grads, params, strict=True)]

    return scores


def as_tuples(variables) -> list:
    """An MLP's (stacked) variables as :func:`fused_snip` takes them: ``[(kernel, bias)]`` per
    layer, in name order."""
    p = variables["params"]
    return [(p[k]["kernel"], p[k]["bias"]) for k in sorted(p)]


def run(n: int = 32, rounds: int = 15) -> dict:
    peak = gemm_peak()
    best_peak = max(peak.values())
    rows = []

    def add(name: str, seconds: float, flops: float, note: str) -> None:
        gf = flops / seconds / 1e9
        rows.append({"work": name, "ms": seconds * 1e3, "gflop": flops / 1e9, "gflops": gf,
                     "of_peak": gf / best_peak, "note": note})
        print(f"{name:42s} {seconds * 1e3:8.1f} ms {gf:7.1f} GFLOP/s {gf / best_peak:6.1%}",
              file=sys.stderr, flush=True)

    # SNIP scores, N seeds, own batch each: the library's per-seed function.
    fn = W.score_only_fn(MLP, "snip")
    v, b, k = W.score_inputs(MLP, n)
    impls = {s: (lambda s=s: seeds.map_stacked(fn, v, b, k, strategy=s))
             for s in ("map", "vmap", "loop")}
    b0 = seeds.unstack(b, 0)
    impls["shared batch, vmap"] = lambda: seeds.map_stacked(fn, v, b0, k, in_axes=(0, None, 0),
                                                            strategy="vmap")
    fused = fused_snip(n)
    params = as_tuples(v)
    impls["shared batch, fused first layer"] = lambda: fused(params, *b0)
    # The fused scores are the library's (same batch): checked, not assumed.
    ref = seeds.map_stacked(fn, v, b0, k, in_axes=(0, None, 0), strategy="loop")
    got = fused(params, *b0)
    ref_k = [ref[name]["kernel"] for name in sorted(ref)]
    err = max(float(jnp.max(jnp.abs(g - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
              for g, r in zip(got, ref_k, strict=True))
    times = interleaved_medians(impls, rounds)
    flops = n * mlp_flops(BATCH, backward=True)
    for s in ("map", "vmap", "loop"):
        add(f"SNIP scores, {n} seeds, {s}", times[s], flops, "own batch per seed")
    add(f"SNIP scores, {n} seeds, shared batch, vmap", times["shared batch, vmap"], flops,
        "one batch for all seeds")
    add(f"SNIP scores, {n} seeds, fused first layer", times["shared batch, fused first layer"],
        flops, f"one batch; max relative difference to the library's scores {err:.1e}")

    # Ceilings for these shapes: the matmuls alone, nothing elementwise.
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((n, BATCH, SIZES[0])), jnp.float32)
    ws = [jnp.asarray(rng.standard_normal((n, i, o)), jnp.float32)
          for i, o in zip(SIZES[:-1], SIZES[1:], strict=True)]
    hs = [jnp.asarray(rng.standard_normal((n, BATCH, o)), jnp.float32) for o in SIZES[1:]]

    def matmuls(x, w1, w2, w3, h1, h2, h3):  # SNIP's eight matmuls for one seed
        return (x @ w1, h1 @ w2, h2 @ w3, x.T @ h1, h1.T @ h2, h2.T @ h3, h2 @ w2.T, h3 @ w3.T)

    only = jax.jit(lambda *a: jax.lax.map(lambda t: matmuls(*t), a))
    x0 = xs[0]
    w1cat = jnp.asarray(rng.standard_normal((SIZES[0], n * SIZES[1])), jnp.float32)
    h1cat = jnp.asarray(rng.standard_normal((BATCH, n * SIZES[1])), jnp.float32)
    fwd1 = jax.jit(lambda x, w: x @ w)
    wgrad1 = jax.jit(lambda x, h: x.T @ h)
    ceil = interleaved_medians({"only": lambda: only(xs, *ws, *hs), "fwd1": lambda: fwd1(x0, w1cat),
                     "wgrad1": lambda: wgrad1(x0, h1cat)}, rounds)
    add(f"ceiling: SNIP's 8 matmuls alone, {n} seeds, lax.map", ceil["only"], flops,
        "own batch per seed; no activations, no loss, no scores")
    one_gemm = 2 * BATCH * SIZES[0] * SIZES[1] * n
    add(f"ceiling: first layer of {n} seeds as one GEMM, forward", ceil["fwd1"], one_gemm,
        f"({BATCH} x {SIZES[0]}) @ ({SIZES[0]} x {n * SIZES[1]})")
    add(f"ceiling: first layer of {n} seeds as one GEMM, weight gradient", ceil["wgrad1"],
        one_gemm, f"({SIZES[0]} x {BATCH}) @ ({BATCH} x {n * SIZES[1]})")

    # Masked training: one SGD step of N networks, vmapped.
    model = models.get(MLP)
    tx = optax.sgd(0.1, momentum=0.9)
    step = make_train_step(model, tx)
    rng = np.random.default_rng(0)
    for m in (8, 32):
        vm, _, _ = W.score_inputs(MLP, m)
        states = []
        for i in range(m):
            p = seeds.unstack(vm, i)["params"]
            mask = jax.tree.map(lambda a: jnp.asarray(rng.random(a.shape) > 0.9)
                                if a.ndim > 1 else jnp.ones(a.shape, bool), p)
            states.append(create_state(p, {}, tx, mask))
        holder = {"s": seeds.stack(states)}
        x = jnp.asarray(rng.random((m, 128, 28, 28, 1), np.float32))
        y = jnp.asarray(rng.integers(0, 10, (m, 128)), jnp.int32)
        keys = jax.random.split(jax.random.key(0), m)
        vstep = jax.jit(jax.vmap(step))

        def one_step(vstep=vstep, x=x, y=y, keys=keys, holder=holder):
            holder["s"], _ = vstep(holder["s"], x, y, keys)
            return holder["s"]

        t = interleaved_medians({"step": one_step}, rounds)["step"]
        add(f"masked training step, {m} seeds, vmap", t, m * mlp_flops(128, backward=True),
            "batch 128, SGD momentum, 90% sparse masks (dense matmuls)")
    return {"peak_gflops": peak, "rows": rows}


def render(result: dict) -> str:
    peak = result["peak_gflops"]
    lines = [f"XLA float32 GEMM peak (best of 5): 1024^3 {peak['1024']:.0f} GFLOP/s, 2048^3 "
             f"{peak['2048']:.0f} GFLOP/s; % of peak = of the higher.", "",
             "| work | ms | GFLOP | GFLOP/s | % of peak | note |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['work']} | {r['ms']:.1f} | {r['gflop']:.2f} | {r['gflops']:.0f} "
                     f"| {r['of_peak']:.0%} | {r['note']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--out")
    p.add_argument("--render")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    header = {"date": harness.now(), "machine": harness.machine(),
              "versions": harness.versions(), "loadavg_start": harness.loadavg()}
    t0 = time.time()
    result = {"header": header, **run(args.seeds, args.rounds)}
    header["loadavg_end"] = harness.loadavg()
    header["wall_s"] = time.time() - t0
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
