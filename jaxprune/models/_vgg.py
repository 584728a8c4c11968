"""VGG-11/13/16/19 with batch norm for CIFAR (Li et al. 2017; Liu et al. 2017 / 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxprune.models._common import (
    batch_norm,
    kaiming_normal_fan_out,
    max_pool_2x2,
    resolve_widths,
)

# Convs per stage; a 2x2 max pool ends every stage. 32x32 inputs end at 1x1.
STAGE_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_STAGE_WIDTHS = (64, 128, 256, 512, 512)


def default_widths(depth: int) -> tuple[int, ...]:
    """The published conv widths of VGG-``depth`` in execution order."""
    return tuple(
        w for w, d in zip(_STAGE_WIDTHS, STAGE_DEPTHS[depth], strict=True) for _ in range(d)
    )


class VGG(nn.Module):
    """VGG with batch norm for 32x32 inputs: conv-BN-ReLU blocks, 5 max pools, small classifier.

    Layer names, in execution order: ``conv1 .. conv{K}`` (3x3, padding 1, no bias), each followed
    by ``conv{i}_bn``; then for each hidden classifier width ``fc{j}`` + ``fc{j}_bn`` + ReLU; then
    ``fc{J+1}`` logits. ``classifier_widths=(512,)`` is Li et al.'s "Pruning Filters" VGG as
    re-implemented in Rethinking the Value of Network Pruning (``l1-norm-pruning/models/vgg.py``);
    ``classifier_widths=()`` is Network Slimming's single linear classifier.

    Initialization follows those PyTorch references: conv kernels Kaiming-normal (fan_out, not
    truncated), conv batch-norm scales ``bn_scale_init`` (0.5 there), classifier BN scales 1,
    dense kernels normal(0, 0.01), all biases 0.

    Differences from that reference: it ends with 4 max pools and a 2x2 average pool; we use a fifth
    max pool (as the original Torch cifar.torch VGG that Li et al. started from). Parameter counts
    and conv FLOPs are identical. VGG-16 on CIFAR-10: 14,987,722 params (~1.5e7 in Li et al.),
    313,463,808 multiply-adds (3.13e8).

    Attributes:
      stage_depths: convs per stage (5 stages), see ``STAGE_DEPTHS``.
      widths: output width of every conv, in order (``sum(stage_depths)`` entries).
      classifier_widths: hidden widths of the classifier (each Dense-BN-ReLU).
      num_classes: number of logits.
      bn_scale_init: initial scale of the conv batch norms.
    """

    stage_depths: tuple[int, ...] = STAGE_DEPTHS[16]
    widths: tuple[int, ...] = default_widths(16)
    classifier_widths: tuple[int, ...] = (512,)
    num_classes: int = 10
    bn_scale_init: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits for a batch.

        Args:
          x: (N, H, W, C) images, H and W divisible by 32 (1x1 after the last pool for 32x32).
          train: use batch statistics and update ``batch_stats`` if True.

        Returns:
          (N, num_classes) logits.
        """
        if len(self.widths) != sum(self.stage_depths):
            raise ValueError(
                f"VGG needs one width per conv ({sum(self.stage_depths)}), got {len(self.widths)}"
            )
        dense_init = jax.nn.initializers.normal(0.01)
        i = 0
        for depth in self.stage_depths:
            for _ in range(depth):
                i += 1
                x = nn.Conv(
                    self.widths[i - 1],
                    (3, 3),
                    padding=((1, 1), (1, 1)),
                    use_bias=False,
                    kernel_init=kaiming_normal_fan_out,
                    name=f"conv{i}",
                )(x)
                x = nn.relu(batch_norm(train, f"conv{i}_bn", self.bn_scale_init)(x))
            x = max_pool_2x2(x)  # halves H and W
        x = x.reshape((x.shape[0], -1))  # (N, C) for 32x32 inputs
        for j, w in enumerate(self.classifier_widths):
            x = nn.Dense(w, kernel_init=dense_init, name=f"fc{j + 1}")(x)
            x = nn.relu(batch_norm(train, f"fc{j + 1}_bn")(x))
        out_name = f"fc{len(self.classifier_widths) + 1}"
        return nn.Dense(self.num_classes, kernel_init=dense_init, name=out_name)(x)


def vgg(
    depth: int,
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    classifier_widths: Sequence[int] = (512,),
    width_multiplier: float = 1.0,
    bn_scale_init: float = 0.5,
) -> VGG:
    """VGG-``depth`` (11, 13, 16 or 19) for CIFAR with batch norm.

    ``widths``: one per conv (default the published 64..512). ``classifier_widths``: hidden
    classifier widths, ``(512,)`` (Li et al.) or ``()`` (Network Slimming). ``width_multiplier``
    scales both.
    """
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"VGG depth must be one of {sorted(STAGE_DEPTHS)}, got {depth!r}")
    names = tuple(f"conv{i + 1}" for i in range(sum(STAGE_DEPTHS[depth])))
    w = resolve_widths("widths", widths, default_widths(depth), width_multiplier, names)
    cw = resolve_widths("classifier_widths", classifier_widths, (), width_multiplier)
    return VGG(
        stage_depths=STAGE_DEPTHS[depth],
        widths=w,
        classifier_widths=cw,
        num_classes=num_classes,
        bn_scale_init=bn_scale_init,
    )
