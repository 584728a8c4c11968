"""Lottery tickets: iterative magnitude pruning (IMP) with rewinding, every seed in one program.

  level 0   train the dense network from theta_0, capturing theta_k, its weights after
            ``rewind_step`` steps (k = 0: theta_0 itself).
  level l   score the trained survivors of level l-1 (magnitude of the trained weights by
            default, any registered criterion), remove ``rate`` of the REMAINING prunable weights
            (each layer its own share, as Frankle & Carbin prune, or one global threshold),
            rewind the survivors to theta_k, and retrain from step k. The controls train beside
            the ticket at every level:
              reinit   the ticket's mask, a new random init                 (is the init special?)
              shuffle  the ticket's per-layer counts at new positions, theta_k  (are the positions?)
              random   new positions and a new init, same per-layer counts  (both at once)

Every seed, and every arm of a level, trains in ONE vmapped ``train.fit`` (``seeds=``); scoring and
masking run on the multi-seed engine (:func:`jaxprune.seeds.map_stacked`). Results equal a loop over
seeds up to the last bits of batched matmuls.

How many weights go: ``ceil(rate * remaining)`` per layer (or in total), as the reference code
open_lth does (``sparse_global``: ``np.ceil(fraction * number_of_remaining_weights)``); those
counts do not depend on the scores, so every seed keeps the same number at every level.

Files in a workdir (the format the AutoS study reads)::

  config.json              everything that defines the run (checked on resume)
  init/                    theta_0 of every seed, stacked (S, ...) (orbax)
  level_LL/train/          the level's fit: config, metrics (with evaluation points), checkpoints
                           (level 0 also holds snapshots/<k>/: theta_k, stacked)
  level_LL/masks.npz       the ticket masks of level LL: one bool (S, ...) array per prunable
                           parameter, named "fc1/kernel"
  level_LL/summary.json    densities, and per arm and seed: final test accuracy, early-stop step
                           (minimum validation loss) and the test accuracy there
  survival.npz             per prunable parameter, uint8 (S, ...): how many pruning levels
                           (0..L) the weight survived, over the levels finished so far; plus
                           "levels" (the number of levels counted)
  results.json             every level's summary, written when the run completes

Reference: https://arxiv.org/abs/1803.03635 (Frankle & Carbin 2019), https://arxiv.org/abs/
1912.05671 (Frankle et al. 2020, rewinding); code https://github.com/facebookresearch/open_lth.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprune import contract, criteria, masks, sanity
from jaxprune import seeds as _seeds
from jaxprune._cache import cached_factory
from jaxprune.studies import pai
from jaxprune.train import (
    Split,
    TrainConfig,
    check_or_write_config,
    fingerprint,
    fit,
    save_tree,
    split_variables,
    write_json_atomic,
    write_npz_atomic,
)

PyTree = Any

CONTROLS = ("reinit", "shuffle", "random")
ALLOCATIONS = ("layer", "global")

# Key streams per seed s (jax.random.key(s) folded with): 0 init (pai.init_seeds), 1 training
# data (fit), 2 scoring batch, 3 scoring key; the controls draw from these, folded with the level.
_REINIT, _SHUFFLE, _RANDOM_MASK, _RANDOM_INIT = 10, 11, 12, 13


@dataclasses.dataclass(frozen=True)
class LotteryConfig:
    """How the tickets are found (the training recipe is a :class:`jaxprune.train.TrainConfig`).

    Attributes:
      levels: pruning levels after the dense level 0 (>= 1).
      rate: fraction of the remaining prunable weights removed per level, in (0, 1).
      layer_rates: ``{"fc3/kernel": 0.1}``: a layer's own rate (``allocation="layer"`` only).
      last_layer_rate: the rate of the last layer in execution order (Frankle & Carbin prune the
        output layer at half rate), resolved when the run starts; ``None``: ``rate``.
      allocation: ``"layer"``: every layer loses its rate of its own remaining weights (Frankle &
        Carbin's LeNet and Conv nets); ``"global"``: one threshold over all layers.
      rewind_step: 0 rewinds to the init; k > 0 to the dense run's weights after k steps, and
        every later level trains steps k+1..T (late rewinding).
      criterion: a registered criterion scoring the trained weights (``"magnitude"``).
      keep_dense: parameter paths never pruned, as ``"fc1/kernel"``.
      controls: which of :data:`CONTROLS` train beside the ticket from level 1 on.
      eval_every: evaluate every this many steps to find the early-stop step (0: every epoch).
      per_class: scoring examples per class for criteria that score on data.
    """

    levels: int
    rate: float = 0.2
    layer_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    last_layer_rate: float | None = None
    allocation: str = "layer"
    rewind_step: int = 0
    criterion: str = "magnitude"
    keep_dense: tuple[str, ...] = ()
    controls: tuple[str, ...] = CONTROLS
    eval_every: int = 0
    per_class: int = 10

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layer_rates"] = dict(self.layer_rates)
        d["keep_dense"] = list(self.keep_dense)
        d["controls"] = list(self.controls)
        return d

    def validate(self, steps: int | None = None) -> None:
        """``ValueError`` naming the first bad field; ``steps``: the run's total steps."""
        if isinstance(self.levels, bool) or int(self.levels) != self.levels or self.levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {self.levels!r}")
        for name, r in [("rate", self.rate), ("last_layer_rate", self.last_layer_rate),
                        *((f"layer_rates[{p!r}]", r) for p, r in self.layer_rates.items())]:
            if r is not None and not 0 < r < 1:
                raise ValueError(f"{name} is the fraction of the remaining weights removed per "
                                 f"level, in (0, 1); got {r}")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {self.allocation!r}; valid: {list(ALLOCATIONS)}")
        if self.allocation == "global" and (self.layer_rates or self.last_layer_rate is not None):
            raise ValueError("per-layer rates need allocation='layer' (a global threshold has "
                             "one rate)")
        criteria.REGISTRY.check(self.criterion)
        unknown = set(self.controls) - set(CONTROLS)
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}; valid: {list(CONTROLS)}")
        if self.rewind_step < 0 or (steps is not None and self.rewind_step >= steps):
            raise ValueError(f"rewind_step {self.rewind_step} must lie in [0, {steps}) (the "
                             "training run's steps)" if steps is not None else
                             f"rewind_step must be >= 0, got {self.rewind_step}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 steps, got {self.eval_every}")
        if criteria.needs_data(self.criterion) and self.per_class < 1:
            raise ValueError(f"{self.criterion} scores on data: per_class must be >= 1, got "
                             f"{self.per_class}")


