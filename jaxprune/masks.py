"""Boolean mask pytrees: validation and application.

A *mask* is a pytree with exactly the tree structure and leaf shapes of the params it refers to,
holding boolean arrays: ``True`` keeps a weight, ``False`` prunes it. Leaves that are never pruned
(biases, batch-norm scales) are all-``True``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def _path_str(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def check_mask_tree(params: PyTree, mask: PyTree) -> None:
    """Raise ``ValueError`` unless ``mask`` mirrors ``params`` (same tree, same shapes, bool leaves).

    Args:
      params: a parameter pytree.
      mask: a candidate mask pytree.

    Raises:
      ValueError: naming the first mismatching path and what was expected there.
    """
    p_leaves, p_def = jax.tree_util.tree_flatten_with_path(params)
    m_leaves, m_def = jax.tree_util.tree_flatten_with_path(mask)
    if p_def != m_def:
        p_paths = {_path_str(p) for p, _ in p_leaves}
        m_paths = {_path_str(p) for p, _ in m_leaves}
        missing = sorted(p_paths - m_paths)[:5]
        extra = sorted(m_paths - p_paths)[:5]
        raise ValueError(
            "mask tree does not match the params tree: "
            f"missing from mask {missing or '[]'}, not in params {extra or '[]'}. "
            "Build masks from the same params pytree (e.g. jax.tree.map(lambda p: "
            "jnp.ones(p.shape, bool), params)) and prune only the leaves you mean to."
        )
    for (path, p), (_, m) in zip(p_leaves, m_leaves):
        if jnp.shape(p) != jnp.shape(m):
            raise ValueError(
                f"mask leaf {_path_str(path)!r} has shape {jnp.shape(m)}, "
                f"but the parameter has shape {jnp.shape(p)}"
            )
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(
                f"mask leaf {_path_str(path)!r} has dtype {jnp.result_type(m)}; masks hold bool "
                "arrays (use `m.astype(bool)` or `m > 0`)"
            )


def apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    """Zero the pruned entries of ``params``: ``where(mask, params, 0)`` leaf by leaf.

    Exact (no multiplication, so a pruned NaN or inf also becomes 0). Jittable.

    Args:
      params: parameter pytree.
      mask: bool pytree mirroring ``params``.

    Returns:
      A pytree like ``params`` whose pruned entries are exactly zero.
    """
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, mask)


def ones_like(params: PyTree) -> PyTree:
    """A mask keeping every weight of ``params``."""
    return jax.tree.map(lambda p: jnp.ones(jnp.shape(p), jnp.bool_), params)
