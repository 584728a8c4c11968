"""Mask pytrees and the prunable leaves of a tree: structure checks, application, finiteness.

Which leaves are prunable is decided by a predicate ``(path, leaf) -> bool`` (default
:func:`is_kernel`) minus an explicit ``keep_dense`` set of paths; :func:`flatten_prunable` is the
one place that decides it, for every module that needs to know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def path_str(path: Sequence[Any]) -> str:
    """A path as ``"fc1/kernel"``: plain keys or a JAX key path."""
    if path and not isinstance(path[0], str | int):
        path = path_tuple(path)
    return "/".join(map(str, path))


def check_mask_tree(params: PyTree, mask: PyTree) -> None:
    """Raise ``ValueError`` unless ``mask`` mirrors ``params`` (tree, shapes, bool leaves).

    Args:
      params: a parameter pytree.
      mask: a candidate mask pytree.

    Raises:
      ValueError: naming the first mismatching path and what was expected there.
    """
    p_leaves, p_def = jax.tree_util.tree_flatten_with_path(params)
    m_leaves, m_def = jax.tree_util.tree_flatten_with_path(mask)
    if p_def != m_def:
        p_paths = {path_str(p) for p, _ in p_leaves}
        m_paths = {path_str(p) for p, _ in m_leaves}
        missing = sorted(p_paths - m_paths)[:5]
        extra = sorted(m_paths - p_paths)[:5]
        raise ValueError(
            "mask tree does not match the params tree: "
            f"missing from mask {missing or '[]'}, not in params {extra or '[]'}. "
            "Build masks from the same params pytree (e.g. jax.tree.map(lambda p: "
            "jnp.ones(p.shape, bool), params)) and prune only the leaves you mean to."
        )
    for (path, p), (_, m) in zip(p_leaves, m_leaves, strict=True):
        if jnp.shape(p) != jnp.shape(m):
            raise ValueError(
                f"mask leaf {path_str(path)!r} has shape {jnp.shape(m)}, "
                f"but the parameter has shape {jnp.shape(p)}"
            )
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(
                f"mask leaf {path_str(path)!r} has dtype {jnp.result_type(m)}; masks hold bool "
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


# ---------------------------------------------------------------------------------------------
# Which leaves are prunable.
# ---------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]
"""A parameter's path as plain keys, e.g. ``("fc1", "kernel")`` or ``("layers", 0, "kernel")``."""

Predicate = Callable[[Path, Any], bool]
"""``prunable(path, leaf) -> bool``: whether a leaf's weights may be pruned."""


