"""LeNet-5 (classic) and LeNet-5-Caffe (SNIP's "LeNet-5-Caffe")."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxprune.models._common import max_pool_2x2, resolve_widths


def _pool(x: jax.Array) -> jax.Array:
    return max_pool_2x2(x)


def _flatten(x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0], -1))  # (N, H*W*C), channel-minor (NHWC order)


class LeNet5(nn.Module):
    """Classic LeNet-5 with ReLU and max pooling (LeCun et al. 1998, modernized).

    ``conv1`` (5x5 'SAME') - ReLU - pool - ``conv2`` (5x5 'VALID') - ReLU - pool - ``fc1`` - ReLU -
    ``fc2`` - ReLU - ``fc3`` (logits). 61,706 parameters on 28x28x1. Flax default init.
    The flatten before ``fc1`` is in NHWC order (channel fastest), unlike PyTorch's NCHW.

    Attributes:
      widths: ``(conv1, conv2, fc1, fc2)`` output widths, default ``(6, 16, 120, 84)``.
      num_classes: number of logits.
    """

    widths: tuple[int, int, int, int] = (6, 16, 120, 84)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits (N, num_classes) for images x (N, H, W, C); ``train`` is unused."""
        del train
        c1, c2, f1, f2 = self.widths
        x = _pool(nn.relu(nn.Conv(c1, (5, 5), padding="SAME", name="conv1")(x)))  # (N, 14, 14, c1)
        x = _pool(nn.relu(nn.Conv(c2, (5, 5), padding="VALID", name="conv2")(x)))  # (N, 5, 5, c2)
        x = _flatten(x)
        x = nn.relu(nn.Dense(f1, name="fc1")(x))
        x = nn.relu(nn.Dense(f2, name="fc2")(x))
        return nn.Dense(self.num_classes, name="fc3")(x)


class LeNet5Caffe(nn.Module):
    """LeNet-5-Caffe as in SNIP (Lee et al. 2019): 431,080 parameters on 28x28x1.

    ``conv1`` (20@5x5 'VALID') - pool - ``conv2`` (50@5x5 'VALID') - pool - ``fc1`` (500) - ReLU -
    ``fc2`` (logits). Like Caffe's ``lenet.prototxt`` and SNIP's reference code
    (namhoonlee/snip-public ``network.py``), there is **no** nonlinearity after the convolutions;
    many PyTorch re-implementations add ReLUs there. Flax default init (LeCun-normal, which is
    SNIP's ``variance_scaling`` default). NHWC flatten order.

    Attributes:
      widths: ``(conv1, conv2, fc1)`` output widths, default ``(20, 50, 500)``.
      num_classes: number of logits.
    """

    widths: tuple[int, int, int] = (20, 50, 500)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Logits (N, num_classes) for images x (N, H, W, C); ``train`` is unused."""
        del train
        c1, c2, f1 = self.widths
        x = _pool(nn.Conv(c1, (5, 5), padding="VALID", name="conv1")(x))  # (N, 12, 12, c1)
        x = _pool(nn.Conv(c2, (5, 5), padding="VALID", name="conv2")(x))  # (N, 4, 4, c2)
        x = nn.relu(nn.Dense(f1, name="fc1")(_flatten(x)))
        return nn.Dense(self.num_classes, name="fc2")(x)


def lenet5(
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> LeNet5:
    """Classic LeNet-5; ``widths`` = ``(conv1, conv2, fc1, fc2)``, default ``(6, 16, 120, 84)``."""
    names = ("conv1", "conv2", "fc1", "fc2")
    w = resolve_widths("widths", widths, (6, 16, 120, 84), width_multiplier, names)
    return LeNet5(widths=w, num_classes=num_classes)


def lenet5_caffe(
    *,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    width_multiplier: float = 1.0,
) -> LeNet5Caffe:
    """LeNet-5-Caffe; ``widths`` = ``(conv1, conv2, fc1)``, default ``(20, 50, 500)``."""
    names = ("conv1", "conv2", "fc1")
    w = resolve_widths("widths", widths, (20, 50, 500), width_multiplier, names)
    return LeNet5Caffe(widths=w, num_classes=num_classes)
