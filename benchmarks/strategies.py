"""Which multi-seed strategy is fastest for ``pai.prune_seeds``, and does ``auto`` pick it?

    python -m benchmarks.strategies                       # the grid below: hours on 2 cores
    python -m benchmarks.strategies --models lenet_300_100 --methods magnitude --n 8
    python -m benchmarks.strategies --out strategies.json --markdown strategies.md
    python -m benchmarks.strategies --render strategies.json   # a saved run's table

Rows: model (LeNet-300-100, ResNet-20, Conv-6) x method (random, magnitude, SNIP, GraSP,
SynFlow) x N seeds (8, 32), each pruned to 90% global sparsity by the program ``pai.prune_seeds``
runs (scores and top-k through ``seeds.map_stacked``; its host-side checks, the same under every
strategy, are left out), from stacked random inits and random scoring batches of 100 examples
(``benchmarks.workloads.score_inputs``). Run 10 (docs/benchmarks.md) measured 18 of the 30
rows in about 35 minutes; SynFlow on 32 seeds takes 30-50 s per call under most strategies.
Columns: every strategy of :data:`jaxprune.seeds.STRATEGIES` (``chunked`` with chunks of 8),
what ``auto`` picks for that row and whether the pick is within 10% of the fastest.

Each (row, strategy) runs in a fresh process (nothing cached between them, and a strategy that
is many times slower can be cut off): the first call is timed apart (``first_s``: trace +
compile + one run; ``compile_s``: what jax reported spending in tracing, lowering and compiling)
and then ``calls`` more, whose median is the row's figure. A process that runs past its time
limit (``--slack`` times the fastest strategy's whole process so far, at least ``--min-limit``
seconds) is stopped and reported as slower than that limit. SynFlow runs ``--synflow-rounds``
rounds (default 100 on LeNet-300-100; 10 on the conv nets, where 100 rounds of 32 seeds would
take minutes per call here): a loop of rounds all the same, which is what the rule looks at.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings

MODELS = ("lenet_300_100", "resnet20", "conv6")
METHODS = ("random", "magnitude", "snip", "grasp", "synflow")
NS = (8, 32)
STRATEGIES = ("vmap", "map", "chunked", "loop")
CHUNK = 8
SPARSITY = 0.9
TOLERANCE = 0.10  # auto's pick counts as right within 10% of the fastest


def _rounds(model: str, method: str, synflow_rounds: int | None) -> int | None:
    if method != "synflow":
        return None
    if synflow_rounds is not None:
        return synflow_rounds
    return 100 if model == "lenet_300_100" else 10


def child(model_name: str, method: str, n: int, strategy: str, rounds: int | None,
          budget_s: float) -> dict:
    """One (row, strategy) in this process: first call, then timed calls for ~``budget_s``."""
    import jax

    from benchmarks import harness
    from benchmarks import workloads as W
    from jaxprune import criteria, models, seeds
    from jaxprune.studies import pai

    warnings.simplefilter("ignore")  # collapsed-layer warnings: random inits at 90% are fine
    model = models.get(model_name)
    v, b, _ = W.score_inputs(model_name, n)
    b = b if method in ("snip", "grasp") else None
    shape = W.input_shape(model_name)
    r = criteria.default_rounds(method) if rounds is None else rounds
    # The program prune_seeds runs (its host-side checks cost the same under every strategy).
    one = pai.prune_program(model, method, shape, rounds=r)
    counts = pai.budget(jax.tree.map(lambda a: a[0], v)["params"], SPARSITY, "global", rounds=r)
    keys = seeds.seed_keys(list(range(n)), 3)
    args, axes = (v, b, keys, counts), (0, 0, 0, None)
    if strategy == "auto":  # only the pick
        return {"pick": seeds.choose_strategy(one, args, in_axes=axes)}
    extra = {"chunk_size": CHUNK} if strategy == "chunked" else {}
    call = lambda: seeds.map_stacked(one, *args, in_axes=axes, strategy=strategy, **extra)
    events = harness.CompileEvents.install()
    before = dict(events.seconds)
    t = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - t
    compile_s = sum(events.seconds[k] - before[k] for k in events.seconds)
    times = []
    while len(times) < 3 or (sum(times) < budget_s and len(times) < 15):
        t = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t)
    return {"first_s": first, "compile_s": compile_s, "median_s": statistics.median(times),
            "calls": len(times)}


def _run_child(args: list[str], limit: float) -> tuple[dict | None, float]:
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "benchmarks.strategies", "--child", *args],
                             capture_output=True, text=True, timeout=limit, check=True)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"benchmarks.strategies child {args} failed:\n"
                         f"{e.stderr[-3000:]}") from None
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def row(model: str, method: str, n: int, rounds: int | None, slack: float, min_limit: float,
        budget_s: float) -> dict:
    base = [model, method, str(n), str(rounds if rounds is not None else 0), str(budget_s)]
    pick, _ = _run_child([*base, "auto"], 300)
    result = {"model": model, "method": method, "n": n, "rounds": rounds, "auto": pick["pick"],
              "strategies": {}}
    best_wall = None
    for s in ("loop", "map", "vmap", "chunked"):  # the loop first: it bounds the others
        limit = max(min_limit, slack * best_wall) if best_wall else 600
        res, wall = _run_child([*base, s], limit)
        result["strategies"][s] = res if res is not None else {"timed_out_after_s": limit}
        if res is not None:
            best_wall = wall if best_wall is None else min(best_wall, wall)
        print(f"  {model} {method} N={n} {s}: "
              + (f"{res['median_s'] * 1e3:.1f} ms (first {res['first_s']:.2f} s, compile "
                 f"{res['compile_s']:.2f} s)" if res else f"> {limit:.0f} s, stopped"),
              file=sys.stderr, flush=True)
    return judge(result)


def judge(result: dict) -> dict:
    """Fill ``best``, ``auto_over_best`` and ``auto_ok`` from the timings and ``auto``."""
    timed = {s: r["median_s"] for s, r in result["strategies"].items() if "median_s" in r}
    best = min(timed, key=timed.get)
    auto_s = timed.get(result["auto"])
    result["best"] = best
    result["auto_over_best"] = None if auto_s is None else auto_s / timed[best]
    result["auto_ok"] = auto_s is not None and auto_s <= (1 + TOLERANCE) * timed[best]
    return result


def repick(run: dict) -> dict:
    """Ask the current library's ``auto`` again for every row of a saved run (the timings of
    the fixed strategies do not depend on the rule); the old pick stays as ``auto_before``."""
    for r in run["rows"]:
        base = [r["model"], r["method"], str(r["n"]), str(r["rounds"] or 0), "0"]
        pick, _ = _run_child([*base, "auto"], 300)
        r.setdefault("auto_before", r["auto"])
        r["auto"] = pick["pick"]
        judge(r)
    return run


def markdown(run: dict) -> str:
    before = any("auto_before" in r for r in run["rows"])
    lines = ["| model | method | N | " + " | ".join(f"{s} (ms)" for s in STRATEGIES)
             + (" | auto before" if before else "")
             + " | best | auto | auto / best | compile s (auto's pick) |",
             "|---" * (len(STRATEGIES) + 7 + before) + "|"]
    for r in run["rows"]:
        cells = []
        for s in STRATEGIES:
            x = r["strategies"][s]
            cells.append(f"{x['median_s'] * 1e3:.1f}" if "median_s" in x
                         else f"> {x['timed_out_after_s'] * 1e3:.0f} (stopped)")
        ratio = "-" if r["auto_over_best"] is None else f"{r['auto_over_best']:.2f}"
        ok = "" if r["auto_ok"] else " **(not within 10%)**"
        comp = r["strategies"][r["auto"]].get("compile_s")
        name = r["method"] + (f" ({r['rounds']} rounds)" if r["rounds"] else "")
        lines.append(f"| {r['model']} | {name} | {r['n']} | " + " | ".join(cells)
                     + (f" | {r.get('auto_before', '-')}" if before else "")
                     + f" | {r['best']} | {r['auto']} | {ratio}{ok} | "
                     + ("-" if comp is None else f"{comp:.2f}") + " |")
    ok = sum(r["auto_ok"] for r in run["rows"])
    lines.append(f"\nauto within 10% of the fastest in {ok} of {len(run['rows'])} rows.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.strategies")
    p.add_argument("--child", nargs=6, metavar=("MODEL", "METHOD", "N", "ROUNDS", "BUDGET",
                                                 "STRATEGY"), help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--n", nargs="+", type=int, default=list(NS))
    p.add_argument("--synflow-rounds", type=int, default=None)
    p.add_argument("--slack", type=float, default=4.0,
                   help="stop a strategy after this many times the fastest one's process")
    p.add_argument("--min-limit", type=float, default=60.0)
    p.add_argument("--budget", type=float, default=4.0, help="seconds of timed calls per cell")
    p.add_argument("--out", help="write the run as JSON")
    p.add_argument("--markdown", help="write the table as Markdown")
    p.add_argument("--render", help="print a saved run's table")
    p.add_argument("--repick", help="a saved run: ask auto again for each row, rewrite the file")
    a = p.parse_args(argv)
    if a.child:
        model, method, n, rounds, budget, strategy = a.child
        res = child(model, method, int(n), strategy, int(rounds) or None, float(budget))
        print(json.dumps(res))
        return 0
    if a.repick:
        with open(a.repick) as f:
            run = repick(json.load(f))
        with open(a.repick, "w") as f:
            json.dump(run, f, indent=1)
        print(markdown(run))
        return 0
    if a.render:
        with open(a.render) as f:
            print(markdown(json.load(f)))
        return 0
    from benchmarks import harness

    run = {"machine": harness.machine(), "versions": harness.versions(), "rows": [],
           "date": time.strftime("%Y-%m-%d")}
    for model in a.models:
        for method in a.methods:
            for n in a.n:
                run["rows"].append(row(model, method, n, _rounds(model, method,
                                                                 a.synflow_rounds),
                                       a.slack, a.min_limit, a.budget))
                if a.out:
                    with open(a.out, "w") as f:
                        json.dump(run, f, indent=1)
    table = markdown(run)
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