class LotteryResult(NamedTuple):
    """``levels``: one summary per level (see the module docstring); ``masks``: the ticket masks
    of every level, stacked (S, ...); ``survival``: ``{path: (S, ...) uint8}``."""

    levels: list[dict[str, Any]]
    masks: list[PyTree]
    survival: dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# The pure pieces.
# ---------------------------------------------------------------------------------------------


def level_keep_counts(sizes: Sequence[int], rates: Sequence[float], levels: int,
                      *, per_layer: bool = True) -> np.ndarray:
    """Prunable weights kept after each level 0..levels: ``kept - ceil(rate * kept)`` each time.

    Args:
      sizes: (L,) prunable weights per layer.
      rates: (L,) per-layer rates (``per_layer``), or one rate (its first entry) for all.
      levels: number of pruning levels.
      per_layer: each layer loses its rate of its own remaining weights; else the total does.

    Returns:
      int64 ``(levels + 1, L)`` if ``per_layer``, else ``(levels + 1,)``; row 0 is dense.
    """
    kept = np.asarray(sizes, np.int64) if per_layer else np.asarray(sum(sizes), np.int64)
    r = np.asarray(rates, np.float64) if per_layer else float(rates[0])
    out = [kept]
    for _ in range(levels):
        kept = kept - np.ceil(r * kept).astype(np.int64)
        out.append(kept)
    return np.stack(out)


def prune_level(
    scores: PyTree,
    alive: PyTree,
    keep: jax.Array,
    *,
    per_layer: bool,
    keep_dense: Sequence[Sequence[str]] = (),
) -> PyTree:
    """One IMP level for one network: keep the ``keep`` highest-scoring LIVE weights (per layer
    with an (L,) ``keep``, or globally with a scalar); pruned weights stay pruned. Jittable."""
    return masks.mask_by_keep_counts(scores, keep, per_layer=per_layer, alive=alive,
                                     keep_dense=keep_dense)


