"""Reference initializations: the PyTorch schemes of the papers' code, selectable per model.

``models.get(name, init=scheme)`` returns the zoo module with one more attribute,
``init_scheme``; its ``init`` first builds the variables the zoo's way, then redraws every
``params`` leaf the scheme names from a key folded out of the ``params`` key (``batch_stats``
are untouched: mean 0, variance 1 in every scheme). The rules read each layer's kind off the
variables: a module holding a 2-D ``kernel`` is a dense layer, one holding a >= 3-D ``kernel`` a
convolution, one holding a ``scale`` a batch norm (a *1-d* batch norm, PyTorch's
``BatchNorm1d``, when it is named ``X_bn`` after a dense layer ``X``; else ``BatchNorm2d``).

Fans are PyTorch's: for a Flax kernel ``(*window, in, out)`` (HWIO), ``fan_in = in * prod(window)``
and ``fan_out = out * prod(window)``, which is what ``torch.nn.init`` computes from the same
layer's ``(out, in, *window)`` weight.

Schemes (each names its source; ``schemes()`` lists them, ``scheme_families()`` where they apply):

  ==============  ========================================================  ====================
  scheme          rule                                                      zoo families
  ==============  ========================================================  ====================
  default         the zoo's own (see each model's docstring); no redraw     all
  torch           PyTorch's ``reset_parameters``: Linear/Conv weights       all
                  kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)), biases
                  U(+-1/sqrt(fan_in)); BatchNorm scale 1, bias 0
  synflow         Synaptic-Flow ``Models/lottery_vgg.py``,                  vgg, resnet: he-fan-in;
                  ``lottery_resnet.py``: Linear/Conv weights                all others: torch
                  kaiming_normal (fan_in) N(0, 2/fan_in), biases 0, BN 1/0;
                  its ``fc`` and ``conv`` models (``Models/mlp.py``) keep
                  PyTorch's defaults (= ``torch``)
  rethinking      rethinking-network-pruning ``cifar/l1-norm-pruning`` and  vgg, resnet
                  ``cifar/network-slimming`` models: VGG conv N(0,
                  2/(k*k*out)), BatchNorm2d scale 0.5, BatchNorm1d 1,
                  Linear N(0, 0.01^2), biases 0; ResNet conv N(0,
                  2/(k*k*out)), BN 1/0, Linear PyTorch default
  pytorch_prunes  BayesWatch/pytorch-prunes ``models/wideresnet.py``: conv  wrn
                  N(0, 2/(k*k*out)), BN 1/0, Linear weight PyTorch default,
                  Linear bias 0
  pfs             pruning-from-scratch ``models/vgg.py``, ``resnet.py``:    vgg, resnet
                  the same rules as ``rethinking`` (same lineage)
  ==============  ========================================================  ====================

Not covered: rethinking's ``cifar/weight-level`` VGG draws conv kernels with fan_in and BN scale 1
(a different rule from its structured-pruning VGG). The zoo's ``default`` VGG equals
``rethinking``/``pfs`` in distribution; its ResNets and WRNs differ from them only in the dense
layer (LeCun-normal, zero bias).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

# (key, shape, dtype, fan_in, fan_out) -> array
Draw = Callable[[jax.Array, tuple[int, ...], Any, int, int], jax.Array]


def torch_uniform(key, shape, dtype, fan_in, fan_out) -> jax.Array:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's Linear/Conv weight (kaiming_uniform with
    a = sqrt(5)) and bias default."""
    del fan_out
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def he_normal(mode: str) -> Draw:
    """N(0, 2 / fan): ``torch.nn.init.kaiming_normal_`` (ReLU gain) with ``mode`` 'fan_in' or
    'fan_out' (the latter is the references' ``normal_(0, sqrt(2 / (k * k * out)))``)."""

    def draw(key, shape, dtype, fan_in, fan_out):
        std = math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out))
        return std * jax.random.normal(key, shape, dtype)

    return draw


def normal(std: float) -> Draw:
    """N(0, std^2)."""

    def draw(key, shape, dtype, fan_in, fan_out):
        del fan_in, fan_out
        return std * jax.random.normal(key, shape, dtype)

    return draw


def constant(value: float) -> Draw:
    """Every entry ``value``."""

    def draw(key, shape, dtype, fan_in, fan_out):
        del key, fan_in, fan_out
        return jnp.full(shape, value, dtype)

    return draw


class Rule(NamedTuple):
    """How one scheme draws each kind of parameter of one model family."""

    conv_kernel: Draw
    conv_bias: Draw
    dense_kernel: Draw
    dense_bias: Draw
    bn2d_scale: float = 1.0
    bn1d_scale: float = 1.0


TORCH = Rule(torch_uniform, torch_uniform, torch_uniform, torch_uniform)
HE_FAN_IN = Rule(he_normal("fan_in"), constant(0.0), he_normal("fan_in"), constant(0.0))
SLIMMING_VGG = Rule(he_normal("fan_out"), constant(0.0), normal(0.01), constant(0.0),
                    bn2d_scale=0.5)
FAN_OUT_RESNET = Rule(he_normal("fan_out"), constant(0.0), torch_uniform, torch_uniform)
PRUNES_WRN = Rule(he_normal("fan_out"), constant(0.0), torch_uniform, constant(0.0))


