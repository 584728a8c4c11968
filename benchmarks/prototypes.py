"""Speed-up prototypes measured by the benchmark; none of this changes the library's files.

1. ``keep_top_bisect``: an exact, sort-free replacement for ``jaxprune.masks._keep_top``.

   ``_keep_top`` ranks all N scores with a stable ``lax.sort`` of (dead, -score, index) and a
   scatter. XLA:CPU's sort is a comparison sort: 57-80 ms for LeNet-300-100's 266,610 scores on
   this machine, about 45x the SNIP gradient itself, and SynFlow pays it 100 times. The k-th
   largest score can instead be found by a bitwise binary search on the float32 bit patterns
   mapped to order-preserving uint32 keys: 32 passes of ``sum(key >= t)``, each a streaming
   compare-and-count, then a cumulative sum picks the lowest-index ties. The result is the
   same mask bit for bit (same tie-breaking, dead weights below live ones, NaN lowest,
   -0.0 == 0.0); ``fast_topk()`` swaps it in for the duration of a ``with`` block.

2. ``conv_wgrad_lowering``: a ``custom_vjp`` 3x3 convolution whose weight gradient is computed
   by hand (shifted slices + matmul) instead of XLA:CPU's own lowering, switched on per layer
   only for input channels >= ``min_channels`` (where it wins), injected into any Flax model with
   ``nn.intercept_methods``: see :func:`conv_wgrad_lowering`.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxprune import masks as _masks

# ---------------------------------------------------------------------------------------------
# 1. Sort-free exact top-k.
# ---------------------------------------------------------------------------------------------


def _order_keys(x: jax.Array) -> jax.Array:
    """float32 -> uint32 whose unsigned order is the float order; NaN -> 0 (lowest), -0.0 -> 0.0."""
    x = jnp.where(x == 0, jnp.zeros_like(x), x)  # -0.0 -> +0.0
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    sign = jnp.uint32(0x80000000)
    key = jnp.where((bits & sign) != 0, ~bits, bits | sign)
    return jnp.where(jnp.isnan(x), jnp.zeros_like(key), key)


def _select_top(key: jax.Array, eligible: jax.Array, k: jax.Array) -> jax.Array:
    """(n,) bool: the ``k`` largest keys among ``eligible``, ties to the lowest index.

    Bitwise binary search for ``t = max{t : #(eligible & key >= t) >= k}`` (the k-th largest key),
    32 counting passes; then all keys above ``t`` plus the first ``k - #(key > t)`` equal to ``t``.
    """

    def bit(i: jax.Array, t: jax.Array) -> jax.Array:
        cand = t | (jnp.uint32(1) << (jnp.uint32(31) - i.astype(jnp.uint32)))
        count = jnp.sum(eligible & (key >= cand), dtype=jnp.int32)
        return jnp.where(count >= k, cand, t)

    t = lax.fori_loop(0, 32, bit, jnp.uint32(0))
    above = eligible & (key > t)
    ties = eligible & (key == t)
    room = k - jnp.sum(above, dtype=jnp.int32)
    return above | (ties & (jnp.cumsum(ties, dtype=jnp.int32) <= room))


def keep_top_bisect(
    flat: jax.Array, n_keep: int | jax.Array, alive: jax.Array | None = None
) -> jax.Array:
    """Same contract and result as ``jaxprune.masks._keep_top``, without sorting (float32 only).

    Other dtypes fall back to ``_keep_top`` (the uint32 key trick is for 32-bit floats).
    """
    if flat.dtype != jnp.float32:
        return _ORIGINAL_KEEP_TOP(flat, n_keep, alive)
    key = _order_keys(flat)
    n_keep = jnp.asarray(n_keep, jnp.int32)
    if alive is None:
        return _select_top(key, jnp.ones(flat.shape, jnp.bool_), n_keep)
    n_alive = jnp.sum(alive, dtype=jnp.int32)
    live = _select_top(key, alive, jnp.minimum(n_keep, n_alive))
    # Dead weights rank below every live one: only reached when n_keep > n_alive (rare).
    return lax.cond(
        n_keep > n_alive,
        lambda: live | _select_top(key, ~alive, n_keep - n_alive),
        lambda: live,
    )


_ORIGINAL_KEEP_TOP = _masks._keep_top


_FAST_JITS: list = []


def _fast_jits(global_keep):
    """One pair of jits for the whole process, so re-entering the block never recompiles."""
    if not _FAST_JITS:
        # A copy of the Python function, not just a new jit of it: jax caches traces on the
        # function object, so jit(global_keep.__wrapped__) would reuse the sorting trace.
        f = global_keep.__wrapped__
        copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                                  f.__closure__)
        _FAST_JITS.extend([jax.jit(copy), jax.jit(keep_top_bisect)])
    return tuple(_FAST_JITS)


@contextlib.contextmanager
def fast_topk() -> Iterator[None]:
    """Use :func:`keep_top_bisect` inside jaxprune while tracing in this block.

    Functions traced inside the block keep the sort-free top-k in their compiled programs.
    ``masks._global_keep`` (a module-level ``jit``, cached by shape) is swapped for a ``jit`` of
    a copy of its function, so a trace made outside the block is never reused inside it (jax
    caches traces per Python function) or vice versa.
    """
    old = _masks._keep_top, _masks._global_keep, _masks._keep_top_compiled
    _masks._keep_top = keep_top_bisect
    _masks._global_keep, _masks._keep_top_compiled = _fast_jits(old[1])
    try:
        yield
    finally:
        _masks._keep_top, _masks._global_keep, _masks._keep_top_compiled = old


# ---------------------------------------------------------------------------------------------
# 2. Conv weight gradient by shifted slices + matmul.
# ---------------------------------------------------------------------------------------------

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, w: jax.Array, stride: int, pad: int) -> jax.Array:
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
        return _conv(x, w, stride, pad)

    def fwd(x, w):
        return _conv(x, w, stride, pad), (x, w)

    def bwd(res, g):
        x, w = res
        _, vjp_x = jax.vjp(lambda x_: _conv(x_, w, stride, pad), x)  # XLA's input gradient
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
