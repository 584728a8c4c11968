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
  iterative_snip     SNIP re-scored over 100 rounds by default              saliency.snip
  grasp              theta * (H g) (needs ``loss_fn``, ``batch``)           saliency.grasp
  synflow            |theta * dR/dtheta|, data-free (needs ``apply_fn``,    synflow.synflow
                     ``input_shape``)
  autos              a learned scorer on (theta_0, g_0) (needs ``scorer``,  learned.autos
                     ``loss_fn``, ``batch``)

Iterative variants (re-scoring the masked network over rounds) live in
:mod:`jaxprune.schedules`: ``prune_iteratively``, ``prune_synflow``, ``prune_iterative_snip``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from jaxprune.criteria.base import ScoreFn
from jaxprune.criteria.basic import magnitude, random
from jaxprune.criteria.learned import autos
from jaxprune.criteria.saliency import grasp, hvp, snip, softmax_xent_with_temperature
from jaxprune.criteria.synflow import synflow
from jaxprune.registry import Registry

__all__ = [
    "REGISTRY",
    "autos",
    "ModelFns",
    "ScoreFn",
    "default_rounds",
    "for_model",
    "get",
    "grasp",
    "hvp",
    "magnitude",
    "names",
    "needs_data",
    "random",
    "snip",
    "softmax_xent_with_temperature",
    "synflow",
]


class ModelFns(NamedTuple):
    """What model-aware code (``studies``) hands a criterion: the model's pieces, by role.

    ``apply_fn(params, x) -> logits`` and ``loss_fn(params, (x, y)) -> scalar`` run the model in
    the mode the criterion should see (eval mode for batch norm, as the references score);
    ``input_shape`` is one example's shape (SynFlow's all-ones input).
    """

    apply_fn: Callable[[Any, Any], Any]
    loss_fn: Callable[[Any, Any], Any]
    input_shape: Sequence[int]


#: Every criterion by name. Each entry's metadata: ``data`` (needs a scoring batch), ``rounds``
#: (default number of pruning rounds: 100 for SynFlow and iterative SNIP, as in Tanaka et al.),
#: ``from_model`` (``(ModelFns, options) -> factory kwargs``: how a model's pieces become the
#: factory's arguments). A new criterion is added here, and only here.
REGISTRY: Registry[ScoreFn] = Registry("criterion")
_none = lambda fns, options: {}
_loss = lambda fns, options: {"loss_fn": fns.loss_fn}
REGISTRY.register("random", random, data=False, rounds=1, from_model=_none)
REGISTRY.register("magnitude", magnitude, data=False, rounds=1, from_model=_none)
REGISTRY.register("trained_magnitude", magnitude, data=False, rounds=1, from_model=_none)
REGISTRY.register("snip", snip, data=True, rounds=1, from_model=_loss)
REGISTRY.register("iterative_snip", snip, data=True, rounds=100, from_model=_loss)
REGISTRY.register(
    "grasp", grasp, data=True, rounds=1,
    # GraSP's reference code scores a softmax with temperature 200.
    from_model=lambda fns, options: {"loss_fn": softmax_xent_with_temperature(
        fns.apply_fn, options.get("grasp_temperature", 200.0))},
)
REGISTRY.register(
    "synflow", synflow, data=False, rounds=100,
    from_model=lambda fns, options: {"apply_fn": fns.apply_fn, "input_shape": fns.input_shape},
)


def _autos_from_model(fns: ModelFns, options: Mapping[str, Any]) -> dict[str, Any]:
    if options.get("scorer") is None:
        raise ValueError("the 'autos' criterion needs a trained scorer: criterion option "
                         "scorer=DIR (`jaxprune autos train`; the CLI's --scorer DIR)")
    return {"scorer": options["scorer"], "loss_fn": fns.loss_fn}


REGISTRY.register("autos", autos, data=True, rounds=1, from_model=_autos_from_model)


def names() -> list[str]:
    """The registered criterion names, sorted."""
    return REGISTRY.names()


def get(name: str, **factory_kwargs: Any) -> ScoreFn:
    """Build the criterion registered as ``name``: its factory called with ``factory_kwargs``.

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
    return REGISTRY.get(name, **factory_kwargs)


def for_model(name: str, fns: ModelFns, options: Mapping[str, Any] | None = None) -> ScoreFn:
    """The criterion ``name`` built from a model's pieces (see :class:`ModelFns`).

    ``options`` holds criterion settings beyond the model (``grasp_temperature``).
    """
    return get(name, **REGISTRY.info(name)["from_model"](fns, dict(options or {})))


def needs_data(name: str) -> bool:
    """Whether criterion ``name`` scores on a data batch (SNIP, GraSP) or without (SynFlow)."""
    return bool(REGISTRY.info(name)["data"])


def default_rounds(name: str) -> int:
    """How many pruning rounds ``name`` runs by default (100 for SynFlow, iterative SNIP)."""
    return int(REGISTRY.info(name)["rounds"])
