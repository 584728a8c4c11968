"""Data-free baselines: random scores and weight magnitude."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.criteria.base import ScoreFn, compiled, require

PyTree = Any


def _float_dtype(x: Any) -> jnp.dtype:
    dt = jnp.result_type(x)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.dtype(jnp.float32)


def random(distribution: str = "uniform") -> ScoreFn:
    """Random pruning: iid scores, independent of the weights (a keyed baseline).

    ``score_i ~ U[0, 1)`` (``"uniform"``) or ``N(0, 1)`` (``"normal"``): one draw of all the
    params' entries from ``key``, split over the leaves in tree-flatten order (row-major within a
    leaf). Global top-k on these scores is uniform random pruning; per-layer counts come from the
    allocation.

    Args:
      distribution: ``"uniform"`` or ``"normal"``.

    Returns:
      ``score_fn(params, *, batch=None, key) -> scores`` (``key`` required, ``batch`` ignored);
      scores have params' structure, shapes and (floating) dtypes.

    Reference: the random baseline of Frankle et al. 2021, https://arxiv.org/abs/2009.08576
    """
    samplers = {"uniform": jax.random.uniform, "normal": jax.random.normal}
    if distribution not in samplers:
        raise ValueError(
            f"unknown distribution {distribution!r} for random scores; valid: {sorted(samplers)}"
        )
    sample = samplers[distribution]

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        require(key, "random", "key", "a PRNG key, e.g. key=jax.random.key(0)")
        leaves, treedef = jax.tree.flatten(params)
        sizes = [int(np.prod(jnp.shape(x), dtype=np.int64)) for x in leaves]
        dtype = jnp.result_type(*[_float_dtype(x) for x in leaves]) if leaves else jnp.float32
        flat = sample(key, (sum(sizes),), dtype)  # one draw: one PRNG kernel to compile
        out, start = [], 0
        for x, size in zip(leaves, sizes, strict=True):
            out.append(flat[start : start + size].reshape(jnp.shape(x)).astype(_float_dtype(x)))
            start += size
        return jax.tree.unflatten(treedef, out)

    return compiled(score_fn)


def magnitude() -> ScoreFn:
    """Magnitude pruning: ``score = |theta|``.

    On initial weights this is magnitude pruning at initialization; on TRAINED weights it is the
    lottery-ticket criterion (Frankle & Carbin 2019, https://arxiv.org/abs/1803.03635), registered
    also as ``"trained_magnitude"``: the criterion is the same, only the params passed differ.

    Returns:
      ``score_fn(params, *, batch=None, key=None) -> |params|`` (``batch`` and ``key`` ignored).
    """

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        return jax.tree.map(jnp.abs, params)

    return compiled(score_fn)
