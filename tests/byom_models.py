"""Networks that are not in the zoo, as a user brings them (tests of the model contract and of
``--model byom_models:ATTR``). MACs per example are worked out by hand beside each layer."""

from __future__ import annotations

import flax.linen as nn
from flax import nnx


class NNXConvBN(nnx.Module):
    """An NNX CNN with batch norm for 8x8x1 inputs."""

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), rngs=rngs)  # SAME: 8*8 positions * 3*3*1*4 = 2304
        self.bn1 = nnx.BatchNorm(4, rngs=rngs)
        self.conv2 = nnx.Conv(4, 6, (3, 3), strides=2, rngs=rngs)  # 4*4 * 3*3*4*6 = 3456
        self.head = nnx.Linear(4 * 4 * 6, num_classes, rngs=rngs)  # 96 * 10 = 960

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x)))
        x = nnx.relu(self.conv2(x))
        return self.head(x.reshape(x.shape[0], -1))


NNX_CONV_BN_MACS = {"conv1": 2304, "conv2": 3456, "head": 960}


class NNXMLP(nnx.Module):
    """An NNX MLP on flattened 8x8 inputs; its layers live in an ``nnx.List`` (keys "0", "1")."""

    def __init__(self, num_classes: int = 10, *, hidden: tuple[int, ...] = (16, 12),
                 rngs: nnx.Rngs):
        dims = (64, *hidden, num_classes)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                                for a, b in zip(dims[:-1], dims[1:], strict=True)])

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


NNX_MLP_MACS = {"0": 64 * 16, "1": 16 * 12, "2": 12 * 10}


class LinenMLP(nn.Module):
    """The Linen twin of :class:`NNXMLP` (same shapes; layers ``fc0``, ``fc1``, ``fc2``)."""

    num_classes: int = 10
    hidden: tuple[int, ...] = (16, 12)

    @nn.compact
    def __call__(self, x):  # no train argument at all
        x = x.reshape((x.shape[0], -1))
        for i, h in enumerate(self.hidden):
            x = nn.relu(nn.Dense(h, name=f"fc{i}")(x))
        return nn.Dense(self.num_classes, name=f"fc{len(self.hidden)}")(x)


class LinenDropout(nn.Module):
    """A Linen network with dropout switched by ``deterministic`` (the zoo uses ``train``)."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(16, name="fc1")(x))  # 64 * 16 = 1024
        x = nn.Dropout(0.25)(x, deterministic=deterministic)
        return nn.Dense(self.num_classes, name="out")(x)  # 16 * 10 = 160


def nnx_mlp_factory(num_classes: int = 10, *, rngs: nnx.Rngs) -> NNXMLP:
    """A function returning an NNX module (``--model byom_models:nnx_mlp_factory``)."""
    return NNXMLP(num_classes, hidden=(8,), rngs=rngs)


def linen_builder(num_classes: int = 10) -> LinenDropout:
    """A function returning a Linen module."""
    return LinenDropout(num_classes=num_classes)


not_a_model = 3


class LinenWideMLP(nn.Module):
    """A Linen MLP whose hidden widths are a field: channel pruning can rebuild it narrower."""

    num_classes: int = 10
    widths: tuple[int, ...] = (32, 16)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for i, w in enumerate(self.widths):
            x = nn.relu(nn.Dense(w, name=f"hidden{i}")(x))
        return nn.Dense(self.num_classes, name="head")(x)


def wide_mlp_structure(widths: tuple[int, ...] = (32, 16)):
    """The channel groups of :class:`LinenWideMLP`, declared by hand as a user would."""
    from jaxprune import structured as st

    groups = []
    names = [f"hidden{i}" for i in range(len(widths))] + ["head"]
    for i, w in enumerate(widths):
        layer, consumer = names[i], names[i + 1]
        groups.append(st.ChannelGroup(
            name=layer, width=w,
            slots=(st.Slot("params", (layer, "kernel"), -1, "out", w),
                   st.Slot("params", (layer, "bias"), 0, "out", w),
                   st.Slot("params", (consumer, "kernel"), -2, "in", w)),
            sites=(st.Site((layer,), w),),
            targets=(st.WidthTarget("widths", i, w),)))
    return st.Structure("byom_models:LinenWideMLP", {"num_classes": 10, "widths": tuple(widths)},
                        tuple(groups), False)
