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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import criteria as _criteria
from jaxprune import masks as _masks
from jaxprune.criteria.base import ScoreFn
from jaxprune.masks import Predicate

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


_REGISTRY: dict[str, Callable[[float, int], np.ndarray]] = {
    "exponential": exponential_schedule,
    "linear": linear_schedule,
}


def names() -> list[str]:
    """Registered schedule names."""
    return sorted(_REGISTRY)


def get(name: str) -> Callable[[float, int], np.ndarray]:
    """The schedule ``(sparsity, rounds) -> (rounds,) sparsities`` registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; valid names: {names()}") from None


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
    :func:`jaxprune.masks.mask_by_topk`); a NaN score ranks lowest. ``k_t = fold_in(key, t - 1)``.

    The loop is one ``jax.lax.fori_loop`` inside one ``jax.jit``: ``score_fn`` is traced once
    whatever ``rounds`` is, and the per-round keep counts are an argument of the compiled loop
    (:func:`prune_by_keep_counts`), so calling again with the same ``score_fn`` object, shapes and
    ``rounds`` reuses the program, whatever the sparsity. Scores are not checked for NaN inside
    the loop; check a single round with :func:`jaxprune.masks.check_finite_scores` first if in
    doubt.

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
    s = _masks.check_sparsity(sparsity)
    sparsities = get(schedule)(s, rounds)
    _, leaves, flags, _ = _masks.flatten_prunable(params, prunable, keep_dense)
    sizes = [np.prod(np.shape(x), dtype=np.int64) for x, f in zip(leaves, flags, strict=True) if f]
    n = int(sum(sizes))
    return prune_by_keep_counts(
        score_fn, params, n - removal_counts(sparsities, n), batch=batch, key=key, mask=mask,
        prunable=prunable, keep_dense=keep_dense,
    )


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

    Round ``t`` keeps the ``keep_counts[t]`` highest-scoring live prunable weights (ties, NaN,
    start ``mask`` and keys as in :func:`prune_iteratively`). ``keep_counts`` is an argument of
    the compiled loop, not a constant in it: a new sparsity with the same number of rounds reuses
    the compiled program, and the counts may be traced (e.g. computed in Python outside a
    ``jit`` and passed in). The program is cached on ``(score_fn, prunable leaves)``, and
    ``jax.jit`` on shapes, so pass the same ``score_fn`` object to reuse it.

    Args:
      score_fn: a criterion's ``score_fn(params, *, batch, key)``.
      params: params pytree.
      keep_counts: (T,) int, non-increasing, each in ``[0, num_prunable]``; ``T`` is static.
      batch, key, mask, prunable, keep_dense: as in :func:`prune_iteratively`.

    Returns:
      The final bool mask pytree.
    """
    _, leaves, flags, _ = _masks.flatten_prunable(params, prunable, keep_dense)
    if mask is None:
        mask = _masks.ones_like(params)
    _masks.check_mask_tree(params, mask)
    keep_counts = jnp.asarray(keep_counts, jnp.int32)
    if keep_counts.ndim != 1 or keep_counts.shape[0] < 1:
        raise ValueError(f"keep_counts must be a (rounds,) array, got shape {keep_counts.shape}")
    if not any(f and np.size(x) for x, f in zip(leaves, flags, strict=True)):
        return mask
    run = _rounds_program(score_fn, tuple(flags))
    return _masks.warn_if_collapsed(run(params, mask, batch, key, keep_counts), flags)


@functools.lru_cache(maxsize=32)
def _rounds_program(score_fn: ScoreFn, flags: tuple[bool, ...]) -> Callable[..., PyTree]:
    """``jit(run)``, ``run(params, mask, batch, key, keep_counts) -> mask``: all rounds in one
    ``lax.fori_loop``, ``score_fn`` traced once."""

    def flat_prunable(tree: PyTree) -> jax.Array:
        ls = [jnp.ravel(x) for x, f in zip(jax.tree.leaves(tree), flags, strict=True) if f]
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
    ) -> PyTree:
        def body(t: jax.Array, mask: PyTree) -> PyTree:
            k = None if key is None else jax.random.fold_in(key, t)
            scores = score_fn(_masks.apply_mask(params, mask), batch=batch, key=k)
            alive = flat_prunable(mask)
            keep = _masks.keep_top(flat_prunable(scores), keep_counts[t], alive)
            return unflat(keep & alive, mask)  # never revive (a start mask may prune more)

        return jax.lax.fori_loop(0, keep_counts.shape[0], body, mask)

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
