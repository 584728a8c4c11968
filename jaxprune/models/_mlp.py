"""Fully connected ReLU networks: LeNet-300-100 and the SynFlow repo's ``fc`` (6 x 100)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxprune.models._common import resolve_widths


class MLP(nn.Module):
    """ReLU multilayer perceptron on flattened inputs.

    Layers are ``fc1 .. fc{L}`` in order; ``fc{L}`` (``L = len(widths) + 1``) outputs logits.
    Flax default initialization (LeCun-normal kernels, zero biases), which is also SNIP's
    ``variance_scaling`` default.

    Attributes:
      widths: output width of each hidden layer, e.g. ``(300, 100)``.
      num_classes: number of logits.
    """

    widths: tuple[int, ...] = (300, 100)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits for a batch.

        Args:
          x: (N, ...) inputs; everything after the batch axis is flattened.
          train: unused (no batch norm or dropout); accepted for a uniform signature.

        Returns:
          (N, num_classes) logits.
        """
        del train
        x = x.reshape((x.shape[0], -1))  # (N, D)
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.Dense(width, name=f"fc{i + 1}")(x))  # (N, width)
        return nn.Dense(self.num_classes, name=f"fc{len(self.widths) + 1}")(x)


def lenet_300_100(
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> MLP:
    """LeNet-300-100 (LeCun et al. 1998; the LTH/SNIP MNIST MLP): 784-300-100-classes, ReLU.

    266,610 parameters on MNIST. ``widths`` (default ``(300, 100)``) may have any length: it
    sets the number of hidden layers too.
    """
    return MLP(
        widths=resolve_widths("widths", widths, (300, 100), width_multiplier),
        num_classes=num_classes,
    )


def mlp_6x100(
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> MLP:
    """SynFlow's ``fc`` model (Tanaka et al. 2020, L=6, N=100): in-100-100-100-100-100-classes.

    119,910 parameters on MNIST. ``widths`` defaults to ``(100,) * 5`` and may have any length.
    """
    return MLP(
        widths=resolve_widths("widths", widths, (100,) * 5, width_multiplier),
        num_classes=num_classes,
    )
