"""Scores -> masks by exact top-k: global or per layer, deterministic ties, no sort.

  scores --mask_by_topk (global) / mask_by_layer_topk (per-layer counts)--> mask

:func:`mask_by_keep_counts` is the traceable core of both (counts as arguments, one compiled
program for every sparsity); :func:`keep_top` is the selection itself on one flat array.
:func:`override_top_k` traces another selection in its place (the benchmark's reference rows).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks._report import warn_if_collapsed
from jaxprune.masks._tree import Predicate, check_finite_scores, flatten_prunable, num_prunable

PyTree = Any

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


def _words(key: jax.Array) -> list[jax.Array]:
    """uint32 words of ``key``, most significant first (uint64 -> high, low)."""
    if key.dtype == jnp.uint64:
        return [(key >> jnp.uint64(32)).astype(jnp.uint32), key.astype(jnp.uint32)]
    return [key]


def _select_top(key: jax.Array, eligible: jax.Array, k: jax.Array) -> jax.Array:
    """(n,) bool: the ``k`` largest ``key`` among ``eligible`` (``0 <= k <= #eligible``), ties to
    the lowest index.

    Ranks by a composite key that no two entries share: the uint32 words of ``key`` (one for
    float32 scores, two for float64) then the reversed index ``2^B - 1 - i`` (``B`` bits), so
    that among equal scores the lower index ranks higher. The k-th largest composite key ``t``
    is found bit by bit from the top, one streaming compare-and-count pass per bit, and the
    search stops as soon as ``#(eligible & composite >= t) == k`` (then no later bit changes the
    kept set): with continuous scores it usually stops inside the first word, and the index
    bits are only reached when ties must be cut. One ``while_loop`` with one compare-and-count
    body: about half the compile time of a search plus a separate tie-cutting cumsum, and
    fewer passes at run time (docs/benchmarks.md, run 11).
    """
    n = key.shape[0]
    index_bits = max(1, int(n - 1).bit_length())
    rev = jnp.uint32(2**index_bits - 1) - jnp.arange(n, dtype=jnp.uint32)
    words = [*_words(key), rev]
    widths = [32] * (len(words) - 1) + [index_bits]
    ends = np.cumsum(widths).tolist()

    def at_least(t: jax.Array) -> jax.Array:  # composite >= t, lexicographically
        out = words[-1] >= t[-1]
        for w in range(len(words) - 2, -1, -1):
            out = (words[w] > t[w]) | ((words[w] == t[w]) & out)
        return out

    def more_than_k(carry: tuple) -> jax.Array:
        i, _, count = carry
        return (count > k) & (k > 0) & (i < ends[-1])

    def bit(carry: tuple) -> tuple:
        i, t, count = carry
        word, start = jnp.int32(0), jnp.int32(0)
        for w in range(1, len(words)):
            word = jnp.where(i >= ends[w - 1], w, word)
            start = jnp.where(i >= ends[w - 1], ends[w - 1], start)
        shift = jnp.asarray(widths, jnp.int32)[word] - 1 - (i - start)
        cand = t.at[word].set(t[word] | jnp.left_shift(jnp.uint32(1), shift.astype(jnp.uint32)))
        c = jnp.sum(eligible & at_least(cand), dtype=jnp.int32)
        take = c >= k
        return i + 1, jnp.where(take, cand, t), jnp.where(take, c, count)

    # Zeros that depend on key, eligible and k: inside shard_map the loop carry must be
    # "varying" over the same mesh axes as the values the body mixes into it.
    zero = jnp.where((k < 0) & eligible[0], words[0][0], jnp.uint32(0))
    t0 = jnp.full((len(words),), zero)
    count0 = jnp.where(zero != 0, 0, jnp.sum(eligible, dtype=jnp.int32))  # #(composite >= 0)
    _, t, _ = jax.lax.while_loop(more_than_k, bit, (jnp.int32(0), t0, count0))
    return eligible & at_least(t) & (k > 0)


def keep_top(
    flat: jax.Array, n_keep: int | jax.Array, alive: jax.Array | None = None
) -> jax.Array:
    """(n,) bool keeping the ``n_keep`` highest of ``flat``; see :func:`mask_by_topk` for ties.

    With ``alive`` (n,) bool, dead entries rank below every live one whatever their score.
    ``n_keep`` may be traced; it is clipped to ``[0, n]``.

    No sort: the k-th largest (score, -index) is found by a bitwise binary search over
    order-preserving integer keys of the scores (at most 32 counting passes for float32, 64 for
    float64, plus ``log2 n`` only when ties must be cut; it stops once the count is exact),
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
        return keep_top_sort(flat, n_keep, alive)
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


