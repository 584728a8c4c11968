"""Boolean mask pytrees: validation, application, scores -> masks by top-k, and reports.

A *mask* is a pytree with exactly the tree structure and leaf shapes of the params it refers to,
holding boolean arrays: ``True`` keeps a weight, ``False`` prunes it. Leaves that are never pruned
(biases, batch-norm scales) are all-``True``.

Vocabulary: *sparsity* is the fraction of prunable weights removed, *density* = 1 - sparsity,
*compression* = 1 / density. Which leaves are prunable is decided by a predicate
``(path, leaf) -> bool`` (default :func:`is_kernel`) minus an explicit ``keep_dense`` set of paths.

  scores --mask_by_topk (global) / mask_by_layer_topk (per-layer counts)--> mask --summary--> report
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def _path_str(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


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
    for (path, p), (_, m) in zip(p_leaves, m_leaves, strict=True):
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


def _normalize_keep_dense(keep_dense: Iterable[Sequence[str | int]]) -> frozenset[Path]:
    if isinstance(keep_dense, (str, bytes)):
        raise TypeError(
            "keep_dense takes a collection of param paths (tuples of keys), e.g. "
            f"[('fc1', 'kernel')], not the string {keep_dense!r}"
        )
    out = set()
    for p in keep_dense:
        if isinstance(p, str):
            raise TypeError(
                "keep_dense entries are tuples of keys such as ('fc1', 'kernel'), "
                f"got the string {p!r}"
            )
        out.add(tuple(p))
    return frozenset(out)


def _prunable_flags(
    tree: PyTree, prunable: Predicate | None, keep_dense: Iterable[Sequence[str | int]]
) -> tuple[list[Path], list[Any], list[bool], Any]:
    """Flatten ``tree``: (paths, leaves, is-prunable flags, treedef); checks ``keep_dense``."""
    pred = is_kernel if prunable is None else prunable
    dense = _normalize_keep_dense(keep_dense)
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
    return paths, leaves, flags, treedef


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
    paths, _, flags, _ = _prunable_flags(params, prunable, keep_dense)
    return [p for p, f in zip(paths, flags, strict=True) if f]


def restrict_to_prunable(
    tree: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """``tree`` with every non-prunable leaf replaced by zeros (same shapes, dtypes). Jittable."""
    _, leaves, flags, treedef = _prunable_flags(tree, prunable, keep_dense)
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


# ---------------------------------------------------------------------------------------------
# Scores -> masks.
# ---------------------------------------------------------------------------------------------


def check_sparsity(sparsity: float) -> float:
    """Return ``float(sparsity)`` or raise ``ValueError`` unless it is a finite number in [0, 1].

    ``sparsity`` is the fraction of prunable weights removed (density = 1 - sparsity). It must be a
    static Python number: removal counts decide array shapes and loop bounds.
    """
    if isinstance(sparsity, jax.core.Tracer):
        raise TypeError(
            "sparsity must be a static Python float (it fixes how many weights are removed); "
            "got a traced value. Mark it static (jax.jit(..., static_argnames='sparsity'))."
        )
    s = float(sparsity)
    if not (0.0 <= s <= 1.0):
        raise ValueError(
            f"sparsity must be in [0, 1] (fraction of prunable weights removed), got {sparsity!r}. "
            "For a compression ratio c use sparsity = 1 - 1/c; for a density d use 1 - d."
        )
    return s


def num_to_remove(num_prunable: int, sparsity: float) -> int:
    """How many of ``num_prunable`` weights ``sparsity`` removes: ``round(sparsity * num)``.

    Python's ``round`` (halves go to the even integer: 0.5 * 5 = 2.5 -> 2, 0.5 * 7 = 3.5 -> 4).
    """
    return int(round(check_sparsity(sparsity) * int(num_prunable)))


def check_finite_scores(
    scores: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> None:
    """Raise ``ValueError`` naming the first prunable leaf holding a NaN or infinite score.

    Needs concrete arrays (call it outside ``jit``); traced leaves are skipped.
    """
    paths, leaves, flags, _ = _prunable_flags(scores, prunable, keep_dense)
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


def _order_keys(flat: jax.Array) -> jax.Array:
    """Unsigned integer keys whose unsigned order is the float order of ``flat``.

    float16/bfloat16/float32 -> uint32 (through an exact float32 cast), float64 -> uint64.
    ``-0.0`` maps like ``0.0``; NaN maps to 0, below every other value (``-inf`` included).
    """
    if flat.dtype == jnp.float64:
        uint, bits_n = jnp.uint64, 64
    else:
        flat, uint, bits_n = flat.astype(jnp.float32), jnp.uint32, 32
    x = jnp.where(flat == 0, jnp.zeros_like(flat), flat)  # -0.0 -> +0.0
    bits = jax.lax.bitcast_convert_type(x, uint)
    sign = jnp.array(1 << (bits_n - 1), uint)
    key = jnp.where((bits & sign) != 0, ~bits, bits | sign)  # negatives reversed, below positives
    return jnp.where(jnp.isnan(x), jnp.zeros_like(key), key)


_ROW = 4096  # counting-pass row length: per-row counts stay exact in float32


def _rows(a: jax.Array, fill: Any) -> jax.Array:
    """(n,) -> (ceil(n / c), c) padded with ``fill``, ``c = min(n, _ROW)``."""
    n = a.shape[0]
    c = min(n, _ROW)
    m = -(-n // c)
    return jnp.pad(a, (0, m * c - n), constant_values=fill).reshape(m, c)


def _count(pred: jax.Array) -> jax.Array:
    """Exact int32 count of a (m, c) bool with ``c <= _ROW``.

    Counting in float32 per row (exact: every partial sum is an integer <= 4096) then summing
    the row counts as int32 streams about twice as fast on XLA:CPU as one int32 reduction.
    """
    return jnp.sum(jnp.sum(jnp.where(pred, 1.0, 0.0), axis=1).astype(jnp.int32))


def _search32(key: jax.Array, eligible: jax.Array, k: jax.Array) -> jax.Array:
    """Largest uint32 ``t`` with ``#(eligible & key >= t) >= k``: one counting pass per bit.

    ``key``, ``eligible``: (m, c) from :func:`_rows`; ``0 <= k <= #eligible``.
    """
    def bit(i: jax.Array, t: jax.Array) -> jax.Array:
        cand = t | jnp.left_shift(jnp.uint32(1), (31 - i).astype(jnp.uint32))
        return jnp.where(_count(eligible & (key >= cand)) >= k, cand, t)

    # A zero that depends on key, eligible and k: inside shard_map the loop carry must be
    # "varying" over the same mesh axes as the values the body mixes into it.
    zero = jnp.where((k < 0) & eligible[0, 0], key[0, 0], jnp.uint32(0))
    return jax.lax.fori_loop(0, 32, bit, zero)


def _select_top(key: jax.Array, eligible: jax.Array, k: jax.Array) -> jax.Array:
    """(n,) bool: the ``k`` largest ``key`` among ``eligible`` (``0 <= k <= #eligible``), ties to
    the lowest index.

    The k-th largest key ``t = max{t : #(eligible & key >= t) >= k}`` is found bit by bit from
    the top, one streaming compare-and-count pass per bit (``n >= 1``). uint64 keys are searched
    as two uint32 words: the high word over every key, then the low word among the keys whose
    high word equals the one found (cheaper passes than 64 over uint64 keys). Then every
    eligible key above ``t`` is kept, plus the first ``k - #(key > t)`` equal to ``t`` in index
    order.
    """
    el = _rows(eligible, False)
    if key.dtype == jnp.uint64:
        hi = _rows((key >> jnp.uint64(32)).astype(jnp.uint32), 0)
        lo = _rows(key.astype(jnp.uint32), 0)
        t_hi = _search32(hi, el, k)
        t_lo = _search32(lo, el & (hi == t_hi), k - _count(el & (hi > t_hi)))
        t = jax.lax.shift_left(t_hi.astype(jnp.uint64), jnp.uint64(32)) | t_lo.astype(jnp.uint64)
    else:
        t = _search32(_rows(key, 0), el, k)
    above = eligible & (key > t)
    ties = eligible & (key == t)
    room = k - jnp.sum(above, dtype=jnp.int32)
    # The index-ordered cut through the ties (a cumsum, ~1/3 of the time on XLA:CPU) is only
    # needed when some of them must go; with continuous scores there is usually one tie.
    return jax.lax.cond(
        room >= jnp.sum(ties, dtype=jnp.int32),
        lambda: above | ties,
        lambda: above | (ties & (jnp.cumsum(ties, dtype=jnp.int32) <= room)),
    )


def _keep_top(
    flat: jax.Array, n_keep: int | jax.Array, alive: jax.Array | None = None
) -> jax.Array:
    """(n,) bool keeping the ``n_keep`` highest of ``flat``; see :func:`mask_by_topk` for ties.

    With ``alive`` (n,) bool, dead entries rank below every live one whatever their score.
    ``n_keep`` may be traced; it is clipped to ``[0, n]``.

    No sort: the threshold is found by a bitwise binary search over order-preserving integer
    keys of the scores (32 counting passes over uint32 words for float32, 64 for float64),
    which on XLA:CPU is 11-18x faster than a stable ``lax.sort`` of the scores with their
    indices (see docs/benchmarks.md) and gives the same mask bit for bit. Non-float scores use
    the sort.
    float32 subnormals compare equal to zero, as everywhere on XLA:CPU (flush-to-zero).
    """
    n = flat.shape[0]
    if n == 0:
        return jnp.zeros((0,), jnp.bool_)
    n_keep = jnp.clip(jnp.asarray(n_keep, jnp.int32), 0, n)
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        return _keep_top_sort(flat, n_keep, alive)
    key = _order_keys(flat)
    if alive is None:
        return _select_top(key, jnp.ones((n,), jnp.bool_), n_keep)
    alive = alive.astype(jnp.bool_)
    n_alive = jnp.sum(alive, dtype=jnp.int32)
    live = _select_top(key, alive, jnp.minimum(n_keep, n_alive))
    # Dead weights rank below every live one: only reached when n_keep > n_alive.
    return jax.lax.cond(
        n_keep > n_alive,
        lambda: live | _select_top(key, ~alive, n_keep - n_alive),
        lambda: live,
    )


def _keep_top_sort(
    flat: jax.Array, n_keep: int | jax.Array, alive: jax.Array | None = None
) -> jax.Array:
    """:func:`_keep_top` by a stable sort of (dead, -score, index): any dtype, O(n log n)."""
    n = flat.shape[0]
    neg = -flat.astype(jnp.promote_types(flat.dtype, jnp.float32))  # descending by score
    iota = jnp.arange(n, dtype=jnp.int32)
    if alive is None:
        _, order = jax.lax.sort((neg, iota), num_keys=1, is_stable=True)
    else:
        dead = jnp.logical_not(alive).astype(jnp.int8)
        _, _, order = jax.lax.sort((dead, neg, iota), num_keys=2, is_stable=True)
    ranks = jnp.zeros(n, jnp.int32).at[order].set(iota)  # ranks[i] = position of i in the order
    return ranks < n_keep


def mask_by_topk(
    scores: PyTree,
    sparsity: float,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """Global top-k: keep the highest scores over all prunable leaves together.

    ``num_remove = round(sparsity * N)`` with ``N`` the number of prunable weights
    (:func:`num_to_remove`); exactly that many are removed, the ``N - num_remove`` highest kept.

    Ties are broken deterministically by position: all prunable leaves are flattened in
    tree-flatten order (row-major within a leaf) and concatenated; among equal scores the weight
    with the LOWER flat index is kept. ``-0.0 == 0.0``.

    NaN or infinite scores in a prunable leaf raise ``ValueError`` when the scores are concrete.
    Under ``jit`` nothing can be checked: a NaN then ranks below ``-inf`` (pruned first) and
    ``+-inf`` rank as extreme values.

    Args:
      scores: pytree mirroring params, higher = more important.
      sparsity: static float in [0, 1], fraction of prunable weights to remove.
      prunable: ``(path, leaf) -> bool``, defaults to :func:`is_kernel`.
      keep_dense: paths never pruned, e.g. ``[("conv_0", "kernel")]``.

    Returns:
      bool pytree like ``scores``; non-prunable leaves are all ``True``.

    Example:
      >>> mask = mask_by_topk({"w": {"kernel": jnp.array([[3., 1.], [2., 0.]])}}, 0.5)
      >>> mask["w"]["kernel"].tolist()
      [[True, False], [True, False]]
    """
    s = check_sparsity(sparsity)
    check_finite_scores(scores, prunable=prunable, keep_dense=keep_dense)
    _, leaves, flags, _ = _prunable_flags(scores, prunable, keep_dense)
    n = sum(int(np.prod(jnp.shape(x), dtype=np.int64)) for x, f in zip(leaves, flags, strict=True)
            if f)
    if n == 0:
        return jax.tree.map(lambda x: jnp.ones(jnp.shape(x), jnp.bool_), scores)
    mask = mask_by_keep_counts(scores, jnp.int32(n - num_to_remove(n, s)), per_layer=False,
                               prunable=prunable, keep_dense=keep_dense)
    return warn_if_collapsed(mask, flags)


def mask_by_keep_counts(
    scores: PyTree,
    keep: jax.Array,
    *,
    per_layer: bool,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """The traceable core of :func:`mask_by_topk` and :func:`mask_by_layer_topk`: no checks.

    ``keep`` is how many prunable weights to keep: one int overall (``per_layer=False``, global
    top-k) or an (L,) int array, one count per prunable leaf in tree-flatten order. Counts may be
    traced (one compiled program for every sparsity); ties as in :func:`mask_by_topk`.
    """
    _, leaves, flags, treedef = _prunable_flags(scores, prunable, keep_dense)
    flat = [jnp.ravel(x) for x, f in zip(leaves, flags, strict=True) if f]
    if not flat:
        kept = []
    elif per_layer:
        kept = [_keep_top_compiled(x, keep[i]) for i, x in enumerate(flat)]
    else:
        kept = _global_keep(flat, keep)
    kept = iter(kept)
    out = [next(kept).reshape(jnp.shape(x)) if f else jnp.ones(jnp.shape(x), jnp.bool_)
           for x, f in zip(leaves, flags, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


@jax.jit
def _global_keep(flat_leaves: list[jax.Array], n_keep: jax.Array) -> list[jax.Array]:
    """Compiled core of :func:`mask_by_topk` (one compilation per set of shapes, any sparsity)."""
    dtype = jnp.result_type(*flat_leaves)
    keep = _keep_top(jnp.concatenate([x.astype(dtype) for x in flat_leaves]), n_keep)
    out, start = [], 0
    for x in flat_leaves:
        out.append(keep[start : start + x.shape[0]])
        start += x.shape[0]
    return out


_keep_top_compiled = jax.jit(_keep_top)


def mask_by_layer_topk(
    scores: PyTree,
    num_remove: Mapping[Sequence[str | int], int],
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """Layer-wise top-k: in each prunable leaf remove exactly ``num_remove[path]`` lowest scores.

    The counts usually come from :mod:`jaxprune.allocation` (``allocate_uniform``,
    ``allocate_erk``).
    Ties within a leaf: the lower row-major index is kept (as in :func:`mask_by_topk`).

    Args:
      scores: pytree mirroring params, higher = kept.
      num_remove: ``{path: count}`` with one entry per prunable path, ``0 <= count <= size``.
      prunable, keep_dense: the prunable filter (see :func:`prunable_paths`).

    Returns:
      bool pytree like ``scores``; non-prunable leaves all ``True``.
    """
    check_finite_scores(scores, prunable=prunable, keep_dense=keep_dense)
    paths, leaves, flags, treedef = _prunable_flags(scores, prunable, keep_dense)
    counts = {tuple(k): v for k, v in num_remove.items()}
    expected = {p for p, f in zip(paths, flags, strict=True) if f}
    if set(counts) != expected:
        raise ValueError(
            "num_remove must have exactly one entry per prunable path; "
            f"missing {sorted(map(str, expected - set(counts)))}, "
            f"unexpected {sorted(map(str, set(counts) - expected))}"
        )
    keep = []
    for path, leaf, f in zip(paths, leaves, flags, strict=True):
        if not f:
            continue
        size = int(np.prod(jnp.shape(leaf), dtype=np.int64))
        c = counts[path]
        if isinstance(c, jax.core.Tracer) or not (0 <= int(c) <= size):
            raise ValueError(f"num_remove[{path}] must be a static int in [0, {size}], got {c!r}")
        keep.append(size - int(c))
    mask = mask_by_keep_counts(scores, jnp.asarray(keep, jnp.int32), per_layer=True,
                               prunable=prunable, keep_dense=keep_dense)
    return warn_if_collapsed(mask, flags)


# ---------------------------------------------------------------------------------------------
# Reporting: never let a collapsed layer go unnoticed.
# ---------------------------------------------------------------------------------------------


class LayerCollapseWarning(UserWarning):
    """A mask keeps no weight of some prunable layer (the network output no longer depends on
    its input). Emitted by the mask builders for concrete masks; see :func:`collapsed_layers`."""


def warn_if_collapsed(mask: PyTree, flags: Sequence[bool] | None = None) -> PyTree:
    """Return ``mask``; first warn (:class:`LayerCollapseWarning`) if a prunable leaf is all False.

    ``flags`` (one bool per leaf, tree-flatten order) says which leaves are prunable; default
    :func:`is_kernel`. Traced masks (inside ``jit``/``vmap``) are returned unchecked.
    """
    leaves = jax.tree.leaves(mask)
    if any(isinstance(m, jax.core.Tracer) for m in leaves):
        return mask
    if flags is None:
        flags = _prunable_flags(mask, None, ())[2]
    paths = [path_tuple(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(mask)[0]]
    dead = [
        "/".join(map(str, p))
        for p, m, f in zip(paths, leaves, flags, strict=True)
        if f and np.size(m) and not bool(np.asarray(m).any())
    ]
    if dead:
        warnings.warn(
            f"layer collapse: the mask keeps no weight of {dead}; the pruned network is "
            "disconnected. Lower the sparsity, use an allocation that protects small layers "
            "('erk'), keep these layers dense (keep_dense=), or use an iterative criterion "
            "(SynFlow).",
            LayerCollapseWarning,
            stacklevel=3,
        )
    return mask


class LayerRow(NamedTuple):
    """One row of a :class:`MaskReport` (one prunable or kept-dense leaf)."""

    path: Path
    shape: tuple[int, ...]
    kept: int  # weights kept
    total: int  # weights in the leaf
    density: float  # kept / total
    prunable: bool  # False for leaves listed in keep_dense
    macs: int | None  # dense multiply-accumulates of the layer, if given
    remaining_macs: float | None  # macs * density (MACs scale with kept weights)


class MaskReport(NamedTuple):
    """Summary of a mask; print it with :func:`format_report`.

    ``sparsity``/``density`` are over prunable weights only; ``params``/``remaining_params`` count
    every leaf (biases and batch-norm included, always kept).
    """

    rows: tuple[LayerRow, ...]
    num_prunable: int
    num_pruned: int
    sparsity: float
    density: float
    params: int
    remaining_params: int
    collapsed: tuple[Path, ...]  # prunable layers with zero kept weights
    macs: int | None
    remaining_macs: float | None


def collapsed_layers(
    mask: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> list[Path]:
    """Prunable layers whose mask keeps no weight at all (the network is then disconnected)."""
    paths, leaves, flags, _ = _prunable_flags(mask, prunable, keep_dense)
    return [
        p
        for p, m, f in zip(paths, leaves, flags, strict=True)
        if f and not bool(np.asarray(m).any())
    ]


def summary(
    params: PyTree,
    mask: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
    macs: Mapping[Sequence[str | int], int] | None = None,
) -> MaskReport:
    """Per-layer kept/total/density rows, totals and the collapsed layers of ``mask``.

    Args:
      params: the params pytree the mask refers to.
      mask: bool pytree mirroring ``params`` (checked with :func:`check_mask_tree`).
      prunable, keep_dense: the prunable filter used to build the mask.
      macs: optional ``{path: dense multiply-accumulates}`` from model-aware code (a kernel's MACs
        per example); rows then report ``remaining_macs = macs * density``, and the report totals
        them (layers absent from ``macs`` count as unknown and are left out of the totals).

    Returns:
      A :class:`MaskReport`. Needs concrete arrays (call outside ``jit``).
    """
    check_mask_tree(params, mask)
    paths, leaves, flags, _ = _prunable_flags(params, prunable, keep_dense)
    dense = _normalize_keep_dense(keep_dense)
    macs = {tuple(k): int(v) for k, v in (macs or {}).items()}
    unknown = set(macs) - set(paths)
    if unknown:
        raise ValueError(f"macs names paths not in params: {sorted(map(str, unknown))}")
    m_leaves = jax.tree.leaves(mask)
    rows = []
    total = kept_all = n_pr = kept_pr = 0
    for path, leaf, m, f in zip(paths, leaves, m_leaves, flags, strict=True):
        m = np.asarray(m)
        size, kept = int(m.size), int(m.sum())
        total += size
        kept_all += kept
        if f:
            n_pr += size
            kept_pr += kept
        if f or path in dense:
            d = kept / size if size else 1.0
            lm = macs.get(path)
            rows.append(
                LayerRow(
                    path,
                    tuple(np.shape(leaf)),
                    kept,
                    size,
                    d,
                    f,
                    lm,
                    None if lm is None else lm * d,
                )
            )
    known = [r for r in rows if r.macs is not None]
    sp = 1.0 - kept_pr / n_pr if n_pr else 0.0
    return MaskReport(
        rows=tuple(rows),
        num_prunable=n_pr,
        num_pruned=n_pr - kept_pr,
        sparsity=sp,
        density=1.0 - sp,
        params=total,
        remaining_params=kept_all,
        collapsed=tuple(r.path for r in rows if r.prunable and r.kept == 0),
        macs=sum(r.macs for r in known) if known else None,
        remaining_macs=sum(r.remaining_macs for r in known) if known else None,
    )


def format_report(report: MaskReport) -> str:
    """A plain-text table of a :class:`MaskReport` (one line per layer, then totals)."""
    with_macs = report.macs is not None
    head = f"{'layer':<32} {'shape':<18} {'kept':>10} {'total':>10} {'density':>8}"
    head += f" {'MACs left':>12}" if with_macs else ""
    lines = [head, "-" * len(head)]
    for r in report.rows:
        name = "/".join(map(str, r.path)) + ("" if r.prunable else " (dense)")
        line = f"{name:<32} {str(r.shape):<18} {r.kept:>10} {r.total:>10} {r.density:>8.4f}"
        if with_macs:
            line += f" {'?' if r.remaining_macs is None else f'{r.remaining_macs:.4g}':>12}"
        lines.append(line)
    lines.append(
        f"sparsity {report.sparsity:.4f} (density {report.density:.4f}, "
        f"compression {1 / report.density if report.density else float('inf'):.4g}x): "
        f"{report.num_pruned} of {report.num_prunable} prunable weights removed; "
        f"{report.remaining_params} of {report.params} params remain"
    )
    if with_macs:
        lines.append(f"MACs: {report.remaining_macs:.4g} of {report.macs:.4g} remain")
    if report.collapsed:
        lines.append(
            "WARNING: layer collapse, no weight kept in "
            + ", ".join("/".join(map(str, p)) for p in report.collapsed)
        )
    return "\n".join(lines)