class Scheme(NamedTuple):
    """A named initialization: its source and one rule per zoo family (``"*"``: any other)."""

    source: str
    rules: Mapping[str, Rule]


SCHEMES: dict[str, Scheme] = {
    "torch": Scheme("PyTorch's nn.Linear / nn.Conv2d / nn.BatchNorm2d defaults", {"*": TORCH}),
    "synflow": Scheme("ganguli-lab/Synaptic-Flow Models/lottery_{vgg,resnet}.py (fc, conv: "
                      "PyTorch defaults)", {"vgg": HE_FAN_IN, "resnet": HE_FAN_IN, "*": TORCH}),
    "rethinking": Scheme("Eric-mingjie/rethinking-network-pruning cifar/{l1-norm-pruning,"
                         "network-slimming}/models", {"vgg": SLIMMING_VGG,
                                                      "resnet": FAN_OUT_RESNET}),
    "pytorch_prunes": Scheme("BayesWatch/pytorch-prunes models/wideresnet.py",
                             {"wrn": PRUNES_WRN}),
    "pfs": Scheme("frankwang345/pruning-from-scratch models/{vgg,resnet}.py",
                  {"vgg": SLIMMING_VGG, "resnet": FAN_OUT_RESNET}),
}


def schemes() -> list[str]:
    """Every ``init`` value ``models.get`` accepts."""
    return ["default", *SCHEMES]


def rule_for(scheme: str, family: str, model_name: str = "") -> Rule | None:
    """The rule of ``scheme`` for a zoo ``family`` (``None`` for ``"default"``).

    Raises:
      ValueError: unknown scheme, or a scheme whose source has no such model.
    """
    if scheme == "default":
        return None
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(schemes())}")
    rules = SCHEMES[scheme].rules
    if family in rules:
        return rules[family]
    if "*" in rules:
        return rules["*"]
    fits = [s for s in SCHEMES if family in SCHEMES[s].rules or "*" in SCHEMES[s].rules]
    raise ValueError(
        f"init scheme {scheme!r} ({SCHEMES[scheme].source}) has no rule for "
        f"{model_name or family} (it covers: {', '.join(sorted(rules))}); valid for "
        f"{model_name or family}: {', '.join(['default', *fits])}"
    )


def fans(kernel_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a Flax kernel ``(*window, in, out)`` as PyTorch computes them."""
    receptive = math.prod(kernel_shape[:-2])
    return kernel_shape[-2] * receptive, kernel_shape[-1] * receptive


def redraw(params: Mapping[str, Any], rule: Rule, key: jax.Array) -> dict[str, Any]:
    """``params`` with every kernel, bias and batch-norm scale/bias drawn by ``rule``.

    Pure: the same (params shapes, rule, key) give the same values; leaf ``i`` (in flattened
    path order) draws from ``fold_in(key, i)``.
    """
    flat = traverse_util.flatten_dict(params)
    modules: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, leaf in flat.items():
        modules.setdefault(path[:-1], {})[path[-1]] = leaf
    index = {path: i for i, path in enumerate(sorted(flat))}
    out = dict(flat)

    def put(mod, name, draw, fan_in, fan_out):
        leaf = modules[mod][name]
        out[mod + (name,)] = draw(jax.random.fold_in(key, index[mod + (name,)]), leaf.shape,
                                  leaf.dtype, fan_in, fan_out)

    for mod, leaves in modules.items():
        if "kernel" in leaves:
            fan_in, fan_out = fans(leaves["kernel"].shape)
            conv = leaves["kernel"].ndim >= 3
            put(mod, "kernel", rule.conv_kernel if conv else rule.dense_kernel, fan_in, fan_out)
            if "bias" in leaves:
                put(mod, "bias", rule.conv_bias if conv else rule.dense_bias, fan_in, fan_out)
        elif "scale" in leaves:
            after = modules.get(mod[:-1] + (mod[-1].removesuffix("_bn"),), {})
            one_d = mod[-1].endswith("_bn") and getattr(after.get("kernel"), "ndim", 0) == 2
            put(mod, "scale", constant(rule.bn1d_scale if one_d else rule.bn2d_scale), 0, 0)
            if "bias" in leaves:
                put(mod, "bias", constant(0.0), 0, 0)
    return traverse_util.unflatten_dict(out)


#: The stream of the redraw key: ``fold_in(params_key, _STREAM)``.
_STREAM = 0x1417


@functools.cache
def with_scheme(cls: type[nn.Module], family: str) -> type[nn.Module]:
    """A subclass of the zoo module ``cls`` with an ``init_scheme`` attribute that its
    ``init`` applies (see the module docstring)."""

    class Initialized(cls):  # type: ignore[valid-type, misc]
        init_scheme: str = "default"

        def init(self, rngs, *args, **kwargs):  # noqa: D102 - nn.Module.init, then the redraw
            variables = super().init(rngs, *args, **kwargs)
            rule = rule_for(self.init_scheme, family)
            if rule is None:
                return variables
            key = rngs["params"] if isinstance(rngs, Mapping) else rngs
            params = redraw(variables["params"], rule, jax.random.fold_in(key, _STREAM))
            return {**variables, "params": params}

    Initialized.__name__ = Initialized.__qualname__ = cls.__name__
    Initialized.__doc__ = cls.__doc__
    return Initialized
