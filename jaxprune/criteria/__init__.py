"""Pruning criteria: factories returning pure score functions, and their registry.

A criterion factory takes the model-specific pieces (a loss, a forward function, an input shape)
and returns ``score_fn(params, *, batch=None, key=None) -> scores``: a pytree with exactly params'
structure and shapes, higher = more important = kept. Turn scores into a mask with
:func:`jaxprune.masks.mask_by_topk` (global) or :func:`jaxprune.allocation.mask_by_allocation`.

  score_fn = criteria.get("snip", loss_fn=loss_fn)         # loss_fn(params, batch) -> scalar
  mask = masks.mask_by_topk(score_fn(params, batch=batch), sparsity=0.9)

Registered names (``names()``):

  random             iid U[0,1) scores (needs ``key``)                      basic.random
  magnitude          |theta|                                                basic.magnitude
  trained_magnitude  |theta| on trained params (lottery tickets), alias     basic.magnitude
  snip               |theta * dL/dtheta| (needs ``loss_fn``, ``batch``)     saliency.snip
  grasp              theta * (H g) (needs ``loss_fn``, ``batch``)           saliency.grasp
  synflow            |theta * dR/dtheta|, data-free (needs ``apply_fn``,    synflow.synflow
                     ``input_shape``)

Iterative variants (re-scoring the masked network over rounds) live in
:mod:`jaxprune.schedules`: ``prune_iteratively``, ``prune_synflow``, ``prune_iterative_snip``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from jaxprune.criteria.base import ScoreFn
from jaxprune.criteria.basic import magnitude, random
from jaxprune.criteria.saliency import grasp, hvp, snip, softmax_xent_with_temperature
from jaxprune.criteria.synflow import synflow

__all__ = [
    "ScoreFn",
    "get",
    "grasp",
    "hvp",
    "magnitude",
    "names",
    "random",
    "snip",
    "softmax_xent_with_temperature",
    "synflow",
]

_REGISTRY: dict[str, Callable[..., ScoreFn]] = {
    "random": random,
    "magnitude": magnitude,
    "trained_magnitude": magnitude,
    "snip": snip,
    "grasp": grasp,
    "synflow": synflow,
}


def names() -> list[str]:
    """The registered criterion names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **factory_kwargs: Any) -> ScoreFn:
    """Build the criterion registered as ``name``: ``_REGISTRY[name](**factory_kwargs)``.

    Args:
      name: one of :func:`names`.
      **factory_kwargs: the factory's arguments, e.g. ``loss_fn=`` for ``snip``/``grasp``,
        ``apply_fn=`` and ``input_shape=`` for ``synflow``.

    Returns:
      ``score_fn(params, *, batch=None, key=None) -> scores``.

    Raises:
      ValueError: unknown name (the message lists the valid ones).
      TypeError: missing or unexpected factory arguments (the message lists the expected ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown criterion {name!r}; valid names: {names()}")
    factory = _REGISTRY[name]
    sig = inspect.signature(factory)
    try:
        sig.bind(**factory_kwargs)
    except TypeError as e:
        required = [
            p.name
            for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        raise TypeError(
            f"criterion {name!r}: {e}. It takes {list(sig.parameters)} "
            f"(required: {required or 'none'}); got {sorted(factory_kwargs)}"
        ) from None
    return factory(**factory_kwargs)
