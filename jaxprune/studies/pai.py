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

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprune import contract, criteria, flops, masks, schedules
from jaxprune import seeds as _seeds
from jaxprune._cache import cached_factory
from jaxprune.data import batching, preprocess
from jaxprune.train import Split, TrainConfig, cross_entropy, fit, split_variables

PyTree = Any

#: Methods ``prune`` accepts: every registered criterion (:func:`jaxprune.criteria.names`);
#: iterative ones (SynFlow, iterative SNIP) run :func:`jaxprune.criteria.default_rounds` rounds.
METHODS = tuple(criteria.names())


#: Batch-norm modes of scoring: ``"eval"`` (running statistics; Synaptic-Flow's default,
#: ``--prune-train-mode False``, for every pruner) or ``"train"`` (the scoring batch's own
#: statistics; Synaptic-Flow's ``--prune-train-mode True``). Criterion option ``batch_norm``.
BATCH_NORM_MODES = ("eval", "train")


def model_fns(model: Any, model_state: PyTree, input_shape: Sequence[int] = (), *,
              batch_norm: str = "eval") -> criteria.ModelFns:
    """The :class:`jaxprune.criteria.ModelFns` of ``model`` (any model under
    :mod:`jaxprune.contract`) with batch norm in ``batch_norm`` mode (see
    :data:`BATCH_NORM_MODES`; "train" runs the model in train mode, so batch norm uses the
    batch's statistics, and discards the updated running ones; dropout, if any, then draws from
    a fixed key)."""
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"unknown batch_norm mode {batch_norm!r}; valid: "
                         f"{', '.join(BATCH_NORM_MODES)}")
    model = contract.as_model(model)
    train_mode = batch_norm == "train" and bool(model_state)

    def apply_fn(params, x):
        return model.apply({"params": params, **model_state}, x, train=train_mode)[0]

    def loss_fn(params, batch):
        x, y = batch
        return cross_entropy(apply_fn(params, x), y).mean()

    return criteria.ModelFns(apply_fn, loss_fn, tuple(input_shape))


def check_method(method: str) -> str:
    """``method`` if it names a registered criterion, else ``ValueError`` listing them."""
    return criteria.REGISTRY.check(method)


def _rounds(method: str, rounds: int | None) -> int:
    return criteria.default_rounds(method) if rounds is None else rounds


def _input_shape(method: str, input_shape: Sequence[int] | None, data_x: Any) -> tuple[int, ...]:
    """One example's shape: given, else the scoring data's (``data_x``: one example's shape as
    read off the batch by the caller), else ``()`` for criteria that never look at inputs."""
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    if data_x is not None:
        return tuple(int(d) for d in data_x)
    if method == "synflow":
        raise ValueError("synflow needs input_shape= (one example's shape, e.g. (28, 28, 1)) "
                         "when no scoring batch is given")
    return ()


def _require_data(method: str, data: Any, what: str) -> None:
    if data is None and criteria.needs_data(method):
        raise ValueError(f"{method} scores on data: pass {what} (e.g. from score_batches)")


def budget(
    params: PyTree,
    sparsity: float,
    allocation: str | Mapping[Sequence[str], float] = "global",
    *,
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int = 1,
) -> jax.Array:
    """:func:`jaxprune.schedules.keep_counts` as int32, refusing a target that keeps nothing.

    A sparsity that removes every prunable weight (``1.0``, or a compression beyond the number
    of weights) leaves no network to train or to compare: ``ValueError`` saying the largest
    compression this model allows.
    """
    if rounds > 1:
        _check_global(rounds, allocation)
    counts = schedules.keep_counts(params, masks.check_sparsity(sparsity), allocation,
                                   rounds=rounds, keep_dense=keep_dense)
    kept = int(counts[-1]) if rounds > 1 else int(np.sum(counts))
    if kept == 0:
        n = masks.num_prunable(params, keep_dense=keep_dense)
        raise ValueError(
            f"sparsity {sparsity!r} removes all {n:,} prunable weights (compression "
            f"{'inf' if sparsity >= 1 else f'{1 / (1 - sparsity):.3g}'}x): no network is left. "
            f"Keep at least one weight: compression at most {n:,}x, sparsity at most "
            f"{1 - 1 / n:.6g}."
        )
    return jnp.asarray(counts, jnp.int32)


