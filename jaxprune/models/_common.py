"""Shared pieces of the model zoo: width resolution, reference initializers, batch norm."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import flax.linen as nn
import jax

# PyTorch reference repos for CIFAR ResNets/VGGs/WRNs draw conv kernels from
# normal(0, sqrt(2 / (kh * kw * out_channels))): Kaiming-normal, fan_out, *not* truncated.
# jax computes fan_out of an (kh, kw, in, out) kernel as kh * kw * out, which matches.
kaiming_normal_fan_out = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def batch_norm(train: bool, name: str, scale_init: float = 1.0) -> nn.BatchNorm:
    """A BatchNorm with PyTorch's defaults (momentum 0.1 there = 0.9 here, epsilon 1e-5).

    Args:
      train: normalize with batch statistics and update ``batch_stats`` if True, else use the
        running averages.
      name: the submodule name (by convention ``<layer>_bn`` for the layer it normalizes).
      scale_init: constant initial value of the scale (gamma).

    Returns:
      An unbound ``nn.BatchNorm`` over the last axis.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        scale_init=jax.nn.initializers.constant(scale_init),
        name=name,
    )


def scale_width(width: int, multiplier: float) -> int:
    """``round(width * multiplier)`` (halves round up), at least 1."""
    return max(1, math.floor(width * multiplier + 0.5))


def resolve_widths(
    option: str,
    widths: Sequence[int] | None,
    default: Sequence[int],
    width_multiplier: float,
    layer_names: Sequence[str] | None = None,
) -> tuple[int, ...]:
    """Validate per-layer ``widths`` (``None`` takes ``default``) and scale them by a multiplier.

    Args:
      option: the option's name, for error messages (e.g. ``"widths"``).
      widths: user-given widths, one positive int per layer, or ``None``.
      default: the family's published widths.
      width_multiplier: positive factor applied to every width (rounded, at least 1).
      layer_names: if given, ``widths`` must have exactly one entry per name.

    Returns:
      The scaled widths as a tuple of ints.

    Raises:
      ValueError: wrong length, non-positive or non-integer widths, or a non-positive multiplier.
    """
    if not (isinstance(width_multiplier, int | float) and width_multiplier > 0):
        raise ValueError(f"width_multiplier must be a positive number, got {width_multiplier!r}")
    widths = tuple(default if widths is None else widths)
    if layer_names is not None and len(widths) != len(layer_names):
        raise ValueError(
            f"{option} needs {len(layer_names)} entries, one per layer "
            f"({', '.join(layer_names)}), got {len(widths)}: {widths}"
        )
    bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1]
    if bad:
        raise ValueError(f"{option} must be positive ints, got {widths}")
    return tuple(scale_width(int(w), width_multiplier) for w in widths)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 ('VALID'): (N, H, W, C) -> (N, H // 2, W // 2, C).

    Same values as ``flax.linen.max_pool(x, (2, 2), strides=(2, 2))``, but computed by a reshape
    and ``max``, so it keeps ``x``'s dtype: flax's version uses a Python ``-inf`` init value that
    stays float32, which breaks float64 runs (SynFlow scores in float64).
    """
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2, :]  # 'VALID': drop an odd last row/column
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))  # (N, H/2, W/2, C)
