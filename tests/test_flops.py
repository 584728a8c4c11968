"""MAC and parameter counting: hand-computed small nets, masks, execution order, published FLOPs."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import flops, models
from jaxprune.masks import ones_like

KEY = jax.random.key(0)


class TinyDense(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
        x = nn.relu(nn.Dense(5, name="a")(x))  # 4 * 5 = 20 MACs
        return nn.Dense(3, name="b")(x)  # 5 * 3 = 15 MACs


class TinyConv(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):  # x: (N, 9, 9, 2)
        x = nn.Conv(4, (3, 3), strides=(2, 2), padding="SAME", name="strided")(x)  # (N, 5, 5, 4)
        x = nn.Conv(6, (3, 3), padding="VALID", name="valid")(x)  # (N, 3, 3, 6)
        x = nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=3, name="grouped")(x)
        x = x.reshape((x.shape[0], -1))  # (N, 54)
        return nn.Dense(2, name="head")(x)


# Hand-computed: positions * kh * kw * (in / groups) * out, and in * out for dense.
TINY_CONV_MACS = {
    "strided": 5 * 5 * 3 * 3 * 2 * 4,  # 1800; SAME with stride 2: ceil(9 / 2) = 5
    "valid": 3 * 3 * 3 * 3 * 4 * 6,  # 1944
    "grouped": 3 * 3 * 3 * 3 * (6 // 3) * 6,  # 972
    "head": 54 * 2,  # 108
}


class TinyConv1D(nn.Module):
    @nn.compact
    def __call__(self, x):  # no `train` argument; x: (N, 10, 2)
        x = nn.Conv(6, (3,), strides=(2,), padding=((1, 1),), name="c1")(x)  # L = (10+2-3)//2+1 = 5
        return nn.Conv(4, (3,), kernel_dilation=(2,), padding="VALID", name="c2")(x)  # L = 5-4 = 1


class Shared(nn.Module):
    def setup(self):
        self.layer = nn.Dense(4)

    def __call__(self, x, *, train=False):
        return self.layer(nn.relu(self.layer(x)))  # 4 -> 4 twice


def variables_of(module, shape):
    """Abstract variables: counting needs shapes only, and skipping init skips compiles."""
    return jax.eval_shape(module.init, KEY, jax.ShapeDtypeStruct((1, *shape), jnp.float32))


def test_dense_macs_by_hand():
    m = TinyDense()
    v = variables_of(m, (4,))
    layers = flops.trace_layers(m, v, jnp.zeros((3, 4)))
    assert [(layer.path, layer.kind, layer.macs) for layer in layers] == [
        (("a", "kernel"), "dense", 20),
        (("b", "kernel"), "dense", 15),
    ]
    assert layers[0].input_shape == (4,) and layers[0].output_shape == (5,)
    assert flops.count_macs(m, v, (4,)) == 35


def test_conv_macs_by_hand_with_stride_padding_groups():
    m = TinyConv()
    v = variables_of(m, (9, 9, 2))
    layers = flops.trace_layers(m, v, jnp.zeros((2, 9, 9, 2)))
    assert {layer.path[0]: layer.macs for layer in layers} == TINY_CONV_MACS
    grouped = layers[2]
    assert grouped.feature_group_count == 3 and grouped.kernel_shape == (3, 3, 2, 6)
    assert layers[0].output_shape == (5, 5, 4) and layers[1].input_shape == (5, 5, 4)
    assert flops.count_macs(m, v, (9, 9, 2)) == sum(TINY_CONV_MACS.values())


def test_conv1d_macs_and_modules_without_train_argument():
    m = TinyConv1D()
    v = variables_of(m, (10, 2))
    layers = flops.trace_layers(m, v, jnp.zeros((1, 10, 2)))
    assert [layer.output_shape for layer in layers] == [(5, 6), (1, 4)]
    assert [layer.macs for layer in layers] == [5 * 3 * 2 * 6, 1 * 3 * 6 * 4]


def test_layer_called_twice_is_counted_twice():
    m = Shared()
    v = variables_of(m, (4,))
    layers = flops.trace_layers(m, v, jnp.zeros((1, 4)))
    assert [layer.path for layer in layers] == [("layer", "kernel")] * 2
    assert flops.count_macs(m, v, (4,)) == 2 * 16


def test_mask_scales_each_layer_by_its_kernel_density():
    m = TinyConv()
    v = variables_of(m, (9, 9, 2))
    mask = ones_like(v["params"])
    assert flops.count_macs(m, v, (9, 9, 2), mask=mask) == sum(TINY_CONV_MACS.values())
    rng = np.random.default_rng(0)
    mask = jax.tree.map(lambda p: jnp.asarray(rng.random(p.shape) < 0.3), v["params"])
    want = 0.0
    for name, macs in TINY_CONV_MACS.items():
        kernel_mask = np.asarray(mask[name]["kernel"])
        want += macs * kernel_mask.mean()  # dense MACs x density (biases do not count)
    assert flops.count_macs(m, v, (9, 9, 2), mask=mask) == pytest.approx(want, rel=1e-9)
    kept = sum(int(np.sum(leaf)) for leaf in jax.tree.leaves(mask))
    assert flops.count_params(v["params"], mask) == kept


def test_count_params_and_mask_mismatch_error():
    m = TinyDense()
    params = variables_of(m, (4,))["params"]
    assert flops.count_params(params) == (4 * 5 + 5) + (5 * 3 + 3)
    concrete = jax.tree.map(jnp.zeros_like, params)
    assert flops.count_params(concrete) == 43
    bad = {"a": ones_like(params["a"])}
    with pytest.raises(ValueError, match="mask tree does not match"):
        flops.count_params(params, bad)
    with pytest.raises(ValueError, match="mask tree does not match"):
        flops.count_macs(m, {"params": params}, (4,), mask=bad)


def test_layer_info_is_immutable():
    m = TinyDense()
    info = flops.trace_layers(m, variables_of(m, (4,)), jnp.zeros((1, 4)))[0]
    with pytest.raises(AttributeError):
        info.macs = 0


def abstract_variables(name, **opts):
    model = models.get(name, **opts)
    x = jax.ShapeDtypeStruct((1, *models.default_input_shape(name)), jnp.float32)
    return model, jax.eval_shape(model.init, KEY, x)


def test_resnet_layers_come_in_execution_order_not_alphabetical():
    model, v = abstract_variables("resnet20", shortcut="B")
    paths = [layer.path for layer in flops.trace_layers(model, v, jnp.zeros((2, 32, 32, 3)))]
    want = [("stem", "kernel")]
    for s in (1, 2, 3):
        for b in range(3):
            block = f"stage{s}_block{b:02d}"
            want += [(block, "conv1", "kernel"), (block, "conv2", "kernel")]
            if s > 1 and b == 0:
                want.append((block, "shortcut", "kernel"))
    want.append(("fc", "kernel"))
    assert paths == want
    assert sorted(paths)[0] == ("fc", "kernel") != paths[0]  # alphabetical order would mislead


def resnet_macs(depth: int) -> int:
    """Conv + fc MACs of a CIFAR ResNet with option A, from the layer table."""
    n = (depth - 2) // 6
    total = 32 * 32 * 9 * 3 * 16
    c, side = 16, 32
    for s, w in enumerate((16, 32, 64)):
        for b in range(n):
            if s > 0 and b == 0:
                side //= 2
            total += side * side * 9 * (c * w + w * w)
            c = w
    return total + 64 * 10


def test_resnet56_macs_match_li_et_al():
    model, v = abstract_variables("resnet56")
    macs = flops.count_macs(model, v, (32, 32, 3))
    assert macs == resnet_macs(56)
    assert macs == pytest.approx(1.25e8, rel=0.01)  # Li et al. 2017, Table 1


def test_vgg16_macs_match_li_et_al():
    model, v = abstract_variables("vgg16")
    cfg = [(32, 3, 64), (32, 64, 64), (16, 64, 128), (16, 128, 128), (8, 128, 256)]
    cfg += [(8, 256, 256)] * 2 + [(4, 256, 512)] + [(4, 512, 512)] * 2 + [(2, 512, 512)] * 3
    want = sum(side * side * 9 * i * o for side, i, o in cfg) + 512 * 512 + 512 * 10
    macs = flops.count_macs(model, v, (32, 32, 3))
    assert macs == want
    assert macs == pytest.approx(3.13e8, rel=0.01)  # Li et al. 2017, Table 1


def test_macs_are_per_example_and_summary_lists_every_layer():
    model, v = abstract_variables("cnn1d_mnist1d")
    one = flops.trace_layers(model, v, jnp.zeros((1, 40, 1)))
    many = flops.trace_layers(model, v, jnp.zeros((5, 40, 1)))
    assert one == many
    assert [layer.output_shape for layer in one] == [(19, 25), (10, 25), (5, 25), (10,)]
    table = flops.summary_table(one)
    assert all(layer.path[0] in table for layer in one)
    assert f"{sum(layer.macs for layer in one):,d}" in table.splitlines()[-1]