def _check_global(rounds: int, allocation: Any) -> None:
    if not (isinstance(allocation, str) and allocation == "global"):
        raise ValueError(
            f"{rounds} pruning rounds prune globally; allocation={allocation!r} needs rounds=1"
        )


def _kind(rounds: int, allocation: Any) -> str:
    return "rounds" if rounds > 1 else "global" if allocation == "global" else "layer"


def prune(
    model: Any,
    variables: PyTree,
    method: str,
    sparsity: float,
    *,
    input_shape: Sequence[int] | None = None,
    batch: tuple[jax.Array, jax.Array] | None = None,
    key: jax.Array | None = None,
    allocation: str | Mapping[Sequence[str], float] = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int | None = None,
    grasp_temperature: float = 200.0,
    criterion_options: Mapping[str, Any] | None = None,
) -> PyTree:
    """Prune one network at initialization; returns a bool mask mirroring ``variables["params"]``.

    The same program as one seed of :func:`prune_seeds`. Jittable and vmappable over
    ``variables``, ``batch`` and ``key`` (``sparsity`` is static). Called eagerly, it reuses the
    compiled program of earlier calls with the same model, method and shapes, whatever the
    variables or the sparsity, and checks what a compiled program cannot: a NaN or infinite
    score of any prunable layer (in any round) raises ``ValueError`` naming the layer, and a
    layer left with no weight warns (:class:`jaxprune.masks.LayerCollapseWarning`).

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      variables: its variables (``params`` plus e.g. ``batch_stats``).
      method: one of :data:`METHODS`.
      sparsity: fraction of prunable weights to remove, in [0, 1); a value that removes every
        weight is refused (:func:`budget`).
      input_shape: one example's shape; default ``batch``'s (needed by ``synflow`` without one).
      batch: ``(x, y)`` scoring batch (SNIP, GraSP, iterative SNIP), already normalized.
      key: PRNG key (``random``).
      allocation: ``"global"`` top-k, ``"uniform"``, ``"erk"``, or a ``{path: sparsity}`` map.
      keep_dense: param paths never pruned (e.g. the first and last layer), as key tuples
        (``("fc1", "kernel")``) or strings (``"fc1/kernel"``).
      rounds: pruning rounds (default :func:`jaxprune.criteria.default_rounds`: 100 for SynFlow
        and iterative SNIP, else 1). With more than one round the schedule is exponential and
        the allocation must be global.
      grasp_temperature: GraSP's softmax temperature (200 in the reference code).
      criterion_options: further criterion settings by name, e.g. ``{"scorer": DIR}`` for
        ``autos``, ``{"batch_norm": "train"}`` to score with batch statistics (see
        :data:`BATCH_NORM_MODES`); values must be hashable (strings, numbers).

    Returns:
      The bool mask pytree.
    """
    check_method(method)
    model = contract.as_model(model)
    _require_data(method, batch, "batch=(x, y)")
    shape = _input_shape(method, input_shape, None if batch is None else jnp.shape(batch[0])[1:])
    rounds = _rounds(method, rounds)
    counts = budget(variables["params"], sparsity, allocation, keep_dense=keep_dense,
                    rounds=rounds)
    dense = tuple(sorted(masks.normalize_keep_dense(keep_dense), key=repr))
    config = (model, method, shape, _kind(rounds, allocation), dense,
              criterion_options_key(grasp_temperature, criterion_options))
    # Concrete inputs: one compiled program. Under a caller's trace: inlined, so the caller's
    # program is traced afresh (a cached inner jit would replay its first trace).
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((variables, batch, key)))
    one = _prune_one(*config) if traced else _prune_jit(*config)
    mask, nonfinite = one(variables, batch, key, counts)
    if isinstance(nonfinite, jax.core.Tracer):
        return mask
    flat = masks.flatten_prunable(variables["params"], None, keep_dense)
    _raise_if_nonfinite(nonfinite, flat.prunable_paths, None)
    return masks.warn_if_collapsed(mask, flat.flags)


