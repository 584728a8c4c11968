"""Iterative pruning: prune a little, re-score the masked network, repeat.

A schedule maps a final ``sparsity`` and a number of ``rounds`` to the sparsity reached after each
round (a (rounds,) array ending exactly at ``sparsity``):

  exponential  density after round t is ``density ** (t / T)`` (SynFlow's schedule).
  linear       sparsity after round t is ``sparsity * t / T``.

:func:`prune_iteratively` runs any criterion under a schedule as ONE compiled ``lax.fori_loop``:
the per-round removal counts are computed up front and passed in, so 100 rounds trace the
criterion once and another sparsity reuses the compiled loop (:func:`prune_by_keep_counts`).
:func:`prune_synflow` and :func:`prune_iterative_snip` are the papers' procedures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import allocation as _allocation
from jaxprune import criteria as _criteria
from jaxprune import masks as _masks
from jaxprune.criteria.base import ScoreFn
from jaxprune.masks import Predicate
from jaxprune.registry import Registry

PyTree = Any


def exponential_schedule(sparsity: float, rounds: int) -> np.ndarray:
    """Sparsity after each round when round ``t`` keeps ``density ** (t / T)`` (SynFlow).

    ``s_t = 1 - (1 - sparsity) ** (t / T)`` for ``t = 1..T``. Each round removes the same fraction
    of the weights still alive. At ``sparsity = 1`` (density 0) every entry is 1: all prunable
    weights go in the first round.

    Args:
      sparsity: final sparsity in [0, 1].
      rounds: ``T >= 1``.

    Returns:
      (rounds,) float64, non-decreasing, last entry exactly ``sparsity``.

    Reference: https://arxiv.org/abs/2006.05467 (Sec. 6, "iterative pruning ... exponential")
    """
    s, t = _masks.check_sparsity(sparsity), _check_rounds(rounds)
    out = 1.0 - (1.0 - s) ** (np.arange(1, t + 1, dtype=np.float64) / t)
    out[-1] = s
    return out


def linear_schedule(sparsity: float, rounds: int) -> np.ndarray:
    """Sparsity after each round growing linearly: ``s_t = sparsity * t / T`` for ``t = 1..T``.

    Returns:
      (rounds,) float64, non-decreasing, last entry exactly ``sparsity``.
    """
    s, t = _masks.check_sparsity(sparsity), _check_rounds(rounds)
    out = s * np.arange(1, t + 1, dtype=np.float64) / t
    out[-1] = s
    return out


def _check_rounds(rounds: int) -> int:
    if isinstance(rounds, bool) or int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    return int(rounds)


#: Schedules by name: ``(sparsity, rounds) -> (rounds,) sparsities``.
REGISTRY: Registry[np.ndarray] = Registry("schedule")
REGISTRY.register("exponential", exponential_schedule)
REGISTRY.register("linear", linear_schedule)


def names() -> list[str]:
    """Registered schedule names."""
    return REGISTRY.names()


def get(name: str) -> Callable[[float, int], np.ndarray]:
    """The schedule ``(sparsity, rounds) -> (rounds,) sparsities`` registered as ``name``."""
    return REGISTRY.factory(name)


def removal_counts(sparsities: Sequence[float], num_prunable: int) -> np.ndarray:
    """Cumulative number of weights removed after each round: ``round(s_t * N)``, non-decreasing.

    Args:
      sparsities: (T,) per-round sparsities (a schedule's output).
      num_prunable: ``N``.

    Returns:
      (T,) int64; the last entry is ``num_to_remove(N, sparsities[-1])``.
    """
    c = np.array([_masks.num_to_remove(num_prunable, s) for s in sparsities], dtype=np.int64)
    return np.maximum.accumulate(c)


def keep_counts(
    params: PyTree,
    sparsity: float,
    allocation: str | Mapping[Sequence[str | int], float] = "global",
    *,
    rounds: int = 1,
    schedule: str = "exponential",
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> np.ndarray:
    """How many prunable weights a pruning run keeps: THE conversion of a sparsity to counts.

    Every pruning path (one-shot global or per layer, iterative rounds, one network or a stack)
    turns its sparsity into counts here, so a sparsity means the same number of weights
    everywhere. Only shapes are read. The rounding rule is :func:`jaxprune.masks.num_to_remove`.

    Args:
      params: params (or any tree mirroring them).
      sparsity: fraction of prunable weights removed, in [0, 1].
      allocation: ``"global"``, a per-layer budget name (:func:`jaxprune.allocation.names`) or a
        ``{path: sparsity}`` map (layers it does not list get ``sparsity``).
      rounds: ``> 1`` for iterative pruning under ``schedule`` (global allocation only).
      schedule: a name in :func:`names`.
      prunable, keep_dense: the prunable filter.

    Returns:
      int64 counts: ``rounds > 1``: (rounds,) kept after each round; ``"global"``: () kept in
      total; otherwise (L,) kept in each of the L prunable leaves, tree-flatten order.
    """
    flat = _masks.flatten_prunable(params, prunable, keep_dense)
    sizes = {p: int(np.prod(np.shape(x), dtype=np.int64))
             for p, x, f in zip(flat.paths, flat.leaves, flat.flags, strict=True) if f}
    n = sum(sizes.values())
    kw = dict(prunable=prunable, keep_dense=keep_dense)
    is_global = isinstance(allocation, str) and allocation == "global"
    if _check_rounds(rounds) > 1:
        if not is_global:
            raise ValueError(f"{rounds} pruning rounds prune globally; allocation={allocation!r} "
                             "needs rounds=1")
        return n - removal_counts(get(schedule)(sparsity, rounds), n)
    if is_global:
        return np.asarray(n - _masks.num_to_remove(n, sparsity), np.int64)
    if isinstance(allocation, Mapping):
        removed = _allocation.allocate_by_map(params, allocation, default=sparsity, **kw)
    else:
        removed = _allocation.get(allocation)(params, sparsity, **kw)
    return np.asarray([size - removed[p] for p, size in sizes.items()], np.int64)


def prune_iteratively(
    score_fn: ScoreFn,
    params: PyTree,
    sparsity: float,
    *,
    rounds: int,
    schedule: str = "exponential",
    batch: Any = None,
    key: jax.Array | None = None,
    mask: PyTree | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """Iterative global pruning: each round scores the MASKED network and removes more weights.

    Round ``t = 1..T``: ``scores = score_fn(apply_mask(params, mask), batch=batch, key=k_t)``;
    weights already pruned rank below every live one (as if scored ``-inf``), so they stay pruned;
    the ``N - c_t`` highest-scoring live weights are kept, with ``c_t`` from :func:`removal_counts`.
    The final mask removes exactly ``round(sparsity * N)``. Ties: lower flat index kept (as in
    :func:`jaxprune.masks.mask_by_topk`). ``k_t = fold_in(key, t - 1)``.

    The loop is one ``jax.lax.fori_loop`` inside one ``jax.jit``: ``score_fn`` is traced once
    whatever ``rounds`` is, and the per-round keep counts are an argument of the compiled loop
    (:func:`prune_by_keep_counts`), so calling again with the same ``score_fn`` object, shapes and
    ``rounds`` reuses the program, whatever the sparsity. A NaN or infinite score of a live
    weight in any round raises ``ValueError`` naming the layer (see :func:`run_rounds` to get the
    flags under an outer ``jit`` instead).

    Args:
      score_fn: a criterion's ``score_fn(params, *, batch, key)``.
      params: params pytree.
      sparsity: final sparsity in [0, 1] (static).
      rounds: number of rounds ``T`` (static); 1 = one-shot.
      schedule: a name in :func:`names`.
      batch, key: passed to ``score_fn`` every round (``key`` folded with the round index).
      mask: optional starting mask: its pruned weights stay pruned and count as removed (if it
        already removes more than a round's count, it keeps its own, larger, sparsity).
      prunable, keep_dense: the prunable filter.

    Returns:
      The final bool mask pytree.
    """
    counts = keep_counts(params, _masks.check_sparsity(sparsity), rounds=_check_rounds(rounds),
                         schedule=schedule, prunable=prunable, keep_dense=keep_dense)
    if rounds == 1:
        counts = counts[None]
    return prune_by_keep_counts(score_fn, params, counts, batch=batch, key=key, mask=mask,
                                prunable=prunable, keep_dense=keep_dense)


def prune_by_keep_counts(
    score_fn: ScoreFn,
    params: PyTree,
    keep_counts: Sequence[int] | jax.Array,
    *,
    batch: Any = None,
    key: jax.Array | None = None,
    mask: PyTree | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """:func:`prune_iteratively` given the number of weights each round keeps, not a schedule.

    Round ``t`` keeps the ``keep_counts[t]`` highest-scoring live prunable weights (ties, start
    ``mask`` and keys as in :func:`prune_iteratively`). ``keep_counts`` is an argument of the
    compiled loop, not a constant in it: a new sparsity with the same number of rounds reuses
    the compiled program. Non-finite scores raise ``ValueError`` and a layer left with no weight
    warns (:class:`jaxprune.masks.LayerCollapseWarning`) when the result is concrete; under an
    outer ``jit``/``vmap`` nothing can be raised: use :func:`run_rounds` and check its flags.

    Args:
      score_fn: a criterion's ``score_fn(params, *, batch, key)``.
      params: params pytree.
      keep_counts: (T,) int, non-increasing, each in ``[0, num_prunable]``; ``T`` is static.
      batch, key, mask, prunable, keep_dense: as in :func:`prune_iteratively`.

    Returns:
      The final bool mask pytree.
    """
    flat = _masks.flatten_prunable(params, prunable, keep_dense)
    mask, nonfinite = run_rounds(score_fn, params, keep_counts, batch=batch, key=key, mask=mask,
                                 prunable=prunable, keep_dense=keep_dense)
    if not isinstance(nonfinite, jax.core.Tracer):
        _masks.raise_if_nonfinite(nonfinite, flat.prunable_paths)
    return _masks.warn_if_collapsed(mask, flat.flags)


def run_rounds(
    score_fn: ScoreFn,
    params: PyTree,
    keep_counts: Sequence[int] | jax.Array,
    *,
    batch: Any = None,
    key: jax.Array | None = None,
    mask: PyTree | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> tuple[PyTree, jax.Array]:
    """The traceable core of :func:`prune_by_keep_counts`: ``(mask, nonfinite)``, no checks.

    ``nonfinite`` is (L,) bool, one per prunable leaf (tree-flatten order): whether any round
    scored a live weight of that leaf NaN or infinite (raise with
    :func:`jaxprune.masks.raise_if_nonfinite`). The program is cached on ``(score_fn, prunable
    leaves)``, and ``jax.jit`` on shapes, so pass the same ``score_fn`` object to reuse it.
    """
    flags = _masks.flatten_prunable(params, prunable, keep_dense).flags
    if mask is None:
        mask = _masks.ones_like(params)
    _masks.check_mask_tree(params, mask)
    keep_counts = jnp.asarray(keep_counts, jnp.int32)
    if keep_counts.ndim != 1 or keep_counts.shape[0] < 1:
        raise ValueError(f"keep_counts must be a (rounds,) array, got shape {keep_counts.shape}")
    nonfinite = jnp.zeros((sum(flags),), jnp.bool_)
    if not any(f and np.size(x) for x, f in zip(jax.tree.leaves(params), flags, strict=True)):
        return mask, nonfinite
    # keyed on the selection too: masks.override_top_k swaps masks.keep_top
    program = _rounds_program(score_fn, tuple(flags), _masks.keep_top)
    return program(params, mask, batch, key, keep_counts)


@functools.lru_cache(maxsize=32)
def _rounds_program(score_fn: ScoreFn, flags: tuple[bool, ...],
                    keep_top: Callable[..., jax.Array]) -> Callable[..., PyTree]:
    """``jit(run)``, ``run(params, mask, batch, key, keep_counts) -> (mask, nonfinite)``: all
    rounds in one ``lax.fori_loop``, ``score_fn`` traced once, ``keep_top`` the selection."""

    def prunable_leaves(tree: PyTree) -> list[jax.Array]:
        return [x for x, f in zip(jax.tree.leaves(tree), flags, strict=True) if f]

    def flat_prunable(tree: PyTree) -> jax.Array:
        ls = [jnp.ravel(x) for x in prunable_leaves(tree)]
        return jnp.concatenate([x.astype(jnp.result_type(*ls)) for x in ls])

    def unflat(keep: jax.Array, like: PyTree) -> PyTree:
        leaves, treedef = jax.tree.flatten(like)
        out, start = [], 0
        for x, f in zip(leaves, flags, strict=True):
            if f:
                size = int(np.prod(np.shape(x), dtype=np.int64))
                out.append(keep[start : start + size].reshape(np.shape(x)))
                start += size
            else:
                out.append(x)
        return jax.tree.unflatten(treedef, out)

    @jax.jit
    def run(
        params: PyTree, mask: PyTree, batch: Any, key: jax.Array | None, keep_counts: jax.Array
    ) -> tuple[PyTree, jax.Array]:
        def body(t: jax.Array, carry: tuple[PyTree, jax.Array]) -> tuple[PyTree, jax.Array]:
            mask, nonfinite = carry
            k = None if key is None else jax.random.fold_in(key, t)
            scores = score_fn(_masks.apply_mask(params, mask), batch=batch, key=k)
            bad = jnp.stack([jnp.any(~jnp.isfinite(s) & m) for s, m in
                             zip(prunable_leaves(scores), prunable_leaves(mask), strict=True)])
            alive = flat_prunable(mask)
            keep = keep_top(flat_prunable(scores), keep_counts[t], alive)
            # never revive (a start mask may prune more)
            return unflat(keep & alive, mask), nonfinite | bad

        start = (mask, jnp.zeros((sum(flags),), jnp.bool_))
        return jax.lax.fori_loop(0, keep_counts.shape[0], body, start)

    return run


def prune_synflow(
    params: PyTree,
    sparsity: float,
    *,
    apply_fn: Callable[[PyTree, jax.Array], jax.Array],
    input_shape: Sequence[int],
    rounds: int = 100,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
    **synflow_kwargs: Any,
) -> PyTree:
    """SynFlow pruning (Tanaka et al. 2020): SynFlow scores, ``rounds`` exponential rounds, global.

    ``prune_iteratively(criteria.synflow(apply_fn, input_shape), params, sparsity,
    rounds=rounds, schedule="exponential")``. The paper uses 100 rounds.

    Returns:
      bool mask pytree removing exactly ``round(sparsity * num_prunable)`` weights.

    Reference: https://arxiv.org/abs/2006.05467 (Alg. 1)
    """
    score_fn = _criterion(_criteria.synflow, apply_fn, input_shape, **synflow_kwargs)
    return prune_iteratively(
        score_fn,
        params,
        sparsity,
        rounds=rounds,
        schedule="exponential",
        prunable=prunable,
        keep_dense=keep_dense,
    )


def prune_iterative_snip(
    params: PyTree,
    sparsity: float,
    *,
    loss_fn: Callable[[PyTree, Any], jax.Array],
    batch: Any,
    rounds: int = 100,
    schedule: str = "exponential",
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> PyTree:
    """Iterative SNIP: SNIP scores recomputed on the masked network each round (global top-k).

    The iterative-SNIP baseline of Tanaka et al. 2020 (and de Jorge et al. 2021, FORCE-like
    re-scoring): one batch, ``rounds`` rounds of the given schedule.

    Returns:
      bool mask pytree removing exactly ``round(sparsity * num_prunable)`` weights.

    Reference: https://arxiv.org/abs/2006.05467 (Sec. 7), https://arxiv.org/abs/2006.09081
    """
    return prune_iteratively(
        _criterion(_criteria.snip, loss_fn),
        params,
        sparsity,
        rounds=rounds,
        schedule=schedule,
        batch=batch,
        prunable=prunable,
        keep_dense=keep_dense,
    )


def _criterion(factory: Callable[..., ScoreFn], *args: Any, **kwargs: Any) -> ScoreFn:
    """``factory(*args, **kwargs)``, one object per (hashable) set of arguments: a later call with
    the same ``apply_fn``/``loss_fn`` object reuses the compiled loop of an earlier one."""
    key = (factory, args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:  # e.g. input_shape given as a list
        return factory(*args, **kwargs)
    return _cached_criterion(*key)


@functools.lru_cache(maxsize=32)
def _cached_criterion(factory: Callable[..., ScoreFn], args: tuple, kwargs: tuple) -> ScoreFn:
    return factory(*args, **dict(kwargs))
