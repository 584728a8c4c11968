"""jaxprune's benchmark suite: jaxprune vs a Python loop vs PyTorch, on CPU.

Run ``python -m benchmarks.run --quick`` (minutes) or ``python -m benchmarks.run --out b.json``
(the capped full grid); results and how to read them are in ``docs/benchmarks.md``.

  run         the entry point: the grid, one subprocess per workload, tables, targets, JSON
  harness     interleaved timing, compile/trace accounting, peak RSS, machine facts
  workloads   the jaxprune side: models, random data, scoring / training implementations
  torch_ref   the PyTorch references (Synaptic-Flow / open_lth style masked modules)
  prototypes  reference rows and speed-ups tried without touching the library (the sorting
              and the lax.top_k top-k, conv wgrad)
  probes      standalone probes quoted in docs/benchmarks.md (GEMM peak, strategies, top-k, ...)
  checks      recompiles, trace counts, bool masks, donation, known failures
"""

import os as _os
import sys as _sys

# Benchmarks time compilation and steady state; a persistent compilation cache (a user's, or the
# test suite's per-run one) would turn compiles into file loads. When a benchmark is the program
# (jax not imported yet), switch the cache off for it and every process it starts.
if "jax" not in _sys.modules:
    _os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