def _raise_if_nonfinite(nonfinite: Any, paths: Sequence[Any], seeds: Sequence[int] | None
                        ) -> None:
    """``ValueError`` naming the seed and layer of a NaN/inf prunable parameter, else of a NaN/inf
    score, from the ``(..., 2, L)`` flags of :func:`_prune_one`."""
    bad = np.asarray(nonfinite)
    masks.raise_if_nonfinite(bad[..., 0, :], paths, seeds=seeds, what="parameters")
    masks.raise_if_nonfinite(bad[..., 1, :], paths, seeds=seeds)


def criterion_options_key(grasp_temperature: float = 200.0,
                          criterion_options: Mapping[str, Any] | None = None) -> tuple:
    """:func:`prune`'s ``grasp_temperature`` and ``criterion_options`` (defaults: its defaults)
    as the hashable, ordered tuple :func:`scoring_fn` takes: the cache key of the scoring
    programs, so ``scoring_fn(model, method, shape, criterion_options_key(t, opts))`` is the very
    scoring function (compiled once) that ``prune(..., grasp_temperature=t,
    criterion_options=opts)`` runs."""
    return tuple(sorted({"grasp_temperature": float(grasp_temperature),
                         **(criterion_options or {})}.items()))


def scoring_fn(
    model: Any, method: str, input_shape: tuple[int, ...], options: tuple = ()
) -> criteria.ScoreFn:
    """The criterion of ``method`` for ``model`` in eval mode, as ONE object for every network:
    ``score_fn(params, *, batch=(model_state, data_batch), key)``.

    The model state (batch statistics) is an argument rather than a closure, so the compiled
    scoring program (and ``schedules.run_rounds``'s compiled loop, cached on this object) is
    reused by every later call with the same model, method and shapes. ``options``: criterion
    settings from :func:`criterion_options_key` (then shared with :func:`prune`'s scoring).
    """
    return _scoring_fn(contract.as_model(model), method, tuple(input_shape), options)


@cached_factory
def _scoring_fn(model: contract.Model, method: str, input_shape: tuple[int, ...],
                options: tuple) -> criteria.ScoreFn:
    options = dict(options)
    bn = options.pop("batch_norm", "eval")

    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        model_state, data = batch
        fns = model_fns(model, model_state, input_shape, batch_norm=bn)
        crit = criteria.for_model(method, fns, options)
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


#: How a scoring batch is drawn: ``"balanced"`` (``per_class`` examples of every class) or
#: ``"random"`` (``per_class * classes`` examples drawn uniformly without replacement, as
#: Synaptic-Flow's ``prune_loader``: ``randperm(len(train))[:prune_dataset_ratio * classes]``).
SCORE_SAMPLINGS = ("balanced", "random")


def score_batches(
    train: tuple[np.ndarray, np.ndarray], seeds: Sequence[int], per_class: int, *,
    normalize: bool = True, sampling: str = "balanced",
) -> tuple[jax.Array, jax.Array]:
    """One scoring batch per seed, normalized like training: (S, B, ...), (S, B).

    Seed ``s`` draws its examples with ``fold_in(key(s), 2)``; ``B = per_class * classes``
    either way.

    Args:
      train: the training split as ``(images, labels)`` (what ``data.load`` returns, or a
        :class:`jaxprune.train.Split`).
      seeds: one batch per seed.
      per_class: examples of each class per batch (``"balanced"``), or the batch size divided
        by the number of classes (``"random"``).
      normalize: per-channel normalization with the split's statistics, as training does.
      sampling: one of :data:`SCORE_SAMPLINGS`: class-balanced (default) or a uniform random
        subset (Synaptic-Flow's, not balanced).
    """
    if sampling not in SCORE_SAMPLINGS:
        raise ValueError(f"unknown score sampling {sampling!r}; valid: "
                         f"{', '.join(SCORE_SAMPLINGS)}")
    images, labels = train
    mean, std = preprocess.channel_stats(images) if normalize else (0.0, 1.0)
    size = per_class * len(np.unique(np.asarray(labels)))
    if sampling == "random" and not 0 < size <= len(labels):
        raise ValueError(f"a random scoring batch of {per_class} x classes = {size} examples "
                         f"needs 1..{len(labels)} (the training split's size)")
    xs, ys = [], []
    for s in seeds:
        key = jax.random.fold_in(jax.random.key(int(s)), 2)
        if sampling == "balanced":
            idx = batching.class_balanced_indices(key, labels, per_class)
        else:
            idx = np.sort(np.asarray(jax.random.permutation(key, len(labels)))[:size])
        xs.append((images[idx] - mean) / std)
        ys.append(labels[idx])
    return jnp.asarray(np.stack(xs), jnp.float32), jnp.asarray(np.stack(ys))


