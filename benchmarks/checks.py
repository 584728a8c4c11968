"""The "make it fast" checks: recompiles, trace counts, bool masks, donation, known failures.

Each check returns a small dict of measured facts; :func:`run_all` collects them. They use
LeNet-300-100 (cheap to compile) unless the check is about a specific model.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import workloads as W
from benchmarks.harness import CompileEvents, block
from jaxprune import masks, models, schedules, seeds
from jaxprune.studies import pai

MLP = "lenet_300_100"


def _timed(fn: Callable[[], Any]) -> tuple[float, dict[str, float]]:
    ev = CompileEvents.install()
    snap = ev.snapshot()
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0, ev.since(snap)


def prune_seeds_recompiles(n: int = 4) -> dict[str, Any]:
    """``pai.prune_seeds`` called twice with identical arguments: does the 2nd call compile?"""
    model = models.get(MLP)
    variables, batches, keys = W.score_inputs(MLP, n)
    call = lambda: pai.prune_seeds(model, variables, "snip", 0.9, seeds=list(range(n)),
                                   batches=batches)
    first_s, first = _timed(call)
    second_s, second = _timed(call)
    fn = W.prune_fn(MLP, "snip", 1, "float32", "check")
    cached = lambda: seeds.map_stacked(fn, variables, batches, keys)
    _timed(cached)
    steady = [_timed(cached)[0] for _ in range(3)]
    return {
        "what": f"pai.prune_seeds({MLP}, snip, N={n}) twice with the same arguments",
        "second_call_compiles": second["compiles"],
        "second_call_traces": second["traces"],
        "first_call_s": first_s,
        "second_call_s": second_s,
        "map_stacked_same_fn_median_s": statistics.median(steady),
    }


def sparsity_recompiles() -> dict[str, Any]:
    """A new sparsity: compiles of ``pai.prune_seeds``, eager ``pai.prune``, ``mask_by_topk``."""
    model = models.get(MLP)
    variables, batches, keys = W.score_inputs(MLP, 2)
    v, b, k = seeds.unstack(variables, 0), seeds.unstack(batches, 0), keys[0]
    out = {}
    for method in ("snip", "synflow"):
        rounds = {"rounds": 10} if method == "synflow" else {}
        for s in (0.5, 0.8):
            _, d = _timed(lambda s=s, m=method, r=rounds: pai.prune_seeds(
                model, variables, m, s, seeds=[0, 1], batches=batches, **r))
            out[f"prune_seeds_{method}_sparsity_{s}_compiles"] = d["compiles"]
        for s in (0.5, 0.8):
            _, d = _timed(lambda s=s, m=method, r=rounds: pai.prune(
                model, v, m, s, input_shape=(28, 28, 1), batch=b, key=k, **r))
            out[f"prune_{method}_sparsity_{s}_compiles"] = d["compiles"]
    scores = jax.tree.map(jnp.abs, v["params"])
    masks.mask_by_topk(scores, 0.5)
    _, d = _timed(lambda: masks.mask_by_topk(scores, 0.8))
    out["mask_by_topk_new_sparsity_compiles"] = d["compiles"]
    return out


def synflow_traces_per_rounds() -> dict[str, Any]:
    """Trace count of the model's forward inside SynFlow for 10 vs 100 rounds (one loop)."""
    model = models.get(MLP)
    variables = W.init_variables(MLP, 0)
    counts = {}
    for rounds in (10, 100):
        calls = {"n": 0}

        def apply_fn(p, x, calls=calls):
            calls["n"] += 1  # runs once per trace, never per executed round
            return model.apply({"params": p}, x)

        f = jax.jit(lambda p, apply_fn=apply_fn, rounds=rounds: schedules.prune_synflow(
            p, 0.9, apply_fn=apply_fn, input_shape=(28, 28, 1), rounds=rounds))
        _, d = _timed(lambda f=f: f(variables["params"]))
        counts[rounds] = {"forward_traces": calls["n"], "compiles": d["compiles"]}
    return {"rounds_10": counts[10], "rounds_100": counts[100],
            "same_for_10_and_100_rounds": counts[10] == counts[100]}


def eager_prune_iteratively_recompiles() -> dict[str, Any]:
    """``schedules.prune_synflow`` called eagerly twice (same arguments): compiles on call 2?"""
    model = models.get(MLP)
    params = W.init_variables(MLP, 0)["params"]
    apply_fn = lambda p, x: model.apply({"params": p}, x)
    call = lambda s: schedules.prune_synflow(params, s, apply_fn=apply_fn,
                                             input_shape=(28, 28, 1), rounds=10)
    _timed(lambda: call(0.9))
    s_same, d_same = _timed(lambda: call(0.9))
    s_new, d_new = _timed(lambda: call(0.99))
    return {"second_call_compiles": d_same["compiles"], "second_call_s": s_same,
            "new_sparsity_compiles": d_new["compiles"], "new_sparsity_s": s_new}


def bool_masks() -> dict[str, Any]:
    variables, batches, keys = W.score_inputs(MLP, 2)
    m = seeds.map_stacked(W.prune_fn(MLP, "snip", 1, "float32", "check"), variables, batches,
                          keys)
    tx = W.optimizer()
    _, state = W.masked_state(MLP, tx)
    return {"prune_output_dtypes": sorted({str(x.dtype) for x in jax.tree.leaves(m)}),
            "train_state_mask_dtypes": sorted({str(x.dtype) for x in
                                               jax.tree.leaves(state.mask)})}


def synflow_bn_multi_seed() -> dict[str, Any]:
    """``pai.prune_seeds(resnet20, synflow)`` with the default strategy (2 seeds, 2 rounds)."""
    model = models.get("resnet20")
    variables, batches, keys = W.score_inputs("resnet20", 2)
    out = {}
    for strategy in ("auto", "vmap", "loop"):
        try:
            block(pai.prune_seeds(model, variables, "synflow", 0.9, seeds=[0, 1],
                                  batches=batches, rounds=2, strategy=strategy))
            out[strategy] = "ok"
        except Exception as e:  # noqa: BLE001 - the failure is the finding
            out[strategy] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return out


def synflow_float64_maxpool() -> dict[str, Any]:
    """SynFlow (float64, the default) on Conv-6, whose max pools have a float64 gradient."""
    variables, batches, keys = W.score_inputs("conv6", 1)
    v = seeds.unstack(variables, 0)
    out = {}
    for dtype in ("float64", "float32"):
        fn = W.prune_fn("conv6", "synflow", 1, dtype, "check")
        err = W.lowering_error(fn, (v, seeds.unstack(batches, 0), keys[0]))
        out[dtype] = err or "ok"
    return out


CHECKS = {
    "prune_seeds_recompiles": prune_seeds_recompiles,
    "sparsity_recompiles": sparsity_recompiles,
    "synflow_traces_per_rounds": synflow_traces_per_rounds,
    "eager_prune_iteratively_recompiles": eager_prune_iteratively_recompiles,
    "bool_masks": bool_masks,
    "synflow_bn_multi_seed": synflow_bn_multi_seed,
    "synflow_float64_maxpool": synflow_float64_maxpool,
}


def run_all(names: list[str] | None = None) -> dict[str, Any]:
    out = {}
    for name in names or list(CHECKS):
        t0 = time.perf_counter()
        try:
            out[name] = CHECKS[name]()
        except Exception as e:  # noqa: BLE001 - one failing check must not hide the others
            out[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        out[name]["seconds"] = round(time.perf_counter() - t0, 2)
    return out
