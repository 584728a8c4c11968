"""Prototypes and reference variants measured by the benchmark; none changes the library's files.

1. ``sort_topk()``: the top-k jaxprune shipped first, kept as a reference row.

   ``masks.keep_top`` first ranked all N scores with a stable ``lax.sort`` of
   (dead, -score, index) and a scatter. XLA:CPU's sort is a comparison sort: 57-80 ms for
   LeNet-300-100's 266,610 scores on this machine, about 45x the SNIP gradient itself, and
   SynFlow paid it 100 times. A prototype of a bitwise binary search for the k-th largest key
   (now the library's ``keep_top``) gave the same masks 11-18x faster; the benchmark keeps the
   sorting version (``masks.keep_top_sort``) as a row so the gain stays measured.

2. ``lax_topk(k)``: ``jax.lax.top_k`` as the global top-k, a second reference row (XLA's own
   top-k). ``lax.top_k`` needs a static ``k`` (the library traces its keep counts), so the
   count is given to ``lax_topk(k)``, and it only replaces the one-shot global top-k (SNIP,
   GraSP), not SynFlow's rounds (one count per round). Ties: like ``keep_top``, the lower
   index first, but ``lax.top_k`` orders ``-0.0`` below ``+0.0`` and NaN above every number
   (``keep_top``: ``-0.0 == +0.0``, NaN lowest); see :func:`keep_top_lax`.

3. ``conv_wgrad_lowering``: a ``custom_vjp`` 3x3 convolution whose weight gradient is computed
   by hand (shifted slices + matmul) instead of XLA:CPU's own lowering, switched on per layer
   only for input channels >= ``min_channels`` (where it wins), injected into any Flax model with
   ``nn.intercept_methods``: see :func:`conv_wgrad_lowering`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxprune import masks as _masks

# ---------------------------------------------------------------------------------------------
# 1. The sorting top-k jaxprune shipped first (reference).
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sort_topk() -> Iterator[None]:
    """Trace jaxprune's top-k as the stable ``lax.sort`` it used before (the reference row).

    Functions traced inside the block keep the sorting top-k in their compiled programs
    (``masks.override_top_k(masks.keep_top_sort)``: the global and per-layer top-k and the
    iterative rounds; a trace made outside the block is never reused inside it or vice versa,
    and re-entering the block reuses the programs compiled in it before).
    """
    with _masks.override_top_k(_masks.keep_top_sort):
        yield


# ---------------------------------------------------------------------------------------------
# 2. jax.lax.top_k as the top-k.
# ---------------------------------------------------------------------------------------------


def keep_top_lax(flat: jax.Array, n_keep: int) -> jax.Array:
    """(n,) bool keeping the ``n_keep`` largest of ``flat`` by ``lax.top_k`` (``n_keep`` static).

    Same mask as ``masks.keep_top(flat, n_keep)`` except where ``lax.top_k``'s order differs:
    it ranks ``-0.0`` below ``+0.0`` (``keep_top``: equal, lower index first) and NaN above
    every number (``keep_top``: NaN lowest). Equal values otherwise: lower index first in both.
    """
    n = flat.shape[0]
    k = min(max(int(n_keep), 0), n)
    if k == 0:
        return jnp.zeros((n,), jnp.bool_)
    _, idx = lax.top_k(flat, k)
    return jnp.zeros((n,), jnp.bool_).at[idx].set(True)


def _global_keep_lax(n_keep: int):
    """The library's one-shot global selection (``global_keep_fn`` of
    ``masks.override_top_k``) by :func:`keep_top_lax` with a static keep count."""

    def global_keep(flat_leaves: list[jax.Array], traced_n_keep: jax.Array,
                    alive: list[jax.Array] | None = None) -> list[jax.Array]:
        # The library passes the count as a traced argument (one program for every sparsity);
        # lax.top_k needs it static, so the caller gives it. A concrete count must agree.
        if alive is not None:
            raise NotImplementedError("lax_topk(): one-shot top-k only (no live-weight mask)")
        if not isinstance(traced_n_keep, jax.core.Tracer) and int(traced_n_keep) != n_keep:
            raise ValueError(f"lax_topk({n_keep}) used where {int(traced_n_keep)} are kept")
        dtype = jnp.result_type(*flat_leaves)
        keep = keep_top_lax(jnp.concatenate([x.astype(dtype) for x in flat_leaves]), n_keep)
        out, start = [], 0
        for x in flat_leaves:
            out.append(keep[start : start + x.shape[0]])
            start += x.shape[0]
        return out

    return global_keep


@contextlib.contextmanager
def lax_topk(n_keep: int) -> Iterator[None]:
    """Trace jaxprune's one-shot global top-k as ``lax.top_k`` keeping ``n_keep`` (a reference
    row).

    Functions traced inside the block use :func:`keep_top_lax` for the global top-k of
    ``masks.mask_by_keep_counts`` (one-shot SNIP/GraSP pruning through ``pai.prune``).
    ``lax.top_k`` needs a static k while the library traces its keep counts, so the count is
    given here (``pai.budget(params, sparsity)``); the masks are compared with the library's by
    the benchmark, so a wrong count would show. Not for iterative rounds (a count per round).
    Give the traced function its own function object (jax caches traces per function).
    """
    with _masks.override_top_k(global_keep_fn=_global_keep_lax(int(n_keep))):
        yield


# ---------------------------------------------------------------------------------------------
# 3. Conv weight gradient by shifted slices + matmul.
# ---------------------------------------------------------------------------------------------

_DN = ("NHWC", "HWIO", "NHWC")


def xla_conv(x: jax.Array, w: jax.Array, stride: int, pad: int) -> jax.Array:
    """XLA's own convolution (NHWC input, HWIO kernel, ``pad`` on every side): the forward and
    input gradient :func:`make_conv` keeps, and the reference its weight gradients are checked
    against."""
    return lax.conv_general_dilated(
        x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=_DN
    )


def _wgrad_im2col(x: jax.Array, g: jax.Array, stride: int, pad: int, kh: int, kw: int):
    """dL/dw (kh, kw, C, O) = patches(x)^T @ g: one (kh*kw*C, N*Ho*Wo) x (N*Ho*Wo, O) matmul.

    x: (N, H, W, C) input, g: (N, Ho, Wo, O) output cotangent. Patches are built from kh*kw
    strided slices of the padded input (no gather, no conv_general_dilated_patches).
    """
    n, ho, wo, o = g.shape
    c = x.shape[-1]
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # (N, H+2p, W+2p, C)
    cols = [
        lax.slice(
            xp,
            (0, i, j, 0),
            (n, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
            (1, stride, stride, 1),
        )  # (N, Ho, Wo, C)
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.stack(cols, axis=3).reshape(n * ho * wo, kh * kw * c)  # (NHoWo, kh*kw*C)
    dw = lax.dot_general(patches, g.reshape(n * ho * wo, o), (((0,), (0,)), ((), ())))
    return dw.reshape(kh, kw, c, o)  # (kh*kw*C, O) -> (kh, kw, C, O)


def _wgrad_shifted(x: jax.Array, g: jax.Array, stride: int, pad: int, kh: int, kw: int):
    """dL/dw as kh*kw separate (C, N*Ho*Wo) x (N*Ho*Wo, O) matmuls of shifted slices."""
    n, ho, wo, o = g.shape
    c = x.shape[-1]
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    g2 = g.reshape(n * ho * wo, o)  # (NHoWo, O)
    rows = []
    for i in range(kh):
        for j in range(kw):
            s = lax.slice(
                xp,
                (0, i, j, 0),
                (n, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
                (1, stride, stride, 1),
            ).reshape(n * ho * wo, c)  # (NHoWo, C)
            rows.append(lax.dot_general(s, g2, (((0,), (0,)), ((), ()))))  # (C, O)
    return jnp.stack(rows).reshape(kh, kw, c, o)


WGRADS = {"im2col": _wgrad_im2col, "shifted": _wgrad_shifted}


def make_conv(stride: int, pad: int, wgrad: str = "im2col"):
    """``conv(x, w)`` (NHWC, HWIO) with the forward and input gradient of XLA and a hand-made
    weight gradient (``"im2col"`` or ``"shifted"``)."""
    wgrad_fn = WGRADS[wgrad]

    @jax.custom_vjp
    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return xla_conv(x, w, stride, pad)

    def fwd(x, w):
        return xla_conv(x, w, stride, pad), (x, w)

    def bwd(res, g):
        x, w = res
        _, vjp_x = jax.vjp(lambda x_: xla_conv(x_, w, stride, pad), x)  # XLA's input gradient
        (dx,) = vjp_x(g)
        return dx, wgrad_fn(x, g, stride, pad, w.shape[0], w.shape[1]).astype(w.dtype)

    conv.defvjp(fwd, bwd)
    return conv


def _explicit_pad(module: nn.Conv) -> int | None:
    """The symmetric padding of a 3x3 conv module, or None if it is something else."""
    p = module.padding
    if p == "SAME":
        return 1
    if isinstance(p, (tuple, list)) and len(p) == 2 and all(tuple(q) == (1, 1) for q in p):
        return 1
    return None


@contextlib.contextmanager
def conv_wgrad_lowering(min_channels: int = 64, wgrad: str = "im2col") -> Iterator[None]:
    """While tracing in this block, 3x3 ``nn.Conv`` layers with >= ``min_channels`` inputs use
    :func:`make_conv` (same forward and input gradient, hand-made weight gradient).

    Other layers (and any conv with groups, dilation or a different kernel) run unchanged.
    Numerics: the weight gradient sums in a different order (float tolerance, not bitwise).
    """

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if not (isinstance(m, nn.Conv) and context.method_name == "__call__"):
            return next_fun(*args, **kwargs)
        x = args[0]
        strides = m.strides if m.strides is not None else (1, 1)
        strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
        pad = _explicit_pad(m)
        ok = (
            tuple(m.kernel_size) == (3, 3)
            and strides[0] == strides[1]
            and pad is not None
            and m.feature_group_count == 1
            and m.kernel_dilation in (None, 1, (1, 1))
            and m.input_dilation in (None, 1, (1, 1))
            and x.ndim == 4
            and x.shape[-1] >= min_channels
        )
        if not ok:
            return next_fun(*args, **kwargs)
        kernel = m.get_variable("params", "kernel")
        if kernel is None:  # model.init: let flax create the parameters
            return next_fun(*args, **kwargs)
        y = make_conv(strides[0], pad, wgrad)(x, kernel.astype(x.dtype))
        if m.use_bias:
            y = y + m.get_variable("params", "bias")
        return y

    with nn.intercept_methods(interceptor):
        yield
