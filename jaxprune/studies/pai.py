"""Pruning at initialization (the PaI survey, Wang et al. IJCAI'22): prune random inits, train them.

This module connects the model-agnostic pieces to a Flax model:

  ``prune(model, variables, method, sparsity, ...)`` builds the loss / apply functions a criterion
  needs from the model (batch norm in eval mode, as the SynFlow reference code scores), scores,
  and turns the scores into a mask (global top-k, a layer budget, or iterative rounds).

  ``sweep(...)`` runs the study: for every seed an init, for every (method, sparsity) a mask, and
  then *all* masked networks are trained together in one vmapped run (``train.fit(seeds=...)``),
  so a whole accuracy-vs-compression figure costs one compilation of the training step.

Reference: https://arxiv.org/abs/2103.06460 (survey), SNIP arXiv:1810.02340, GraSP
arXiv:2002.07376, SynFlow arXiv:2006.05467.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprune import allocation as _allocation
from jaxprune import criteria, flops, masks, schedules
from jaxprune import seeds as _seeds
from jaxprune.data import batching, preprocess
from jaxprune.train import Split, TrainConfig, cross_entropy, fit, split_variables

PyTree = Any

#: Methods ``prune`` accepts: single-shot criteria plus the iterative ones.
METHODS = ("random", "magnitude", "snip", "grasp", "synflow", "iterative_snip")
#: Default number of rounds per method (SynFlow and iterative SNIP: 100, as in Tanaka et al.).
DEFAULT_ROUNDS = {"synflow": 100, "iterative_snip": 100}


def model_fns(model: nn.Module, model_state: PyTree):
    """``(apply_fn(params, x), loss_fn(params, (x, y)))`` of ``model`` in eval mode."""

    def apply_fn(params, x):
        return model.apply({"params": params, **model_state}, x, train=False)

    def loss_fn(params, batch):
        x, y = batch
        return cross_entropy(apply_fn(params, x), y).mean()

    return apply_fn, loss_fn


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; valid methods: {list(METHODS)}")
    return method


def prune(
    model: nn.Module,
    variables: PyTree,
    method: str,
    sparsity: float,
    *,
    input_shape: Sequence[int],
    batch: tuple[jax.Array, jax.Array] | None = None,
    key: jax.Array | None = None,
    allocation: str | Mapping[Sequence[str], float] = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int | None = None,
    grasp_temperature: float = 200.0,
) -> PyTree:
    """Prune one network at initialization; returns a bool mask mirroring ``variables["params"]``.

    Jittable and vmappable over ``variables``, ``batch`` and ``key`` (``sparsity`` is static).
    Called eagerly, it reuses the compiled scoring and masking programs of earlier calls with the
    same model, method and shapes, whatever the variables or the sparsity.

    Args:
      model: the Flax module.
      variables: its variables (``params`` plus e.g. ``batch_stats``).
      method: one of :data:`METHODS`.
      sparsity: fraction of prunable weights to remove, in [0, 1].
      input_shape: per-example input shape (SynFlow's all-ones input).
      batch: ``(x, y)`` scoring batch (SNIP, GraSP, iterative SNIP), already normalized.
      key: PRNG key (``random``).
      allocation: ``"global"`` top-k, ``"uniform"``, ``"erk"``, or a ``{path: sparsity}`` map.
      keep_dense: param paths never pruned (e.g. the first and last layer).
      rounds: pruning rounds (default :data:`DEFAULT_ROUNDS`, else 1). With more than one round
        the schedule is exponential and the allocation must be global.
      grasp_temperature: GraSP's softmax temperature (200 in the reference code).

    Returns:
      The bool mask pytree.
    """
    check_method(method)
    params, model_state = split_variables(variables)
    rounds = _rounds(method, rounds)
    score_fn = _score_fn(model, method, tuple(input_shape), grasp_temperature)
    data = (model_state, batch)  # score_fn's batch: the model state travels as an argument
    if rounds > 1:
        _check_global(method, rounds, allocation)
        return schedules.prune_iteratively(
            score_fn, params, sparsity, rounds=rounds, schedule="exponential", batch=data,
            key=key, keep_dense=keep_dense,
        )
    scores = score_fn(params, batch=data, key=key)
    return _allocation.mask_by_allocation(scores, sparsity, allocation, keep_dense=keep_dense)


def _rounds(method: str, rounds: int | None) -> int:
    return DEFAULT_ROUNDS.get(method, 1) if rounds is None else rounds


def _check_global(method: str, rounds: int, allocation: Any) -> None:
    if not (isinstance(allocation, str) and allocation == "global"):
        raise ValueError(
            f"{method} with {rounds} rounds prunes globally; allocation={allocation!r} needs "
            "rounds=1"
        )


def _cached(factory: Any) -> Any:
    """``functools.lru_cache(factory)`` that calls ``factory`` uncached on unhashable arguments
    (a Flax module with a list field), so caching never changes what is computed."""
    cached = functools.lru_cache(maxsize=32)(factory)

    @functools.wraps(factory)
    def get(*args: Any) -> Any:
        try:
            hash(args)
        except TypeError:
            return factory(*args)
        return cached(*args)

    return get


@_cached
def _score_fn(
    model: nn.Module, method: str, input_shape: tuple[int, ...], grasp_temperature: float
) -> criteria.ScoreFn:
    """The criterion of ``method`` for ``model`` in eval mode, as ONE object for every network:
    ``score_fn(params, *, batch=(model_state, data_batch), key)``.

    The model state (batch statistics) is an argument rather than a closure, so the compiled
    scoring program (and ``schedules.prune_iteratively``'s compiled loop, cached on this object)
    is reused by every later call with the same model, method and shapes.
    """

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        model_state, data = batch
        apply_fn, loss_fn = model_fns(model, model_state)
        if method == "synflow":
            crit = criteria.get("synflow", apply_fn=apply_fn, input_shape=input_shape)
        elif method in ("snip", "iterative_snip"):
            crit = criteria.get("snip", loss_fn=loss_fn)
        elif method == "grasp":
            temp_loss = criteria.softmax_xent_with_temperature(apply_fn, grasp_temperature)
            crit = criteria.get("grasp", loss_fn=temp_loss)
        else:
            crit = criteria.get(method)
        return crit(params, batch=data, key=key)

    return jax.jit(score_fn)


def compression_to_sparsity(compression: float) -> float:
    """``1 - 1/compression`` (compression = 1/density)."""
    if not compression >= 1:
        raise ValueError(f"compression is 1/density and must be >= 1, got {compression}")
    return 1.0 - 1.0 / compression


class Network(NamedTuple):
    """One trained network of a sweep."""

    method: str
    sparsity: float
    seed: int


def score_batches(
    train: Split, seeds: Sequence[int], per_class: int, *, normalize: bool = True
) -> tuple[jax.Array, jax.Array]:
    """One class-balanced scoring batch per seed, normalized like training: (S, B, ...), (S, B).

    Seed ``s`` draws its ``per_class`` examples of every class with ``fold_in(PRNGKey(s), 2)``.
    """
    mean, std = preprocess.channel_stats(train.images) if normalize else (0.0, 1.0)
    xs, ys = [], []
    for s in seeds:
        idx = batching.class_balanced_indices(
            jax.random.fold_in(jax.random.PRNGKey(s), 2), train.labels, per_class
        )
        xs.append((train.images[idx] - mean) / std)
        ys.append(train.labels[idx])
    return jnp.asarray(np.stack(xs), jnp.float32), jnp.asarray(np.stack(ys))


def init_seeds(model: nn.Module, input_shape: Sequence[int], seeds: Sequence[int]) -> PyTree:
    """Stacked variables ``(S, ...)``: init ``s`` uses ``fold_in(PRNGKey(s), 0)``.

    That is the init ``train_and_evaluate`` uses for ``config.seed = s``.
    """
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(s)), 0) for s in seeds])
    example = jnp.zeros((1, *input_shape), jnp.float32)
    return _seeds.init_seeds(lambda k, x: model.init(k, x, train=False), keys, example)


def prune_seeds(
    model: nn.Module,
    variables: PyTree,
    batches: tuple[jax.Array, jax.Array],
    seeds: Sequence[int],
    method: str,
    sparsity: float,
    *,
    strategy: str = "auto",
    allocation: str | Mapping[Sequence[str], float] = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int | None = None,
    grasp_temperature: float = 200.0,
) -> PyTree:
    """Prune every network of a stack in one compiled call: masks ``(S, ...)``.

    The multi-seed engine (:mod:`jaxprune.seeds`) picks how: on CPU ``vmap`` would turn per-seed
    conv weights into slow grouped convolutions, so ``strategy="auto"`` loops or ``lax.map``-s
    there; on accelerators it vmaps. Masks are identical to a per-seed loop of :func:`prune`.

    Compilation: the program depends on the model, the method, the kind of budget (global,
    per layer, or ``rounds``), ``keep_dense`` and the shapes, not on the seeds or the sparsity:
    the sparsity enters as traced keep counts (computed here in Python, exactly as :func:`prune`
    computes them). Later calls that differ only in seeds, variables, batches, sparsity or the
    allocation's layer budget reuse the compiled program.

    Args:
      model: the Flax module.
      variables: stacked variables ``(S, ...)`` (:func:`init_seeds`).
      batches: stacked scoring batches ``(S, B, ...)``, ``(S, B)`` (:func:`score_batches`).
      seeds: the S seeds; ``random`` draws with ``fold_in(PRNGKey(s), 3)``.
      method, sparsity, allocation, keep_dense, rounds, grasp_temperature: as for :func:`prune`
        (``input_shape`` is inferred).
      strategy: a :data:`jaxprune.seeds.STRATEGIES` name.
    """
    check_method(method)
    rounds = _rounds(method, rounds)
    if rounds > 1:
        _check_global(method, rounds, allocation)
    input_shape = tuple(batches[0].shape[2:])
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(s)), 3) for s in seeds])
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), variables["params"])
    counts = keep_counts(one, sparsity, allocation, keep_dense=keep_dense, rounds=rounds)
    dense = tuple(tuple(p) for p in keep_dense)
    kind = "rounds" if rounds > 1 else "global" if allocation == "global" else "layer"
    fn = _prune_one(model, method, input_shape, kind, dense, grasp_temperature)
    return _seeds.map_stacked(
        fn, variables, batches, keys, counts, in_axes=(0, 0, 0, None), strategy=strategy
    )


def keep_counts(
    params: PyTree,
    sparsity: float,
    allocation: str | Mapping[Sequence[str], float] = "global",
    *,
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int = 1,
) -> jax.Array:
    """How many prunable weights :func:`prune` keeps, as an int32 array (only shapes are read).

    ``rounds > 1``: (rounds,) kept after each exponential round (``schedules.removal_counts``).
    ``"global"``: () kept in total (``masks.num_to_remove``). Otherwise: (L,) kept in each of the
    L prunable leaves, tree-flatten order, from the allocation's per-layer removal counts.
    """
    paths, leaves, flags, _ = masks.flatten_prunable(params, None, keep_dense)
    sizes = {p: int(np.prod(np.shape(x), dtype=np.int64))
             for p, x, f in zip(paths, leaves, flags, strict=True) if f}
    n = sum(sizes.values())
    if rounds > 1:
        sparsities = schedules.exponential_schedule(sparsity, rounds)
        return jnp.asarray(n - schedules.removal_counts(sparsities, n), jnp.int32)
    if isinstance(allocation, str) and allocation == "global":
        return jnp.asarray(n - masks.num_to_remove(n, sparsity), jnp.int32)
    if isinstance(allocation, Mapping):
        removed = _allocation.allocate_by_map(params, allocation, default=sparsity,
                                              keep_dense=keep_dense)
    else:
        removed = _allocation.get(allocation)(params, sparsity, keep_dense=keep_dense)
    return jnp.asarray([size - removed[p] for p, size in sizes.items()], jnp.int32)


@_cached
def _prune_one(
    model: nn.Module,
    method: str,
    input_shape: tuple[int, ...],
    kind: str,
    keep_dense: tuple[tuple[str, ...], ...],
    grasp_temperature: float,
) -> Any:
    """``one(variables, batch, key, counts) -> mask``: :func:`prune` with the sparsity given as
    traced :func:`keep_counts`, one function object per configuration (so the multi-seed
    engine's compiled programs are reused)."""
    score_fn = _score_fn(model, method, input_shape, grasp_temperature)

    def one(variables: PyTree, batch: Any, key: jax.Array, counts: jax.Array) -> PyTree:
        params, model_state = split_variables(variables)
        data = (model_state, batch)
        if kind == "rounds":
            return schedules.prune_by_keep_counts(
                score_fn, params, counts, batch=data, key=key, keep_dense=keep_dense
            )
        scores = score_fn(params, batch=data, key=key)
        return masks.mask_by_keep_counts(scores, counts, per_layer=kind == "layer",
                                         keep_dense=keep_dense)

    return one


def mask_reports(
    model: nn.Module, variables: PyTree, stacked_masks: PyTree, input_shape: Sequence[int], **kw
) -> list[masks.MaskReport]:
    """A :class:`jaxprune.masks.MaskReport` (with MACs) for each network of a stack."""
    one = jax.tree.map(lambda a: a[0], variables)
    example = jnp.zeros((1, *input_shape), jnp.float32)
    layer_macs = {layer.path: layer.macs for layer in flops.trace_layers(model, one, example)}
    n = jax.tree.leaves(stacked_masks)[0].shape[0]
    take = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    return [
        masks.summary(take(variables["params"], i), take(stacked_masks, i), macs=layer_macs, **kw)
        for i in range(n)
    ]


def first_and_last_layers(model: nn.Module, variables: PyTree, input_shape: Sequence[int]):
    """Param paths of the first and last conv/dense kernel in execution order."""
    example = jnp.zeros((1, *input_shape), jnp.float32)
    return masks.first_and_last([layer.path for layer in flops.trace_layers(model, variables,
                                                                            example)])


def sweep(
    model: nn.Module,
    train: Split,
    test: Split,
    config: TrainConfig,
    *,
    methods: Sequence[str],
    sparsities: Sequence[float],
    seeds: Sequence[int],
    per_class: int = 10,
    allocation: str = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    include_dense: bool = True,
    workdir: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Prune ``len(seeds)`` random inits with every method at every sparsity, train all, evaluate.

    Init ``s`` comes from :func:`init_seeds` (the init ``train_and_evaluate`` uses for
    ``config.seed = s``), its scoring batch from :func:`score_batches` (``per_class`` training
    examples of each class), and each masked network trains with the batch order of seed ``s``.
    All networks (plus one dense network per seed if ``include_dense``) train together in one
    vmapped ``fit``: one compilation for the whole figure.

    Args:
      model: the Flax module.
      train, test: the splits.
      config: training recipe (``config.seed`` is ignored: ``seeds`` decide).
      methods: names from :data:`METHODS`.
      sparsities: sparsities in [0, 1).
      seeds: one random init per seed.
      per_class: scoring examples per class (SNIP/GraSP/iterative SNIP).
      allocation: layer budget for single-round methods (:func:`prune`).
      keep_dense: param paths never pruned.
      include_dense: also train the unpruned networks (method ``"dense"``, sparsity 0).
      workdir: optional ``fit`` workdir (checkpoints, metrics, resume).
      progress: progress bars.

    Returns:
      One row per network: method, sparsity, density, compression, seed, test_accuracy,
      test_loss, remaining_params, remaining_macs, collapsed_layers.
    """
    for m in methods:
        check_method(m)
    input_shape = tuple(train.images.shape[1:])
    seeds = [int(s) for s in seeds]
    variables = init_seeds(model, input_shape, seeds)
    batches = score_batches(train, seeds, per_class, normalize=config.normalize)

    networks: list[Network] = []
    all_masks = []
    todo = [(m, s) for m in methods for s in sparsities]
    for method, sparsity in tqdm(todo, desc="pruning", disable=not progress, leave=False):
        all_masks.append(prune_seeds(model, variables, batches, seeds, method, sparsity,
                                     allocation=allocation, keep_dense=keep_dense))
        networks += [Network(method, float(sparsity), s) for s in seeds]
    if include_dense:
        all_masks.append(jax.vmap(masks.ones_like)(variables["params"]))
        networks += [Network("dense", 0.0, s) for s in seeds]

    repeat = len(all_masks)
    stacked_vars = jax.tree.map(lambda a: jnp.concatenate([a] * repeat), variables)
    stacked_masks = jax.tree.map(lambda *ms: jnp.concatenate(ms), *all_masks)
    reports = mask_reports(model, stacked_vars, stacked_masks, input_shape,
                           keep_dense=keep_dense)

    result = fit(
        model, stacked_vars, train, test, config, mask=stacked_masks,
        seeds=[n.seed for n in networks], workdir=workdir, progress=progress,
    )
    rows = []
    for i, (net, rep) in enumerate(zip(networks, reports, strict=True)):
        density = 1.0 - net.sparsity
        rows.append({
            "method": net.method,
            "sparsity": net.sparsity,
            "density": density,
            "compression": (1.0 / density) if density > 0 else math.inf,
            "seed": net.seed,
            "test_accuracy": result.results["test_accuracy"][i],
            "test_loss": result.results["test_loss"][i],
            "remaining_params": rep.remaining_params,
            "remaining_macs": rep.remaining_macs,
            "collapsed_layers": len(rep.collapsed),
        })
    return rows


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of test accuracy per (method, sparsity), in input order."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["sparsity"]), []).append(r)
    out = []
    for (method, sparsity), rs in groups.items():
        acc = np.array([r["test_accuracy"] for r in rs])
        out.append({
            "method": method,
            "sparsity": sparsity,
            "compression": rs[0]["compression"],
            "seeds": len(rs),
            "acc_mean": float(acc.mean()),
            "acc_std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
            "collapsed_runs": sum(r["collapsed_layers"] > 0 for r in rs),
            "remaining_params": int(np.mean([r["remaining_params"] for r in rs])),
        })
    return out
