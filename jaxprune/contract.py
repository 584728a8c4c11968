"""The model contract: any Flax network, Linen or NNX, as two pure functions.

Every study, ``train``, ``flops`` and the scoring bindings take a :class:`Model`::

  variables = model.init(key, x)                            # {"params": ..., **state}
  logits, new_state = model.apply(variables, x, train=True, key=dropout_key)

``variables`` is a plain dict of pytrees: ``"params"`` (what criteria score and masks mirror) and
the mutable state (``"batch_stats"``, ...). ``apply`` is pure: no hidden RNG, no state kept between
calls, so ``jit`` and ``vmap`` over seeds work unchanged. In eval mode (``train=False``) the state
comes back as given; in train mode batch norm uses the batch's statistics and returns the updated
running ones, and dropout draws from ``key`` (a fixed key when none is given: scoring in train
mode is deterministic).

Adapters:

* :func:`linen` wraps a Linen module. Its train/eval switch is read off ``__call__``'s signature:
  ``train``/``training``/``is_training`` get ``train``, ``deterministic``/``use_running_average``
  get ``not train``; a module with none of them is called without one. Dropout gets ``key`` as
  its ``"dropout"`` stream.
* :func:`nnx` wraps an NNX module *factory* (``factory(rngs) -> Module``: a class taking ``rngs``,
  a ``functools.partial`` or a lambda) or a built NNX module. Train and eval mode are NNX's
  ``.train()`` / ``.eval()``; variables are the module's ``nnx.Param`` leaves (``"params"``),
  ``nnx.BatchStat`` leaves (``"batch_stats"``) and any other non-RNG variables (``"state"``),
  as nested dicts with string keys (an ``nnx.List`` entry ``3`` is ``"3"``). The module's RNG
  streams are not variables: every ``apply`` sets them from ``key``. A built module carries one
  set of weights (:func:`variables_of` reads them); initialising from a key needs a factory.
* :func:`as_model` turns whatever a user passes (a Linen module, an NNX module, a :class:`Model`)
  into a :class:`Model`; every public entry point of the library calls it.

Adapters compare equal when they wrap the same module (Linen: equal modules; NNX: the same
factory and graph), so compiled programs cached on the model are reused across calls.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx as _nnx

PyTree = Any

__all__ = ["Model", "LinenModel", "NNXModel", "as_model", "linen", "nnx", "variables_of",
           "load", "ModelLoadError"]


class Model(abc.ABC):
    """A network as pure ``init`` and ``apply`` (see the module docstring).

    Subclass it to bring a network that is neither Linen nor NNX (e.g. a plain function of a
    params dict): implement :meth:`init` and :meth:`apply`, and make instances hashable (a frozen
    dataclass) so compiled programs are cached per model.
    """

    @abc.abstractmethod
    def init(self, key: jax.Array, x: jax.Array) -> dict[str, PyTree]:
        """Fresh variables from ``key``; ``x`` is an example batch (only its shape matters)."""

    @abc.abstractmethod
    def apply(self, variables: Mapping[str, PyTree], x: jax.Array, *, train: bool = False,
              key: jax.Array | None = None) -> tuple[jax.Array, dict[str, PyTree]]:
        """``(logits, new_state)``; ``new_state`` is ``variables`` without ``"params"``,
        updated in train mode (batch statistics)."""

    @property
    def name(self) -> str:
        """A short human-readable name (error messages, tables)."""
        return type(self).__name__

    def describe(self) -> str:
        """A stable description of the network (recorded in workdir identities)."""
        return repr(self)

    def logits(self, variables: Mapping[str, PyTree], x: jax.Array) -> jax.Array:
        """Eval-mode logits: ``apply(variables, x, train=False)[0]``."""
        return self.apply(variables, x, train=False)[0]


def _state_of(variables: Mapping[str, PyTree]) -> dict[str, PyTree]:
    return {k: v for k, v in variables.items() if k != "params"}


# --------------------------------------------------------------------------------------------
# Linen

#: ``__call__`` keyword -> whether it takes ``train`` (True) or ``not train`` (False).
LINEN_MODE_ARGS = {"train": True, "training": True, "is_training": True,
                   "deterministic": False, "use_running_average": False}


@dataclasses.dataclass(frozen=True)
class LinenModel(Model):
    """A Linen module under the contract (build with :func:`linen`).

    Attributes:
      module: the Linen module.
      mode_args: ``(keyword, takes_train)`` pairs passed to every call (see
        :data:`LINEN_MODE_ARGS`), read off ``module.__call__`` by :func:`linen`.
    """

    module: nn.Module
    mode_args: tuple[tuple[str, bool], ...] = ()

    @property
    def name(self) -> str:
        return type(self.module).__name__

    def describe(self) -> str:
        # as workdirs recorded the module before the contract, less any memory address (a
        # function-valued field's repr holds one: it would differ in every process)
        return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(self.module))

    def _kwargs(self, train: bool) -> dict[str, bool]:
        return {k: (train if takes_train else not train) for k, takes_train in self.mode_args}

    def init(self, key: jax.Array, x: jax.Array) -> dict[str, PyTree]:
        return dict(self.module.init(key, x, **self._kwargs(False)))

    def apply(self, variables: Mapping[str, PyTree], x: jax.Array, *, train: bool = False,
              key: jax.Array | None = None) -> tuple[jax.Array, dict[str, PyTree]]:
        state = _state_of(variables)
        kwargs = self._kwargs(train)
        if train:  # dropout's stream; without a key a fixed one, as the NNX adapter does
            kwargs["rngs"] = {"dropout": jax.random.key(jnp.uint32(0)) if key is None else key}
        if train and state:
            logits, new = self.module.apply(dict(variables), x, mutable=list(state), **kwargs)
            return logits, {**state, **new}
        return self.module.apply(dict(variables), x, **kwargs), state


def linen(module: nn.Module) -> LinenModel:
    """``module`` under the contract, its train/eval keyword read off its ``__call__``."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"linen() takes a flax.linen.Module, got {type(module).__name__}")
    try:
        params = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        params = {}
    return LinenModel(module, tuple((k, v) for k, v in LINEN_MODE_ARGS.items() if k in params))