def survival_counts(level_masks: Sequence[PyTree], *, keep_dense: Sequence[Sequence[str]] = ()
                    ) -> dict[str, np.ndarray]:
    """Per prunable weight, how many pruning levels it survived: the sum of the ticket masks of
    levels 1..L (the masks are nested, so this is the level it was pruned at, minus one).

    Args:
      level_masks: stacked masks of levels 0..L (level 0, all ones, is not counted).

    Returns:
      ``{"fc1/kernel": uint8 (S, ...)}`` with values in 0..L.
    """
    flat = masks.flatten_prunable(level_masks[0], None, keep_dense)
    out = {}
    for i, (path, f) in enumerate(zip(flat.paths, flat.flags, strict=True)):
        if f:
            total = sum(np.asarray(jax.tree.leaves(m)[i], np.uint8) for m in level_masks[1:])
            out[masks.path_str(path)] = np.asarray(total, np.uint8)
    return out


def early_stop(history: Sequence[Mapping[str, Any]], n: int) -> dict[str, list]:
    """Per network: the step of minimum validation loss (test loss without a validation split)
    among the evaluation points (every epoch end without ``eval_every``), and the test accuracy
    there. Ties go to the earliest point."""
    points = [e for r in history for e in r.get("evals", [])] or list(history)
    on = "val_loss" if "val_loss" in points[0] else "test_loss"
    losses = np.asarray([np.broadcast_to(p[on], (n,)) for p in points])  # (P, n)
    accs = np.asarray([np.broadcast_to(p["test_accuracy"], (n,)) for p in points])
    best = np.argmin(losses, axis=0)
    return {"early_stop_step": [int(points[b]["step"]) for b in best],
            "early_stop_accuracy": [float(accs[b, i]) for i, b in enumerate(best)],
            "early_stop_on": on}


def holdout(train: Split, size: int, *, seed: int = 0) -> tuple[Split, Split]:
    """``(train', validation)``: ``size`` examples drawn at random (``key(seed)``) held out, the
    same for every network (Frankle & Carbin: 5,000 of MNIST's training images)."""
    n = len(train.labels)
    if not 0 < size < n:
        raise ValueError(f"a validation split of {size} needs 0 < size < {n} (the training split)")
    perm = np.asarray(jax.random.permutation(jax.random.key(seed), n))
    val, rest = np.sort(perm[:size]), np.sort(perm[size:])
    return (Split(train.images[rest], train.labels[rest]),
            Split(train.images[val], train.labels[val]))


# ---------------------------------------------------------------------------------------------
# The study.
# ---------------------------------------------------------------------------------------------


def _paths(keep_dense: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(p.split("/")) for p in keep_dense)


def _rates(flat: masks.PrunableLeaves, lottery: LotteryConfig, last: str | None) -> list[float]:
    names = [masks.path_str(p) for p in flat.prunable_paths]
    unknown = set(lottery.layer_rates) - set(names)
    if unknown:
        raise ValueError(f"layer_rates names {sorted(unknown)}, not prunable layers of this "
                         f"model: {names}")
    rates = {**({last: lottery.last_layer_rate} if lottery.last_layer_rate is not None else {}),
             **lottery.layer_rates}
    return [rates.get(n, lottery.rate) for n in names]


def _take(tree: PyTree, idx: Any) -> PyTree:
    return jax.tree.map(lambda a: a[idx], tree)


def _concat(trees: Sequence[PyTree]) -> PyTree:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


def _keys(seeds: Sequence[int], stream: int, level: int) -> jax.Array:
    return _seeds.seed_keys(seeds, stream, level)