def init_seeds(model: Any, input_shape: Sequence[int], seeds: Sequence[int]) -> PyTree:
    """Stacked variables ``(S, ...)``: init ``s`` uses ``fold_in(key(s), 0)``.

    That is the init ``train_and_evaluate`` uses for ``config.seed = s``.
    """
    keys = _seeds.seed_keys(seeds, 0)
    return init_from_keys(model, input_shape, keys)


def init_from_keys(model: Any, input_shape: Sequence[int], keys: jax.Array) -> PyTree:
    """Stacked variables ``(N, ...)``, one init per key, on the multi-seed engine (the program
    is compiled once per model and shapes)."""
    example = jnp.zeros((1, *input_shape), jnp.float32)
    return _seeds.init_seeds(_init_fn(contract.as_model(model)), keys, example)


@cached_factory
def _init_fn(model: contract.Model) -> Any:
    return model.init


def _check_stack(variables: PyTree, batches: Any, seeds: Sequence[int]) -> None:
    """Every stacked leaf has a leading axis of ``len(seeds)``: else a clear ``ValueError``."""
    n = len(seeds)
    if n < 1:
        raise ValueError("seeds is empty: give one seed per stacked network")
    for what, tree in (("variables", variables), ("batches", batches)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n:
                raise ValueError(
                    f"{n} seeds but the stacked {what} leaf {masks.path_str(path) or what!r} has "
                    f"shape {jnp.shape(leaf)}: stack one entry per seed on a leading axis of "
                    f"{n} (init_seeds(model, input_shape, seeds), score_batches(train, seeds, "
                    "per_class))"
                )


def prune_seeds(
    model: Any,
    variables: PyTree,
    method: str,
    sparsity: float,
    *,
    seeds: Sequence[int],
    batches: tuple[jax.Array, jax.Array] | None = None,
    input_shape: Sequence[int] | None = None,
    strategy: str = "auto",
    allocation: str | Mapping[Sequence[str], float] = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int | None = None,
    grasp_temperature: float = 200.0,
    criterion_options: Mapping[str, Any] | None = None,
) -> PyTree:
    """Prune every network of a stack in one compiled call: masks ``(S, ...)``.

    The multi-seed engine (:mod:`jaxprune.seeds`) picks how: on CPU ``vmap`` would turn per-seed
    conv weights into slow grouped convolutions, so ``strategy="auto"`` loops or ``lax.map``-s
    there; on accelerators it vmaps. Masks are identical to a per-seed loop of :func:`prune`,
    and so are the checks: a NaN or infinite score (any seed, any round) raises ``ValueError``
    naming the seed and the layer, and collapsed layers warn, naming the seeds.

    Compilation: the program depends on the model, the method, the kind of budget (global,
    per layer, or ``rounds``), ``keep_dense`` and the shapes, not on the seeds or the sparsity:
    the sparsity enters as traced keep counts (:func:`budget`). Later calls that differ only in
    seeds, variables, batches, sparsity or the allocation's layer budget reuse the program.

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      variables: stacked variables ``(S, ...)`` (:func:`init_seeds`).
      method, sparsity: as for :func:`prune`.
      seeds: the S seeds; ``random`` draws with ``fold_in(key(s), 3)``.
      batches: stacked scoring batches ``(S, B, ...)``, ``(S, B)`` (:func:`score_batches`);
        only for criteria that score on data (:func:`jaxprune.criteria.needs_data`).
      input_shape: one example's shape; default the batches' (needed by ``synflow`` without).
      strategy: a :data:`jaxprune.seeds.STRATEGIES` name.
      allocation, keep_dense, rounds, grasp_temperature, criterion_options: as for
        :func:`prune`.
    """
    check_method(method)
    model = contract.as_model(model)
    seeds = [int(s) for s in seeds]
    _require_data(method, batches, "batches=(xs, ys) stacked per seed")
    _check_stack(variables, batches, seeds)
    shape = _input_shape(method, input_shape,
                         None if batches is None else jnp.shape(batches[0])[2:])
    rounds = _rounds(method, rounds)
    one_params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype),
                              variables["params"])
    counts = budget(one_params, sparsity, allocation, keep_dense=keep_dense, rounds=rounds)
    dense = tuple(sorted(masks.normalize_keep_dense(keep_dense), key=repr))
    fn = _prune_by_seed(model, method, shape, _kind(rounds, allocation), dense,
                        criterion_options_key(grasp_temperature, criterion_options))
    # Seeds, not keys: each program derives its seed's key, so the first call compiles one
    # program (the parameter checks are its flags too; docs/benchmarks.md, compile time).
    stacked, nonfinite = _seeds.map_stacked(
        fn, variables, batches, _seeds.seeds_or_keys(seeds, 3), counts,
        in_axes=(0, 0, 0, None), strategy=strategy
    )
    flat = masks.flatten_prunable(one_params, None, keep_dense)
    _raise_if_nonfinite(nonfinite, flat.prunable_paths, seeds)
    _warn_collapsed_seeds(stacked, flat, seeds)
    return stacked


