"""Layer budgets: how many weights each prunable layer loses for a global sparsity.

An allocation maps a global ``sparsity`` (fraction of prunable weights removed) to integer
per-layer removal counts ``{path: num_remove}`` that sum to exactly
``round(sparsity * num_prunable)``; :func:`jaxprune.masks.mask_by_layer_topk` then keeps the
highest scores within each layer. Real-valued per-layer targets are turned into integers by
largest-remainder rounding (:func:`apportion`), so a layer may differ from
``round(s_l * n_l)`` by one weight.

  uniform  every layer gets the same sparsity.
  erk      Erdos-Renyi-Kernel (Evci et al. 2020, RigL): density_l proportional to
           sum(shape_l) / prod(shape_l); for 2-D kernels this is ER.
  a map    ``{path: sparsity}`` given by the user (:func:`allocate_by_map`).

Only shapes are read, so ``params``, scores or a mask all work as the first argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxprune import masks as _masks
from jaxprune.masks import Path, Predicate
from jaxprune.registry import Registry

PyTree = Any
Counts = dict[Path, int]


def _prunable_sizes(
    params: PyTree, prunable: Predicate | None, keep_dense: Iterable[Sequence[str | int]]
) -> dict[Path, tuple[int, ...]]:
    paths, leaves, flags, _ = _masks.flatten_prunable(params, prunable, keep_dense)
    return {
        p: tuple(int(d) for d in np.shape(leaf))
        for p, leaf, f in zip(paths, leaves, flags, strict=True)
        if f
    }


def apportion(targets: Mapping[Path, float], sizes: Mapping[Path, int], total: int) -> Counts:
    """Integer counts ``c_l`` in ``[0, sizes[l]]`` summing to ``total``, closest to ``targets``.

    Largest-remainder rounding: start from ``floor(target)``, then give the missing units to the
    largest fractional parts (first path first among equal parts), or take surplus units from the
    smallest.

    Args:
      targets: ``{path: real count}``, each in ``[0, size]``.
      sizes: ``{path: number of weights}``.
      total: the exact sum wanted, ``0 <= total <= sum(sizes)``.

    Returns:
      ``{path: int count}`` in the order of ``targets``.
    """
    paths = list(targets)
    if not 0 <= total <= sum(sizes[p] for p in paths):
        raise ValueError(f"cannot apportion {total} over layers of sizes {dict(sizes)}")
    r = np.array([min(max(float(targets[p]), 0.0), sizes[p]) for p in paths], dtype=np.float64)
    n = np.array([sizes[p] for p in paths], dtype=np.int64)
    c = np.floor(r).astype(np.int64)
    frac = r - c
    deficit = total - int(c.sum())
    while deficit > 0:
        room = np.where(c < n, frac, -np.inf)
        i = int(np.argmax(room))  # first index among equal fractions
        c[i] += 1
        frac[i] -= 1.0
        deficit -= 1
    while deficit < 0:
        room = np.where(c > 0, frac, np.inf)
        i = int(np.argmin(room))
        c[i] -= 1
        frac[i] += 1.0
        deficit += 1
    return {p: int(x) for p, x in zip(paths, c, strict=True)}


def allocate_uniform(
    params: PyTree,
    sparsity: float,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> Counts:
    """Every prunable layer loses the same fraction: target ``sparsity * n_l`` weights in layer l.

    Args:
      params: params pytree (only shapes are read).
      sparsity: float in [0, 1], fraction of all prunable weights removed.
      prunable, keep_dense: the prunable filter (see :func:`jaxprune.masks.prunable_paths`).

    Returns:
      ``{path: num_remove}`` summing to ``round(sparsity * num_prunable)``.
    """
    s = _masks.check_sparsity(sparsity)
    shapes = _prunable_sizes(params, prunable, keep_dense)
    sizes = {p: int(np.prod(sh, dtype=np.int64)) for p, sh in shapes.items()}
    total = _masks.num_to_remove(sum(sizes.values()), s)
    return apportion({p: s * n for p, n in sizes.items()}, sizes, total)


def erk_densities(
    shapes: Mapping[Path, Sequence[int]], sparsity: float, *, power_scale: float = 1.0
) -> dict[Path, float]:
    """Real-valued ERK densities (Evci et al. 2020) for layers of the given kernel shapes.

    ``density_l = eps * (sum(shape_l) / prod(shape_l)) ** power_scale`` with ``eps`` chosen so that
    ``sum_l density_l * n_l = (1 - sparsity) * sum_l n_l``. A layer whose density would exceed 1 is
    made dense and the budget is re-solved over the others (repeated until no density exceeds 1),
    as in RigL's ``get_sparsities_erdos_renyi``. For 2-D shapes ``(fan_in, fan_out)`` this is ER:
    ``density ~ (fan_in + fan_out) / (fan_in * fan_out)``.

    Args:
      shapes: ``{path: kernel shape}``, e.g. ``(kh, kw, c_in, c_out)`` or ``(d_in, d_out)``.
      sparsity: float in [0, 1], global fraction removed over these layers.
      power_scale: exponent on the raw ERK ratio (1.0 = ERK; 0.0 = uniform).

    Returns:
      ``{path: density}`` with every density in [0, 1].

    Reference: https://arxiv.org/abs/1911.11134 (Sec. 3, "Sparsity distribution").
    """
    s = _masks.check_sparsity(sparsity)
    n = {p: float(np.prod(sh, dtype=np.float64)) for p, sh in shapes.items()}
    raw_all = {p: (float(np.sum(sh)) / n[p]) ** power_scale for p, sh in shapes.items()}
    dense: set[Path] = set()
    eps = 0.0
    while True:
        free = [p for p in shapes if p not in dense]
        if not free:
            break
        # kept budget left for the free layers, after the dense ones keep everything
        rhs = sum(n[p] * (1.0 - s) for p in free) - sum(n[p] * s for p in dense)
        divisor = sum(raw_all[p] * n[p] for p in free)
        eps = rhs / divisor
        max_raw = max(raw_all[p] for p in free)
        if max_raw * eps > 1.0:
            dense.update(p for p in free if raw_all[p] == max_raw)
        else:
            break
    return {p: 1.0 if p in dense else min(max(eps * raw_all[p], 0.0), 1.0) for p in shapes}


def allocate_erk(
    params: PyTree,
    sparsity: float,
    *,
    power_scale: float = 1.0,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> Counts:
    """Erdos-Renyi-Kernel budget: small/thin layers stay denser, big ones are pruned harder.

    ``num_remove_l ~ (1 - density_l) * n_l`` with ``density_l`` from :func:`erk_densities`, rounded
    to integers summing to ``round(sparsity * num_prunable)``.

    Args:
      params: params pytree (only shapes are read).
      sparsity: float in [0, 1].
      power_scale: exponent on the ERK ratio (RigL's ``erk_power_scale``).
      prunable, keep_dense: the prunable filter. Layers in ``keep_dense`` are outside the budget.

    Returns:
      ``{path: num_remove}``.

    Reference: https://arxiv.org/abs/1911.11134
    """
    s = _masks.check_sparsity(sparsity)
    shapes = _prunable_sizes(params, prunable, keep_dense)
    sizes = {p: int(np.prod(sh, dtype=np.int64)) for p, sh in shapes.items()}
    dens = erk_densities(shapes, s, power_scale=power_scale)
    total = _masks.num_to_remove(sum(sizes.values()), s)
    return apportion({p: (1.0 - dens[p]) * sizes[p] for p in sizes}, sizes, total)


def allocate_by_map(
    params: PyTree,
    sparsities: Mapping[Sequence[str | int], float],
    *,
    default: float | None = None,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> Counts:
    """User-given per-layer sparsities ``{path: sparsity}``; unlisted layers get ``default``.

    Counts sum to ``round(sum_l s_l * n_l)`` (largest-remainder rounding).

    Raises:
      ValueError: for a path that is not prunable, a sparsity outside [0, 1], or an unlisted
        prunable layer when ``default`` is None.
    """
    shapes = _prunable_sizes(params, prunable, keep_dense)
    sizes = {p: int(np.prod(sh, dtype=np.int64)) for p, sh in shapes.items()}
    given = {tuple(k): _masks.check_sparsity(v) for k, v in sparsities.items()}
    unknown = set(given) - set(sizes)
    if unknown:
        raise ValueError(
            f"sparsity map names non-prunable paths {sorted(map(str, unknown))}; "
            f"prunable paths: {list(sizes)}"
        )
    missing = [p for p in sizes if p not in given]
    if missing and default is None:
        raise ValueError(f"sparsity map misses prunable layers {missing}; pass default=")
    per = {p: given.get(p, default) for p in sizes}
    per = {p: _masks.check_sparsity(v) for p, v in per.items()}
    targets = {p: per[p] * sizes[p] for p in sizes}
    return apportion(targets, sizes, int(round(sum(targets.values()))))


def layer_sparsities(counts: Mapping[Path, int], params: PyTree) -> dict[Path, float]:
    """``{path: num_remove / size}`` for a counts dict (for printing a budget)."""
    sizes = {
        _masks.path_tuple(kp): int(np.prod(np.shape(x), dtype=np.int64))
        for kp, x in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    return {p: c / sizes[p] if sizes[p] else 0.0 for p, c in counts.items()}


#: Per-layer budgets by name: ``allocate_*(params, sparsity, *, prunable, keep_dense)``.
#: (``"global"``, one threshold over all layers, is not a per-layer budget and not listed.)
REGISTRY: Registry[Counts] = Registry("allocation")
REGISTRY.register("uniform", allocate_uniform)
REGISTRY.register("erk", allocate_erk)


def names() -> list[str]:
    """Registered allocation names (plus ``"global"``, accepted by :func:`mask_by_allocation`)."""
    return REGISTRY.names()


def get(name: str) -> Callable[..., Counts]:
    """The allocation function registered as ``name`` (``allocate_*(params, sparsity, ...)``)."""
    return REGISTRY.factory(name)


def mask_by_allocation(
    scores: PyTree,
    sparsity: float | None,
    allocation: str | Mapping[Sequence[str | int], float] = "global",
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
    **allocation_kwargs: Any,
) -> PyTree:
    """Scores -> mask under a named budget: ``"global"`` top-k, ``"uniform"``, ``"erk"`` or a map.

    Args:
      scores: pytree mirroring params, higher = kept.
      sparsity: float in [0, 1]. With a ``{path: sparsity}`` map it is the sparsity of layers the
        map does not list (None: the map must list every prunable layer).
      allocation: ``"global"`` (one threshold over all layers, :func:`mask_by_topk`), a registered
        name (:func:`names`), or a ``{path: sparsity}`` map.
      prunable, keep_dense: the prunable filter.
      **allocation_kwargs: passed to the allocation (e.g. ``power_scale`` for ERK).

    Returns:
      bool mask pytree.
    """
    kw = dict(prunable=prunable, keep_dense=keep_dense)
    if isinstance(allocation, Mapping):
        counts = allocate_by_map(scores, allocation, default=sparsity, **kw)
    elif allocation == "global":
        if sparsity is None:
            raise ValueError("global top-k needs a sparsity")
        return _masks.mask_by_topk(scores, sparsity, **kw)
    else:
        if sparsity is None:
            raise ValueError(f"allocation {allocation!r} needs a sparsity")
        counts = get(allocation)(scores, sparsity, **kw, **allocation_kwargs)
    return _masks.mask_by_layer_topk(scores, counts, **kw)
