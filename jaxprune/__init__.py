"""jaxprune: neural-network pruning research as pure functions over Flax parameter pytrees.

The data flows one way: params -> scores -> masks -> training -> results.

Modules (import them explicitly, e.g. ``from jaxprune import criteria, masks``):
  models      Flax Linen model zoo with per-layer widths.
  data        datasets (embedded, local official files, TFDS), preprocessing, batching.
  flops       parameter and multiply-accumulate counting, layer tracing in execution order.
  criteria    score functions by name: random, magnitude, snip, grasp, synflow, ...
  masks       bool mask pytrees: prunable leaves, exact top-k, summaries, layer collapse.
  allocation  per-layer budgets: uniform, ERK, user maps.
  schedules   iterative pruning (exponential/linear), re-scoring the masked network.
  sanity      Frankle et al. 2021 sanity checks: shuffled masks, re-initialization, inversion.
  structured  channel pruning with real surgery: groups, criteria, policies, reduced networks.
  seeds       run a pure function over N PRNG keys (vmap / lax.map / loop / sharded), = a loop.
  train       masked training with optax, evaluation, workdirs with checkpoints and resume.
  report      text tables, CSV and plots.
  studies     the papers' procedures (pai: pruning at initialization).
"""

__version__ = "0.1.0"