def _warn_collapsed_seeds(stacked: PyTree, flat: masks.PrunableLeaves, seeds: Sequence[int]
                          ) -> None:
    """One :class:`jaxprune.masks.LayerCollapseWarning` naming the seeds and layers that lost
    every weight."""
    leaves = jax.tree.leaves(stacked)
    dead = [(s, masks.path_str(p)) for p, m, f in zip(flat.paths, leaves, flat.flags, strict=True)
            if f for s, alive in zip(seeds, np.asarray(m).reshape(len(seeds), -1).any(axis=1),
                                     strict=True) if not alive]
    if dead:
        shown = ", ".join(f"seed {s}: {p}" for s, p in dead[:6])
        warnings.warn(
            f"layer collapse in {len({s for s, _ in dead})} of {len(seeds)} seeds ({shown}"
            f"{', ...' if len(dead) > 6 else ''}): the pruned network is disconnected. Lower the "
            "sparsity, use an allocation that protects small layers ('erk'), keep these layers "
            "dense (keep_dense=), or use an iterative criterion (SynFlow).",
            masks.LayerCollapseWarning, stacklevel=3,
        )


def prune_program(
    model: Any,
    method: str,
    input_shape: Sequence[int],
    *,
    allocation: str | Mapping[Sequence[str], float] = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    rounds: int | None = None,
    grasp_temperature: float = 200.0,
    criterion_options: Mapping[str, Any] | None = None,
) -> Any:
    """The pruning program of one network that :func:`prune` jits and :func:`prune_seeds` maps
    over seeds, without their host-side checks: ``one(variables, batch, key, counts) -> (mask,
    nonfinite)``, not jitted (e.g. for ``jaxprune.seeds.map_stacked`` or timing it).

    ``counts`` are :func:`budget`'s keep counts for the same ``allocation``, ``keep_dense`` and
    ``rounds`` (traced: one program for every sparsity); ``nonfinite`` (2, L) bool flags the
    prunable layers whose parameters (row 0) or scores (row 1, any round) hold a NaN or inf.
    One function object per configuration (cached), so compiled programs are reused. The other
    arguments are as for :func:`prune`.
    """
    check_method(method)
    return _prune_one(contract.as_model(model), method, tuple(input_shape),
                      _kind(_rounds(method, rounds), allocation),
                      tuple(tuple(p) for p in keep_dense),
                      criterion_options_key(grasp_temperature, criterion_options))


@cached_factory
def _prune_one(
    model: contract.Model,
    method: str,
    input_shape: tuple[int, ...],
    kind: str,
    keep_dense: tuple[tuple[str, ...], ...],
    options: tuple,
) -> Any:
    """``one(variables, batch, key, counts) -> (mask, nonfinite)``: one network pruned with the
    sparsity given as traced :func:`budget` counts, one function object per configuration (so
    the multi-seed engine's compiled programs are reused). ``nonfinite`` (2, L) flags the
    prunable layers whose parameters (row 0) or scores (row 1, any round) hold a NaN or inf."""
    score_fn = _scoring_fn(model, method, input_shape, options)

    def one(variables: PyTree, batch: Any, key: jax.Array, counts: jax.Array) -> PyTree:
        params, model_state = split_variables(variables)
        bad_params = masks.nonfinite_leaves(params, keep_dense=keep_dense)
        data = (model_state, batch)
        if kind == "rounds":
            mask, bad_scores = schedules.run_rounds(score_fn, params, counts, batch=data,
                                                    key=key, keep_dense=keep_dense)
        else:
            scores = score_fn(params, batch=data, key=key)
            mask = masks.mask_by_keep_counts(scores, counts, per_layer=kind == "layer",
                                             keep_dense=keep_dense)
            bad_scores = masks.nonfinite_leaves(scores, keep_dense=keep_dense)
        return mask, jnp.stack([bad_params, bad_scores])

    return one


