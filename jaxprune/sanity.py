"""Sanity checks for pruning at initialization (Frankle et al. 2021).

Does a criterion's mask carry information beyond its per-layer densities? Three ablations:

  shuffle_mask   permute the kept positions within each layer (same per-layer counts).
  reinitialize   keep the mask, draw fresh weights (a new init from the caller).
  invert_scores  prune the HIGHEST-scoring weights instead of the lowest (score -> -score).

If accuracy survives shuffling or reinitialization, only the layer-wise budget mattered.

Reference: https://arxiv.org/abs/2009.08576 (Sec. 5)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxprune import masks as _masks
from jaxprune.criteria.base import ScoreFn
from jaxprune.masks import Predicate

PyTree = Any


def shuffle_mask(
    mask: PyTree,
    *,
    key: jax.Array,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """Randomly permute each prunable leaf's mask entries; per-layer kept counts are unchanged.

    Leaf ``i`` (tree-flatten order) is permuted with ``jax.random.fold_in(key, i)``; non-prunable
    leaves are returned as they are. Jittable, vmappable over ``key``.

    Args:
      mask: bool mask pytree.
      key: PRNG key.
      prunable, keep_dense: the prunable filter the mask was built with.

    Returns:
      bool mask pytree with the same per-leaf number of ``True`` entries.
    """
    if key is None:
        raise ValueError("shuffle_mask needs key= (a PRNG key)")
    _, leaves, flags, treedef = _masks.flatten_prunable(mask, prunable, keep_dense)
    out = []
    for i, (m, f) in enumerate(zip(leaves, flags, strict=True)):
        if f:
            perm = jax.random.permutation(jax.random.fold_in(key, i), jnp.ravel(m))
            out.append(perm.reshape(jnp.shape(m)))
        else:
            out.append(m)
    return jax.tree_util.tree_unflatten(treedef, out)


def reinitialize(fresh_params: PyTree, mask: PyTree) -> PyTree:
    """Keep the mask, replace the kept weights: ``apply_mask(fresh_params, mask)``.

    Args:
      fresh_params: a new initialization (e.g. ``model.init`` with another key) mirroring the
        params the mask was built from.
      mask: bool mask pytree.

    Returns:
      ``fresh_params`` with pruned entries zeroed.

    Raises:
      ValueError: if ``mask`` does not mirror ``fresh_params``.
    """
    _masks.check_mask_tree(fresh_params, mask)
    return _masks.apply_mask(fresh_params, mask)


def invert_scores(score_fn: ScoreFn) -> ScoreFn:
    """Wrap a criterion so that ``score -> -score``: top-k then prunes the most important weights.

    Note that ``-|x|`` of a non-negative score (magnitude, SNIP, SynFlow) ranks zeros highest; for a
    signed score (GraSP) this is the reference's own ordering (``-theta * Hg``) turned around.

    Returns:
      ``score_fn(params, *, batch=None, key=None) -> -scores``.
    """

    def inverted(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        return jax.tree.map(jnp.negative, score_fn(params, batch=batch, key=key))

    return inverted