# --------------------------------------------------------------------------------------------
# NNX

#: Variable collections of an NNX module, in the order they are split off: name -> filter.
NNX_COLLECTIONS = (("params", _nnx.Param), ("batch_stats", _nnx.BatchStat))


def _str_keys(tree: Any) -> Any:
    """A pure dict with every key a string (NNX lists index their entries with ints)."""
    if isinstance(tree, Mapping):
        return {str(k): _str_keys(v) for k, v in tree.items()}
    return tree


def _layout(abstract: _nnx.Module) -> tuple:
    """How a module's state maps onto variables: per collection (params, batch_stats, rngs,
    state) the ``(key path, variable type)`` of each of its leaves (int or str keys, as NNX
    has them; the type rebuilds the leaf's variable: a user's own ``nnx.Variable`` subclass in
    ``"state"`` comes back as itself)."""
    _, *states = _nnx.split(abstract, *(f for _, f in NNX_COLLECTIONS), _nnx.RngState, ...)
    names = [n for n, _ in NNX_COLLECTIONS] + ["rngs", "state"]
    layout = []
    for name, st in zip(names, states, strict=True):
        flat = tuple(sorted(((tuple(p), type(v)) for p, v in _nnx.to_flat_state(st)),
                            key=lambda item: repr(item[0])))
        layout.append((name, flat))
    return tuple(layout)


def _get(tree: Mapping[str, Any], path: tuple) -> Any:
    for k in path:
        tree = tree[str(k)]
    return tree


