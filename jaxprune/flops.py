"""Parameter and multiply-accumulate (MAC) counting for any model under the contract, with masks.

Convention: one multiply-accumulate counts once (a "multiply-add"; some papers call it a FLOP,
others count it as 2 FLOPs). Only dense layers and convolutions (any spatial rank, grouped too;
read off the traced program, see :func:`trace_layers`) are counted; bias additions, batch norm,
activations, pooling, residual additions and products of two activations (attention scores) are not.
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
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import contract
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
    model: Any,
    variables: PyTree,
    x: jax.Array | jax.ShapeDtypeStruct,
) -> list[LayerInfo]:
    """Every dense and convolution layer of ``model``'s eval-mode forward pass, in execution order.

    Read off the traced program (the jaxpr of ``model.apply(variables, x, train=False)``), so it
    works for any model under the contract (:mod:`jaxprune.contract`: Linen, NNX, a user's own):
    every ``dot_general`` and ``conv_general_dilated`` one of whose operands is a parameter leaf
    (through reshapes, transposes, casts and elementwise functions of that leaf alone, e.g. a
    weight mask or standardization) is a layer, named by that leaf's path. Runs abstractly, so
    ``variables`` and ``x`` may be ``ShapeDtypeStruct``s (e.g. from ``jax.eval_shape``) and big
    models cost no compute. A layer called twice appears twice; a layer inside a ``scan`` counts
    once per iteration. A parameter that reaches a control-flow primitive this reader does not
    follow (``while``, ``cond``) raises ``ValueError`` naming both, rather than miscounting.

    Args:
      model: a :class:`jaxprune.contract.Model`, or a Linen / NNX module (:func:`as_model`).
      variables: its variables (``{'params': ..., 'batch_stats': ...}``).
      x: a batch (N, ...); only its shape and dtype matter.

    Returns:
      A list of ``LayerInfo``, first call first.

    Example::

      layers = trace_layers(model, variables, jnp.zeros((1, 32, 32, 3)))
      first, last = layers[0].path, layers[-1].path  # e.g. the layers to keep dense
    """
    model = contract.as_model(model)
    flat, treedef = jax.tree_util.tree_flatten_with_path(variables["params"])
    paths = [tuple(_key_name(k) for k in p) for p, _ in flat]
    state = {k: v for k, v in variables.items() if k != "params"}
    abstract = lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))

    def forward(leaves, state, x):
        return model.apply({"params": jax.tree.unflatten(treedef, leaves), **state}, x,
                           train=False)[0]

    closed = jax.make_jaxpr(forward)([abstract(a) for _, a in flat],
                                     jax.tree.map(abstract, state), abstract(x))
    jaxpr = closed.jaxpr
    origin = dict(zip(jaxpr.invars[:len(paths)], paths, strict=True))
    shapes = {path: tuple(jnp.shape(a)) for path, (_, a) in zip(paths, flat, strict=True)}
    layers: list[LayerInfo] = []
    _walk(jaxpr, origin, set(jaxpr.invars[-1:]), shapes, int(x.shape[0]), 1, layers)
    return layers


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


#: Primitives whose output is their (single) parameter input re-laid out.
_RELAYOUT = {"reshape", "transpose", "squeeze", "expand_dims", "convert_element_type", "copy",
             "copy_p", "broadcast_in_dim", "reduce_precision", "rev"}
#: Call-like primitives whose sub-program is followed (inputs map onto its inputs).
_CALLS = {"pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
          "custom_vjp_call_jaxpr", "remat", "checkpoint", "custom_lin"}


def _sub(eqn: Any) -> Any:
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if name in eqn.params:
            j = eqn.params[name]
            return getattr(j, "jaxpr", j)
    return None


def _walk(jaxpr: Any, origin: dict, data: set, shapes: dict, batch: int, times: int,
          layers: list[LayerInfo]) -> None:
    """Record the layers of ``jaxpr`` in order; ``origin`` maps variables holding a parameter
    (re-laid out) to its path, ``data`` holds the variables computed from the input."""
    from jax.extend.core import Var

    src = lambda v: origin.get(v) if isinstance(v, Var) else None
    for eqn in jaxpr.eqns:
        prim = eqn.primitive.name
        ins = [src(v) for v in eqn.invars]
        from_data = [isinstance(v, Var) and v in data for v in eqn.invars]
        if any(from_data):
            data.update(eqn.outvars)
        if prim in ("dot_general", "conv_general_dilated"):
            weight = [i for i in (0, 1) if ins[i] is not None]
            if len(weight) == 1:
                layers.append(_layer(eqn, weight[0], ins[weight[0]], shapes, batch, times))
            continue
        if not any(ins):
            continue
        sub = _sub(eqn)
        if prim in _CALLS and sub is not None:
            inner = dict(zip(sub.invars, ins, strict=False))
            inner = {v: p for v, p in inner.items() if p is not None}
            inner_data = {v for v, d in zip(sub.invars, from_data, strict=False) if d}
            _walk(sub, inner, inner_data, shapes, batch, times, layers)
            for out, inner_out in zip(eqn.outvars, sub.outvars, strict=True):
                if isinstance(inner_out, Var) and inner_out in inner:
                    origin[out] = inner[inner_out]
            continue
        if prim == "scan" and sub is not None:
            n_consts = eqn.params["num_consts"]
            if any(ins[n_consts:]):
                path = next(p for p in ins[n_consts:] if p)
                raise ValueError(f"cannot count MACs: parameter {'/'.join(path)} is carried or "
                                 "scanned over by a scan (stacked layers); count this model's "
                                 "layers by hand")
            inner = {v: p for v, p in zip(sub.invars, ins, strict=False) if p is not None}
            inner_data = {v for v, d in zip(sub.invars, from_data, strict=False) if d}
            _walk(sub, inner, inner_data, shapes, batch, times * int(eqn.params["length"]),
                  layers)
            continue
        if _sub(eqn) is not None or any(k in eqn.params for k in ("branches", "body_jaxpr")):
            path = next(p for p in ins if p)
            raise ValueError(f"cannot count MACs: parameter {'/'.join(path)} enters a {prim!r} "
                             "primitive, which this reader does not follow; count this model's "
                             "layers by hand")
        named = [p for p in ins if p]
        if len(eqn.outvars) == 1 and len(set(named)) == 1 and not any(from_data) and (
                prim in _RELAYOUT or tuple(eqn.outvars[0].aval.shape) == tuple(
                    eqn.invars[ins.index(named[0])].aval.shape)):
            origin[eqn.outvars[0]] = named[0]


def _layer(eqn: Any, w: int, path: tuple[str, ...], shapes: dict, batch: int, times: int
           ) -> LayerInfo:
    lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
    out = tuple(eqn.outvars[0].aval.shape)
    weight, data = (rhs, lhs) if w == 1 else (lhs, rhs)
    if eqn.primitive.name == "conv_general_dilated":
        dn = eqn.params["dimension_numbers"]
        rhs_spec = dn.rhs_spec  # (out features, in features, *spatial)
        per_output = math.prod(rhs[d] for d in rhs_spec[1:])
        kind, groups = "conv", int(eqn.params["feature_group_count"])
    else:
        (lc, rc), _ = eqn.params["dimension_numbers"]
        per_output = math.prod(weight[d] for d in (rc if w == 1 else lc))
        kind, groups = "dense", 1
    return LayerInfo(
        path=path,
        kind=kind,
        kernel_shape=shapes[path],
        input_shape=tuple(data[1:]),
        output_shape=out[1:],
        feature_group_count=groups,
        macs=times * (math.prod(out) // batch) * per_output,
    )


def _leaf(tree: PyTree, path: Sequence[str]) -> Any:
    return functools.reduce(lambda t, k: t[k], path, tree)


def count_macs(
    module: Any,
    variables: PyTree,
    input_shape: Sequence[int],
    mask: PyTree | None = None,
) -> int:
    """Multiply-accumulates of one forward pass for one example (see the module docstring).

    Args:
      module: a model under the contract, or a Linen or NNX module (:func:`trace_layers`).
      variables: its variables (arrays or ``ShapeDtypeStruct``s).
      input_shape: per-example input shape, no batch axis, e.g. ``(32, 32, 3)``.
      mask: optional bool pytree mirroring ``variables['params']``; each layer's MACs are scaled
        by the kept fraction of its kernel (exactly: positions x kept kernel entries).

    Returns:
      The MAC count (an int).
    """
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    layers = trace_layers(module, variables, x)
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
