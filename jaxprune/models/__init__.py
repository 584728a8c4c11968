"""Flax Linen model zoo for pruning research; models know nothing of pruning or data.

Build a model by name::

  model = models.get("resnet20", num_classes=10, shortcut="B")
  x = jnp.zeros((8, *models.default_input_shape("resnet20")))
  variables = model.init(jax.random.key(0), x)          # {'params', 'batch_stats'}
  logits = model.apply(variables, x, train=False)       # (8, 10)

Every module is called as ``model(x, *, train=False)`` with a batch ``x``; models with batch norm
keep running statistics in the ``batch_stats`` collection (``mutable=['batch_stats']`` when
``train=True``). ``max_pool_2x2`` is the zoo's pooling (dtype-preserving), for modules of your own.

Widths: every family accepts ``width_multiplier`` (each width is ``round(w * m)``, at least 1) and
explicit per-layer widths, so structured pruning can rebuild narrower members of a family:

  ===================  ==============================================  ============================
  family               width options (execution order)                 layer names
  ===================  ==============================================  ============================
  lenet_300_100, mlp   ``widths``: hidden widths (any length)          ``fc1 .. fc{L}``
  lenet5               ``widths``: conv1, conv2, fc1, fc2              ``conv1 conv2 fc1 fc2 fc3``
  lenet5_caffe         ``widths``: conv1, conv2, fc1                   ``conv1 conv2 fc1 fc2``
  conv2/4/6            ``widths``: conv1..convK, fc1, fc2              ``conv{i}``, ``fc1 fc2 fc3``
  vgg*                 ``widths`` (convs), ``classifier_widths``       ``conv{i}`` + ``conv{i}_bn``,
                                                                       ``fc{j}`` + ``fc{j}_bn``
  resnet*              ``stage_widths`` (3), ``block_widths`` (3n)     ``stem``, ``stem_bn``,
                                                                       ``stage{s}_block{bb}/...``,
                                                                       ``fc``
  wrn*                 ``stem_width``, ``stage_widths``,               ``stem``,
                       ``block_widths``                                ``stage{s}_block{bb}/...``,
                                                                       ``final_bn``, ``fc``
  cnn1d_mnist1d        ``widths``: conv1, conv2, conv3                 ``conv1 conv2 conv3 fc``
  ===================  ==============================================  ============================

A batch norm that normalizes the output of layer ``X`` is named ``X_bn``. The last named dense
layer always outputs the logits.

Initialization: every model initializes the zoo's way (its docstring says how) unless ``get`` is
given ``init=``: ``"torch"`` (PyTorch's module defaults) or the scheme a reference code sets,
named after it (``"synflow"``, ``"rethinking"``, ``"pytorch_prunes"``, ``"pfs"``); see
``jaxprune/models/_init.py`` for each rule, its source and the families it covers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn

from jaxprune import contract
from jaxprune.models import _init
from jaxprune.models._cnn1d import CNN1D, cnn1d_mnist1d
from jaxprune.models._common import max_pool_2x2
from jaxprune.models._convnets import ConvNet, conv_n
from jaxprune.models._lenet import LeNet5, LeNet5Caffe, lenet5, lenet5_caffe
from jaxprune.models._mlp import MLP, lenet_300_100, mlp_6x100
from jaxprune.models._resnet import BasicBlock, ResNet, resnet, shortcut_a
from jaxprune.models._vgg import VGG, vgg
from jaxprune.models._wrn import WideBlock, WideResNet, wrn

__all__ = [
    "MLP",
    "LeNet5",
    "LeNet5Caffe",
    "ConvNet",
    "VGG",
    "ResNet",
    "BasicBlock",
    "WideResNet",
    "WideBlock",
    "CNN1D",
    "ModelSpec",
    "get",
    "names",
    "default_input_shape",
    "describe",
    "options",
    "init_schemes",
    "family",
    "shortcut_a",
    "max_pool_2x2",
]

_MNIST = (28, 28, 1)
_CIFAR = (32, 32, 3)


class ModelSpec(NamedTuple):
    """A registry entry.

    Attributes:
      factory: builds the module from keyword options (``num_classes`` included).
      input_shape: per-example input shape (no batch axis) of the dataset the model was made for.
      description: one line for listings.
      fixed: options the registered name pins (e.g. ``depth`` for ``resnet56``).
    """

    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    description: str
    fixed: Mapping[str, Any] = {}


def _resnet_entry(depth: int, published: str) -> ModelSpec:
    return ModelSpec(
        functools.partial(resnet, depth),
        _CIFAR,
        f"CIFAR ResNet-{depth} (He et al. 2016), option A/B shortcuts, ~{published} params",
    )


def _wrn_entry(depth: int, k: int, published: str) -> ModelSpec:
    return ModelSpec(
        wrn,
        _CIFAR,
        f"Wide ResNet WRN-{depth}-{k} (Zagoruyko & Komodakis 2016), ~{published} params",
        {"depth": depth, "widen_factor": k},
    )


_REGISTRY: dict[str, ModelSpec] = {
    "lenet_300_100": ModelSpec(
        lenet_300_100, _MNIST, "LeNet-300-100 MLP 784-300-100-10, 266,610 params"
    ),
    "mlp_6x100": ModelSpec(
        mlp_6x100, _MNIST, "SynFlow `fc` MLP, 6 layers of width 100, 119,910 params"
    ),
    "lenet5": ModelSpec(lenet5, _MNIST, "classic LeNet-5 (6, 16 convs; 120, 84 fc), 61,706 params"),
    "lenet5_caffe": ModelSpec(
        lenet5_caffe, _MNIST, "LeNet-5-Caffe as in SNIP (20, 50 convs; 500 fc), 431,080 params"
    ),
    "conv2": ModelSpec(
        functools.partial(conv_n, 2), _CIFAR, "Conv-2 (Frankle & Carbin 2019), 4.3M params"
    ),
    "conv4": ModelSpec(
        functools.partial(conv_n, 4), _CIFAR, "Conv-4 (Frankle & Carbin 2019), 2.4M params"
    ),
    "conv6": ModelSpec(
        functools.partial(conv_n, 6),
        _CIFAR,
        "Conv-6 (Frankle & Carbin 2019), 2.26M params (paper says 1.7M)",
    ),
    "vgg11": ModelSpec(
        functools.partial(vgg, 11), _CIFAR, "VGG-11 with BN for CIFAR (Li et al. 2017 classifier)"
    ),
    "vgg13": ModelSpec(
        functools.partial(vgg, 13), _CIFAR, "VGG-13 with BN for CIFAR (Li et al. 2017 classifier)"
    ),
    "vgg16": ModelSpec(
        functools.partial(vgg, 16),
        _CIFAR,
        "VGG-16 with BN for CIFAR (Li et al. 2017), ~15.0M params, 3.13e8 MACs",
    ),
    "vgg19": ModelSpec(
        functools.partial(vgg, 19), _CIFAR, "VGG-19 with BN for CIFAR (Li et al. 2017 classifier)"
    ),
    "resnet20": _resnet_entry(20, "0.27M"),
    "resnet32": _resnet_entry(32, "0.46M"),
    "resnet44": _resnet_entry(44, "0.66M"),
    "resnet56": _resnet_entry(56, "0.85M"),
    "resnet110": _resnet_entry(110, "1.7M"),
    "wrn": ModelSpec(wrn, _CIFAR, "Wide ResNet WRN-d-k, options depth (6n+4) and widen_factor"),
    "wrn16_4": _wrn_entry(16, 4, "2.7M"),
    "wrn16_8": _wrn_entry(16, 8, "11.0M"),
    "wrn28_10": _wrn_entry(28, 10, "36.5M"),
    "wrn40_4": _wrn_entry(40, 4, "8.9M"),
    "cnn1d_mnist1d": ModelSpec(
        cnn1d_mnist1d, (40, 1), "MNIST-1D paper's 1-D CNN (3 convs of 25, fc), 5,210 params"
    ),
}


def _spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    """All registered model names, grouped by family (registration order)."""
    return list(_REGISTRY)


def default_input_shape(name: str) -> tuple[int, ...]:
    """Per-example input shape (no batch axis), e.g. ``(32, 32, 3)`` for CIFAR models."""
    return _spec(name).input_shape


def describe(name: str) -> str:
    """A one-line description of a registered model, for listings."""
    return _spec(name).description


def options(name: str) -> dict[str, Any]:
    """Keyword options of ``get(name, ...)`` besides ``num_classes``, with their defaults
    (``init`` included)."""
    spec = _spec(name)
    params = inspect.signature(spec.factory).parameters.values()
    return {
        **{
            p.name: p.default
            for p in params
            if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.name != "num_classes"
            and p.name not in spec.fixed
        },
        "init": "default",
    }


#: The zoo family of each module class: what an init scheme's rules are keyed by.
_FAMILIES: dict[type, str] = {
    MLP: "mlp",
    LeNet5: "lenet",
    LeNet5Caffe: "lenet",
    ConvNet: "conv_n",
    VGG: "vgg",
    ResNet: "resnet",
    WideResNet: "wrn",
    CNN1D: "cnn1d",
}


def family(name: str) -> str:
    """The family of a registered model (``"mlp"``, ``"vgg"``, ``"resnet"``, ...)."""
    return _FAMILIES[type(_spec(name).factory(**_spec(name).fixed))]


def init_schemes(name: str | None = None) -> list[str]:
    """The ``init`` values ``get`` accepts (for model ``name``: the ones with a rule for it)."""
    if name is None:
        return _init.schemes()
    fam = family(name)
    return [s for s in _init.schemes() if s == "default" or fam in _init.SCHEMES[s].rules
            or "*" in _init.SCHEMES[s].rules]


def get(name: str, *, num_classes: int = 10, init: str = "default", **options_: Any) -> Any:
    """Build the registered model ``name`` (an unbound Flax Linen module), or a user's model.

    Args:
      name: one of ``names()``, or ``"pkg.module:attr"``: a user's Linen or NNX module class or a
        function returning one, built by :func:`jaxprune.contract.load` (``num_classes`` passed
        when its signature takes it, ``options_`` as its keywords) and returned as a
        :class:`jaxprune.contract.Model`.
      num_classes: number of logits.
      init: the initialization scheme: ``"default"`` (the zoo's own, see each model), ``"torch"``
        (PyTorch's module defaults) or a reference code's scheme (``"synflow"``,
        ``"rethinking"``, ``"pytorch_prunes"``, ``"pfs"``); ``init_schemes(name)`` lists those
        that apply to ``name`` and ``jaxprune/models/_init.py`` their rules and sources. The
        module's ``init`` applies it.
      **options_: family-specific options, see ``options(name)`` (widths, width_multiplier,
        shortcut, depth, ...).

    Returns:
      The module; call ``init``/``apply`` with a batch shaped ``(N, *default_input_shape(name))``.

    Raises:
      ValueError: unknown name, unknown option (both listing the valid ones), a bad value, or
        an init scheme without a rule for this model.
    """
    if contract.is_spec(name):
        if init != "default":
            raise ValueError(f"init schemes are the zoo's; {name} initialises itself "
                             f"(got init={init!r})")
        return contract.load(name, num_classes=num_classes, **options_)
    spec = _spec(name)
    valid = options(name)
    unknown = sorted(set(options_) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"valid options: num_classes, {', '.join(valid)}"
        )
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model = spec.factory(**spec.fixed, num_classes=num_classes, **options_)
    fam = _FAMILIES[type(model)]
    if _init.rule_for(init, fam, name) is None:  # "default": the zoo's module, unchanged
        return model
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.init and f.name not in ("parent", "name")}
    return _init.with_scheme(type(model), fam)(**fields, init_scheme=init)