def path_tuple(keypath: Sequence[Any]) -> Path:
    """A key path as plain keys: ``(DictKey('fc1'), DictKey('kernel'))`` -> ``('fc1', 'kernel')``.

    A trailing ``.value`` attribute (how Flax NNX ``Variable`` wrappers appear in a key path) is
    dropped, so an NNX state and a Linen params dict name the same layer the same way.
    """
    keys: list[str | int] = []
    for k in keypath:
        if isinstance(k, jax.tree_util.DictKey):
            keys.append(k.key if isinstance(k.key, int) else str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            keys.append(k.idx)
        elif isinstance(k, jax.tree_util.GetAttrKey):
            keys.append(k.name)
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            keys.append(k.key)
        else:
            keys.append(str(k))
    while keys and keys[-1] in ("value", "raw_value") and len(keys) > 1:
        keys.pop()
    return tuple(keys)


def is_kernel(path: Path, leaf: Any) -> bool:
    """The default prunable filter: leaves named ``kernel`` with ``ndim >= 2`` (dense, conv).

    Biases, batch-norm scales/biases and embeddings (not named ``kernel``) are not pruned by
    default.
    """
    return bool(path) and path[-1] == "kernel" and jnp.ndim(leaf) >= 2


def normalize_keep_dense(keep_dense: Iterable[Sequence[str | int] | str]) -> frozenset[Path]:
    """``keep_dense`` as a set of key tuples. Every function that takes ``keep_dense`` takes
    either form of a path: a tuple of keys, ``("fc1", "kernel")``, or the same joined with
    ``/``, ``"fc1/kernel"`` (as :func:`path_str` writes it, and the CLI and JSON configs hold
    it). A bare string (not a collection of paths) is refused."""
    if isinstance(keep_dense, (str, bytes)):
        raise TypeError(
            "keep_dense takes a collection of param paths, e.g. [('fc1', 'kernel')] or "
            f"['fc1/kernel'], not the string {keep_dense!r}"
        )
    return frozenset(tuple(p.split("/")) if isinstance(p, str) else tuple(p)
                     for p in keep_dense)


class PrunableLeaves(NamedTuple):
    """A tree flattened with, for every leaf, whether it is prunable (tree-flatten order)."""

    paths: list[Path]  # every leaf's path
    leaves: list[Any]  # every leaf
    flags: list[bool]  # True where the leaf is prunable
    treedef: Any

    @property
    def prunable_paths(self) -> list[Path]:
        return [p for p, f in zip(self.paths, self.flags, strict=True) if f]


def flatten_prunable(
    tree: PyTree,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PrunableLeaves:
    """Flatten ``tree`` and flag its prunable leaves (``prunable`` minus ``keep_dense``).

    Args:
      tree: params, scores or a mask.
      prunable: ``(path, leaf) -> bool``; defaults to :func:`is_kernel`.
      keep_dense: paths never pruned; each must be a path of ``tree``.

    Returns:
      :class:`PrunableLeaves` ``(paths, leaves, flags, treedef)``.
    """
    pred = is_kernel if prunable is None else prunable
    dense = normalize_keep_dense(keep_dense)
    kl, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [path_tuple(kp) for kp, _ in kl]
    leaves = [leaf for _, leaf in kl]
    unknown = dense - set(paths)
    if unknown:
        raise ValueError(
            f"keep_dense names paths not in the tree: {sorted(map(str, unknown))}; "
            f"valid paths include {[p for p in paths][:8]}"
        )
    flags = [bool(pred(p, leaf)) and p not in dense for p, leaf in zip(paths, leaves, strict=True)]
    return PrunableLeaves(paths, leaves, flags, treedef)


def prunable_paths(
    params: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> list[Path]:
    """The paths of the prunable leaves of ``params``, in tree-flatten order.

    Args:
      params: a params pytree (or any tree mirroring it: scores, a mask).
      prunable: ``(path, leaf) -> bool``; defaults to :func:`is_kernel`.
      keep_dense: paths to exclude (e.g. ``[("conv_0", "kernel")]``) even if ``prunable`` says yes.

    Returns:
      A list of :data:`Path` tuples. Tree-flatten order (sorted dict keys) is NOT execution
      order; see :func:`first_and_last`.
    """
    paths, _, flags, _ = flatten_prunable(params, prunable, keep_dense)
    return [p for p, f in zip(paths, flags, strict=True) if f]


def restrict_to_prunable(
    tree: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """``tree`` with every non-prunable leaf replaced by zeros (same shapes, dtypes). Jittable."""
    _, leaves, flags, treedef = flatten_prunable(tree, prunable, keep_dense)
    out = [x if f else jnp.zeros_like(x) for x, f in zip(leaves, flags, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


def first_and_last(ordered_paths: Sequence[Path]) -> tuple[Path, Path]:
    """``(first, last)`` of prunable paths listed in execution order, to pass as ``keep_dense``.

    Only model-aware code knows the execution order (a dict's sorted keys may put ``"head"`` before
    ``"conv_0"``); it lists the prunable paths in order and this picks the two ends.

    Example:
      >>> first_and_last([("conv_0", "kernel"), ("conv_1", "kernel"), ("head", "kernel")])
      (('conv_0', 'kernel'), ('head', 'kernel'))
    """
    ordered = [tuple(p) for p in ordered_paths]
    if not ordered:
        raise ValueError("first_and_last needs at least one prunable path")
    return ordered[0], ordered[-1]



def num_prunable(
    tree: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> int:
    """How many prunable weights ``tree`` holds (only shapes are read)."""
    flat = flatten_prunable(tree, prunable, keep_dense)
    return sum(int(np.prod(np.shape(x), dtype=np.int64))
               for x, f in zip(flat.leaves, flat.flags, strict=True) if f)


# ---------------------------------------------------------------------------------------------
# Finite scores: checked on concrete arrays, or flagged inside a compiled program.
# ---------------------------------------------------------------------------------------------


def check_finite_scores(
    scores: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> None:
    """Raise ``ValueError`` naming the first prunable leaf holding a NaN or infinite score.

    Needs concrete arrays (call it outside ``jit``); traced leaves are skipped.
    """
    paths, leaves, flags, _ = flatten_prunable(scores, prunable, keep_dense)
    for path, leaf, f in zip(paths, leaves, flags, strict=True):
        if not f or isinstance(leaf, jax.core.Tracer):
            continue
        a = np.asarray(leaf)
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"scores for {'/'.join(map(str, path))!r} hold {int(np.isnan(a).sum())} NaN and "
                f"{int(np.isinf(a).sum())} infinite values (of {a.size}); a criterion must return "
                "finite scores. Check the loss (NaN gradients), the inputs, or float32 "
                "overflow/underflow (SynFlow computes in float64 for this reason)."
            )




def nonfinite_leaves(
    scores: PyTree,
    *,
    alive: PyTree | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> jax.Array:
    """(L,) bool, one per prunable leaf (tree-flatten order): whether it holds a NaN or infinity.

    Traceable, so a compiled pruning program can return it beside its mask and the caller can
    raise with :func:`raise_if_nonfinite`. With ``alive`` (a mask mirroring ``scores``) only the
    live entries count: an iterative round ignores the scores of weights already pruned.
    """
    flat = flatten_prunable(scores, prunable, keep_dense)
    live = jax.tree.leaves(alive) if alive is not None else [None] * len(flat.leaves)
    out = [jnp.any(~jnp.isfinite(x) if a is None else (~jnp.isfinite(x) & a))
           for x, a, f in zip(flat.leaves, live, flat.flags, strict=True) if f]
    return jnp.stack(out) if out else jnp.zeros((0,), jnp.bool_)


def raise_if_nonfinite(
    nonfinite: Any,
    paths: Sequence[Path],
    *,
    seeds: Sequence[int] | None = None,
    what: str = "scores",
) -> None:
    """Raise ``ValueError`` naming the seed(s) and layer(s) whose flag in ``nonfinite`` is set.

    Args:
      nonfinite: concrete (L,) bool (one network) or (S, L) (a stack of S), e.g. from
        :func:`nonfinite_leaves`.
      paths: the L prunable paths the flags refer to.
      seeds: the S seeds of a stack, named in the message (default: their indices).
      what: what was checked ("scores", "parameters").
    """
    bad = np.asarray(nonfinite, bool)
    if not bad.any():
        return
    if bad.ndim == 1:
        where = [f"layer {path_str(paths[i])!r}" for i in np.flatnonzero(bad)]
    else:
        ids = list(range(bad.shape[0])) if seeds is None else list(seeds)
        where = [f"seed {ids[s]}, layer {path_str(paths[i])!r}" for s, i in np.argwhere(bad)]
    more = f" (and {len(where) - 3} more)" if len(where) > 3 else ""
    raise ValueError(
        f"non-finite {what} (NaN or inf) for {'; '.join(where[:3])}{more}. A criterion must "
        "return finite scores: check the parameters and the scoring batch for NaN/inf, the loss, "
        "or float32 overflow (SynFlow computes in float64 for this reason)."
    )

