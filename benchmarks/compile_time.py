"""First-call (compile) time of ``pai.prune_seeds`` / ``pai.prune`` vs a plain jitted loop.

    python -m benchmarks.compile_time                      # LeNet-300-100, magnitude + SNIP
    python -m benchmarks.compile_time --out benchmarks/results/x.json --repeats 3
    python -m benchmarks.compile_time --render benchmarks/results/x.json

Rows: LeNet-300-100 x (magnitude, SNIP) x (``pai.prune``: one network; ``pai.prune_seeds``: N =
8, 32), 90% global sparsity, random inits and scoring batches of 100 examples
(``benchmarks.workloads.score_inputs``). Implementations, each in a fresh process (nothing
compiled before it), ``repeats`` processes per cell:

- ``library``: the library call itself (checks, the auto strategy's choice, the program).
- ``plain``: what a user would write without the library: ``jax.jit`` of one network's
  ``grad`` + scores + a global ``argsort`` top-k, called in a Python loop over inputs split per
  seed beforehand (the splitting is not timed). Same masks up to tie order.
- ``plain_exact``: the same plain loop with the library's exact top-k (``masks.keep_top``)
  in place of the ``argsort``: how much of the difference is the selection.

Columns: ``compile_s`` (what jax reported spending in tracing, lowering and compiling during
the first call), ``first_s`` (the first call's wall time: compile + one run of all N), and
``steady_s`` (median of later calls). The figures of a cell are medians over its processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings

MODEL = "lenet_300_100"
METHODS = ("magnitude", "snip")
NS = (1, 8, 32)
IMPLS = ("library", "plain", "plain_exact")
SPARSITY = 0.9


def child(method: str, n: int, impl: str) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from benchmarks import harness
    from benchmarks import workloads as W
    from jaxprune import masks, models
    from jaxprune.studies import pai

    warnings.simplefilter("ignore")
    model = models.get(MODEL)
    v, b, keys = W.score_inputs(MODEL, n)
    b = b if method == "snip" else None
    jax.block_until_ready((v, b, keys))

    if impl == "library":
        if n == 1:
            one_v = jax.tree.map(lambda a: a[0], v)
            one_b = None if b is None else (b[0][0], b[1][0])
            key = keys[0]
            jax.block_until_ready((one_v, one_b, key))  # sliced before the timed call
            call = lambda: pai.prune(model, one_v, method, SPARSITY, key=key, batch=one_b)
        else:
            call = lambda: pai.prune_seeds(model, v, method, SPARSITY, seeds=list(range(n)),
                                           batches=b)
    else:
        def one(params, x, y):
            if method == "snip":
                loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
                    model.apply({"params": p}, x), y).mean()
                scores = jax.tree.map(lambda g, w: jnp.abs(g * w), jax.grad(loss)(params), params)
            else:
                scores = jax.tree.map(jnp.abs, params)
            kernels = [s for s in jax.tree.leaves(scores) if s.ndim > 1]
            flat = jnp.concatenate([s.ravel() for s in kernels])
            keep = flat.size - round(SPARSITY * flat.size)
            if impl == "plain":
                rank = jnp.zeros(flat.size, jnp.int32).at[jnp.argsort(-flat)].set(
                    jnp.arange(flat.size, dtype=jnp.int32))
                kept = rank < keep
            else:
                kept = masks.keep_top(flat, keep)
            out, start = [], 0
            for s in kernels:
                out.append(kept[start:start + s.size].reshape(s.shape))
                start += s.size
            return out

        f = jax.jit(one)
        inputs = [(jax.tree.map(lambda a, i=i: a[i], v["params"]),
                   None if b is None else b[0][i], None if b is None else b[1][i])
                  for i in range(n)]
        jax.block_until_ready(inputs)
        call = lambda: [f(*a) for a in inputs]

    events = harness.CompileEvents.install()
    snap = events.snapshot()
    t = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - t
    compiled = events.since(snap)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t)
    return {"first_s": first, "compile_s": compiled["compile_s"],
            "compiles": compiled["compiles"], "steady_s": statistics.median(times)}


def cell(method: str, n: int, impl: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-m", "benchmarks.compile_time", "--child",
                              method, str(n), impl], capture_output=True, text=True, check=True,
                             timeout=600)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {**med, "runs": runs}


def render(result: dict) -> str:
    head = result["header"]
    lines = [f"{head['date']}, {head['machine']['cpu_model']} ({head['machine']['cpu_count']} "
             f"cores), jax {head['versions'].get('jax')}, commit {head.get('commit', '?')}; "
             f"medians of {result['repeats']} fresh processes per cell", "",
             "| method | call | N | library compile s | plain compile s | plain_exact compile s "
             "| library first s | plain first s | library / plain (first call) "
             "| library steady ms | plain steady ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lib, pl, ex = (r["impls"][i] for i in IMPLS)
        lines.append(
            f"| {r['method']} | {'prune' if r['n'] == 1 else 'prune_seeds'} | {r['n']} "
            f"| {lib['compile_s']:.2f} ({lib['compiles']:.0f}) | {pl['compile_s']:.2f} "
            f"| {ex['compile_s']:.2f} | {lib['first_s']:.2f} | {pl['first_s']:.2f} "
            f"| {lib['first_s'] / pl['first_s']:.2f} | {lib['steady_s'] * 1e3:.1f} "
            f"| {pl['steady_s'] * 1e3:.1f} |")
    lines.append("")
    lines.append("In brackets: programs compiled during the library's first call.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", nargs=3, metavar=("METHOD", "N", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--n", nargs="+", type=int, default=list(NS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write the results JSON here")
    p.add_argument("--render", help="print a saved results JSON as a markdown table")
    args = p.parse_args(argv)
    if args.child:
        method, n, impl = args.child
        print(json.dumps(child(method, int(n), impl)))
        return 0
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    from benchmarks import harness

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    header = {"date": harness.now(), "machine": harness.machine(),
              "versions": harness.versions(), "commit": commit,
              "loadavg_start": harness.loadavg()}
    result = {"header": header, "repeats": args.repeats, "rows": []}
    for method in args.methods:
        for n in args.n:
            row = {"model": MODEL, "method": method, "n": n, "impls": {}}
            for impl in IMPLS:
                row["impls"][impl] = cell(method, n, impl, args.repeats)
                c = row["impls"][impl]
                print(f"{method} N={n} {impl}: compile {c['compile_s']:.3f} s, first "
                      f"{c['first_s']:.3f} s, steady {c['steady_s'] * 1e3:.1f} ms",
                      file=sys.stderr, flush=True)
            result["rows"].append(row)
    header["loadavg_end"] = harness.loadavg()
    text = render(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
