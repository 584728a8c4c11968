"""Network Slimming's sparsity regularizer as an optax transform.

Liu et al. (2017) train with an L1 penalty ``s * sum |gamma|`` on the batch-norm scales, applied
as a subgradient step: before the optimizer, every BN scale's gradient gets ``s * sign(gamma)``
(their ``updateBN``: ``m.weight.grad.data.add_(s * torch.sign(m.weight.data))``). Chain it in
front of the optimizer so momentum and weight decay see the regularized gradient:

  tx = optax.chain(network_slimming(1e-4), optax.sgd(0.1, momentum=0.9))
  updates, opt_state = tx.update(grads, opt_state, params)     # params are required

Then score channels with the ``bn_scale`` criterion and prune with one global threshold
(:func:`jaxprune.structured.policies.prune_by_global_threshold`).

Reference: https://arxiv.org/abs/1708.06519
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxprune.masks import Path, Predicate, path_tuple
from jaxprune.structured.groups import Structure

PyTree = Any


def is_bn_scale(path: Path, leaf: Any) -> bool:
    """Whether a params leaf is a batch norm's scale: ``(..., '<layer>_bn', 'scale')``.

    Matches the zoo's naming (the batch norm after layer ``X`` is ``X_bn``; WRN's
    ``preact_bn`` and ``final_bn`` too).
    """
    return len(path) >= 2 and path[-1] == "scale" and str(path[-2]).endswith("_bn")


def bn_scale_paths(structure: Structure) -> list[Path]:
    """Paths (inside ``params``) of the batch-norm scales on the structure's channel groups."""
    return [
        s.path
        for g in structure.groups
        for s in g.slots
        if s.collection == "params" and s.role == "norm" and s.path[-1] == "scale"
    ]


def add_l1_subgradient(
    s: float,
    *,
    predicate: Predicate | None = None,
    paths: Iterable[Sequence[str]] | None = None,
) -> optax.GradientTransformation:
    """Add ``s * sign(param)`` to the updates of selected leaves: the subgradient of ``s|θ|_1``.

    Args:
      s: penalty strength (Network Slimming uses 1e-4 on CIFAR, 1e-5 for VGG on ImageNet).
      predicate: ``(path, leaf) -> bool`` picking leaves (paths as plain key tuples); default
        :func:`is_bn_scale`.
      paths: instead of a predicate, the exact leaf paths, e.g. :func:`bn_scale_paths`.

    Returns:
      A stateless ``optax.GradientTransformation``; ``update`` needs ``params``. Other leaves
      pass through unchanged.

    Raises:
      ValueError: both ``predicate`` and ``paths`` given, or ``params`` missing in ``update``.
    """
    if predicate is not None and paths is not None:
        raise ValueError("give either predicate= or paths=, not both")
    if paths is not None:
        wanted = frozenset(tuple(p) for p in paths)
        pick: Predicate = lambda path, leaf: path in wanted
    else:
        pick = is_bn_scale if predicate is None else predicate

    def init_fn(params: PyTree) -> optax.EmptyState:
        return optax.EmptyState()

    def update_fn(updates: PyTree, state: optax.EmptyState, params: PyTree | None = None):
        if params is None:
            raise ValueError("add_l1_subgradient needs params: tx.update(grads, state, params)")

        def add(keypath, u, p):
            if not pick(path_tuple(keypath), p):
                return u
            return u + jnp.asarray(s, u.dtype) * jnp.sign(p).astype(u.dtype)

        return jax.tree_util.tree_map_with_path(add, updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


def network_slimming(
    s: float = 1e-4, *, paths: Iterable[Sequence[str]] | None = None
) -> optax.GradientTransformation:
    """Network Slimming's sparsity term: ``s * sign(gamma)`` on batch-norm scales.

    Args:
      s: sparsity strength (the paper's CIFAR default 1e-4).
      paths: restrict to these scales (e.g. ``bn_scale_paths(structure)``); default every
        ``*_bn/scale``.

    Returns:
      ``add_l1_subgradient(s, predicate=is_bn_scale)`` (or ``paths=paths``).
    """
    if paths is not None:
        return add_l1_subgradient(s, paths=paths)
    return add_l1_subgradient(s, predicate=is_bn_scale)
