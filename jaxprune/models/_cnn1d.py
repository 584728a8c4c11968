"""The MNIST-1D paper's small 1-D CNN (Greydanus 2020, mnist1d ``ConvBase``)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxprune.models._common import resolve_widths


class CNN1D(nn.Module):
    """Three strided 1-D convs with ReLU, flatten, ``fc``: the MNIST-1D ``ConvBase``.

    ``conv1`` (k5 s2 p1) - ReLU - ``conv2`` (k3 s2 p1) - ReLU - ``conv3`` (k3 s2 p1) - ReLU -
    flatten - ``fc``.

    With the defaults and 40-long inputs the lengths go 40 -> 19 -> 10 -> 5, so ``fc`` sees
    5 * 25 = 125 features; 5,210 parameters for 10 classes. Padding is explicit ``((1, 1),)`` to
    match PyTorch. The flatten is in NLC order (channel fastest), unlike PyTorch's NCL; only
    matters when porting ``fc`` weights. Flax default init.

    Attributes:
      widths: channels of ``conv1``, ``conv2``, ``conv3``, default ``(25, 25, 25)``.
      num_classes: number of logits.
    """

    widths: tuple[int, int, int] = (25, 25, 25)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits for a batch.

        Args:
          x: (N, L, C) sequences, or (N, L) which is read as one channel.
          train: unused.

        Returns:
          (N, num_classes) logits.
        """
        del train
        if x.ndim == 2:
            x = x[..., None]  # (N, L, 1)
        kernels = (5, 3, 3)
        for i, (w, k) in enumerate(zip(self.widths, kernels, strict=True)):
            x = nn.relu(nn.Conv(w, (k,), strides=(2,), padding=((1, 1),), name=f"conv{i + 1}")(x))
        x = x.reshape((x.shape[0], -1))  # (N, L' * C)
        return nn.Dense(self.num_classes, name="fc")(x)


def cnn1d_mnist1d(
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> CNN1D:
    """MNIST-1D ``ConvBase``; ``widths`` = ``(conv1, conv2, conv3)`` channels, default 25 each."""
    w = resolve_widths(
        "widths", widths, (25, 25, 25), width_multiplier, ("conv1", "conv2", "conv3")
    )
    return CNN1D(widths=w, num_classes=num_classes)
