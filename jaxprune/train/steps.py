"""The pure pieces of (masked) training: state, loss, one train step, one eval step.

All functions are pure and jittable, and a :class:`TrainState` is a pytree, so ``jax.vmap`` over a
stacked state (one per seed) trains several networks in one compiled call.

Masked training keeps pruned weights at exactly zero for the whole run:
  1. the gradient is masked before the optimizer, so momentum and Adam moments never see it;
  2. the optimizer's update is masked again (coupled weight decay of a zero weight is zero, but
     e.g. Adam's epsilon or a decoupled decay term must not move a pruned weight either);
  3. the parameters are re-masked after the update with ``where`` (exact, no multiplication).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxprune import contract
from jaxprune.masks import apply_mask, check_mask_tree

PyTree = Any
Metrics = dict[str, jax.Array]


class TrainState(flax.struct.PyTreeNode):
    """Everything a training run carries from step to step.

    Attributes:
      step: () int32, optimizer steps taken.
      params: the ``params`` collection.
      model_state: the other variable collections (e.g. ``{"batch_stats": ...}``); ``{}`` if none.
      opt_state: the optax state.
      mask: bool pytree mirroring ``params`` (``True`` = kept), or ``None`` for dense training.
    """

    step: jax.Array
    params: PyTree
    model_state: PyTree
    opt_state: optax.OptState
    mask: PyTree | None


def split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
    """Split Flax ``variables`` into ``(params, model_state)``."""
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables


def create_state(
    params: PyTree,
    model_state: PyTree,
    tx: optax.GradientTransformation,
    mask: PyTree | None = None,
) -> TrainState:
    """A fresh :class:`TrainState`; with a ``mask``, pruned weights are zeroed first.

    Raises:
      ValueError: if ``mask`` does not mirror ``params`` (tree, shapes, bool dtype).
    """
    if mask is not None:
        check_mask_tree(params, mask)
        params = apply_mask(params, mask)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        mask=mask,
    )


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy; ``logits`` (N, K), integer ``labels`` (N,) -> (N,)."""
    if label_smoothing == 0.0:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def apply_model(
    model: Any, params: PyTree, model_state: PyTree, x: jax.Array, *, train: bool,
    key: jax.Array | None = None,
) -> tuple[jax.Array, PyTree]:
    """Run ``model`` (any model under :mod:`jaxprune.contract`); returns ``(logits,
    new_model_state)`` (state unchanged when not training). ``key`` feeds dropout in training."""
    return contract.as_model(model).apply({"params": params, **model_state}, x, train=train,
                                          key=key)


#: The stream of a train step's dropout key: ``fold_in(step_key, DROPOUT_STREAM)`` (the step key
#: itself draws the augmentation).
DROPOUT_STREAM = 1


def make_train_step(
    model: Any,
    tx: optax.GradientTransformation,
    *,
    label_smoothing: float = 0.0,
    preprocess: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, Metrics]]:
    """Build ``train_step(state, images, labels, key) -> (state, metrics)``.

    Args:
      model: a model under :mod:`jaxprune.contract` (or a Linen / NNX module).
      tx: the optax optimizer the state was created with.
      label_smoothing: label-smoothing coefficient.
      preprocess: optional ``preprocess(key, images) -> images`` applied first (augmentation,
        normalization); ``key`` is the step's key.

    Returns:
      A pure function. ``metrics`` holds sums over the batch: ``loss`` and ``correct`` (f32 scalars)
      and ``count``.
    """

    model = contract.as_model(model)

    def train_step(state: TrainState, images, labels, key):
        if preprocess is not None:
            images = preprocess(key, images)
        dropout_key = jax.random.fold_in(key, DROPOUT_STREAM)

        def loss_fn(params):
            logits, new_model_state = apply_model(
                model, params, state.model_state, images, train=True, key=dropout_key
            )
            losses = cross_entropy(logits, labels, label_smoothing)
            return losses.mean(), (logits, new_model_state, losses)

        grads, (logits, new_model_state, losses) = jax.grad(loss_fn, has_aux=True)(state.params)
        if state.mask is not None:
            grads = apply_mask(grads, state.mask)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        if state.mask is not None:
            updates = apply_mask(updates, state.mask)
        params = optax.apply_updates(state.params, updates)
        if state.mask is not None:
            params = apply_mask(params, state.mask)
        new_state = state.replace(
            step=state.step + 1, params=params, model_state=new_model_state, opt_state=opt_state
        )
        metrics = {
            "loss": losses.sum(),
            "correct": (logits.argmax(-1) == labels).sum().astype(jnp.float32),
            "count": jnp.asarray(labels.shape[0], jnp.float32),
        }
        return new_state, metrics

    return train_step


def make_eval_step(
    model: Any,
    *,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
) -> Callable[[PyTree, PyTree, jax.Array, jax.Array, jax.Array], Metrics]:
    """Build ``eval_step(params, model_state, images, labels, valid) -> metrics``.

    ``valid`` (N,) bool marks real examples in a padded last batch. ``metrics`` holds sums
    (``loss``, ``correct``, ``count``) over valid examples.
    """

    model = contract.as_model(model)

    def eval_step(params, model_state, images, labels, valid):
        if preprocess is not None:
            images = preprocess(images)
        logits, _ = apply_model(model, params, model_state, images, train=False)
        w = valid.astype(jnp.float32)
        return {
            "loss": (cross_entropy(logits, labels) * w).sum(),
            "correct": ((logits.argmax(-1) == labels) * w).sum(),
            "count": w.sum(),
        }

    return eval_step
