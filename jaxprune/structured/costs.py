"""Exact parameter and multiply-accumulate counts of structurally pruned models, from keep-sets.

Same convention as :mod:`jaxprune.flops` (a multiply-add counts once; only conv and dense layers
count). A pruned layer keeps its output positions, so its MACs scale with its kernel::

  MACs(layer) = positions * prod(narrow kernel shape)

where the narrow kernel has ``|kept inputs|`` input and ``|kept outputs|`` output channels. One
abstract trace of the wide model gives positions and shapes; every keep-set is then counted in
NumPy, which is what budget searches (:func:`jaxprune.structured.policies.prune_to_budget`)
need. The counts equal ``flops.count_params`` / ``flops.count_macs`` of the model that
:func:`~jaxprune.structured.surgery.prune_channels` builds (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxprune import flops, masks, models
from jaxprune.structured.groups import Slot, Structure, check_keep, keep_all
from jaxprune.structured.surgery import slot_indices


class Counts(NamedTuple):
    """Size of a network: ``params`` (entries of ``variables['params']``) and ``macs`` (per
    example)."""

    params: int
    macs: int


def cost_model(
    structure: Structure, *, input_shape: Sequence[int] | None = None
) -> Callable[[Mapping[str, Iterable[int]]], Counts]:
    """A function ``keep -> Counts`` of the narrow model, after one abstract trace.

    Args:
      structure: the wide model's groups.
      input_shape: per-example input shape (default: the model's registered one).

    Returns:
      ``counts(keep) -> Counts(params, macs)`` (pure NumPy; ``keep`` as for ``prune_channels``).
    """
    model = structure.model
    shape = models.default_input_shape(structure.name) if input_shape is None else input_shape
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    layers = flops.trace_layers(model, variables, x)
    leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
    shapes = {masks.path_tuple(path): tuple(leaf.shape) for path, leaf in leaves}
    # Which group slices which axis of which params leaf.
    sliced: dict[tuple, list[tuple[int, str, Slot]]] = {}
    for g in structure.groups:
        for s in g.slots:
            if s.collection == "params":
                axis = s.axis % len(shapes[s.path])
                sliced.setdefault(s.path, []).append((axis, g.name, s))

    def narrow_shape(path: tuple[str, ...], keep) -> tuple[int, ...]:
        dims = list(shapes[path])
        for axis, name, slot in sliced.get(path, []):
            dims[axis] = len(slot_indices(slot, keep[name], dims[axis]))
        return tuple(dims)

    def counts(keep: Mapping[str, Iterable[int]]) -> Counts:
        keep = check_keep(structure, keep)
        params = sum(math.prod(narrow_shape(p, keep)) for p in shapes)
        macs = sum(
            layer.macs // math.prod(layer.kernel_shape) * math.prod(narrow_shape(layer.path, keep))
            for layer in layers
        )
        return Counts(int(params), int(macs))

    return counts


def count_pruned(
    structure: Structure,
    keep: Mapping[str, Iterable[int]] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
) -> Counts:
    """Parameters and MACs of the model pruned to ``keep`` (``None``: the unpruned model).

    Args:
      structure: the wide model's groups.
      keep: kept channel indices per group; missing groups keep all.
      input_shape: per-example input shape (default: the model's registered one).

    Returns:
      ``Counts(params, macs)``.

    Example::

      s = channel_groups("resnet56")
      dense = count_pruned(s)                      # Counts(params=853018, macs=125485696)
    """
    return cost_model(structure, input_shape=input_shape)(
        keep_all(structure) if keep is None else keep
    )


def reduction(before: Counts, after: Counts) -> dict[str, float]:
    """Fractions removed: ``{'params': 1 - after/before, 'macs': ...}``."""
    return {
        "params": 1.0 - after.params / before.params,
        "macs": 1.0 - after.macs / before.macs,
    }
