"""Parameter and multiply-accumulate (MAC) counting for any Flax Linen module, with masks.

Convention: one multiply-accumulate counts once (a "multiply-add"; some papers call it a FLOP,
others count it as 2 FLOPs). Only ``nn.Dense`` and ``nn.Conv`` (any spatial rank, grouped too)
are counted; bias additions, batch norm, activations, pooling and residual additions are not.
For a layer whose output has ``P`` positions per example (``prod(output.shape[1:-1])``, 1 for a
plain dense layer) and a kernel of ``K`` entries (``kh * kw * in / groups * out`` for a conv,
``in * out`` for a dense layer)::

  MACs = P * K

Zero padding counts as real input (the usual convention). With a mask, a layer's MACs are
``P * kept_kernel_entries`` = dense MACs x kernel density: the standard unstructured-sparsity count.
Li et al. (2017) report ResNet-56 as 1.25e8 and VGG-16 as 3.13e8 under this convention.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks import check_mask_tree

PyTree = Any


class LayerInfo(NamedTuple):
    """One call of a Dense or Conv layer, as seen by ``trace_layers``.

    Attributes:
      path: keys of the kernel inside ``variables['params']``, e.g. ``('stage1_block00', 'conv1',
        'kernel')``.
      kind: ``'dense'`` or ``'conv'``.
      kernel_shape: e.g. ``(3, 3, in // groups, out)`` for a 2-D conv, ``(in, out)`` for dense.
      input_shape: per-example input shape (batch axis dropped), e.g. ``(32, 32, 3)``.
      output_shape: per-example output shape.
      feature_group_count: conv groups (1 for dense layers).
      macs: multiply-accumulates per example, ``prod(output_shape[:-1]) * prod(kernel_shape)``.
    """

    path: tuple[str, ...]
    kind: str
    kernel_shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    feature_group_count: int
    macs: int


def trace_layers(
    module: nn.Module,
    variables: PyTree,
    x: jax.Array | jax.ShapeDtypeStruct,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> list[LayerInfo]:
    """Every ``nn.Dense``/``nn.Conv`` call of ``module.apply(variables, x)`` in execution order.

    Runs abstractly (``jax.eval_shape``), so ``variables`` and ``x`` may be ``ShapeDtypeStruct``s
    (e.g. from ``jax.eval_shape(model.init, ...)``) and big models cost no compute. A layer called
    twice appears twice.

    Args:
      module: any Flax Linen module whose input has a leading batch axis.
      variables: its variables (``{'params': ..., 'batch_stats': ...}``).
      x: a batch (N, ...); only its shape and dtype matter.
      apply_kwargs: keyword arguments for ``apply``; default ``{'train': False}``.

    Returns:
      A list of ``LayerInfo``, first call first.

    Example::

      layers = trace_layers(model, variables, jnp.zeros((1, 32, 32, 3)))
      first, last = layers[0].path, layers[-1].path  # e.g. the layers to keep dense
    """
    kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)
    batch = x.shape[0]
    layers: list[LayerInfo] = []

    def record(next_fun, args, kw, context):
        out = next_fun(*args, **kw)
        mod = context.module
        if context.method_name != "__call__" or not isinstance(mod, nn.Dense | nn.Conv):
            return out
        kernel = mod.get_variable("params", "kernel")
        positions = math.prod(out.shape[:-1]) // batch  # per example
        layers.append(
            LayerInfo(
                path=tuple(mod.scope.path) + ("kernel",),
                kind="dense" if isinstance(mod, nn.Dense) else "conv",
                kernel_shape=tuple(kernel.shape),
                input_shape=tuple(args[0].shape[1:]),
                output_shape=tuple(out.shape[1:]),
                feature_group_count=getattr(mod, "feature_group_count", 1),
                macs=positions * math.prod(kernel.shape),
            )
        )
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v, xx: module.apply(v, xx, **kwargs), variables, x)
    return layers


def _leaf(tree: PyTree, path: Sequence[str]) -> Any:
    return functools.reduce(lambda t, k: t[k], path, tree)


def count_macs(
    module: nn.Module,
    variables: PyTree,
    input_shape: Sequence[int],
    mask: PyTree | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Multiply-accumulates of one forward pass for one example (see the module docstring).

    Args:
      module: a Flax Linen module.
      variables: its variables (arrays or ``ShapeDtypeStruct``s).
      input_shape: per-example input shape, no batch axis, e.g. ``(32, 32, 3)``.
      mask: optional bool pytree mirroring ``variables['params']``; each layer's MACs are scaled
        by the kept fraction of its kernel (exactly: positions x kept kernel entries).
      apply_kwargs: as in ``trace_layers``.

    Returns:
      The MAC count (an int).
    """
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    layers = trace_layers(module, variables, x, apply_kwargs)
    if mask is None:
        return sum(layer.macs for layer in layers)
    check_mask_tree(variables["params"], mask)
    total = 0
    for layer in layers:
        kept = int(np.sum(np.asarray(_leaf(mask, layer.path))))
        total += layer.macs // math.prod(layer.kernel_shape) * kept
    return total


def count_params(params: PyTree, mask: PyTree | None = None) -> int:
    """Number of entries of ``params`` (pass ``variables['params']``), or kept entries of ``mask``.

    Args:
      params: a parameter pytree (arrays or ``ShapeDtypeStruct``s).
      mask: optional bool pytree mirroring ``params``.

    Returns:
      ``sum(leaf.size)``, or ``sum(mask_leaf.sum())`` when a mask is given.
    """
    if mask is None:
        return sum(math.prod(getattr(p, "shape", ())) for p in jax.tree.leaves(params))
    check_mask_tree(params, mask)
    return sum(int(np.sum(np.asarray(m))) for m in jax.tree.leaves(mask))


def summary_table(layers: Sequence[LayerInfo]) -> str:
    """A plain-text table of traced layers (path, kind, kernel, output, MACs) with a total row."""
    rows = [("layer", "kind", "kernel", "output", "MACs")]
    for layer in layers:
        rows.append(
            (
                "/".join(layer.path[:-1]),
                layer.kind,
                "x".join(map(str, layer.kernel_shape)),
                "x".join(map(str, layer.output_shape)),
                f"{layer.macs:,d}",
            )
        )
    rows.append(("total", "", "", "", f"{sum(layer.macs for layer in layers):,d}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < 4 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )
