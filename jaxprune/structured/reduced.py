"""Reduced networks: a zoo model scaled down uniformly to a MAC or parameter budget.

Crowley et al. (2018) compare pruned networks with "reduced" ones: the same family made
uniformly thinner (and, where the family allows, shallower) to the same budget, trained from
scratch. :func:`reduce_to_budget` finds the widest ``width_multiplier`` whose model fits.

Every width is ``round(w * m)`` (at least 1), a step function of ``m`` that changes only at
``m = (k - 1/2) / w``. The search runs over those breakpoints, so the answer is exact: the
returned model fits, and the next wider member of the family (one breakpoint up, every width
growing by at most one channel) does not.

  r = reduce_to_budget("resnet56", macs=62_000_000)            # thinner ResNet-56
  r = reduce_to_budget("resnet56", macs=62_000_000, depth=32)  # or a thinner ResNet-32
  model = models.get(r.name, **r.options)

Reference: https://arxiv.org/abs/1810.04622
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import flops, models
from jaxprune.structured.costs import Counts
from jaxprune.structured.groups import explicit_widths


class Reduced(NamedTuple):
    """A uniformly reduced model.

    Attributes:
      name: registered model name (differs from the input when ``depth`` changes it).
      options: ``models.get(name, **options)`` builds it (``width_multiplier`` included).
      width_multiplier: the multiplier found.
      counts: its ``Counts(params, macs)``.
      next_counts: counts of the next wider member (one breakpoint up), which exceeds the
        budget; ``None`` when the unreduced model fits.
    """

    name: str
    options: dict[str, Any]
    width_multiplier: float
    counts: Counts
    next_counts: Counts | None


def _with_depth(name: str, depth: int | None, options: dict[str, Any]) -> tuple[str, dict]:
    if depth is None:
        return name, options
    if name.startswith("resnet"):
        new = f"resnet{depth}"
        if new not in models.names():
            valid = [n for n in models.names() if n.startswith("resnet")]
            raise ValueError(f"no registered ResNet of depth {depth!r}; valid: {valid}")
        return new, options
    if name == "wrn":
        return name, {**options, "depth": depth}
    if name.startswith("wrn"):
        raise ValueError(
            f"{name!r} pins its depth; use name='wrn' with depth= and widen_factor= instead"
        )
    raise ValueError(f"depth= applies to ResNets and WRNs only, not {name!r}")


def counts_of(name: str, input_shape: Sequence[int] | None = None, **options: Any) -> Counts:
    """``Counts(params, macs)`` of ``models.get(name, **options)`` by one abstract trace."""
    model = models.get(name, **options)
    shape = models.default_input_shape(name) if input_shape is None else tuple(input_shape)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    return Counts(
        flops.count_params(variables["params"]), flops.count_macs(model, variables, shape)
    )


def multiplier_breakpoints(widths: Sequence[int]) -> np.ndarray:
    """Sorted multipliers ``(k - 1/2) / w`` (``k = 2 .. w``) where some ``round(w * m)`` steps."""
    pts = {(k - 0.5) / w for w in set(int(w) for w in widths) for k in range(2, w + 1)}
    return np.array(sorted(pts), np.float64)


def reduce_to_budget(
    name: str,
    *,
    macs: int | None = None,
    params: int | None = None,
    depth: int | None = None,
    input_shape: Sequence[int] | None = None,
    **options: Any,
) -> Reduced:
    """The widest uniformly thinned ``name`` (optionally at another depth) within a budget.

    Args:
      name: a registered model name.
      macs: MAC budget per example; or
      params: parameter budget.
      depth: another depth of the family: ``resnet{depth}`` for ResNets, the ``depth`` option of
        ``"wrn"``.
      input_shape: per-example input shape for counting (default: the model's registered one).
      **options: other model options (``num_classes``, ``shortcut``, explicit widths, ...);
        not ``width_multiplier``, which is searched.

    Returns:
      :class:`Reduced`; the multiplier is 1.0 when the unreduced model fits.

    Raises:
      ValueError: neither or both budgets, ``width_multiplier`` in options, a bad depth, or a
        budget below the family's one-channel-wide member.
    """
    if (macs is None) == (params is None):
        raise ValueError("give exactly one of macs= or params=")
    if "width_multiplier" in options:
        raise ValueError("width_multiplier is what reduce_to_budget searches; do not pass it")
    metric, budget = ("macs", macs) if macs is not None else ("params", params)
    name, options = _with_depth(name, depth, dict(options))
    base = explicit_widths(models.get(name, **options))
    widths = [w for v in base.values() for w in (v if isinstance(v, tuple) else (v,))]
    pts = multiplier_breakpoints(widths)
    # Candidate i: a multiplier inside the i-th interval between breakpoints; the last is 1.0.
    mids = np.concatenate([[pts[0] / 2], (pts[:-1] + pts[1:]) / 2, [1.0]]) if pts.size else [1.0]
    cache: dict[int, Counts] = {}

    def counts(i: int) -> Counts:
        if i not in cache:
            cache[i] = counts_of(name, input_shape, width_multiplier=float(mids[i]), **options)
        return cache[i]

    def fits(i: int) -> bool:
        return getattr(counts(i), metric) <= budget

    top = len(mids) - 1
    if fits(top):
        return Reduced(name, {**options, "width_multiplier": 1.0}, 1.0, counts(top), None)
    if not fits(0):
        raise ValueError(
            f"{metric} budget {budget:,} is below {getattr(counts(0), metric):,}, the count of "
            f"{name} with every width 1"
        )
    lo, hi = 0, top  # lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    m = float(mids[lo])
    return Reduced(name, {**options, "width_multiplier": m}, m, counts(lo), counts(hi))
