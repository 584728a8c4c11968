"""CIFAR ResNets (He et al. 2016, Section 4.2): ResNet-20/32/44/56/110, option A or B shortcuts."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprune.models._common import batch_norm, kaiming_normal_fan_out, resolve_widths

SHORTCUTS = ("A", "B")


def _conv3x3(features: int, stride: int, name: str) -> nn.Conv:
    # Explicit padding 1 (not 'SAME') so stride-2 convs align with PyTorch's.
    return nn.Conv(
        features,
        (3, 3),
        strides=(stride, stride),
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=kaiming_normal_fan_out,
        name=name,
    )


def shortcut_a(x: jax.Array, stride: int, out_width: int) -> jax.Array:
    """Parameter-free option-A shortcut: strided subsample, then zero channels appended at the end.

    Args:
      x: (N, H, W, C) block input.
      stride: spatial stride (1 or 2).
      out_width: output channels, at least C.

    Returns:
      (N, H // stride, W // stride, out_width), where channel c < C is input channel c.
    """
    x = x[:, ::stride, ::stride, :]  # (N, H/s, W/s, C)
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, out_width - x.shape[-1])))


class BasicBlock(nn.Module):
    """Post-activation basic block (He et al. 2016): two 3x3 convs with BN, plus a shortcut.

    ``conv1``-``conv1_bn``-ReLU-``conv2``-``conv2_bn``, add the shortcut, ReLU.

    The shortcut is the identity when the shape is kept; otherwise option 'A' (``shortcut_a``) or
    option 'B' (``shortcut`` 1x1 conv + ``shortcut_bn``).

    Attributes:
      inner_width: output channels of ``conv1``.
      out_width: output channels of ``conv2`` (the residual stream).
      stride: stride of ``conv1`` and of the shortcut.
      shortcut: 'A' or 'B'.
    """

    inner_width: int
    out_width: int
    stride: int = 1
    shortcut: str = "A"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """(N, H, W, C) -> (N, H / stride, W / stride, out_width)."""
        y = _conv3x3(self.inner_width, self.stride, "conv1")(x)
        y = nn.relu(batch_norm(train, "conv1_bn")(y))
        y = _conv3x3(self.out_width, 1, "conv2")(y)
        y = batch_norm(train, "conv2_bn")(y)
        if self.stride == 1 and x.shape[-1] == self.out_width:
            s = x
        elif self.shortcut == "A":
            if self.out_width < x.shape[-1]:
                raise ValueError(
                    f"option-A shortcut cannot shrink channels ({x.shape[-1]} -> "
                    f"{self.out_width}): zero padding only widens. Use shortcut='B' or "
                    "stage widths that do not decrease from one stage to the next."
                )
            s = shortcut_a(x, self.stride, self.out_width)
        else:
            s = nn.Conv(
                self.out_width,
                (1, 1),
                strides=(self.stride, self.stride),
                use_bias=False,
                kernel_init=kaiming_normal_fan_out,
                name="shortcut",
            )(x)
            s = batch_norm(train, "shortcut_bn")(s)
        return nn.relu(y + s)


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2): conv stem, 3 stages of n basic blocks, global average pool, ``fc``.

    ``stem`` (3x3) + ``stem_bn`` + ReLU, then the stages, then pooling and the ``fc`` logits.

    Blocks are named ``stage{s}_block{b:02d}`` (s = 1..3, b = 0..n-1); inside each: ``conv1``,
    ``conv1_bn``, ``conv2``, ``conv2_bn`` and, for option B where the shape changes, ``shortcut``,
    ``shortcut_bn``. Stages 2 and 3 start with stride 2. The stem's width is ``stage_widths[0]``.

    Option A zero-pads new channels *after* the existing ones (as Li et al.'s / Rethinking's
    ``downsample_basic_block``; akamaster's popular version pads both sides instead) and subsamples
    with stride 2 (Rethinking averages 2x2 instead; He et al. describe the strided identity). A
    stage narrower than its input raises a ``ValueError`` under option A.

    Initialization as in the PyTorch references: conv kernels Kaiming-normal (fan_out, not
    truncated), BN scale 1 and bias 0; the ``fc`` layer uses flax's default (LeCun normal, zero
    bias) instead of PyTorch's uniform default.

    Attributes:
      blocks_per_stage: n (ResNet-20: 3, -32: 5, -44: 7, -56: 9, -110: 18).
      stage_widths: residual-stream channels of the 3 stages (coupled within a stage).
      block_widths: inner width (``conv1`` output) of every block, ``3 * n`` entries in order.
      shortcut: 'A' (parameter-free) or 'B' (1x1 conv + BN projection).
      num_classes: number of logits.
    """

    blocks_per_stage: int = 3
    stage_widths: tuple[int, int, int] = (16, 32, 64)
    block_widths: tuple[int, ...] = (16,) * 3 + (32,) * 3 + (64,) * 3
    shortcut: str = "A"
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits for a batch.

        Args:
          x: (N, H, W, C) images (32x32x3 for CIFAR).
          train: use batch statistics and update ``batch_stats`` if True.

        Returns:
          (N, num_classes) logits.
        """
        n = self.blocks_per_stage
        if len(self.block_widths) != 3 * n:
            raise ValueError(f"block_widths needs 3 * {n} entries, got {len(self.block_widths)}")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {self.shortcut!r}")
        x = _conv3x3(self.stage_widths[0], 1, "stem")(x)
        x = nn.relu(batch_norm(train, "stem_bn")(x))  # (N, 32, 32, w1)
        for s, width in enumerate(self.stage_widths):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                block = BasicBlock(
                    self.block_widths[s * n + b],
                    width,
                    stride,
                    self.shortcut,
                    name=f"stage{s + 1}_block{b:02d}",
                )
                x = block(x, train=train)
        x = jnp.mean(x, axis=(1, 2))  # (N, w3) global average pool
        return nn.Dense(self.num_classes, name="fc")(x)


def resnet(
    depth: int,
    *,
    num_classes: int = 10,
    shortcut: str = "A",
    stage_widths: Sequence[int] | None = None,
    block_widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> ResNet:
    """CIFAR ResNet-``depth`` (depth = 6n + 2).

    Args:
      depth: 20, 32, 44, 56, 110, or any 6n + 2.
      num_classes: number of logits.
      shortcut: 'A' or 'B'.
      stage_widths: residual channels per stage, default ``(16, 32, 64)``.
      block_widths: inner width of each of the ``3n`` blocks; default: its stage's width (after
        any ``stage_widths`` override).
      width_multiplier: scales all widths (round, at least 1).

    Returns:
      An unbound ``ResNet``.
    """
    if not (isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0):
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth!r}"
        )
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    n = (depth - 2) // 6
    raw_stages = resolve_widths(
        "stage_widths", stage_widths, (16, 32, 64), 1.0, ("stage1", "stage2", "stage3")
    )
    block_names = tuple(f"stage{s + 1}_block{b:02d}" for s in range(3) for b in range(n))
    default_blocks = tuple(w for w in raw_stages for _ in range(n))
    blocks = resolve_widths(
        "block_widths", block_widths, default_blocks, width_multiplier, block_names
    )
    stages = resolve_widths("stage_widths", raw_stages, (), width_multiplier)
    if shortcut == "A" and any(b < a for a, b in zip(stages, stages[1:], strict=False)):
        raise ValueError(
            f"option-A shortcuts cannot shrink channels, but stage_widths {stages} decrease; "
            "use shortcut='B' or non-decreasing stage widths"
        )
    return ResNet(
        blocks_per_stage=n,
        stage_widths=stages,
        block_widths=blocks,
        shortcut=shortcut,
        num_classes=num_classes,
    )
