"""Channel criteria: factories returning ``score_fn(variables, *, batch=None, key=None)``.

A channel criterion scores every channel of every group of a :class:`Structure`; the result is
``{group name: (width,) scores}``, higher = more important = kept. Unlike the unstructured
criteria it takes the full ``variables`` (``params`` and ``batch_stats``), since activations need
the running statistics. Turn scores into keep-sets with :mod:`jaxprune.structured.policies`.

  score_fn = structured.criteria.get("l1", structure=structure)
  keep = policies.prune_by_ratio(structure, score_fn(variables), 0.5)

Registered names (``names()``):

  l1        sum |W| of each output filter (Li et al. 2017)                       needs nothing
  random    iid U[0, 1) per channel                                              needs key
  bn_scale  |gamma| of the batch norm on the channel (Network Slimming)          needs nothing
  fisher    0.5 * mean_n (sum_positions a * dL/da)^2 (Theis et al. 2018)         needs batch

For groups with several producers (residual streams) ``l1`` sums the filters' norms and
``bn_scale`` averages the batch norms' ``|gamma|``; in an option-A residual group channel ``c``
only counts the layers where it exists (``c < size``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax

from jaxprune.registry import Registry
from jaxprune.structured.gates import apply_with_gates, init_gates
from jaxprune.structured.groups import Structure

PyTree = Any
Scores = dict[str, jax.Array]


class ChannelScoreFn(Protocol):
    """``score_fn(variables, *, batch=None, key=None) -> {group: (width,) scores}``."""

    def __call__(
        self, variables: PyTree, *, batch: Any = None, key: jax.Array | None = None
    ) -> Scores: ...


def _leaf(tree: PyTree, path: tuple[str, ...]) -> jax.Array:
    for k in path:
        tree = tree[k]
    return tree


def _compiled(structure: Structure, score_fn: Callable[..., Scores]) -> ChannelScoreFn:
    """``jax.jit(score_fn)``, returning the groups in execution order (jit sorts dict keys)."""
    jitted = jax.jit(score_fn)

    def ordered(variables: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> Scores:
        out = jitted(variables, batch=batch, key=key)
        return {name: out[name] for name in structure.group_names}

    return ordered


def _require(value: Any, criterion: str, name: str, what: str) -> None:
    if value is None:
        raise ValueError(f"the {criterion!r} channel criterion needs {name}= ({what}), got None")


def _params(variables: PyTree, criterion: str) -> PyTree:
    if not (isinstance(variables, dict) and "params" in variables):
        raise TypeError(
            f"the {criterion!r} channel criterion takes the model's variables "
            "({'params': ..., 'batch_stats': ...}), got a tree without a 'params' key"
        )
    return variables["params"]


def l1(structure: Structure) -> ChannelScoreFn:
    """L1-norm filter pruning: ``score_c = sum |W[..., c]|`` over the producers' kernels.

    For a conv kernel ``(kh, kw, in, out)`` the sum runs over ``kh, kw, in``; for a dense kernel
    over ``in``. Biases and batch norms are not counted.

    Args:
      structure: the groups.

    Returns:
      ``score_fn(variables) -> {group: (width,)}`` (``batch`` and ``key`` ignored); jittable.

    Reference: Li et al. 2017, "Pruning Filters for Efficient ConvNets",
    https://arxiv.org/abs/1608.08710
    """

    def score_fn(variables: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> Scores:
        params = _params(variables, "l1")
        out = {}
        for g in structure.groups:
            s = jnp.zeros((g.width,), jnp.float32)
            for slot in g.slots:
                if slot.role == "out" and slot.path[-1] == "kernel":
                    k = jnp.abs(_leaf(params, slot.path))
                    norms = jnp.sum(k.reshape((-1, k.shape[-1])), axis=0)  # (size,)
                    s = s.at[: slot.size].add(norms.astype(jnp.float32))
            out[g.name] = s
        return out

    return _compiled(structure, score_fn)


def random(structure: Structure) -> ChannelScoreFn:
    """Random channel scores ``U[0, 1)``: group ``i`` draws from ``fold_in(key, i)``.

    Args:
      structure: the groups.

    Returns:
      ``score_fn(variables, *, key) -> {group: (width,)}`` (``key`` required); jittable.
    """

    def score_fn(variables: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> Scores:
        _require(key, "random", "key", "a PRNG key, e.g. key=jax.random.key(0)")
        return {
            g.name: jax.random.uniform(jax.random.fold_in(key, i), (g.width,))
            for i, g in enumerate(structure.groups)
        }

    return _compiled(structure, score_fn)


def bn_scale(structure: Structure) -> ChannelScoreFn:
    """Network Slimming: ``score_c = |gamma_c|`` of the batch norm on the channel.

    Args:
      structure: the groups; each must have a batch norm (VGG, ResNets, WRNs).

    Returns:
      ``score_fn(variables) -> {group: (width,)}``; jittable.

    Raises:
      ValueError: a group without batch norm (e.g. any MLP or LeNet group), named.

    Reference: Liu et al. 2017, "Learning Efficient Convolutional Networks through Network
    Slimming", https://arxiv.org/abs/1708.06519
    """
    scale_slots = {
        g.name: [s for s in g.slots if s.role == "norm" and s.path[-1] == "scale"]
        for g in structure.groups
    }
    missing = [name for name, slots in scale_slots.items() if not slots]
    if missing:
        raise ValueError(
            f"the 'bn_scale' criterion needs a batch norm on every channel group; "
            f"{structure.name} groups {missing} have none"
        )

    def score_fn(variables: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> Scores:
        params = _params(variables, "bn_scale")
        out = {}
        for g in structure.groups:
            total = jnp.zeros((g.width,), jnp.float32)
            count = jnp.zeros((g.width,), jnp.float32)
            for slot in scale_slots[g.name]:
                total = total.at[: slot.size].add(jnp.abs(_leaf(params, slot.path)))
                count = count.at[: slot.size].add(1.0)
            out[g.name] = total / count
        return out

    return _compiled(structure, score_fn)


def _default_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # (N,)


def fisher(
    structure: Structure,
    *,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    train: bool = False,
) -> ChannelScoreFn:
    """Fisher pruning: ``score_c = 0.5 * mean_n (sum_positions a_nc * dL_n/da_nc)^2``.

    ``a`` is the channel's activation and ``L_n`` example ``n``'s loss. The inner sum is the
    gradient of ``L_n`` with respect to a per-example gate on the channel at 1 (see
    :mod:`~jaxprune.structured.gates`), so it is computed with one backward pass and summed over
    every site of the group. Several mini-batches are accumulated: ``batch`` may be a list of
    ``(x, y)`` batches, and the mean runs over all their examples.

    Crowley et al. accumulate ``0.5 * mean`` over a batch with the *batch-mean* loss, i.e. our
    score divided by the batch size squared: the same ranking for equal batch sizes.

    Args:
      structure: the groups.
      loss_fn: ``(logits, labels) -> (N,)`` per-example losses (default softmax cross entropy
        with integer labels).
      train: run batch norm in training mode (batch statistics; then examples interact and the
        gradients are those of the summed loss). Default eval mode (running statistics).

    Returns:
      ``score_fn(variables, *, batch) -> {group: (width,)}`` with ``batch = (x, y)`` or a list of
      such pairs. Each batch runs one compiled step.

    References: Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher
    pruning", https://arxiv.org/abs/1801.05787; Crowley et al. 2018, "A Closer Look at
    Structured Pruning for Neural Network Compression", https://arxiv.org/abs/1810.04622
    """
    loss = _default_loss if loss_fn is None else loss_fn
    if not callable(loss):
        raise TypeError(f"loss_fn must be a function (logits, labels) -> (N,), got {loss!r}")

    @jax.jit
    def squared_grads(variables: PyTree, x: jax.Array, y: jax.Array) -> Scores:
        gates = init_gates(structure, batch_size=x.shape[0])

        def total_loss(g):
            if train:
                out, _ = apply_with_gates(
                    structure, variables, g, x, train=True, mutable=["batch_stats"]
                )
            else:
                out = apply_with_gates(structure, variables, g, x, train=False)
            per_example = loss(out, y)
            if per_example.shape != (x.shape[0],):
                raise ValueError(
                    f"loss_fn must return per-example losses of shape ({x.shape[0]},), "
                    f"got {per_example.shape}"
                )
            return jnp.sum(per_example)

        grads = jax.grad(total_loss)(gates)  # {group: (N, width)}
        return {k: jnp.sum(jnp.square(v), axis=0) for k, v in grads.items()}

    def score_fn(variables: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> Scores:
        _require(batch, "fisher", "batch", "an (x, y) batch or a list of them")
        batches = batch if isinstance(batch, list) else [batch]
        total, count = None, 0
        for x, y in batches:
            sq = squared_grads(variables, x, y)
            total = sq if total is None else jax.tree.map(jnp.add, total, sq)
            count += x.shape[0]
        return {g.name: 0.5 * total[g.name] / count for g in structure.groups}

    return score_fn


#: Channel criteria by name (``structure=`` always; ``loss_fn=``, ``train=`` for ``fisher``).
REGISTRY: Registry[ChannelScoreFn] = Registry("channel criterion")
REGISTRY.register("l1", l1)
REGISTRY.register("random", random)
REGISTRY.register("bn_scale", bn_scale)
REGISTRY.register("fisher", fisher)


def names() -> list[str]:
    """The registered channel-criterion names, sorted."""
    return REGISTRY.names()


def get(name: str, **factory_kwargs: Any) -> ChannelScoreFn:
    """Build the channel criterion registered as ``name``.

    Args:
      name: one of :func:`names`.
      **factory_kwargs: the factory's arguments: ``structure=`` always, ``loss_fn=`` and
        ``train=`` for ``fisher``.

    Returns:
      ``score_fn(variables, *, batch=None, key=None) -> {group: (width,) scores}``.

    Raises:
      ValueError: unknown name (the message lists the valid ones).
      TypeError: missing or unexpected factory arguments (the message lists the expected ones).
    """
    return REGISTRY.get(name, **factory_kwargs)
