"""The training loop: epochs of jitted steps, evaluation, metrics, checkpoints and resume.

``fit`` trains any Flax module from given variables on given arrays; ``train_and_evaluate`` builds
model and data from a :class:`~jaxprune.train.optim.TrainConfig` by name and calls ``fit``.

Randomness is a pure function of ``config.seed`` and the epoch number (batch order and
augmentation of epoch ``e`` come from ``fold_in(train_key, e)``), so a run resumed from the
checkpoint of epoch ``e`` replays epochs ``e+1...`` exactly as an uninterrupted run would: on CPU
the final parameters are bitwise equal.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprune import contract
from jaxprune import seeds as _seeds
from jaxprune._cache import cached_factory
from jaxprune.data import batching, preprocess
from jaxprune.train.optim import TrainConfig, make_optimizer, make_schedule
from jaxprune.train.steps import (
    TrainState,
    create_state,
    make_eval_step,
    make_train_step,
    split_variables,
)
from jaxprune.train.workdir import Workdir, fingerprint, sigint_deferred

PyTree = Any
EpochCallback = Callable[[int, TrainState, Mapping[str, Any]], None]


class Split(NamedTuple):
    """One split of a dataset as host arrays: ``images`` (N, ...) float32, ``labels`` (N,) int32."""

    images: np.ndarray
    labels: np.ndarray


class FitResult(NamedTuple):
    """What ``fit`` returns: the final state, the per-epoch history, the summary (``results``;
    ``results["diverged_epoch"]`` marks networks whose loss became NaN/inf, see
    :func:`diverged_epochs`), and the variables captured at ``snapshot_steps`` (``{step:
    {"params": ..., **model_state}}``)."""

    state: TrainState
    history: list[dict[str, Any]]
    results: dict[str, Any]
    snapshots: dict[int, PyTree] = {}

    @property
    def variables(self) -> PyTree:
        """The trained variables, ``{"params": ..., **model_state}`` (stacked for stacked
        runs): what ``model.apply`` and the next study take."""
        return {"params": self.state.params, **self.state.model_state}


def _check_split(name: str, split: Split) -> None:
    images, labels = split
    if len(images) != len(labels):
        raise ValueError(f"{name} split has {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise ValueError(f"{name} split is empty")


#: TrainConfig fields the compiled train/eval programs depend on (the cache key of _programs).
_RECIPE = ("epochs", "batch_size", "optimizer", "learning_rate", "momentum", "nesterov",
           "weight_decay", "schedule", "milestones", "lr_decay", "warmup_epochs", "bn_l1",
           "label_smoothing", "augment", "normalize")


def _recipe(config: TrainConfig) -> tuple:
    return tuple((f, tuple(v) if f == "milestones" else v)
                 for f, v in ((f, getattr(config, f)) for f in _RECIPE))


def _stats(config: TrainConfig, train: Split) -> tuple | None:
    """Per-channel (mean, std) of the training split as float tuples (hashable, exact)."""
    if not config.normalize:
        return None
    mean, std = preprocess.channel_stats(train.images)
    return tuple(np.asarray(mean).tolist()), tuple(np.asarray(std).tolist())


def _setup(model: contract.Model, config: TrainConfig, train: Split, start_step: int) -> tuple:
    """What the compiled programs of ``fit`` depend on: :func:`_programs`' arguments but
    ``stacked``."""
    return (model, _recipe(config), len(train.labels) // config.batch_size, len(train.labels),
            start_step, _stats(config, train), train.images.ndim)


@cached_factory
def _programs(model: contract.Model, recipe: tuple, steps_per_epoch: int, n_train: int,
              step_offset: int, stats: tuple | None, image_ndim: int,
              stacked: bool) -> TrainPrograms:
    """The :class:`TrainPrograms` of one training setup, built once per setup: a
    later ``fit`` with the same model, recipe, data shapes and statistics (an IMP level, a
    sweep's next call, a per-seed loop) reuses the compiled programs."""
    config = TrainConfig(**dict(recipe))
    tx = make_optimizer(config, steps_per_epoch, step_offset=step_offset)
    if stats is not None:
        mean, std = (jnp.asarray(v, jnp.float32) for v in stats)
        norm = lambda x: preprocess.normalize(x, mean, std)
    else:
        norm = lambda x: x
    if config.augment:
        if image_ndim != 4:
            raise ValueError(
                "augment=True needs image batches (N, H, W, C); this dataset's inputs have "
                f"{image_ndim - 1} dimensions. Turn augmentation off for it."
            )
        train_pre = lambda key, x: norm(preprocess.random_crop_flip(key, x))
    else:
        train_pre = lambda key, x: norm(x)
    train_step = make_train_step(
        model, tx, label_smoothing=config.label_smoothing, preprocess=train_pre
    )

    def step_on_indices(state, sums, images, labels, idx, key_data):
        """One step on the examples ``idx``; the batch metrics are added to ``sums`` here, in
        the compiled step, not by host-side dispatches."""
        key = jax.random.wrap_key_data(key_data)
        state, m = train_step(state, images[idx], labels[idx], key)
        return state, jax.tree.map(jnp.add, sums, m)

    def epoch_plan(train_key, epoch):
        """(batch indices (steps, B), raw step keys (steps, ...)) of one network for one epoch:
        host arrays to slice step by step without a device dispatch."""
        ekey = jax.random.fold_in(train_key, epoch)
        order = batching.epoch_batches(jax.random.fold_in(ekey, 0), n_train, config.batch_size)
        keys = jax.random.split(jax.random.fold_in(ekey, 1), steps_per_epoch)
        return order, jax.random.key_data(keys)

    def init_state(params, model_state, mask, step):
        return create_state(params, model_state, tx, mask).replace(
            step=jnp.asarray(step, jnp.int32))

    eval_step = make_eval_step(model, preprocess=norm)
    if stacked:  # one network per row; data and hyper-parameters shared
        step_on_indices = jax.vmap(step_on_indices, in_axes=(0, 0, None, None, 0, 0))
        eval_step = jax.vmap(eval_step, in_axes=(0, 0, None, None, None))
        epoch_plan = jax.vmap(epoch_plan, in_axes=(0, None))
        init_state = jax.vmap(init_state, in_axes=(0, 0, 0, None))
    return TrainPrograms(tx, jax.jit(step_on_indices, donate_argnums=(0, 1)),
                         jax.jit(eval_step), jax.jit(epoch_plan), jax.jit(init_state))


class TrainPrograms(NamedTuple):
    """The compiled pieces of one training setup, what ``fit`` runs (:func:`train_programs`).

    Stacked programs (``fit(..., seeds=...)``) take and return one row per network in every
    argument but the shared ``images`` and ``labels``. ``sums`` are the epoch's running metric
    sums, ``{"loss", "correct", "count"}`` (float32; start from zeros).
    """

    tx: Any
    step: Callable[..., Any]  # (state, sums, images, labels, idx, key_data) -> (state, sums)
    eval: Callable[..., Any]  # (params, model_state, images, labels, valid) -> metric sums
    plan: Callable[..., Any]  # (train_key, epoch) -> (order, key_data)
    init: Callable[..., Any]  # (params, model_state, mask, step) -> TrainState (new buffers)


def evaluate(
    eval_step: Callable[..., dict[str, jax.Array]],
    params: PyTree,
    model_state: PyTree,
    split: Split,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Mean loss and accuracy of a jitted ``eval_step`` over every example of ``split``.

    Returns NumPy values: scalars, or ``(S,)`` arrays when ``eval_step`` is vmapped over S networks.
    """
    images, labels = split
    totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    for idx, valid in batching.eval_batches(len(labels), batch_size):
        m = eval_step(params, model_state, images[idx], labels[idx], valid)
        totals = {k: totals[k] + m[k] for k in totals}
    totals = jax.device_get(totals)
    return {"loss": np.asarray(totals["loss"] / totals["count"]),
            "accuracy": np.asarray(totals["correct"] / totals["count"])}


def _py(x: Any) -> float | list[float]:
    """A NumPy scalar as a float, an array as a list (for JSON)."""
    return np.asarray(x, np.float64).tolist()


def _check_stacked(tree: PyTree, num_seeds: int, what: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != num_seeds:
            raise ValueError(
                f"{num_seeds} stacked networks but {what} leaf {jax.tree_util.keystr(path)} has "
                f"shape {jnp.shape(leaf)}: stacked {what} need a leading axis of size {num_seeds} "
                "(e.g. jax.vmap(model.init)(keys, x))"
            )


def fit(
    model: Any,
    variables: PyTree,
    train: Split,
    test: Split,
    config: TrainConfig,
    *,
    mask: PyTree | None = None,
    workdir: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    seeds: Sequence[int] | None = None,
    validation: Split | None = None,
    eval_every: int | None = None,
    start_step: int = 0,
    snapshot_steps: Sequence[int] = (),
    strategy: str = "auto",
) -> FitResult:
    """Train ``model`` from ``variables`` on ``train``, evaluating on ``test`` after each epoch.

    With ``seeds=[s_0, ..., s_{S-1}]`` it trains S networks at once in one vmapped step:
    ``variables`` (and ``mask``) carry a leading axis of size S (e.g. from
    ``jax.vmap(model.init)``), network ``i`` gets the batch order and augmentation of a single run
    with ``config.seed = seeds[i]`` (seeds may repeat, e.g. one per criterion), and every metric
    becomes a list of S values. Checkpointing and resume work the same way.

    Args:
      model: a model under :mod:`jaxprune.contract` (a Linen or NNX module is wrapped).
      variables: its initial variables (``params`` and e.g. ``batch_stats``).
      train: training split (host arrays, raw pixels in [0, 1]; normalization and augmentation
        follow ``config``).
      test: evaluation split.
      config: the recipe (optimizer, schedule, epochs, seed, ...).
      mask: optional bool pytree mirroring ``variables["params"]``: pruned weights are zeroed and
        stay exactly zero for the whole run.
      workdir: directory for config, metrics, checkpoints and results; a directory that already
        holds checkpoints of the same config is resumed from the newest one.
      extra_config: more entries for ``config.json`` (e.g. how the mask was made).
      progress: show a progress bar with running loss/accuracy and throughput (only when
        stderr is a terminal) and one line per epoch.
      callbacks: ``cb(epoch, state, row)`` after each epoch's checkpoint (epoch is 1-based).
      seeds: data seeds of stacked networks trained together (see above); ``None`` for one
        network with ``config.seed``.
      validation: an optional held-out split, evaluated with ``test`` (``val_loss``,
        ``val_accuracy`` in every row and evaluation point).
      eval_every: also evaluate every this many steps (global step multiples), recorded in the
        epoch's row as ``evals``: ``[{"step", "test_loss", "test_accuracy", "val_loss",
        "val_accuracy"}, ...]`` (e.g. to find the early-stop iteration: minimum validation loss).
      start_step: start ``start_step`` steps into the run (steps ``start_step + 1 ...
        epochs * steps_per_epoch`` are taken, with the batch order, augmentation and learning
        rates those steps have in a run from 0, and a fresh optimizer state): training from
        rewound weights (Frankle et al. 2020's late rewinding).
      snapshot_steps: global steps after which to capture the variables (``start_step`` itself
        captures the starting variables); returned in ``FitResult.snapshots`` and, with a
        workdir, saved there so a resumed run returns them too.
      strategy: how stacked networks train: ``"vmap"`` (one batched step), ``"chunked"``
        (vmapped groups of :data:`GROUP_SIZE`, one after another), ``"loop"`` (each network's
        own compiled step in turn); same results, up to the last bits of batched matmuls. Or
        ``"auto"``: the multi-seed engine's rule (:func:`jaxprune.seeds.choose_strategy` on one
        train step) on CPU: ``"loop"`` where vmap would turn per-network convolutions into
        grouped ones (Conv-2 on CIFAR-10, 4 networks: 61 img/s vmapped vs 255 img/s for one
        network alone), ``"chunked"`` where it batches matmuls (MLPs), else ``"vmap"``; on
        accelerators ``"vmap"``.

    Returns:
      ``FitResult(state, history, results, snapshots)``.
    """
    config.validate()
    _check_split("train", train)
    _check_split("test", test)
    n_train = len(train.labels)
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training split ({n_train} "
            "examples); lower --batch-size"
        )
    total_steps = config.epochs * steps_per_epoch
    if not 0 <= start_step < max(total_steps, 1):
        raise ValueError(f"start_step {start_step} is outside the run's {total_steps} steps "
                         f"({config.epochs} epochs of {steps_per_epoch})")
    snapshot_steps = sorted({int(k) for k in snapshot_steps})
    if any(not start_step <= k <= total_steps for k in snapshot_steps):
        raise ValueError(f"snapshot_steps {snapshot_steps} must lie in [start_step, "
                         f"{total_steps}] (the run's steps)")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be a positive number of steps, got {eval_every}")
    if validation is not None:
        _check_split("validation", validation)
    model = contract.as_model(model)
    stacked = seeds is not None
    if strategy not in ("auto", "vmap", "chunked", "loop"):
        raise ValueError(f"unknown strategy {strategy!r}; valid: ['auto', 'vmap', 'chunked', "
                         "'loop']")
    setup = _setup(model, config, train, start_step)
    progs = _programs(*setup, stacked)
    lr_at = make_schedule(config, steps_per_epoch)
    params, model_state = split_variables(variables)
    if stacked:
        seeds = [int(s) for s in seeds]
        num_seeds = len(seeds)
        if num_seeds < 1:
            raise ValueError("seeds is empty: give one data seed per stacked network")
        _check_stacked(variables, num_seeds, "variables")
        _check_stacked(mask, num_seeds, "mask")
    # Compiled (the mask is checked against the params when traced): new buffers, so the step
    # may donate them and the caller's arrays stay usable.
    state = progs.init(params, model_state, mask, start_step)
    train_keys = _seeds.seed_keys(seeds or [config.seed], 1)
    if stacked:
        take = lambda a, i: a[:, i]
    else:
        train_keys = train_keys[0]
        take = lambda a, i: a[i]
    x_train, y_train = jnp.asarray(train.images), jnp.asarray(train.labels)
    # Stacked networks train as one vmapped program or in groups: ``groups`` lists the
    # (start, stop) rows of each group, and ``state`` is then a list with one state per group
    # (a single network's state for groups of one) between epochs.
    groups = _groups(strategy, setup, state, x_train, y_train, config.batch_size) if stacked \
        else None
    if groups is not None:
        single = groups[0][1] - groups[0][0] == 1
        one = _programs(*setup, False)
        g_step, g_eval = (one.step, one.eval) if single else (progs.step, progs.eval)
        state = _split_groups(state, groups, single)

    def zero_sums():
        zeros = lambda lead: {k: jnp.zeros(lead, jnp.float32) for k in ("loss", "correct",
                                                                         "count")}
        if groups is None:
            return zeros((num_seeds,) if stacked else ())
        return [zeros(() if single else (hi - lo,)) for lo, hi in groups]

    def step_all(state, sums, idx, keys):
        if groups is None:
            return progs.step(state, sums, x_train, y_train, idx, keys)
        pick = (lambda a, lo, hi: a[lo]) if single else (lambda a, lo, hi: a[lo:hi])
        out = [g_step(s, m, x_train, y_train, pick(idx, lo, hi), pick(keys, lo, hi))
               for s, m, (lo, hi) in zip(state, sums, groups, strict=True)]
        return [o[0] for o in out], [o[1] for o in out]

    def host_sums(sums) -> dict[str, np.ndarray]:
        """The metric sums as host arrays, one entry per network (a scalar for one network)."""
        sums = jax.device_get(sums)
        if groups is None:
            return {k: np.asarray(v) for k, v in sums.items()}
        return {k: np.concatenate([np.reshape(m[k], (-1,)) for m in sums]) for k in sums[0]}

    def full(state) -> TrainState:
        """The (stacked) state of every network."""
        if groups is None:
            return state
        return _seeds.stack(state) if single else _concat_jit(state)

    def run_eval(state, split):
        if groups is None:
            return evaluate(progs.eval, state.params, state.model_state, split,
                            config.eval_batch_size)
        per = [evaluate(g_eval, s.params, s.model_state, split, config.eval_batch_size)
               for s in state]
        return {k: np.concatenate([np.reshape(p[k], (-1,)) for p in per]) for k in per[0]}

    test_dev = Split(jnp.asarray(test.images), jnp.asarray(test.labels))
    val_dev = None if validation is None else Split(jnp.asarray(validation.images),
                                                     jnp.asarray(validation.labels))

    def measure(state: TrainState) -> dict[str, Any]:
        """Test (and validation) loss and accuracy of ``state``, JSON-ready."""
        out = {}
        for name, split in (("test", test_dev), ("val", val_dev)):
            if split is not None:
                ev = run_eval(state, split)
                out |= {f"{name}_loss": _py(ev["loss"]), f"{name}_accuracy": _py(ev["accuracy"])}
        return out

    snapshots: dict[int, PyTree] = {}

    def capture(step: int, state: TrainState) -> None:
        # copies: the next step donates the state's buffers
        state = full(state)
        snap = jax.tree.map(jnp.copy, {"params": state.params, **state.model_state})
        snapshots[step] = snap
        if wd is not None:
            wd.save_snapshot(step, snap)

    wd = None
    history: list[dict[str, Any]] = []
    first_epoch, skip = divmod(start_step, steps_per_epoch) if total_steps else (0, 0)
    start_epoch = first_epoch
    if workdir is not None:
        identity = run_identity(config, train, test, variables, mask, seeds)
        identity |= {"start_step": start_step, "eval_every": eval_every,
                     "snapshot_steps": snapshot_steps,
                     "validation_fingerprint": None if validation is None else fingerprint(
                         (validation.images, validation.labels))}
        wd = Workdir(workdir)
        wd.write_or_check_config({**identity, **(extra_config or {})})
        latest = wd.latest_epoch()
        if latest is not None:
            stacked_state = full(state)
            like = {"params": stacked_state.params, **stacked_state.model_state}
            snapshots = {k: wd.restore_snapshot(k, like) for k in snapshot_steps
                         if k <= latest * steps_per_epoch}
            state, history = wd.restore(latest, stacked_state)
            if groups is not None:
                state = _split_groups(state, groups, single)
            wd.write_metrics(history)
            start_epoch = latest
            # always said (not progress but state): the rerun after a Ctrl-C continues
            print(f"resuming from epoch {latest} of {config.epochs} ({workdir})",
                  file=sys.stderr)
    if start_step in snapshot_steps and start_step not in snapshots:
        capture(start_step, state)

    bar = tqdm(
        total=total_steps - start_step,
        initial=max(0, start_epoch * steps_per_epoch - start_step),
        disable=None if progress else True,  # None: no bar when stderr is not a terminal
        unit="step", dynamic_ncols=True, leave=False,
    )
    update_every = max(1, steps_per_epoch // 20)
    try:
        for epoch in range(start_epoch, config.epochs):
            order, step_keys = jax.device_get(progs.plan(train_keys, epoch))  # host arrays
            bar.set_description(f"epoch {epoch + 1}/{config.epochs}")
            sums = zero_sums()
            evals: list[dict[str, Any]] = []
            eval_seconds = 0.0
            t0 = time.perf_counter()
            i0 = skip if epoch == first_epoch else 0
            for i in range(i0, steps_per_epoch):
                state, sums = step_all(state, sums, take(order, i), take(step_keys, i))
                step = epoch * steps_per_epoch + i + 1
                if step in snapshot_steps:
                    capture(step, state)
                if eval_every and step % eval_every == 0:
                    jax.block_until_ready(state)  # time the evaluation alone
                    t_eval = time.perf_counter()
                    evals.append({"step": step, **measure(state)})
                    eval_seconds += time.perf_counter() - t_eval
                # the bar's numbers need the device to catch up: only when a bar is shown
                if not bar.disable and ((i + 1) % update_every == 0 or i + 1 == steps_per_epoch):
                    s = {k: np.sum(v) for k, v in host_sums(sums).items()}
                    elapsed = time.perf_counter() - t0
                    bar.set_postfix(
                        loss=f"{s['loss'] / s['count']:.4f}",
                        acc=f"{s['correct'] / s['count']:.4f}",
                        img_s=f"{s['count'] / elapsed:.0f}",
                    )
                    bar.update(step - start_step - bar.n)
            jax.block_until_ready(state)
            epoch_seconds = time.perf_counter() - t0 - eval_seconds
            sums = host_sums(sums)
            last = evals[-1] if evals and evals[-1]["step"] == step else None
            ev = {k: v for k, v in last.items() if k != "step"} if last else measure(state)
            done = int(np.max(full(state).step))
            row = {
                "epoch": epoch + 1,
                "step": done,
                "lr": float(lr_at(done - 1)),
                "train_loss": _py(sums["loss"] / sums["count"]),
                "train_accuracy": _py(sums["correct"] / sums["count"]),
                **ev,
                "epoch_seconds": epoch_seconds,
                "images_per_second": float(np.sum(sums["count"]) / epoch_seconds),
            }
            if eval_every:
                row["evals"] = evals
            history.append(row)
            if progress:
                mean = lambda k, row=row: float(np.mean(row[k]))
                tqdm.write(
                    f"epoch {row['epoch']:>3}/{config.epochs}  train loss {mean('train_loss'):.4f} "
                    f"acc {mean('train_accuracy'):.4f}  test loss {mean('test_loss'):.4f} "
                    f"acc {mean('test_accuracy'):.4f}  {row['images_per_second']:.0f} img/s"
                    + (f" (mean of {num_seeds} networks)" if stacked else "")
                )
            if wd is not None and (
                (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
            ):
                with sigint_deferred():  # checkpoint and metrics file agree even on Ctrl-C
                    wd.save(epoch + 1, full(state), history)
                    wd.write_metrics(history)
            for cb in callbacks:
                cb(epoch + 1, full(state), row)
    finally:
        bar.close()
        if wd is not None:
            wd.close()

    state = full(state)

    if history:  # the last epoch already evaluated the final state
        final = {"loss": history[-1]["test_loss"], "accuracy": history[-1]["test_accuracy"]}
    else:  # epochs=0: evaluate the initial network(s)
        final = run_eval(state if groups is None else _split_groups(state, groups, single),
                         test_dev)
    snapshots = {k: snapshots[k] for k in snapshot_steps}  # every one was taken or restored
    throughputs = [r["images_per_second"] for r in history[1:]] or [
        r["images_per_second"] for r in history
    ]
    diverged = diverged_epochs(history, num_seeds if stacked else None)
    results = {
        "epochs": config.epochs,
        "seeds": seeds,
        "diverged_epoch": diverged,
        "steps": int(np.max(state.step)),
        "test_loss": _py(final["loss"]),
        "test_accuracy": _py(final["accuracy"]),
        "best_test_accuracy": (
            _py(np.max([r["test_accuracy"] for r in history], axis=0)) if history else None
        ),
        "train_seconds": float(sum(r["epoch_seconds"] for r in history)),
        "images_per_second": float(statistics.median(throughputs)) if throughputs else None,
        "backend": jax.default_backend(),
    }
    if wd is not None:
        wd.write_results(results)
    n_div = sum(e is not None for e in (diverged if stacked else [diverged]))
    if n_div and progress:
        tqdm.write(f"{n_div} of {num_seeds if stacked else 1} networks diverged (training loss "
                   "became NaN or infinite)")
    return FitResult(state, history, results, snapshots)


def diverged_epochs(history: Sequence[Mapping[str, Any]], num_networks: int | None = None
                    ) -> int | None | list[int | None]:
    """The first epoch (1-based) whose mean training loss is NaN or infinite, per network, or
    ``None`` for a network that never diverged; from ``fit``'s history (``num_networks`` for
    stacked runs, whose rows hold one loss per network). ``fit`` records it as
    ``results["diverged_epoch"]``: a diverged network's test accuracy is a number, but not a
    trained network's."""
    n = 1 if num_networks is None else num_networks
    first: list[int | None] = [None] * n
    for row in history:
        losses = np.reshape(np.asarray(row["train_loss"], np.float64), (-1,))
        for i in range(n):
            if first[i] is None and not np.isfinite(losses[i]):
                first[i] = int(row["epoch"])
    return first[0] if num_networks is None else first


