"""Data-driven criteria from the loss gradient: SNIP and GraSP.

Both take the model through ``loss_fn(params, batch) -> scalar`` given to the factory, so they work
on any params pytree (Linen dicts, NNX states) and any batch layout the loss understands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxprune.criteria.base import ScoreFn, compiled, require, require_callable
from jaxprune.masks import Predicate, restrict_to_prunable

PyTree = Any
LossFn = Callable[[PyTree, Any], jax.Array]


def softmax_xent_with_temperature(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array], temperature: float = 200.0
) -> LossFn:
    """Build ``loss_fn(params, (x, y)) = mean_i CE(softmax(apply_fn(params, x)_i / T), y_i)``.

    GraSP's reference code divides the logits by ``T = 200`` before the cross-entropy; use this to
    build its ``loss_fn``. ``labels`` are integer classes (N,) or one-hot/soft targets (N, K).

    Args:
      apply_fn: ``apply_fn(params, x) -> logits`` (N, K).
      temperature: ``T > 0``; 1.0 gives the plain cross-entropy.

    Returns:
      ``loss_fn(params, batch) -> scalar`` with ``batch = (x, labels)``.
    """
    require_callable(apply_fn, "softmax_xent_with_temperature", "apply_fn", "(params, x) -> logits")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")

    def loss_fn(params: PyTree, batch: Any) -> jax.Array:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"batch must be a pair (inputs, labels), got {type(batch).__name__}")
        x, labels = batch
        logp = jax.nn.log_softmax(apply_fn(params, x) / temperature, axis=-1)  # (N, K)
        if jnp.ndim(labels) == jnp.ndim(logp):
            return -jnp.mean(jnp.sum(labels * logp, axis=-1))
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    return loss_fn


def hvp(loss_fn: LossFn, params: PyTree, batch: Any, v: PyTree) -> PyTree:
    """Hessian-vector product ``H v`` with ``H = d^2 loss / d params^2``, forward-over-reverse.

    ``jax.jvp(grad(loss_fn), (params,), (v,))``: one extra forward pass, never a dense Hessian.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: the point where the Hessian is taken.
      batch: passed to ``loss_fn``.
      v: pytree like ``params``.

    Returns:
      ``H v``, a pytree like ``params``.
    """
    return jax.jvp(lambda q: jax.grad(loss_fn)(q, batch), (params,), (v,))[1]


def snip(loss_fn: LossFn) -> ScoreFn:
    """SNIP connection sensitivity: ``score = |theta * dL/dtheta|``.

    Lee et al. define ``s_j = |dL(c * theta)/dc_j|`` at ``c = 1`` (the gradient w.r.t. a
    multiplicative mask), which is ``|theta_j * dL/dtheta_j|``. Their normalization by
    ``sum_k |.|`` is one positive constant and is left out (rankings are unchanged).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (mean loss over the batch).

    Returns:
      ``score_fn(params, *, batch, key=None) -> scores`` (``batch`` required, ``key`` ignored).

    Reference: https://arxiv.org/abs/1810.02340 (Eq. 6)
    """
    require_callable(loss_fn, "snip", "loss_fn", "(params, batch) -> scalar")

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        require(batch, "snip", "batch", "the data batch passed to loss_fn")
        grads = jax.grad(loss_fn)(params, batch)
        return jax.tree.map(lambda p, g: jnp.abs(p * g), params, grads)

    return compiled(score_fn)


def grasp(loss_fn: LossFn, *, prunable: Predicate | None = None) -> ScoreFn:
    """GraSP (gradient signal preservation): ``score = theta * (H g)``, higher = kept.

    ``g = dL/dtheta`` over the batch, ``H g`` a Hessian-vector product (:func:`hvp`).

    Sign convention, side by side:

      reference (Wang et al., GraSP.py):  S(-theta) = -theta * Hg,  PRUNE the largest S.
      jaxprune (higher score = kept):    score     =  theta * Hg,  prune the smallest score.

    ``score = -S``, so both remove the same weights: the ones whose removal reduces the gradient
    flow ``g^T g`` the least (or increases it). Scores are signed; do not take ``abs``.

    As in the reference, ``g`` is the gradient w.r.t. the prunable weights only (the reference
    differentiates conv/linear weights, not biases or batch norm): ``g`` is zeroed outside the
    ``prunable`` leaves, so ``H g = H[:, W] g_W``. The reference's logit temperature ``T = 200``
    belongs to the loss: build ``loss_fn`` with
    ``softmax_xent_with_temperature(apply_fn, 200.0)`` (a plain cross-entropy gives T = 1). The
    reference also re-initializes linear layers (xavier) before scoring; that is left to the
    caller.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      prunable: ``(path, leaf) -> bool`` picking the leaves ``g`` lives on; defaults to
        :func:`jaxprune.masks.is_kernel`. ``lambda path, leaf: True`` gives the full-Hessian
        variant.

    Returns:
      ``score_fn(params, *, batch, key=None) -> scores`` (``batch`` required, ``key`` ignored).

    Reference: https://arxiv.org/abs/2002.07376 (Eq. 8); code https://github.com/alecwangcq/GraSP
    """
    require_callable(loss_fn, "grasp", "loss_fn", "(params, batch) -> scalar")

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        require(batch, "grasp", "batch", "the data batch passed to loss_fn")
        g = restrict_to_prunable(jax.grad(loss_fn)(params, batch), prunable=prunable)
        hg = hvp(loss_fn, params, batch, jax.lax.stop_gradient(g))
        return jax.tree.map(lambda p, h: p * h, params, hg)

    return compiled(score_fn)
