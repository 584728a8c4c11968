"""Channel gates: a learnable multiplier per channel, kept as a separate pytree from the params.

``apply_with_gates`` runs a zoo model with every group's channels multiplied by ``gates[group]``
at the group's sites (the modules whose output carries the channels: the batch norm after a conv,
a dense layer's output, or, for WRN residual streams, the batch norms that read the stream).
With gates in {0, 1} it computes exactly the masked model of
:func:`jaxprune.structured.surgery.mask_channels` (tested): a gate of 0 silences a channel for
every reader, since ``relu(0 * z) = 0``, max pooling and residual sums keep zeros at zero.

The gradient with respect to a gate at 1 is ``sum over sites and positions of a * dL/da``: the
Fisher pruning signal (:func:`jaxprune.structured.criteria.fisher`) and the learnable channel
importance of Pruning from Scratch (Wang et al. 2020, https://arxiv.org/abs/1909.12579), which
trains such gates with an L1 penalty on a randomly initialized network.

  gates = init_gates(structure)                                 # {group: ones(width)}
  logits = apply_with_gates(structure, variables, gates, x)     # == structure.model.apply(...)
  grads = jax.grad(lambda g: loss(apply_with_gates(structure, variables, g, x)))(gates)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprune.structured.groups import Structure

PyTree = Any


def init_gates(
    structure: Structure,
    *,
    value: float = 1.0,
    groups: Iterable[str] | None = None,
    batch_size: int | None = None,
    dtype: Any = jnp.float32,
) -> dict[str, jax.Array]:
    """Constant gates for some or all groups.

    Args:
      structure: the groups.
      value: initial gate value (1 leaves the model unchanged).
      groups: group names to gate (default: all).
      batch_size: if given, one gate per example: shape ``(batch_size, width)`` (per-example
        gradients, as Fisher pruning needs); else ``(width,)``.
      dtype: gate dtype.

    Returns:
      ``{group name: gates}``.
    """
    names = structure.group_names if groups is None else list(groups)
    lead = () if batch_size is None else (batch_size,)
    return {n: jnp.full((*lead, structure.group(n).width), value, dtype) for n in names}


def _site_table(structure: Structure, gates: Mapping[str, jax.Array]):
    table: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for name in gates:
        g = structure.group(name)
        if not g.sites:  # pragma: no cover - every zoo group has sites
            raise ValueError(f"group {name!r} has no gate site")
        if jnp.shape(gates[name])[-1] != g.width:
            raise ValueError(
                f"gates[{name!r}] has shape {jnp.shape(gates[name])}; the last axis must be the "
                f"group's width {g.width}"
            )
        for site in g.sites:
            table.setdefault(site.path, []).append((name, site.size))
    return table


def apply_with_gates(
    structure: Structure,
    variables: PyTree,
    gates: Mapping[str, jax.Array],
    x: jax.Array,
    **apply_kwargs: Any,
) -> Any:
    """``structure.model.apply(variables, x, **apply_kwargs)`` with gated channels.

    Args:
      structure: the groups.
      variables: the model's variables.
      gates: ``{group: (width,) or (N, width) gates}`` for any subset of the groups; per-example
        gates need ``N == x.shape[0]``.
      x: (N, ...) input batch.
      **apply_kwargs: passed to ``apply`` (``train=``, ``mutable=``, ...).

    Returns:
      Whatever ``model.apply`` returns, with each gated site's output ``out[..., c]`` multiplied
      by ``gates[group][..., c]``.
    """
    table = _site_table(structure, gates)

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name != "__call__":
            return out
        entries = table.get(tuple(context.module.scope.path))
        if not entries:
            return out
        for name, size in entries:
            g = gates[name][..., :size].astype(out.dtype)
            if g.ndim == 2:  # (N, size) -> (N, 1, ..., 1, size)
                g = g.reshape((g.shape[0],) + (1,) * (out.ndim - 2) + (size,))
            else:  # (size,) -> (1, ..., 1, size)
                g = g.reshape((1,) * (out.ndim - 1) + (size,))
            out = out * g
        return out

    with nn.intercept_methods(interceptor):
        return structure.model.apply(variables, x, **apply_kwargs)