@cached_factory
def _prune_jit(*config: Any) -> Any:
    """``jax.jit(_prune_one(*config))``: :func:`prune`'s one compiled program per configuration."""
    return jax.jit(_prune_one(*config))


@cached_factory
def _prune_by_seed(*config: Any) -> Any:
    """:func:`_prune_one` taking an element of ``seeds.seeds_or_keys(seeds, 3)`` for its key."""
    one = _prune_one(*config)

    def by_seed(variables: PyTree, batch: Any, seed: jax.Array, counts: jax.Array) -> PyTree:
        return one(variables, batch, _seeds.key_from(seed, 3), counts)

    return by_seed


def mask_reports(
    model: Any, variables: PyTree, stacked_masks: PyTree, input_shape: Sequence[int], **kw
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


def first_and_last_layers(model: Any, variables: PyTree, input_shape: Sequence[int]):
    """Param paths of the first and last conv/dense kernel in execution order."""
    example = jnp.zeros((1, *input_shape), jnp.float32)
    return masks.first_and_last([layer.path for layer in flops.trace_layers(model, variables,
                                                                            example)])


def sweep(
    model: Any,
    train: Split,
    test: Split,
    config: TrainConfig,
    *,
    methods: Sequence[str],
    sparsities: Sequence[float],
    seeds: Sequence[int],
    per_class: int = 10,
    score_sampling: str = "balanced",
    allocation: str = "global",
    keep_dense: Iterable[Sequence[str]] = (),
    include_dense: bool = True,
    workdir: str | None = None,
    progress: bool = True,
    criterion_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Prune ``len(seeds)`` random inits with every method at every sparsity, train all, evaluate.

    Init ``s`` comes from :func:`init_seeds` (the init ``train_and_evaluate`` uses for
    ``config.seed = s``), its scoring batch from :func:`score_batches` (``per_class`` training
    examples of each class), and each masked network trains with the batch order of seed ``s``.
    All networks (plus one dense network per seed if ``include_dense``) train together in one
    vmapped ``fit``: one compilation for the whole figure.

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      train, test: the splits.
      config: training recipe (``config.seed`` is ignored: ``seeds`` decide).
      methods: names from :data:`METHODS`.
      sparsities: sparsities in [0, 1).
      seeds: one random init per seed.
      per_class: scoring examples per class (SNIP/GraSP/iterative SNIP).
      score_sampling: how the scoring batches are drawn (:func:`score_batches`).
      allocation: layer budget for single-round methods (:func:`prune`).
      keep_dense: param paths never pruned.
      include_dense: also train the unpruned networks (method ``"dense"``, sparsity 0).
      workdir: optional ``fit`` workdir (checkpoints, metrics, resume).
      progress: progress bars.
      criterion_options: as for :func:`prune` (e.g. ``{"scorer": DIR}`` for ``autos``).

    Returns:
      One row per network: method, sparsity, density, compression, seed, test_accuracy,
      test_loss, remaining_params, remaining_macs, collapsed_layers (how many layers lost every
      weight), chance_accuracy, at_chance (:func:`chance_accuracy`) and diverged_epoch (the
      first epoch whose training loss was NaN or infinite, or ``None``).
    """
    for m in methods:
        check_method(m)
    model = contract.as_model(model)
    input_shape = tuple(train.images.shape[1:])
    seeds = [int(s) for s in seeds]
    variables = init_seeds(model, input_shape, seeds)
    batches = score_batches(train, seeds, per_class, normalize=config.normalize,
                            sampling=score_sampling)
    one_params = jax.tree.map(lambda a: a[0], variables["params"])
    for m in methods:  # refuse every bad target before any work
        for s in sparsities:
            budget(one_params, s, allocation, keep_dense=keep_dense, rounds=_rounds(m, None))

    networks: list[Network] = []
    all_masks = []
    todo = [(m, s) for m in methods for s in sparsities]
    with warnings.catch_warnings():  # collapsed layers are counted in the rows instead
        warnings.simplefilter("ignore", masks.LayerCollapseWarning)
        for method, sparsity in tqdm(todo, desc="pruning", disable=None if progress else True,
                                     leave=False):
            all_masks.append(prune_seeds(
                model, variables, method, sparsity, seeds=seeds,
                batches=batches if criteria.needs_data(method) else None,
                input_shape=input_shape, allocation=allocation, keep_dense=keep_dense,
                criterion_options=criterion_options))
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
    chance, threshold = chance_accuracy(test.labels)
    rows = []
    for i, (net, rep) in enumerate(zip(networks, reports, strict=True)):
        density = 1.0 - net.sparsity
        acc = result.results["test_accuracy"][i]
        rows.append({
            "method": net.method,
            "sparsity": net.sparsity,
            "density": density,
            "compression": (1.0 / density) if density > 0 else math.inf,
            "seed": net.seed,
            "test_accuracy": acc,
            "test_loss": result.results["test_loss"][i],
            "remaining_params": rep.remaining_params,
            "remaining_macs": rep.remaining_macs,
            "collapsed_layers": len(rep.collapsed),
            "chance_accuracy": chance,
            "at_chance": bool(acc <= threshold),
            "diverged_epoch": result.results["diverged_epoch"][i],
        })
    return rows


class PruneResult(NamedTuple):
    """What :func:`prune_and_train` returns.

    Attributes:
      seeds: the seeds, one network each.
      variables: the stacked initial variables ``(S, ...)``.
      masks: the stacked masks ``(S, ...)``.
      rounds: the pruning rounds used.
      keep_dense: the parameter paths kept dense.
      reports: one :class:`jaxprune.masks.MaskReport` (with MACs) per seed.
      fit: ``fit``'s results (``None`` when ``config.epochs == 0``).
      chance: ``(chance accuracy, threshold)`` of the test split (:func:`chance_accuracy`).
    """

    seeds: list[int]
    variables: PyTree
    masks: PyTree
    rounds: int
    keep_dense: tuple[tuple[str, ...], ...]
    reports: list[masks.MaskReport]
    fit: dict[str, Any] | None
    chance: tuple[float, float]

    def summary(self) -> dict[str, Any]:
        """``{"per_seed": [...]}``: each seed's sparsity, remaining params and MACs, collapsed
        layers, layer densities and, when trained, test accuracy, ``at_chance`` and
        ``diverged_epoch``; plus ``chance_accuracy`` when trained."""
        rows = []
        for i, (s, r) in enumerate(zip(self.seeds, self.reports, strict=True)):
            row = {"seed": s, "sparsity": r.sparsity, "remaining_params": r.remaining_params,
                   "remaining_macs": round(r.remaining_macs), "macs": r.macs,
                   "collapsed_layers": [masks.path_str(p) for p in r.collapsed],
                   "layer_density": {masks.path_str(row.path): row.density for row in r.rows}}
            if self.fit is not None:
                acc = self.fit["test_accuracy"][i]
                row |= {"test_accuracy": acc, "at_chance": bool(acc <= self.chance[1]),
                        "diverged_epoch": self.fit["diverged_epoch"][i]}
            rows.append(row)
        out: dict[str, Any] = {"per_seed": rows}
        if self.fit is not None:
            out["chance_accuracy"] = self.chance[0]
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per seed (CSV): the summary's per-seed entries without the per-layer
        densities, collapsed layers counted."""
        return [{k: (len(v) if k == "collapsed_layers" else v) for k, v in r.items()
                 if k != "layer_density"} for r in self.summary()["per_seed"]]


def prune_and_train(
    model: Any,
    train: Split,
    test: Split,
    config: TrainConfig,
    *,
    criterion: str,
    sparsity: float,
    seeds: Sequence[int],
    allocation: str = "global",
    rounds: int | None = None,
    per_class: int = 10,
    score_sampling: str = "balanced",
    keep_first_last: bool = False,
    criterion_options: Mapping[str, Any] | None = None,
    workdir: str | None = None,
    progress: bool = True,
    on_checked: Callable[[int], None] | None = None,
) -> PruneResult:
    """Prune ``len(seeds)`` random inits with one criterion and train the masked networks
    together (``config.epochs`` epochs; none for 0): the ``jaxprune prune`` command.

    Init ``s`` is :func:`init_seeds`'s, its scoring batch :func:`score_batches`'s, its masks
    :func:`prune_seeds`'s, and its training ``fit``'s with the batch order of seed ``s``. Layer
    collapse is reported in the result (``reports``), not warned.

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      train, test: the splits.
      config: the training recipe (``config.seed`` is ignored: ``seeds`` decide).
      criterion: a registered criterion (:data:`METHODS`).
      sparsity: fraction of prunable weights removed.
      seeds: one network per seed.
      allocation, rounds: as for :func:`prune`.
      per_class, score_sampling: the scoring batches (:func:`score_batches`).
      keep_first_last: never prune the first and last layer (execution order).
      criterion_options: as for :func:`prune`.
      workdir: ``fit``'s workdir (checkpoints, resume).
      progress: progress bars.
      on_checked: ``on_checked(rounds)`` once the configuration is checked (the budget keeps
        at least one weight), before any pruning or training (e.g. to claim a results folder).
    """
    check_method(criterion)
    model = contract.as_model(model)
    seeds = [int(s) for s in seeds]
    input_shape = tuple(train.images.shape[1:])
    variables = init_seeds(model, input_shape, seeds)
    one_vars = jax.tree.map(lambda a: a[0], variables)
    keep_dense = first_and_last_layers(model, one_vars, input_shape) if keep_first_last else ()
    rounds = _rounds(criterion, rounds)
    budget(one_vars["params"], sparsity, allocation, keep_dense=keep_dense, rounds=rounds)
    if on_checked is not None:
        on_checked(rounds)
    batches = None
    if criteria.needs_data(criterion):
        batches = score_batches(train, seeds, per_class, normalize=config.normalize,
                                sampling=score_sampling)
    with warnings.catch_warnings():  # collapsed layers are in the reports
        warnings.simplefilter("ignore", masks.LayerCollapseWarning)
        stacked = prune_seeds(model, variables, criterion, sparsity, seeds=seeds,
                              batches=batches, input_shape=input_shape, allocation=allocation,
                              keep_dense=keep_dense, rounds=rounds,
                              criterion_options=criterion_options)
    reports = mask_reports(model, variables, stacked, input_shape, keep_dense=keep_dense)
    results = None
    if config.epochs > 0:
        results = fit(model, variables, train, test, config, mask=stacked, seeds=seeds,
                      workdir=workdir, progress=progress).results
    return PruneResult(seeds, variables, stacked, rounds, tuple(tuple(p) for p in keep_dense),
                       reports, results, chance_accuracy(test.labels))


def chance_accuracy(labels: np.ndarray, *, z: float = 2.326) -> tuple[float, float]:
    """``(chance, threshold)`` for a test split: chance is the accuracy of always predicting the
    most frequent class; an accuracy at or below ``threshold`` is *at chance*: not above it by a
    one-sided binomial test at the 1% level (``z`` = 2.326) over ``len(labels)`` examples.

    A network at chance learned nothing, whether or not a layer collapsed (collapse is one
    cause; a network can also sit at chance with every layer connected).
    """
    labels = np.asarray(labels)
    p0 = float(np.bincount(labels).max() / len(labels))
    return p0, p0 + z * math.sqrt(p0 * (1 - p0) / len(labels))


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of test accuracy per (method, sparsity), in input order.

    ``acc_std`` is the sample standard deviation (NaN for a single seed: there is no spread to
    report); ``collapsed_runs`` counts runs with a layer that lost every weight, ``at_chance_runs``
    runs whose accuracy sits at chance (:func:`chance_accuracy`), collapsed or not.
    """
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
            "acc_std": float(acc.std(ddof=1)) if len(rs) > 1 else math.nan,
            "collapsed_runs": sum(r["collapsed_layers"] > 0 for r in rs),
            "at_chance_runs": sum(bool(r.get("at_chance", False)) for r in rs),
            "diverged_runs": sum(r.get("diverged_epoch") is not None for r in rs),
            "remaining_params": int(np.mean([r["remaining_params"] for r in rs])),
        })
    return out