def run_identity(
    config: TrainConfig,
    train: Split,
    test: Split,
    variables: PyTree,
    mask: PyTree | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """What makes a training run the run it is, as stored in ``config.json`` and compared on
    resume: the config (``data_dir`` recorded, not compared), the data seeds of stacked runs, and
    fingerprints of the data, the initial variables and the mask (:func:`fingerprint`), so a
    workdir is never resumed with other data, other starting weights or another mask."""
    return {
        **config.to_dict(),
        "seeds": None if seeds is None else [int(s) for s in seeds],
        "data_fingerprint": fingerprint((train.images, train.labels, test.images, test.labels)),
        "init_fingerprint": fingerprint(variables),
        "mask_fingerprint": None if mask is None else fingerprint(mask),
    }


#: Networks per group when ``fit(strategy="auto")`` groups stacked matmul networks on CPU: one
#: LeNet-300-100 train step (batch 60) costs 0.77 ms alone, 0.53 ms per network vmapped over 8,
#: 0.58 over 16 and 0.86 over 32 on a 2-core AMD EPYC (batched GEMMs fall out of cache), so 32
#: networks train 1.6x faster as four vmapped groups of 8 than as one program; on a 2-core Intel
#: Xeon 0.91 alone, 0.70 over 4 or 8, 0.82 over 16, 1.21 over 32
#: (``python -m benchmarks.probes train-groups``).
GROUP_SIZE = 8


def _groups(strategy: str, setup: tuple, state: TrainState, x: jax.Array, y: jax.Array,
            batch_size: int) -> list[tuple[int, int]] | None:
    """How stacked networks train (``fit``'s ``strategy``): ``None`` for one vmapped program,
    else the (start, stop) rows of each group, trained one group after another."""
    n = jax.tree.leaves(state)[0].shape[0]
    if strategy == "auto":
        step = _programs(*setup, False).step
        idx = jax.ShapeDtypeStruct((n, batch_size), jnp.int32)
        raw = jax.random.key_data(jax.random.key(0))
        keys = jax.ShapeDtypeStruct((n, *raw.shape), raw.dtype)
        sums = {k: jax.ShapeDtypeStruct((n,), jnp.float32) for k in ("loss", "correct",
                                                                    "count")}
        picked = _seeds.choose_strategy(step, (state, sums, x, y, idx, keys),
                                        in_axes=(0, 0, None, None, 0, 0))
        strategy = {"loop": "loop", "map": "chunked"}.get(picked, "vmap")
    size = {"vmap": n, "loop": 1, "chunked": GROUP_SIZE}[strategy]
    if size >= n:
        return None
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def train_programs(model: Any, config: TrainConfig, train: Split, *, stacked: bool = False,
                   start_step: int = 0) -> TrainPrograms:
    """The compiled programs ``fit(model, variables, train, test, config, start_step=...)``
    trains with (``stacked=True``: those of ``fit(..., seeds=...)``, one network per row).

    Cached per setup (model, the recipe fields of ``config``, the split's size, image rank and
    channel statistics): a ``fit`` with the same setup reuses them, and vice versa. For running
    or timing ``fit``'s step outside it (``python -m benchmarks.probes train-groups``).
    """
    model = contract.as_model(model)
    return _programs(*_setup(model, config, train, start_step), stacked)


def stacked_groups(model: Any, config: TrainConfig, train: Split, state: TrainState,
                   strategy: str = "auto", *, start_step: int = 0
                   ) -> list[tuple[int, int]] | None:
    """How ``fit(model, ..., train, test, config, seeds=..., strategy=strategy)`` trains the
    stacked networks of ``state`` (a stacked :class:`TrainState`, e.g. ``fit(...).state``):
    ``None`` for one vmapped program, else the ``(start, stop)`` rows of each group, trained one
    group after another (``fit``'s ``strategy``; :data:`GROUP_SIZE`).
    """
    if strategy not in ("auto", "vmap", "chunked", "loop"):
        raise ValueError(f"unknown strategy {strategy!r}; valid: ['auto', 'vmap', 'chunked', "
                         "'loop']")
    model = contract.as_model(model)
    return _groups(strategy, _setup(model, config, train, start_step), state,
                   jnp.asarray(train.images), jnp.asarray(train.labels), config.batch_size)


def _split_groups(state: TrainState, groups: list[tuple[int, int]], single: bool) -> list:
    """A stacked state as one state per group (unstacked for groups of one network)."""
    return _split_jit(state, tuple(groups), single)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _split_jit(state: TrainState, groups: tuple, single: bool) -> list:
    """One compiled dispatch for every group's slice (not one per leaf and group)."""
    if single:
        return [jax.tree.map(lambda a, lo=lo: a[lo], state) for lo, _ in groups]
    return [jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], state) for lo, hi in groups]


