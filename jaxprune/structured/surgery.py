"""Surgery: from keep-sets to the physically narrower model, its sliced variables, or a mask.

Three views of the same pruning decision ``keep`` (kept channel indices per group):

  * :func:`prune_channels`: the narrow zoo model (``models.get(name, **narrow_options)``) with
    every coupled slice of ``params`` *and* ``batch_stats`` taken out (kernels' output and input
    channels, biases, batch-norm scale/bias/mean/var, flattened-dense rows);
  * :func:`channel_mask`: a bool mask over the wide ``params`` that is False on exactly those
    slices, usable with ``masks.apply_mask``, ``flops.count_macs(mask=...)`` and masked training;
  * :func:`mask_channels`: the wide variables with that mask applied: the "masked wide model".

The masked wide model computes exactly what the narrow one does: a pruned channel's producers
output 0 (kernel column and bias zeroed, and its batch norm's scale *and* bias zeroed, since a
batch norm maps 0 to its bias), and every consumer's input weights for it are zeroed too, which
also covers pre-activation batch norms (WRN) and option-A shortcuts. Running statistics are left
alone: with scale and bias 0 they no longer matter.

  structure = groups.channel_groups("vgg11", width_multiplier=0.25)
  pruned = prune_channels(structure, variables, keep)
  pruned.model.apply(pruned.variables, x) ≈ structure.model.apply(
      mask_channels(structure, variables, keep), x)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import contract, masks, models
from jaxprune.structured.groups import (
    Keep,
    Slot,
    Structure,
    channel_groups,
    check_keep,
    narrow_options,
)

PyTree = Any
_SliceMap = dict[tuple[str, ...], list[tuple[int, np.ndarray]]]


class Pruned(NamedTuple):
    """A structurally pruned network.

    Attributes:
      structure: the narrow model's channel groups (same group names as the wide one).
      model: the narrow Flax module, ``structure.model``.
      variables: its variables (``params`` and, if any, ``batch_stats``).
    """

    structure: Structure
    model: Any
    variables: PyTree


def slot_indices(slot: Slot, kept: np.ndarray, dim: int) -> np.ndarray:
    """Indices along ``slot.axis`` (of length ``dim``) that survive the group's keep-set.

    Args:
      slot: the slice.
      kept: the group's kept channels, sorted (identities ``0 .. width - 1``).
      dim: the leaf's length along ``slot.axis``.

    Returns:
      Sorted int indices: ``kept ∩ [0, size)``; for a flattened slot, rows ``p * size + c`` for
      every position ``p`` and kept channel ``c`` (position-major, as the narrow flatten).

    Raises:
      ValueError: ``dim`` does not match the slot (the variables do not belong to the model).
    """
    k = kept[kept < slot.size]
    if slot.flattened:
        if dim % slot.size:
            raise ValueError(
                f"{'/'.join(slot.path)} axis {slot.axis} has {dim} rows, not a multiple of the "
                f"{slot.size} channels flattened into it"
            )
        positions = dim // slot.size
        return (np.arange(positions)[:, None] * slot.size + k[None, :]).reshape(-1)  # (P * k,)
    if dim != slot.size:
        raise ValueError(
            f"{slot.collection}/{'/'.join(slot.path)} has {dim} entries on axis {slot.axis}, but "
            f"the channel group expects {slot.size}: are these the variables of this model?"
        )
    return k


def _leaf(tree: PyTree, path: Sequence[str]) -> Any:
    for k in path:
        if k not in tree:
            raise KeyError(f"variable {'/'.join(path)} not found (missing {k!r})")
        tree = tree[k]
    return tree


def _slices(structure: Structure, variables: PyTree, keep: Keep, collections: Iterable[str]):
    """``{(collection, *path): [(axis, indices), ...]}`` for every sliced leaf."""
    out: _SliceMap = {}
    for g in structure.groups:
        for s in g.slots:
            if s.collection not in collections or s.collection not in variables:
                continue
            leaf = _leaf(variables[s.collection], s.path)
            axis = s.axis % jnp.ndim(leaf)
            idx = slot_indices(s, keep[g.name], jnp.shape(leaf)[axis])
            out.setdefault((s.collection, *s.path), []).append((axis, idx))
    return out


def _map_sliced(variables: PyTree, slices: _SliceMap, fn) -> PyTree:
    """``fn(leaf, [(axis, indices), ...])`` on every leaf; the list is empty for unsliced ones."""

    def visit(keypath, leaf):
        return fn(leaf, slices.get(masks.path_tuple(keypath), []))

    return jax.tree_util.tree_map_with_path(visit, dict(variables))


def slice_variables(
    structure: Structure, variables: PyTree, keep: Mapping[str, Iterable[int]]
) -> PyTree:
    """The wide ``variables`` with every pruned channel's slices removed.

    Args:
      structure: the wide model's groups.
      variables: its variables ``{'params': ..., 'batch_stats': ...}`` (other collections pass
        through unchanged).
      keep: kept channel indices per group (missing groups keep all).

    Returns:
      Variables shaped for ``models.get(structure.name, **narrow_options(structure, keep))``.
    """
    keep = check_keep(structure, keep)
    slices = _slices(structure, variables, keep, ("params", "batch_stats"))

    def take(leaf, entry):
        if not entry:
            return leaf
        if isinstance(leaf, jax.core.Tracer):  # under jit: a gather with static indices
            for axis, idx in entry:
                leaf = jnp.take(leaf, jnp.asarray(idx, jnp.int32), axis=axis)
            return leaf
        out = np.asarray(leaf)  # concrete: slice in NumPy (no per-shape compilation)
        for axis, idx in entry:
            out = np.take(out, idx, axis=axis)
        return jnp.asarray(out)

    return _map_sliced(variables, slices, take)


def channel_mask(structure: Structure, params: PyTree, keep: Mapping[str, Iterable[int]]) -> PyTree:
    """A bool mask over ``params``: False on every slice of a pruned channel, True elsewhere.

    Args:
      structure: the groups.
      params: ``variables['params']`` of the wide model (arrays or ``ShapeDtypeStruct``s).
      keep: kept channel indices per group.

    Returns:
      A bool pytree mirroring ``params``. ``count_params(params, mask)`` and
      ``flops.count_macs(..., mask=mask)`` equal the narrow model's exact counts.
    """
    keep = check_keep(structure, keep)
    slices = _slices(structure, {"params": params}, keep, ("params",))

    def mask(leaf, entry):
        shape = jnp.shape(leaf)
        m = np.ones(shape, bool)
        for axis, idx in entry:
            on_axis = np.zeros(shape[axis], bool)
            on_axis[idx] = True
            m &= on_axis.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        return jnp.asarray(m)

    return _map_sliced({"params": params}, slices, mask)["params"]


def mask_channels(
    structure: Structure, variables: PyTree, keep: Mapping[str, Iterable[int]]
) -> PyTree:
    """The masked wide model: ``params`` zeroed (exactly, by ``where``) on pruned channels.

    Args:
      structure: the groups.
      variables: the wide model's variables.
      keep: kept channel indices per group.

    Returns:
      ``variables`` with ``params = masks.apply_mask(params, channel_mask(...))``; the wide model
      then computes what the narrow model of :func:`prune_channels` computes.
    """
    mask = channel_mask(structure, variables["params"], keep)
    return {**variables, "params": masks.apply_mask(variables["params"], mask)}


def _narrow_structure(structure: Structure, keep: Keep) -> Structure:
    opts = dict(narrow_options(structure, keep))
    if not contract.is_spec(structure.name):  # the zoo declares its narrow members itself
        return channel_groups(structure.name, residual=structure.residual, **opts)
    # a user's declaration: every size becomes the count of kept channels below it
    groups = []
    for g in structure.groups:
        k = np.asarray(keep[g.name])
        below = lambda size, k=k: int(np.sum(k < size))
        groups.append(g._replace(
            width=len(k), slots=tuple(s._replace(size=below(s.size)) for s in g.slots),
            sites=tuple(s._replace(size=below(s.size)) for s in g.sites),
            targets=tuple(t._replace(size=below(t.size)) for t in g.targets)))
    return structure._replace(options=opts, groups=tuple(groups))


def prune_channels(
    structure: Structure,
    variables: PyTree,
    keep: Mapping[str, Iterable[int]],
    *,
    input_shape: Sequence[int] | None = None,
) -> Pruned:
    """Build the physically narrower model and slice ``params`` and ``batch_stats`` to match.

    Args:
      structure: the wide model's groups (:func:`~jaxprune.structured.groups.channel_groups`).
      variables: the wide model's variables.
      keep: kept channel indices per group (missing groups keep all).
      input_shape: per-example input shape used to check the sliced shapes against the narrow
        model (default ``models.default_input_shape(name)``); ``()`` skips the check.

    Returns:
      :class:`Pruned` ``(structure, model, variables)`` of the narrow network.

    Raises:
      ValueError: invalid keep-sets, or variables that do not match the structure.

    Example::

      pruned = prune_channels(structure, variables, {"conv1": np.array([0, 3, 4])})
      logits = pruned.model.apply(pruned.variables, x)
    """
    keep = check_keep(structure, keep)
    narrow = _narrow_structure(structure, keep)
    new_vars = slice_variables(structure, variables, keep)
    shape = models.default_input_shape(structure.name) if input_shape is None else input_shape
    if len(shape):
        x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
        want = jax.eval_shape(narrow.model.init, jax.random.key(0), x)
        got = jax.tree.map(lambda a: tuple(a.shape), {k: new_vars[k] for k in want})
        exp = jax.tree.map(lambda a: tuple(a.shape), dict(want))
        if got != exp:  # pragma: no cover - a groups bug
            raise AssertionError(f"sliced shapes {got} differ from the narrow model's {exp}")
    return Pruned(narrow, narrow.model, new_vars)


@functools.partial(jax.jit, static_argnums=0)  # modules hash by value: one compile per arch
def _init(model: Any, key: jax.Array, x: jax.Array) -> PyTree:
    return model.init(key, x)


def fresh_init(
    structure: Structure,
    keep: Mapping[str, Iterable[int]],
    *,
    key: jax.Array,
    input_shape: Sequence[int] | None = None,
) -> Pruned:
    """The pruned architecture with a new random initialization (Scratch-E / Scratch-B).

    Liu et al. 2019 ("Rethinking the Value of Network Pruning") train the architecture found by
    pruning from a fresh random init; this builds it.

    Args:
      structure: the wide model's groups.
      keep: kept channel indices per group (only their counts matter).
      key: PRNG key for ``model.init``.
      input_shape: per-example input shape (default: the model's registered one).

    Returns:
      :class:`Pruned` with ``variables = model.init(key, zeros((1, *input_shape)))``.

    Reference: https://arxiv.org/abs/1810.05270
    """
    narrow = _narrow_structure(structure, check_keep(structure, keep))
    shape = models.default_input_shape(structure.name) if input_shape is None else input_shape
    variables = _init(narrow.model, key, jnp.zeros((1, *shape), jnp.float32))
    return Pruned(narrow, narrow.model, variables)
