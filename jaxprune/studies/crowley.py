"""Crowley et al. 2018, "A Closer Look at Structured Pruning": greedy Fisher pruning, as the
reference code runs it, to compare with reduced networks and with the pruned architectures
trained from scratch.

The reference (``BayesWatch/pytorch-prunes``, ``prune.py``) fine-tunes the trained network with
SGD (lr 8e-4, momentum 0.9, weight decay 5e-4) and, every ``prune_every = 100`` steps, removes the
ONE channel with the smallest Fisher score accumulated over those steps (Theis et al.'s
``0.5 * mean (sum a * dL/da)^2`` per channel, from hooks on the training forward/backward) among
the channels still on; a removed channel is masked (its score replaced by 1e6), and the network
is compressed at the end. :func:`fisher_prune` does the same on a zoo model's channel groups:
one optimizer state for the whole run, pruned channels masked exactly (``channel_mask``: the
masked wide model computes the narrow one), the Fisher accumulated on each fine-tuning batch at
the weights of that step (``criteria.fisher(train=True)``), the narrow model built by surgery at
every recorded point.

  run = fisher_prune(structure, trained, batch_fn, channels=120, steps_between=20,
                     config=finetune_recipe, record=(40, 80, 120))
  run.points[80].counts.params     # the pruned network after 80 removals: its size ...
  run.points[80].variables         # ... and its fine-tuned weights (narrow model)
  st.reduce_to_budget("wrn", params=run.points[80].counts.params, depth=16, widen_factor=2)

Reference: https://arxiv.org/abs/1810.04622; code https://github.com/BayesWatch/pytorch-prunes
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxprune import masks
from jaxprune import structured as st
from jaxprune.train import TrainConfig, make_optimizer
from jaxprune.train.steps import create_state, make_train_step, split_variables

PyTree = Any
#: ``batch_fn(step) -> (x, y)``: the (preprocessed) training batch of fine-tuning step ``step``.
BatchFn = Callable[[int], tuple[Any, Any]]


class Point(NamedTuple):
    """The network after ``removed`` channels: keep-sets, its counts, its narrow variables."""

    removed: int
    keep: st.Keep
    counts: st.Counts
    variables: PyTree


class FisherPruning(NamedTuple):
    """``removed``: ``(group, channel index in the wide model, its accumulated score)`` in
    order; ``points``: the recorded :class:`Point` per number of removed channels."""

    removed: list[tuple[str, int, float]]
    points: dict[int, Point]


def lowest_channel(scores: dict[str, np.ndarray], keep: st.Keep, structure: st.Structure,
                   names: Sequence[str], min_channels: int) -> tuple[str, int] | None:
    """The kept channel with the smallest score over ``names``, skipping groups at
    ``min_channels``; ties: the later group, then the later channel (the policies' rule)."""
    best = None
    for gi, name in enumerate(names):
        kept = keep[name]
        if kept.size <= min_channels:
            continue
        s = np.asarray(scores[name])[kept]
        order = np.lexsort((-kept, s))  # lowest score, then the highest index
        cand = (float(s[order[0]]), -gi, -int(kept[order[0]]))
        if best is None or cand < best:
            best = cand
    return None if best is None else (names[-best[1]], -best[2])


def fisher_prune(
    structure: st.Structure,
    variables: PyTree,
    batch_fn: BatchFn,
    *,
    channels: int,
    steps_between: int,
    config: TrainConfig,
    key: jax.Array,
    record: Iterable[int] = (),
    groups: Sequence[str] | None = None,
    min_channels: int = 1,
    input_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> FisherPruning:
    """Fine-tune and remove ``channels`` channels one at a time, Crowley et al.'s way.

    Each of the ``channels`` rounds runs ``steps_between`` SGD steps of ``config``'s optimizer
    (one state for the whole run: momentum carries over), accumulating every step's Fisher
    scores on that step's batch before its update, then removes the lowest-scored kept channel.

    Args:
      structure: the trained model's groups (block-internal channels for ResNets/WRNs unless
        built with ``residual=True``).
      variables: its trained variables.
      batch_fn: ``step -> (x, y)``, preprocessed (normalized, augmented) training batches.
      channels: how many channels to remove.
      steps_between: fine-tuning steps before each removal (the reference: 100).
      config: the fine-tuning recipe (optimizer, lr, momentum, weight decay); its ``epochs``
        is ignored: a non-constant schedule spans the run's ``channels * steps_between`` steps.
      key: PRNG key (dropout-free zoo models use it only for the step keys).
      record: numbers of removed channels at which to build the narrow network (and the end).
      groups: groups that may be pruned (default: all of ``structure``).
      min_channels: the fewest channels a group keeps.
      input_shape: per-example input shape for counts and surgery checks.
      progress: a progress bar over the removals.

    Returns:
      :class:`FisherPruning`.
    """
    names = list(structure.group_names if groups is None else groups)
    if not (isinstance(channels, int) and channels >= 1 and steps_between >= 1):
        raise ValueError(f"channels and steps_between must be >= 1, got {channels}, "
                         f"{steps_between}")
    removable = sum(max(0, structure.group(n).width - min_channels) for n in names)
    if channels > removable:
        raise ValueError(f"cannot remove {channels} channels: only {removable} can go with "
                         f"min_channels={min_channels} per group")
    record = sorted({int(r) for r in record if 0 < r <= channels} | {channels})
    model = structure.model
    tx = make_optimizer(config.replace(epochs=1), steps_between * channels)
    params, model_state = split_variables(variables)
    keep = st.keep_all(structure)
    state = create_state(params, model_state, tx, st.channel_mask(structure, params, keep))
    train_step = jax.jit(make_train_step(model, tx, label_smoothing=config.label_smoothing))
    fisher = st.criteria.get("fisher", structure=structure, train=True)

    removed: list[tuple[str, int, float]] = []
    points: dict[int, Point] = {}
    step = 0
    bar = tqdm(range(channels), desc="Fisher pruning", disable=not progress, leave=False)
    for r in bar:
        total = None
        for _ in range(steps_between):
            x, y = batch_fn(step)
            v = {"params": state.params, **state.model_state}
            s = fisher(v, batch=(x, y))
            total = s if total is None else {k: total[k] + s[k] for k in s}
            state, _ = train_step(state, x, y, jax.random.fold_in(key, step))
            step += 1
        scores = {k: np.asarray(v) for k, v in total.items()}
        name, idx = lowest_channel(scores, keep, structure, names, min_channels)
        removed.append((name, idx, float(scores[name][idx])))
        keep = {**keep, name: keep[name][keep[name] != idx]}
        mask = st.channel_mask(structure, state.params, keep)
        state = state.replace(mask=mask, params=masks.apply_mask(state.params, mask))
        if r + 1 in record:
            now = {"params": state.params, **state.model_state}
            narrow = st.prune_channels(structure, now, keep, input_shape=input_shape)
            points[r + 1] = Point(r + 1, keep,
                                  st.count_pruned(structure, keep, input_shape=input_shape),
                                  narrow.variables)
    return FisherPruning(removed, points)