def _nest(flat: Mapping[tuple, Any]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class NNXModel(Model):
    """An NNX module under the contract (build with :func:`nnx`).

    Attributes:
      graph_train, graph_eval: the module's graph in train and eval mode (``nnx.split``).
      layout: which variable leaves go to which collection (see :func:`nnx`).
      factory: ``factory(rngs=...) -> module`` for :meth:`init`, or ``None`` for a built
        module.
    """

    graph_train: Any
    graph_eval: Any
    layout: tuple
    factory: Callable[[_nnx.Rngs], _nnx.Module] | None
    module_name: str = "NNX module"
    signature: tuple | None = None  # (collection/path, shape, dtype) of every variable

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, NNXModel) and self.factory is other.factory
                and (self.graph_train, self.graph_eval, self.layout)
                == (other.graph_train, other.graph_eval, other.layout))

    def __hash__(self) -> int:
        return hash((id(self.factory), self.graph_train, self.graph_eval, self.layout))

    @property
    def name(self) -> str:
        return self.module_name

    def describe(self) -> str:
        # the graph's repr holds memory addresses: describe by the class and the variables
        shapes = self.signature or ()
        return f"{self.module_name} (NNX) " + "; ".join(
            f"{'/'.join(map(str, path))}: {dtype}{list(shape)}" for path, shape, dtype in shapes)

    def _collections(self) -> dict[str, tuple]:
        return dict(self.layout)

    def variables(self, module: _nnx.Module) -> dict[str, PyTree]:
        """The contract's variables of a built ``module`` of this graph."""
        _, *states = _nnx.split(module, *(f for _, f in NNX_COLLECTIONS), _nnx.RngState, ...)
        names = [n for n, _ in NNX_COLLECTIONS] + ["rngs", "state"]
        out = {}
        for name, st in zip(names, states, strict=True):
            if name == "rngs" or (name != "params" and not self._collections()[name]):
                continue
            out[name] = _str_keys(_nnx.to_pure_dict(st))
        return out

    def init(self, key: jax.Array, x: jax.Array) -> dict[str, PyTree]:
        del x  # an NNX module knows its shapes from its constructor
        if self.factory is None:
            raise ValueError(
                f"{self.name} was given as a built NNX module, which carries one set of weights: "
                "to initialise networks from seeds pass a factory instead, e.g. "
                "jaxprune.contract.nnx(lambda rngs: MyNet(..., rngs=rngs))")
        return self.variables(self.factory(rngs=_nnx.Rngs(key)))

    def _module(self, variables: Mapping[str, PyTree], train: bool, key: jax.Array | None):
        cols = self._collections()
        if key is None and cols.get("rngs"):  # eval mode, or training without dropout keys
            key = jax.random.key(jnp.uint32(0))
        flat: dict[tuple, Any] = {}
        for name, leaves in cols.items():
            for i, (path, var) in enumerate(leaves):
                if name == "rngs":  # each stream from the call's key; counts from zero
                    count = issubclass(var, _nnx.RngCount)
                    flat[path] = var(jnp.zeros((), jnp.uint32) if count
                                     else jax.random.fold_in(key, i))
                else:
                    flat[path] = var(_get(variables[name], path))
        graph = self.graph_train if train else self.graph_eval
        return _nnx.merge(graph, _nest(flat))

    def apply(self, variables: Mapping[str, PyTree], x: jax.Array, *, train: bool = False,
              key: jax.Array | None = None) -> tuple[jax.Array, dict[str, PyTree]]:
        module = self._module(variables, train, key)
        logits = module(x)
        state = _state_of(variables)
        if not train:
            return logits, state
        new = self.variables(module)
        return logits, {k: new[k] for k in state}


def _graphs(abstract: _nnx.Module) -> tuple[Any, Any]:
    abstract.train()
    train = _nnx.graphdef(abstract)
    abstract.eval()
    return train, _nnx.graphdef(abstract)


def nnx(module_or_factory: _nnx.Module | Callable[[_nnx.Rngs], _nnx.Module]) -> NNXModel:
    """An NNX module under the contract.

    Args:
      module_or_factory: ``factory(rngs=...) -> nnx.Module``, called with ``rngs`` as a
        keyword (a class whose constructor takes ``rngs``, a ``functools.partial`` of one, or a
        lambda), so :meth:`Model.init` builds a fresh network per key; or a built module (its
        weights: :func:`variables_of`).
    """
    if isinstance(module_or_factory, _nnx.Module):
        built = module_or_factory
        abstract = _nnx.eval_shape(lambda: _nnx.merge(*_nnx.split(built)))
        factory = None
        name = type(built).__name__
    elif callable(module_or_factory):
        factory = module_or_factory
        abstract = _nnx.eval_shape(lambda: factory(rngs=_nnx.Rngs(0)))
        if not isinstance(abstract, _nnx.Module):
            raise TypeError(f"the NNX factory returned {type(abstract).__name__}, not an "
                            "nnx.Module")
        name = type(abstract).__name__
    else:
        raise TypeError(f"nnx() takes an nnx.Module or a factory(rngs) -> nnx.Module, got "
                        f"{type(module_or_factory).__name__}")
    train, evaluation = _graphs(abstract)
    layout = _layout(abstract)
    probe = NNXModel(train, evaluation, layout, factory, name)
    shapes = probe.variables(abstract)
    signature = tuple(((col, *path), tuple(leaf.shape), str(leaf.dtype))
                      for col in sorted(shapes)
                      for path, leaf in _flat_items(shapes[col]))
    return NNXModel(train, evaluation, layout, factory, name, signature)


