"""jaxprune: neural-network pruning research as pure functions over Flax parameter pytrees.

The data flows one way: params -> scores -> masks -> training -> results.

Subpackages (import them explicitly, e.g. ``from jaxprune import models``):
  models    Flax Linen model zoo with per-layer widths.
  data      datasets (embedded, local official files, TFDS), preprocessing, batching.
  flops     parameter and multiply-accumulate counting, layer tracing.
  train     masked training with optax, evaluation, workdirs with checkpoints and resume.
"""

__version__ = "0.1.0"