@cached_factory
def _level_fn(model: contract.Model, method: str, input_shape: tuple[int, ...], per_layer: bool,
              keep_dense: tuple[tuple[str, ...], ...]) -> Any:
    """``one(variables, alive, batch, key, keep) -> (mask, nonfinite)`` for one network."""
    score_fn = pai.scoring_fn(model, method, input_shape, pai.criterion_options_key())

    def one(variables: PyTree, alive: PyTree, batch: Any, key: jax.Array, keep: jax.Array):
        params, model_state = split_variables(variables)
        scores = score_fn(params, batch=(model_state, batch), key=key)
        mask = prune_level(scores, alive, keep, per_layer=per_layer, keep_dense=keep_dense)
        return mask, masks.nonfinite_leaves(scores, alive=alive, keep_dense=keep_dense)

    return one


def run(
    model: Any,
    train: Split,
    test: Split,
    config: TrainConfig,
    lottery: LotteryConfig,
    *,
    seeds: Sequence[int],
    validation: Split | None = None,
    workdir: str | None = None,
    progress: bool = True,
    level_callbacks: Sequence[Any] = (),
    epoch_callbacks: Sequence[Any] = (),
) -> LotteryResult:
    """Find lottery tickets for every seed at once; train the controls beside them.

    Seed ``s`` starts from ``pai.init_seeds``' init for ``s`` and trains with the batch order of
    ``config.seed = s`` (every arm of a seed sees the same batches). With a ``workdir`` a run
    killed at any point resumes where it stopped (each level's training resumes from its last
    checkpoint; finished levels are read back) with bitwise-identical results on CPU, and a
    different configuration is refused before anything is written.

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      train, test: the splits (``train`` without the validation examples).
      config: the training recipe of every level (``config.seed`` is ignored: ``seeds`` decide).
      lottery: how tickets are found (:class:`LotteryConfig`).
      seeds: one network per seed.
      validation: held-out split for the early-stop step (:func:`holdout`); without it the
        early stop is read off the test loss (and says so).
      workdir: folder for every level's files (module docstring).
      progress: progress bars (on a terminal) and a line per level.
      level_callbacks: ``cb(level, summary)`` after each level's files are written.
      epoch_callbacks: passed to every level's ``fit`` (``cb(epoch, state, row)``).

    Returns:
      :class:`LotteryResult`.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give one seed per network")
    model = contract.as_model(model)
    n_train = len(train.labels)
    steps = config.epochs * (n_train // config.batch_size)
    lottery.validate(steps)
    config.validate()
    shape = tuple(train.images.shape[1:])
    n = len(seeds)
    init = pai.init_seeds(model, shape, seeds)
    keep_dense = _paths(lottery.keep_dense)
    flat = masks.flatten_prunable(_take(init["params"], 0), None, keep_dense)
    order = [masks.path_str(p) for p in
             pai.first_and_last_layers(model, _take(init, 0), shape)]
    rates = _rates(flat, lottery, order[1])
    sizes = [int(np.prod(np.shape(x))) for x, f in zip(flat.leaves, flat.flags, strict=True) if f]
    per_layer = lottery.allocation == "layer"
    counts = level_keep_counts(sizes, rates, lottery.levels, per_layer=per_layer)
    if np.any(np.asarray(counts[-1]) == 0):
        raise ValueError(f"{lottery.levels} levels at these rates prune a layer completely "
                         f"(kept per level: {counts.tolist()}); use fewer levels")

    root = Path(workdir) if workdir is not None else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        check_or_write_config(root / "config.json",
                              identity(model, train, test, config, lottery, seeds, validation,
                                       init=init))
        _save_tree(root / "init", init)

    batches = None
    if criteria.needs_data(lottery.criterion):
        batches = pai.score_batches(train, seeds, lottery.per_class, normalize=config.normalize)
    level_fn = _level_fn(model, lottery.criterion, shape, per_layer, keep_dense)
    fit_kw = dict(validation=validation, eval_every=lottery.eval_every or None,
                  progress=progress, callbacks=epoch_callbacks)

    rewind = init  # theta_k, stacked (S, ...)
    ticket_masks = [jax.vmap(masks.ones_like)(init["params"])]
    summaries: list[dict[str, Any]] = []
    bar = tqdm(range(lottery.levels + 1), desc="IMP levels", disable=None if progress else True)
    for level in bar:
        arms = ["ticket"] if level == 0 else ["ticket", *lottery.controls]
        mask = ticket_masks[-1]
        variables, arm_masks = arm_networks(model, shape, seeds, level, arms, rewind, mask,
                                            keep_dense)
        snapshot = [lottery.rewind_step] if level == 0 and lottery.rewind_step else []
        res = fit(model, variables, train, test, config, mask=arm_masks, seeds=seeds * len(arms),
                  workdir=None if root is None else str(_level_dir(root, level) / "train"),
                  start_step=0 if level == 0 else lottery.rewind_step,
                  snapshot_steps=snapshot, **fit_kw)
        if snapshot:
            rewind = res.snapshots[lottery.rewind_step]
        summary = _summary(level, arms, n, res, mask, keep_dense)
        summaries.append(summary)
        if root is not None:
            _write_level(root, level, mask, summary)
        if progress:
            t = summary["arms"]["ticket"]
            acc, stop = 100 * np.mean(t["test_accuracy"]), np.mean(t["early_stop_step"])
            tqdm.write(f"level {level:>2}/{lottery.levels}: {100 * summary['density']:.2f}% of "
                       f"prunable weights, ticket test accuracy {acc:.2f}%, early stop at step "
                       f"{stop:.0f}")
        for cb in level_callbacks:
            cb(level, summary)
        if level == lottery.levels:
            break
        trained = _take(res.variables, slice(0, n))
        keep = jnp.asarray(counts[level + 1], jnp.int32)
        new, nonfinite = _seeds.map_stacked(
            level_fn, trained, mask, batches, _keys(seeds, 3, level), keep,
            in_axes=(0, 0, 0, 0, None))
        masks.raise_if_nonfinite(nonfinite, flat.prunable_paths, seeds=seeds)
        ticket_masks.append(new)
        if root is not None:
            _write_survival(root, ticket_masks, keep_dense)
    survival = survival_counts(ticket_masks, keep_dense=keep_dense)
    if root is not None:
        write_json_atomic(root / "results.json", {"levels": summaries})
    return LotteryResult(summaries, ticket_masks, survival)


def identity(model: Any, train: Split, test: Split, config: TrainConfig,
             lottery: LotteryConfig, seeds: Sequence[int], validation: Split | None = None, *,
             init: PyTree | None = None) -> dict[str, Any]:
    """What makes a lottery run the run it is (its workdir's ``config.json``): both configs, the
    seeds, the model, and fingerprints of the inits and of the data."""
    if init is None:
        init = pai.init_seeds(model, tuple(train.images.shape[1:]), seeds)
    return {
        "command": "lottery", **config.to_dict(), **lottery.to_dict(),
        "seeds": [int(s) for s in seeds], "model_repr": contract.as_model(model).describe(),
        "init_fingerprint": fingerprint(init),
        "data_fingerprint": fingerprint((train.images, train.labels, test.images, test.labels)),
        "validation_fingerprint": None if validation is None else fingerprint(
            (validation.images, validation.labels)),
    }


def arm_networks(model: Any, input_shape: Sequence[int], seeds: Sequence[int], level: int,
                 arms: Sequence[str], rewind: PyTree, mask: PyTree,
                 keep_dense: Sequence[Sequence[str]] = ()) -> tuple[PyTree, PyTree]:
    """The networks :func:`run` trains at IMP level ``level``: the variables and masks of every
    arm, stacked arm-major, ``(A * S, ...)`` for A arms and S seeds.

    ``"ticket"``: ``rewind`` (theta_k, stacked per seed) under ``mask`` (the level's ticket
    masks, stacked per seed); ``"reinit"``: a new init under ``mask``; ``"shuffle"``: ``rewind``
    under ``mask`` shuffled within each layer; ``"random"``: a new init under a shuffled mask.
    The new inits and shuffles draw from each seed and ``level``, as ``run`` does;
    ``keep_dense`` param paths (key tuples such as ``("fc1", "kernel")``) are not shuffled.
    """
    shape = tuple(input_shape)
    keep_dense = tuple(tuple(p) for p in keep_dense)
    variables, arm_masks = [], []
    for arm in arms:
        if arm in ("ticket", "shuffle"):
            variables.append(rewind)
        else:
            stream = _REINIT if arm == "reinit" else _RANDOM_INIT
            variables.append(pai.init_from_keys(model, shape, _keys(seeds, stream, level)))
        if arm in ("ticket", "reinit"):
            arm_masks.append(mask)
        else:
            keys = _keys(seeds, _SHUFFLE if arm == "shuffle" else _RANDOM_MASK, level)
            arm_masks.append(_shuffle_fn(keep_dense)(mask, keys))
    return _concat(variables), _concat(arm_masks)


@functools.lru_cache(maxsize=8)
def _shuffle_fn(keep_dense: tuple[tuple[str, ...], ...]) -> Any:
    """Stacked masks shuffled within each layer, one key per mask (compiled once)."""
    return jax.jit(jax.vmap(lambda m, k: sanity.shuffle_mask(m, key=k, keep_dense=keep_dense)))


def _summary(level, arms, n, res, mask, keep_dense) -> dict[str, Any]:
    one = _take(mask, 0)  # every seed keeps the same number per layer
    rep = masks.summary(one, one, keep_dense=keep_dense)
    stop = early_stop(res.history, n * len(arms)) if res.history else None
    out = {"level": level, "density": rep.density, "remaining": rep.num_prunable - rep.num_pruned,
           "layer_density": {masks.path_str(r.path): r.density for r in rep.rows if r.prunable},
           "arms": {}}
    acc = np.broadcast_to(res.results["test_accuracy"], (n * len(arms),))
    diverged = res.results["diverged_epoch"]
    for a, arm in enumerate(arms):
        sl = slice(a * n, (a + 1) * n)
        out["arms"][arm] = {"test_accuracy": [float(x) for x in acc[sl]],
                            "diverged_epoch": diverged[sl]}
        if stop is not None:
            out["arms"][arm] |= {"early_stop_step": stop["early_stop_step"][sl],
                                 "early_stop_accuracy": stop["early_stop_accuracy"][sl]}
    if stop is not None:
        out["early_stop_on"] = stop["early_stop_on"]
    return out


def _level_dir(root: Path, level: int) -> Path:
    return root / f"level_{level:02d}"


def _save_tree(path: Path, tree: PyTree) -> None:
    if path.exists():
        return
    save_tree(path, tree)


def _write_level(root: Path, level: int, mask: PyTree, summary: Mapping[str, Any]) -> None:
    d = _level_dir(root, level)
    d.mkdir(parents=True, exist_ok=True)
    flat = jax.tree_util.tree_leaves_with_path(mask)
    write_npz_atomic(d / "masks.npz", {masks.path_str(kp): np.asarray(m) for kp, m in flat})
    write_json_atomic(d / "summary.json", summary)


def _write_survival(root: Path, level_masks: Sequence[PyTree], keep_dense) -> None:
    counts = survival_counts(level_masks, keep_dense=keep_dense)
    write_npz_atomic(root / "survival.npz", {**counts, "levels": np.asarray(len(level_masks) - 1)})


def read_survival(workdir: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """``({path: uint8 (S, ...)}, levels)`` from a lottery workdir's ``survival.npz``."""
    path = Path(workdir) / "survival.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{workdir} holds no survival.npz: is it a lottery workdir, and "
                                "has it finished a level?")
    with np.load(path) as f:
        levels = int(f["levels"])
        return {k: f[k] for k in f.files if k != "levels"}, levels


def arm_rows(levels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per level and arm: % remaining, how many seeds diverged (training loss NaN/inf)
    and, over seeds, the mean and sample std of the final test accuracy, the early-stop step and
    the test accuracy there (std NaN for 1 seed)."""
    rows = []
    for s in levels:
        for arm, m in s["arms"].items():
            row = {"level": s["level"], "remaining %": 100 * s["density"], "arm": arm,
                   "seeds": len(m["test_accuracy"]),
                   "diverged": sum(e is not None for e in m.get("diverged_epoch", ()))}
            for key, name in (("test_accuracy", "acc"), ("early_stop_step", "early stop"),
                              ("early_stop_accuracy", "acc at early stop")):
                if key in m:
                    v = np.asarray(m[key], np.float64)
                    row[name] = float(v.mean())
                    row[f"{name} std"] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            rows.append(row)
    return rows
