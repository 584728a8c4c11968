"""AutoS: a learned pruning-at-initialization score (Liu et al. 2024, arXiv:2408.14757).

Per prunable weight the features are ``(theta_0, g_0)``: its value at initialization and the
loss gradient there; a scorer network (:class:`ScorerNet`, the paper's ``fc`` head) maps them to a
predicted survival score, learned from how many rounds of iterative pruning with rewinding each
weight survived (:mod:`jaxprune.studies.autos` trains it). Pruning a new network is then one pass:
features, prediction, global top-k.

  feats = weight_features(params, initial_gradient(loss_fn, params, batch))   # (N, 2)
  score_fn = criteria.get("autos", scorer=scorer_or_dir, loss_fn=loss_fn)

``g_0`` is the MEAN of the batch gradients (the reference code sums ``loss.backward()`` over its
pruning loader, whose size then scales every feature; a mean keeps the features of a 100-image
scoring batch and of a whole training set on one scale). Features are standardized with the
constants saved with the scorer (global mean/std of each feature over its training data), and
optionally per layer first (``standardize="layer"``: each layer's theta_0 and g_0 to zero mean
and unit variance; a deviation from the paper that removes the 1/sqrt(fan-in) scale differences
between layers and architectures).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.criteria.base import ScoreFn, compiled, require, require_callable
from jaxprune.masks import Predicate, flatten_prunable

PyTree = Any

#: Bump when the features change meaning; a scorer saved with another version is refused.
FEATURE_VERSION = 1
STANDARDIZE = ("none", "layer")
#: The paper's ``fc`` head: 2 -> 16 -> 64 -> 1024 -> 1024 -> 64 -> 1, batch norm and ReLU.
PAPER_WIDTHS = (16, 64, 1024, 1024, 64)


def initial_gradient(loss_fn: Callable[[PyTree, Any], jax.Array], params: PyTree,
                     batch: Any) -> PyTree:
    """The loss gradient at ``params``: for one ``(x, y)`` batch, or the mean of the gradients
    of K batches stacked on a leading axis (``x`` (K, B, ...)), computed in one ``lax.scan``.

    ``batch`` is ``(x, y)``; K batches are recognized by ``y`` having two dimensions.
    """
    x, y = batch
    grad = jax.grad(loss_fn)
    if jnp.ndim(y) == 1:
        return grad(params, (x, y))
    zeros = jax.tree.map(jnp.zeros_like, params)
    total, _ = jax.lax.scan(lambda acc, b: (jax.tree.map(jnp.add, acc, grad(params, b)), None),
                            zeros, (x, y))
    return jax.tree.map(lambda t: t / jnp.shape(y)[0], total)


def weight_features(
    params: PyTree,
    grads: PyTree,
    *,
    standardize: str = "none",
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> jax.Array:
    """(N, 2) float32 ``(theta_0, g_0)`` of the N prunable weights, leaves in tree-flatten order.

    ``standardize="layer"`` brings each layer's column to zero mean and unit variance (a constant
    column stays 0). Jittable.
    """
    if standardize not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {list(STANDARDIZE)}, got {standardize!r}")
    flat = flatten_prunable(params, prunable, keep_dense)
    cols = []
    for p, g, f in zip(flat.leaves, jax.tree.leaves(grads), flat.flags, strict=True):
        if not f:
            continue
        pair = jnp.stack([jnp.ravel(p), jnp.ravel(g)], axis=1).astype(jnp.float32)  # (n_l, 2)
        if standardize == "layer":
            std = jnp.std(pair, axis=0, keepdims=True)  # (1, 2)
            pair = (pair - jnp.mean(pair, axis=0, keepdims=True)) / jnp.where(std > 0, std, 1.0)
        cols.append(pair)
    return jnp.concatenate(cols) if cols else jnp.zeros((0, 2), jnp.float32)


class ScorerNet(nn.Module):
    """Features -> score: Dense + batch norm + ReLU per hidden width, then Dense(1).

    Kernels Kaiming-normal (fan-in, ReLU gain) as the reference code initializes them.
    """

    widths: tuple[int, ...] = PAPER_WIDTHS

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:  # (N, 2) -> (N,)
        init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
        for i, w in enumerate(self.widths):
            x = nn.Dense(w, kernel_init=init, name=f"fc{i + 1}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             name=f"fc{i + 1}_bn")(x)
            x = nn.relu(x)
        return nn.Dense(1, kernel_init=init, name="out")(x)[:, 0]


class Scorer(NamedTuple):
    """A trained scorer: the network's variables and how its inputs are prepared.

    ``mean``/``std`` (2,) standardize the features (after the per-layer step if ``standardize``
    is ``"layer"``) as they were over the scorer's training data.
    """

    variables: PyTree
    widths: tuple[int, ...]
    standardize: str
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any]  # how it was trained and how it did (written to scorer.json)


def predict(scorer: Scorer, feats: jax.Array, *, chunk: int = 65536) -> jax.Array:
    """(N,) scores of (N, 2) features, computed in chunks of ``chunk`` rows (``lax.map``), so a
    10M-weight model scores within memory. Jittable."""
    net = ScorerNet(scorer.widths)
    mean = jnp.asarray(scorer.mean, jnp.float32)[None, :]  # (1, 2)
    x = (feats - mean) / jnp.asarray(scorer.std, jnp.float32)[None, :]
    n = x.shape[0]
    c = max(1, min(chunk, n))
    m = -(-n // c)
    padded = jnp.pad(x, ((0, m * c - n), (0, 0))).reshape(m, c, 2)  # (chunks, c, 2)
    out = jax.lax.map(lambda b: net.apply(scorer.variables, b, train=False), padded)
    return out.reshape(-1)[:n]


def autos(scorer: Scorer | str, loss_fn: Callable[[PyTree, Any], jax.Array], *,
          prunable: Predicate | None = None) -> ScoreFn:
    """The AutoS criterion: scores = the scorer's prediction on ``(theta_0, g_0)``.

    Args:
      scorer: a :class:`Scorer` or the directory it was saved in (:func:`save_scorer`).
      loss_fn: ``loss_fn(params, (x, y)) -> scalar`` for ``g_0``.
      prunable: the prunable filter (non-prunable leaves score 0).

    Returns:
      ``score_fn(params, *, batch, key=None)``; ``batch`` is one ``(x, y)`` batch or K batches
      stacked (``initial_gradient``).
    """
    require_callable(loss_fn, "autos", "loss_fn", "(params, batch) -> scalar loss")
    if isinstance(scorer, str | Path):
        scorer = load_scorer(scorer)
    if not isinstance(scorer, Scorer):
        raise TypeError(f"the 'autos' criterion needs scorer= a Scorer or its directory, got "
                        f"{type(scorer).__name__}")

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        require(batch, "autos", "batch", "(x, y) for the initial gradient g_0")
        grads = initial_gradient(loss_fn, params, batch)
        feats = weight_features(params, grads, standardize=scorer.standardize,
                                prunable=prunable)
        scores = predict(scorer, feats)
        flat = flatten_prunable(params, prunable)
        out, start = [], 0
        for p, f in zip(flat.leaves, flat.flags, strict=True):
            if f:
                out.append(scores[start:start + p.size].reshape(p.shape).astype(p.dtype))
                start += p.size
            else:
                out.append(jnp.zeros_like(p))
        return jax.tree_util.tree_unflatten(flat.treedef, out)

    return compiled(score_fn)


# ---------------------------------------------------------------------------------------------
# Loading (``jaxprune.studies.autos.save_scorer`` writes: orbax variables, JSON for the rest).
# ---------------------------------------------------------------------------------------------


def load_scorer(directory: str | Path) -> Scorer:
    """The :class:`Scorer` saved in ``directory``; ``ValueError`` for another feature version
    or a directory that holds none."""
    import orbax.checkpoint as ocp

    d = Path(directory)
    meta_path = d / "scorer.json"
    if not meta_path.is_file() or not (d / "variables").is_dir():
        raise ValueError(f"{directory} holds no AutoS scorer (scorer.json and variables/); "
                         "train one with `jaxprune autos train`")
    meta = json.loads(meta_path.read_text())
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ValueError(f"the scorer in {directory} was trained on features of version "
                         f"{meta.get('feature_version')!r}; this jaxprune computes version "
                         f"{FEATURE_VERSION}: train it again")
    widths = tuple(meta["widths"])
    like = jax.eval_shape(lambda: ScorerNet(widths).init(jax.random.key(0), jnp.zeros((1, 2))))
    with ocp.StandardCheckpointer() as ckpt:
        variables = ckpt.restore((d / "variables").absolute(), like)
    info = {k: v for k, v in meta.items()
            if k not in ("feature_version", "widths", "standardize", "mean", "std")}
    return Scorer(variables, widths, meta["standardize"], np.asarray(meta["mean"], np.float32),
                  np.asarray(meta["std"], np.float32), info)