@jax.jit
def _concat_jit(states: list) -> TrainState:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *states)


def init_model(
    model: Any,
    key: jax.Array,
    example: np.ndarray,
    *,
    model_name: str = "model",
    expected_shape: Sequence[int] | None = None,
) -> PyTree:
    """``model.init`` on one example, with a clear error when the input shape does not fit.

    Args:
      model: a model under :mod:`jaxprune.contract` (or a Linen / NNX module).
      key: PRNG key.
      example: a batch of inputs (only the first example is used).
      model_name: name used in the error message.
      expected_shape: per-example shape the model is built for, named in the error message.
    """
    model = contract.as_model(model)
    try:
        x = jnp.asarray(example[:1])
        variables = model.init(key, x)
        jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)  # NNX: shapes here
        return variables
    except Exception as e:  # noqa: BLE001 - re-raised with context
        hint = f" (it is built for inputs like {tuple(expected_shape)})" if expected_shape else ""
        raise ValueError(
            f"{model_name} cannot take inputs of shape {tuple(example.shape[1:])}{hint}; pick a "
            f"model for this dataset (`jaxprune models`). Underlying error: "
            f"{type(e).__name__}: {e}"
        ) from e


def train_and_evaluate(
    config: TrainConfig,
    workdir: str | None = None,
    *,
    mask: PyTree | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
) -> FitResult:
    """Build ``config.model`` and ``config.dataset`` by name, initialise from ``config.seed``, fit.

    Example:
      >>> from jaxprune.train import preset, train_and_evaluate
      >>> cfg = preset("mnist_lenet", model="lenet_300_100", epochs=1, data_dir="data")
      >>> train_and_evaluate(cfg, "workdirs/lenet").results["test_accuracy"]  # doctest: +SKIP
    """
    from jaxprune import data, models  # local: train is usable without the zoo in custom setups

    config.validate()
    train = Split(*data.load(config.dataset, "train", config.data_dir))
    test = Split(*data.load(config.dataset, "test", config.data_dir))
    model = models.get(
        config.model, num_classes=data.info(config.dataset).num_classes, **config.model_options
    )
    init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
    expected = None if contract.is_spec(config.model) else models.default_input_shape(
        config.model)
    variables = init_model(model, init_key, train.images, model_name=config.model,
                           expected_shape=expected)
    return fit(model, variables, train, test, config, mask=mask, workdir=workdir,
               progress=progress, callbacks=callbacks)
