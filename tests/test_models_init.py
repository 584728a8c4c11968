"""Reference initializations (``models.get(name, init=...)``): every scheme's draws against the
formulas of its source, per layer kind, with fans computed the way PyTorch computes them."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxprune import models

KEY = jax.random.key(0, impl="rbg")  # compiles faster on CPU; same distributions


def torch_fans(flax_kernel_shape):
    """PyTorch's ``_calculate_fan_in_and_fan_out`` on the weight the same layer has in PyTorch:
    Linear ``(out, in)``, Conv ``(out, in, *window)``; written from its definition."""
    *window, cin, cout = flax_kernel_shape
    torch_shape = (cout, cin, *window)
    receptive = math.prod(torch_shape[2:]) if len(torch_shape) > 2 else 1
    return torch_shape[1] * receptive, torch_shape[0] * receptive


# The rule of each (scheme, family): per kind, ("uniform", bound(fan_in, fan_out)),
# ("normal", std(fan_in, fan_out)) or ("const", value). Written from the reference code, not
# from jaxprune/models/_init.py.
TORCH = {
    "conv_kernel": ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
    "conv_bias": ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
    "dense_kernel": ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
    "dense_bias": ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
    "bn2d_scale": ("const", 1.0), "bn1d_scale": ("const", 1.0), "bn_bias": ("const", 0.0),
}
HE_IN = {  # Synaptic-Flow lottery_vgg / lottery_resnet: kaiming_normal_ (fan_in, ReLU), bias 0
    "conv_kernel": ("normal", lambda fi, fo: math.sqrt(2 / fi)),
    "conv_bias": ("const", 0.0),
    "dense_kernel": ("normal", lambda fi, fo: math.sqrt(2 / fi)),
    "dense_bias": ("const", 0.0),
    "bn2d_scale": ("const", 1.0), "bn1d_scale": ("const", 1.0), "bn_bias": ("const", 0.0),
}
SLIM_VGG = {  # n = k*k*out_channels; BatchNorm2d 0.5; BatchNorm1d left at PyTorch's 1
    "conv_kernel": ("normal", lambda fi, fo: math.sqrt(2 / fo)),
    "conv_bias": ("const", 0.0),
    "dense_kernel": ("normal", lambda fi, fo: 0.01),
    "dense_bias": ("const", 0.0),
    "bn2d_scale": ("const", 0.5), "bn1d_scale": ("const", 1.0), "bn_bias": ("const", 0.0),
}
RESNET = {**TORCH, "conv_kernel": ("normal", lambda fi, fo: math.sqrt(2 / fo))}
WRN = {**RESNET, "dense_bias": ("const", 0.0)}

CASES = [  # (model, options, scheme, expected rule)
    ("mlp_6x100", {}, "torch", TORCH),
    ("mlp_6x100", {}, "synflow", TORCH),  # Synaptic-Flow's fc keeps PyTorch's defaults
    ("lenet5", {}, "torch", TORCH),
    ("conv2", {"width_multiplier": 0.25}, "torch", TORCH),
    ("cnn1d_mnist1d", {}, "torch", TORCH),
    ("vgg11", {"width_multiplier": 0.5}, "torch", TORCH),
    ("vgg11", {"width_multiplier": 0.5}, "synflow", HE_IN),
    ("vgg11", {"width_multiplier": 0.5}, "rethinking", SLIM_VGG),
    ("vgg11", {"width_multiplier": 0.5}, "pfs", SLIM_VGG),
    ("resnet20", {}, "synflow", HE_IN),
    ("resnet20", {"shortcut": "B"}, "rethinking", RESNET),
    ("resnet20", {}, "pfs", RESNET),
    ("wrn16_4", {"width_multiplier": 0.5}, "pytorch_prunes", WRN),
    ("wrn16_4", {"width_multiplier": 0.5}, "torch", TORCH),
]


def _kinds(params):
    """(path, kind, leaf, fan_in, fan_out) of every parameter, the kind read off the layer."""
    flat = traverse_util.flatten_dict(params)
    mods = {}
    for path, leaf in flat.items():
        mods.setdefault(path[:-1], {})[path[-1]] = np.asarray(leaf)
    for mod, leaves in mods.items():
        if "kernel" in leaves:
            kind = "conv" if leaves["kernel"].ndim >= 3 else "dense"
            fi, fo = torch_fans(leaves["kernel"].shape)
            yield mod, f"{kind}_kernel", leaves["kernel"], fi, fo
            if "bias" in leaves:
                yield mod, f"{kind}_bias", leaves["bias"], fi, fo
        else:
            base = mod[:-1] + (mod[-1].removesuffix("_bn"),)
            one_d = mod[-1].endswith("_bn") and mods.get(base, {}).get(
                "kernel", np.zeros(())).ndim == 2
            yield mod, "bn1d_scale" if one_d else "bn2d_scale", leaves["scale"], 0, 0
            yield mod, "bn_bias", leaves["bias"], 0, 0


@pytest.mark.parametrize(("name", "opts", "scheme", "rule"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_every_layer_follows_its_schemes_formula(name, opts, scheme, rule):
    model = models.get(name, init=scheme, **opts)
    x = jnp.zeros((1, *models.default_input_shape(name)))
    params = jax.jit(lambda k: model.init(k, x))(KEY)["params"]
    seen = set()
    for path, kind, w, fi, fo in _kinds(params):
        seen.add(kind)
        dist, arg = rule[kind]
        where = f"{name} {scheme} {'/'.join(path)} {kind} {w.shape}"
        if dist == "const":
            np.testing.assert_array_equal(w, np.full(w.shape, arg, w.dtype), err_msg=where)
            continue
        scale = arg(fi, fo)
        if dist == "uniform":
            assert np.all(np.abs(w) <= scale), where
            expect_std = scale / math.sqrt(3)
        else:
            expect_std = scale
        if w.size >= 400:  # the sample std within ~6 standard errors of the formula
            tol = 6 * expect_std / math.sqrt(2 * w.size) + (0.02 * expect_std if w.size < 4000
                                                            else 0.0)
            assert abs(np.std(w) - expect_std) < tol + 1e-3 * expect_std, (where, np.std(w),
                                                                           expect_std)
            assert abs(np.mean(w)) < 6 * expect_std / math.sqrt(w.size), where
    assert seen & {"conv_kernel", "dense_kernel"}


def test_fans_match_pytorch():
    """``torch_fans``, the fans every scheme's draws are checked against above, are PyTorch's."""
    torch = pytest.importorskip("torch")

    for shape in [(784, 300), (3, 3, 16, 32), (5, 5, 1, 6), (5, 1, 25), (1, 1, 64, 128)]:
        *window, cin, cout = shape
        w = torch.empty((cout, cin, *window)) if window else torch.empty((cout, cin))
        assert torch.nn.init._calculate_fan_in_and_fan_out(w) == torch_fans(shape)


def test_torch_scheme_matches_pytorchs_own_layers():
    """Our "torch" draws (``models.get(..., init="torch")``) and PyTorch's freshly built layers:
    same bounds, same spread."""
    torch = pytest.importorskip("torch")

    torch.manual_seed(0)
    theirs = {"dense": torch.nn.Linear(300, 100), "conv": torch.nn.Conv2d(16, 32, 3)}
    model = models.get("conv2", widths=(16, 32, 300, 100), init="torch")
    x = jnp.zeros((1, 32, 32, 3))
    params = jax.jit(lambda k: model.init(k, x))(KEY)["params"]
    ours = {"dense": params["fc2"], "conv": params["conv2"]}  # 300 -> 100; 3x3, 16 -> 32
    assert ours["dense"]["kernel"].shape == (300, 100)
    assert ours["conv"]["kernel"].shape == (3, 3, 16, 32)
    for kind, fan_in in [("dense", 300), ("conv", 16 * 9)]:
        for name, t in [("kernel", theirs[kind].weight), ("bias", theirs[kind].bias)]:
            t, o = t.detach().numpy(), np.asarray(ours[kind][name])
            bound = 1 / math.sqrt(fan_in)
            assert np.abs(t).max() <= bound and np.abs(o).max() <= bound, (kind, name)
            if o.size > 1000:  # both spreads are bound/sqrt(3), up to sampling error
                assert abs(np.std(o) / np.std(t) - 1) < 0.05, (kind, name)


def test_default_is_the_zoo_unchanged():
    for name in ("lenet_300_100", "vgg11", "resnet20"):
        plain, explicit = models.get(name), models.get(name, init="default")
        assert type(plain) is type(explicit) and plain == explicit
        assert type(plain).__module__.startswith("jaxprune.models._")
        assert not hasattr(plain, "init_scheme")


def test_schemes_under_vmap_are_independent_and_deterministic():
    model = models.get("mlp_6x100", init="torch")
    x = jnp.zeros((1, 28, 28, 1))
    keys = jax.random.split(jax.random.key(3), 3)
    a = jax.vmap(lambda k: model.init(k, x))(keys)["params"]["fc2"]["kernel"]
    b = model.init(keys[1], x)["params"]["fc2"]["kernel"]
    np.testing.assert_array_equal(a[1], b)
    assert not np.array_equal(a[0], a[1])
    flax_default = models.get("mlp_6x100").init(keys[1], x)["params"]["fc2"]["kernel"]
    assert not np.allclose(b, flax_default)
    assert model == models.get("mlp_6x100", init="torch") and hash(model) == hash(
        models.get("mlp_6x100", init="torch"))
    assert model.clone(widths=(7,) * 5).init_scheme == "torch"  # surgery keeps the scheme


def test_scheme_errors_name_what_applies():
    with pytest.raises(ValueError, match="unknown init scheme 'kaiming'; valid: default, torch"):
        models.get("vgg16", init="kaiming")
    with pytest.raises(ValueError, match=r"'pytorch_prunes' .* has no rule for vgg16 .*valid for "
                                         r"vgg16: default, torch, synflow, rethinking, pfs"):
        models.get("vgg16", init="pytorch_prunes")
    assert models.init_schemes("wrn16_4") == ["default", "torch", "synflow", "pytorch_prunes"]
    assert models.options("mlp_6x100")["init"] == "default"