def _flat_items(tree: Mapping[str, Any], prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    out = []
    for k in sorted(tree):
        v = tree[k]
        out += _flat_items(v, (*prefix, k)) if isinstance(v, Mapping) else [((*prefix, k), v)]
    return out


def variables_of(module: _nnx.Module) -> dict[str, PyTree]:
    """The contract's variables of a built NNX module (its current weights and state)."""
    return nnx(module).variables(module)


def as_model(model: Any) -> Model:
    """``model`` under the contract: a :class:`Model` as is, a Linen module through
    :func:`linen`, a built NNX module through :func:`nnx`. ``TypeError`` otherwise (an NNX
    class or factory is ambiguous with other callables: pass ``nnx(factory)``)."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return linen(model)
    if isinstance(model, _nnx.Module):
        return nnx(model)
    raise TypeError(
        f"expected a Flax Linen module, an NNX module or a jaxprune.contract.Model, got "
        f"{type(model).__name__}; wrap an NNX factory as jaxprune.contract.nnx(factory)")


# --------------------------------------------------------------------------------------------
# pkg.module:attr


class ModelLoadError(ValueError):
    """A ``pkg.module:attr`` model that cannot be imported or built (one line, for the CLI)."""


def is_spec(name: str) -> bool:
    """Whether ``name`` is a ``pkg.module:attr`` import spec (not a zoo name)."""
    return ":" in name


def load(spec: str, *, num_classes: int | None = None, **options: Any) -> Model:
    """The model named by ``spec = "pkg.module:attr"``.

    ``attr`` is a Linen module class, an NNX module class, a function returning a Linen or NNX
    module, or a module or :class:`Model` instance. A class or function gets ``num_classes`` when
    its signature takes it, ``options`` as keywords, and for NNX ``rngs`` (a factory: every
    :meth:`Model.init` key builds a fresh network).

    Raises:
      ModelLoadError: the module cannot be imported, has no such attribute, or building the
        model fails (the message names the spec and the cause).
    """
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ModelLoadError(f"--model {spec!r}: expected pkg.module:attr (e.g. "
                             "mypkg.nets:ConvNet) or a zoo name (`jaxprune models`)")
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - one line for the user
        raise ModelLoadError(f"--model {spec!r}: cannot import {mod_name!r} ({type(e).__name__}: "
                             f"{e}); is it on PYTHONPATH?") from e
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as e:
        raise ModelLoadError(f"--model {spec!r}: {mod_name} has no attribute {attr!r}") from e
    try:
        return _build(obj, num_classes, options)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - one line for the user
        raise ModelLoadError(f"--model {spec!r}: building the model failed ({type(e).__name__}: "
                             f"{e})") from e


def _kwargs_for(fn: Callable[..., Any], num_classes: int | None, options: Mapping[str, Any],
                spec_name: str) -> dict[str, Any]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(options)
    unknown = [k for k in kwargs if k not in params and not var_kw]
    if unknown:
        raise ModelLoadError(f"{spec_name} takes no option(s) {', '.join(unknown)}; its "
                             f"parameters: {', '.join(params) or 'none'}")
    if num_classes is not None and ("num_classes" in params or var_kw):
        kwargs["num_classes"] = num_classes
    return kwargs


def _build(obj: Any, num_classes: int | None, options: Mapping[str, Any]) -> Model:
    name = getattr(obj, "__name__", type(obj).__name__)
    if isinstance(obj, Model | nn.Module | _nnx.Module):
        if options:
            raise ModelLoadError(f"{name} is already built; it takes no options")
        return as_model(obj)
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        fields = {f.name for f in dataclasses.fields(obj)}
        kwargs = dict(options)
        unknown = [k for k in kwargs if k not in fields]
        if unknown:
            raise ModelLoadError(f"{name} has no field(s) {', '.join(unknown)}; its fields: "
                                 f"{', '.join(sorted(fields - {'parent', 'name'}))}")
        if num_classes is not None and "num_classes" in fields:
            kwargs["num_classes"] = num_classes
        return linen(obj(**kwargs))
    if inspect.isclass(obj) and issubclass(obj, _nnx.Module):
        kwargs = _kwargs_for(obj.__init__, num_classes, options, name)
        return nnx(lambda rngs: obj(**kwargs, rngs=rngs))
    if callable(obj):
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        if "rngs" in params:  # an NNX factory function
            kwargs = _kwargs_for(obj, num_classes, options, name)
            return nnx(lambda rngs: obj(**kwargs, rngs=rngs))
        built = obj(**_kwargs_for(obj, num_classes, options, name))
        if isinstance(built, Model | nn.Module | _nnx.Module):
            return as_model(built)
        raise ModelLoadError(f"{name}() returned {type(built).__name__}, not a Flax Linen or "
                             "NNX module")
    raise ModelLoadError(f"{name} is a {type(obj).__name__}: expected a Linen or NNX module "
                         "class, or a function returning a module")
