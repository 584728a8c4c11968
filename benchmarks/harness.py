"""Timing, compile/trace accounting, memory and machine facts for the benchmarks.

Timing: :func:`measure` runs a dict of implementations *interleaved* (first calls, then
``repeats`` rounds in which every implementation runs once, in a fresh seeded random order
each round), so peers see the same machine load; it reports the median of the rounds. The
first call of each implementation is timed apart: ``first_s`` = trace + compile + one run,
and ``compile_s`` is what XLA reported spending in tracing, lowering and backend compilation
during it (``jax.monitoring`` events), so compile time never leaks into steady-state figures.

Recompiles: the same events are counted during the steady rounds; a jax implementation that
compiles or traces again there is reported (``steady_compiles`` > 0) and, with ``strict``,
fails the benchmark.

Memory: ``peak_rss_mb`` is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's resident
high-water mark) read in a fresh subprocess that sets the workload up, notes the mark, runs ONE
implementation once (compile included) and notes it again; ``delta_rss_mb`` is the growth, i.e.
what that implementation needed beyond the shared setup (inputs, models, imported libraries).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileEvents:
    """Counts and sums jax's trace / lowering / backend-compile events (process-wide)."""

    _installed: CompileEvents | None = None

    def __init__(self) -> None:
        self.counts = {_TRACE: 0, _LOWER: 0, _COMPILE: 0}
        self.seconds = {_TRACE: 0.0, _LOWER: 0.0, _COMPILE: 0.0}

    @classmethod
    def install(cls) -> CompileEvents:
        if cls._installed is None:
            ev = cls()

            def listener(event: str, duration: float, **_: Any) -> None:
                if event in ev.counts:
                    ev.counts[event] += 1
                    ev.seconds[event] += duration

            jax.monitoring.register_event_duration_secs_listener(listener)
            cls._installed = ev
        return cls._installed

    def snapshot(self) -> tuple[dict[str, int], dict[str, float]]:
        return dict(self.counts), dict(self.seconds)

    def since(self, snap: tuple[dict[str, int], dict[str, float]]) -> dict[str, float]:
        counts, seconds = snap
        return {
            "traces": self.counts[_TRACE] - counts[_TRACE],
            "compiles": self.counts[_COMPILE] - counts[_COMPILE],
            "compile_s": sum(self.seconds[k] - seconds[k] for k in self.seconds),
        }


def block(out: Any) -> Any:
    """Wait for jax arrays anywhere in ``out`` (torch CPU results are already computed)."""
    return jax.block_until_ready(out)


# Idle time before every timed call; see ``measure``.
GAP_S = 0.01


def measure(
    impls: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    strict: bool = True,
    after_first: Callable[[str, Any], None] | None = None,
    gap_s: float | None = None,
    min_round_time_s: float = 3.0,
    max_repeats: int = 30,
) -> dict[str, dict[str, Any]]:
    """Time every implementation interleaved; see the module docstring.

    Args:
      impls: ``{name: thunk}``; names starting with ``jax`` are checked for steady recompiles.
        A thunk that returns :class:`benchmarks.isolate.Timed` ran in another process and
        reports its own time (used instead of the round trip measured here).
      repeats: at least this many steady rounds (the median is reported).
      strict: raise if a jax implementation compiles during the steady rounds.
      after_first: ``cb(name, output)`` after each first call (correctness checks).
      gap_s: idle time before every timed call. XLA's and PyTorch's worker threads spin for a
        while after each call; without a gap, one library's spinning threads slow the next
        call of the other on a 2-core machine (a 6 ms PyTorch SNIP measured 20-170 ms right
        after a jax call).
      min_round_time_s, max_repeats: cheap workloads get more rounds, until the steady rounds
        have taken ``min_round_time_s`` in all (at most ``max_repeats`` rounds).

    Returns:
      ``{name: {first_s, compile_s, first_compiles, steady_s: [...], median_s, min_s,
      steady_compiles, steady_traces}}``.
    """
    gap_s = GAP_S if gap_s is None else gap_s
    ev = CompileEvents.install()
    res: dict[str, dict[str, Any]] = {}
    for name, fn in impls.items():
        time.sleep(gap_s)
        snap = ev.snapshot()
        t0 = time.perf_counter()
        out = block(fn())
        first = _own_time(out, time.perf_counter() - t0)
        d = ev.since(snap)
        res[name] = {"first_s": first, "compile_s": d["compile_s"],
                     "first_compiles": d["compiles"], "steady_s": [],
                     "steady_compiles": 0, "steady_traces": 0}
        if after_first is not None:
            after_first(name, out)
        del out
    names = list(impls)
    rng = np.random.default_rng(0)
    spent, r = 0.0, 0
    while r < repeats or (spent < min_round_time_s and r < max_repeats):
        # A fresh order every round (seeded): no implementation keeps a fixed position or a
        # fixed predecessor (a rotation keeps the cyclic order, so each implementation always
        # ran right after the same other one, e.g. jax_multi after the PyTorch loop).
        order = [names[i] for i in rng.permutation(len(names))]
        r += 1
        for name in order:
            time.sleep(gap_s)
            snap = ev.snapshot()
            t0 = time.perf_counter()
            out = block(impls[name]())
            res[name]["steady_s"].append(_own_time(out, time.perf_counter() - t0))
            del out
            spent += res[name]["steady_s"][-1]
            d = ev.since(snap)
            res[name]["steady_compiles"] += d["compiles"]
            res[name]["steady_traces"] += d["traces"]
    for name, r in res.items():
        r["median_s"] = statistics.median(r["steady_s"]) if r["steady_s"] else r["first_s"]
        r["min_s"] = min(r["steady_s"]) if r["steady_s"] else r["first_s"]
        if strict and name.startswith("jax") and r["steady_compiles"]:
            raise AssertionError(
                f"{name} compiled {r['steady_compiles']} more time(s) in steady state "
                f"({r['steady_traces']} traces): a recompile per call"
            )
    return res


def _own_time(out: Any, measured: float) -> float:
    """The time an implementation in another process reported (:class:`isolate.Timed`), else
    the time measured here."""
    from benchmarks.isolate import Timed

    return out.seconds if isinstance(out, Timed) else measured


def max_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    import flax
    import jaxlib
    import numpy
    import optax

    try:
        import torch

        torch_version: str | None = torch.__version__
        torch_threads: int | None = torch.get_num_threads()
    except ImportError:
        torch_version, torch_threads = None, None
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": numpy.__version__,
        "torch": torch_version,
        "torch_threads": torch_threads,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
