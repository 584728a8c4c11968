"""Wide residual networks WRN-d-k for CIFAR (Zagoruyko & Komodakis 2016)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprune.models._common import batch_norm, kaiming_normal_fan_out, resolve_widths


def _conv(features: int, size: int, stride: int, name: str) -> nn.Conv:
    pad = (size - 1) // 2  # explicit, PyTorch-aligned for stride 2
    return nn.Conv(
        features,
        (size, size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=kaiming_normal_fan_out,
        name=name,
    )


class WideBlock(nn.Module):
    """Pre-activation basic block (WRN): two 3x3 convs, batch norm and ReLU before each.

    ``preact_bn``-ReLU-``conv1``-``conv1_bn``-ReLU-``conv2``, plus the shortcut.

    The shortcut is the identity when shapes match, else a 1x1 conv ``shortcut`` applied to the
    pre-activated input (as in the reference code).

    Attributes:
      inner_width: output channels of ``conv1``.
      out_width: output channels of ``conv2`` (the residual stream).
      stride: stride of ``conv1`` and the shortcut.
    """

    inner_width: int
    out_width: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """(N, H, W, C) -> (N, H / stride, W / stride, out_width)."""
        a = nn.relu(batch_norm(train, "preact_bn")(x))
        y = _conv(self.inner_width, 3, self.stride, "conv1")(a)
        y = nn.relu(batch_norm(train, "conv1_bn")(y))
        y = _conv(self.out_width, 3, 1, "conv2")(y)
        if self.stride == 1 and x.shape[-1] == self.out_width:
            return y + x
        return y + _conv(self.out_width, 1, self.stride, "shortcut")(a)


class WideResNet(nn.Module):
    """WRN-(6n+4)-k: conv stem, 3 stages of n pre-activation blocks, BN-ReLU, pool, ``fc``.

    ``stem`` (3x3, 16), the stages, ``final_bn`` + ReLU, global average pool, ``fc`` logits.

    Blocks are ``stage{s}_block{b:02d}``; inside: ``preact_bn``, ``conv1``, ``conv1_bn``, ``conv2``
    and, where the shape changes, ``shortcut``. Stages 2 and 3 start with stride 2. No dropout.
    Initialization as the PyTorch reference (xternalz/WideResNet-pytorch): conv kernels
    Kaiming-normal fan_out (not truncated), BN scale 1 / bias 0; ``fc`` flax default.

    Attributes:
      blocks_per_stage: n = (depth - 4) / 6.
      stem_width: stem conv channels (16).
      stage_widths: residual channels of the stages, ``(16k, 32k, 64k)``.
      block_widths: inner width (``conv1`` output) of every block, ``3 * n`` entries.
      num_classes: number of logits.
    """

    blocks_per_stage: int = 4
    stem_width: int = 16
    stage_widths: tuple[int, int, int] = (160, 320, 640)
    block_widths: tuple[int, ...] = (160,) * 4 + (320,) * 4 + (640,) * 4
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits (N, num_classes) for images x (N, H, W, C); ``train`` switches batch norm."""
        n = self.blocks_per_stage
        if len(self.block_widths) != 3 * n:
            raise ValueError(f"block_widths needs 3 * {n} entries, got {len(self.block_widths)}")
        x = _conv(self.stem_width, 3, 1, "stem")(x)  # (N, 32, 32, 16)
        for s, width in enumerate(self.stage_widths):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                block = WideBlock(
                    self.block_widths[s * n + b], width, stride, name=f"stage{s + 1}_block{b:02d}"
                )
                x = block(x, train=train)
        x = nn.relu(batch_norm(train, "final_bn")(x))
        x = jnp.mean(x, axis=(1, 2))  # (N, 64k)
        return nn.Dense(self.num_classes, name="fc")(x)


def wrn(
    *,
    depth: int = 28,
    widen_factor: int = 10,
    num_classes: int = 10,
    stem_width: int = 16,
    stage_widths: Sequence[int] | None = None,
    block_widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> WideResNet:
    """WRN-``depth``-``widen_factor``.

    Args:
      depth: 6n + 4 (10, 16, 22, 28, 40, ...).
      widen_factor: k; default stage widths are ``(16k, 32k, 64k)``.
      num_classes: number of logits.
      stem_width: channels of the stem conv.
      stage_widths: override of the residual widths per stage.
      block_widths: inner width per block (``3n`` entries); default: its stage's width.
      width_multiplier: scales all widths, stem included (round, at least 1).

    Returns:
      An unbound ``WideResNet``. Published sizes: WRN-28-10 36.5M, WRN-16-8 11.0M, WRN-40-4 8.9M.
    """
    if not (isinstance(depth, int) and depth >= 10 and (depth - 4) % 6 == 0):
        raise ValueError(
            f"WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth!r}"
        )
    if not (isinstance(widen_factor, int) and widen_factor >= 1):
        raise ValueError(f"widen_factor must be a positive int, got {widen_factor!r}")
    n = (depth - 4) // 6
    k = widen_factor
    raw = resolve_widths(
        "stage_widths", stage_widths, (16 * k, 32 * k, 64 * k), 1.0, ("stage1", "stage2", "stage3")
    )
    block_names = tuple(f"stage{s + 1}_block{b:02d}" for s in range(3) for b in range(n))
    blocks = resolve_widths(
        "block_widths",
        block_widths,
        tuple(w for w in raw for _ in range(n)),
        width_multiplier,
        block_names,
    )
    (stem,) = resolve_widths("stem_width", (stem_width,), (), width_multiplier)
    return WideResNet(
        blocks_per_stage=n,
        stem_width=stem,
        stage_widths=resolve_widths("stage_widths", raw, (), width_multiplier),
        block_widths=blocks,
        num_classes=num_classes,
    )