def keep_top_sort(
    flat: jax.Array, n_keep: int | jax.Array, alive: jax.Array | None = None
) -> jax.Array:
    """:func:`keep_top` by a stable sort of (dead, -score, index): any dtype, O(n log n)."""
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
    flags = flatten_prunable(scores, prunable, keep_dense).flags
    n = num_prunable(scores, prunable=prunable, keep_dense=keep_dense)
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
    alive: PyTree | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """The traceable core of :func:`mask_by_topk` and :func:`mask_by_layer_topk`: no checks.

    ``keep`` is how many prunable weights to keep: one int overall (``per_layer=False``, global
    top-k) or an (L,) int array, one count per prunable leaf in tree-flatten order. Counts may be
    traced (one compiled program for every sparsity); ties as in :func:`mask_by_topk`.

    ``alive`` (a mask mirroring ``scores``) restricts the choice to live weights: the highest
    scores among them are kept and a pruned weight is never revived (iterative pruning; counts
    beyond the live weights keep every live one).
    """
    _, leaves, flags, treedef = flatten_prunable(scores, prunable, keep_dense)
    flat = [jnp.ravel(x) for x, f in zip(leaves, flags, strict=True) if f]
    live = None
    if alive is not None:
        live = [jnp.ravel(a).astype(jnp.bool_)
                for a, f in zip(jax.tree.leaves(alive), flags, strict=True) if f]
    if not flat:
        kept = []
    elif per_layer:
        kept = [_KEEP_TOP_JIT(x, keep[i], None if live is None else live[i])
                for i, x in enumerate(flat)]
    else:
        kept = _global_keep(flat, keep, live)
    if live is not None:
        kept = [k & a for k, a in zip(kept, live, strict=True)]
    kept = iter(kept)
    out = [next(kept).reshape(jnp.shape(x)) if f else jnp.ones(jnp.shape(x), jnp.bool_)
           for x, f in zip(leaves, flags, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


@functools.cache
def _selections(select: Callable[..., jax.Array]) -> tuple[Callable, Callable]:
    """The compiled global and per-layer selections by ``select`` (:func:`keep_top`'s
    signature): new function objects per ``select``, so jax never replays a trace made with
    another selection (it caches traces per function)."""

    def global_keep(
        flat_leaves: list[jax.Array], n_keep: jax.Array, alive: list[jax.Array] | None = None
    ) -> list[jax.Array]:
        """Compiled core of :func:`mask_by_topk` (one compilation per set of shapes, any
        sparsity)."""
        dtype = jnp.result_type(*flat_leaves)
        keep = select(jnp.concatenate([x.astype(dtype) for x in flat_leaves]), n_keep,
                      None if alive is None else jnp.concatenate(alive))
        out, start = [], 0
        for x in flat_leaves:
            out.append(keep[start : start + x.shape[0]])
            start += x.shape[0]
        return out

    return jax.jit(global_keep), jax.jit(select)


_global_keep, _KEEP_TOP_JIT = _selections(keep_top)


@contextlib.contextmanager
def override_top_k(
    keep_top_fn: Callable[..., jax.Array] | None = None,
    *,
    global_keep_fn: Callable[..., list[jax.Array]] | None = None,
) -> Iterator[None]:
    """Trace the top-k with another selection inside the block, e.g. the stable sort
    :func:`keep_top_sort` or ``jax.lax.top_k``: the benchmark's reference rows (``benchmarks/
    prototypes.py``), measured against the library's own selection.

    Args:
      keep_top_fn: replaces :func:`keep_top` (same signature) in the global and per-layer top-k
        (:func:`mask_by_keep_counts`, so :func:`mask_by_topk`, :func:`mask_by_layer_topk`) and
        in ``jaxprune.schedules.run_rounds``' iterative rounds; ``jaxprune.masks.keep_top``
        itself is that function inside the block.
      global_keep_fn: replaces the one-shot global selection alone,
        ``(flat_leaves, n_keep, alive) -> [bool (n_i,) per leaf]`` with ``n_keep`` traced
        (called as given, not jitted here).

    Programs traced inside the block keep the replacement; a program traced outside it is
    never replayed inside it, nor the other way round (each selection has its own compiled
    programs, kept for the next block with the same function). Changes module state: not for
    concurrent threads.
    """
    global _global_keep, _KEEP_TOP_JIT
    import jaxprune.masks as package  # the package's keep_top, which schedules' rounds call

    old = (package.keep_top, _global_keep, _KEEP_TOP_JIT)
    if keep_top_fn is not None:
        package.keep_top = keep_top_fn
        _global_keep, _KEEP_TOP_JIT = _selections(keep_top_fn)
    if global_keep_fn is not None:
        _global_keep = global_keep_fn
    try:
        yield
    finally:
        package.keep_top, _global_keep, _KEEP_TOP_JIT = old


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
    paths, leaves, flags, treedef = flatten_prunable(scores, prunable, keep_dense)
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


