"""Policies: turn channel scores into keep-sets (which channels of each group survive).

  =============================  ==========================================================
  prune_by_ratio                 a fraction per group, skip lists (Li et al. 2017)
  prune_to_widths                the top-k of each group to given widths (Li's VGG-16-A)
  prune_by_global_threshold      one threshold over all groups' raw scores (Network Slimming)
  prune_greedily                 one channel at a time, fine-tuning in between (Crowley et al.)
  prune_to_budget                the global threshold (or uniform ratio) found by bisection to
                                 fit a MAC or parameter budget
  prune_to_reduction             the global threshold whose MAC (or parameter) reduction against
                                 a reference model is nearest a target, within a tolerance
                                 (Pruning from Scratch's bisection)
  =============================  ==========================================================

Scores are ``{group: (width,) array}`` (higher = kept), as the channel criteria return.
Ties: among equal scores the later channel (and the later group) is removed first, so constant
scores keep the first channels. No group is ever emptied silently: each group keeps at least
``min_channels`` channels (its best-scored) with ``on_empty="clamp"`` (default), or a
``ValueError`` names the layer with ``on_empty="raise"``. In an option-A residual group the
minimum holds in every stage (each ``[0, C_s)``).

Li et al.'s ResNet numbering (:func:`li_resnet_ratios`): conv layers are counted from 1 in
execution order over the whole network, the stem being layer 1 and each block adding two (option
A has no shortcut convs), so block ``k`` (0-based over the net) has its ``conv1`` at layer
``2 + 2k`` and its ``conv2`` at ``3 + 2k``. For ResNet-56 (27 blocks): stage 1 is layers 2-19,
stage 2 20-37, stage 3 38-55; the skipped layers 16, 18, 20, 34, 38, 54 are the conv1 of
``stage1_block07``, ``stage1_block08``, ``stage2_block00``, ``stage2_block07``,
``stage3_block00`` and ``stage3_block08``. This is the rule of the reference re-implementation
(Liu et al. 2019, ``l1-norm-pruning/res56prune.py``): ``num_keep = int(width * (1 - ratio))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxprune.structured.costs import Counts, cost_model
from jaxprune.structured.groups import Keep, Structure, check_keep
from jaxprune.structured.surgery import Pruned, prune_channels

PyTree = Any
Scores = Mapping[str, Any]

#: Li et al. 2017's ResNet-56 variants: per-stage prune ratios and skipped conv layers.
LI_RESNET56 = {
    "A": {"stage_ratios": (0.1, 0.1, 0.1), "skip_layers": (16, 20, 38, 54)},
    "B": {"stage_ratios": (0.6, 0.3, 0.1), "skip_layers": (16, 18, 20, 34, 38, 54)},
}
#: Li et al. 2017's VGG-16-pruned-A conv widths (50% of conv1 and conv8-13 removed).
LI_VGG16_A_WIDTHS = (32, 64, 128, 128, 256, 256, 256, 256, 256, 256, 256, 256, 256)
_ON_EMPTY = ("clamp", "raise")


class Budgeted(NamedTuple):
    """Result of :func:`prune_to_budget`: the keep-sets and the pruned model's counts."""

    keep: Keep
    counts: Counts


class Reduced(NamedTuple):
    """Result of :func:`prune_to_reduction`.

    Attributes:
      keep: kept channel indices per group.
      counts: the pruned model's counts.
      reduction: ``1 - counts.<metric> / reference`` achieved.
      removed: how many channels were removed.
      skipped: how many channels ranked below the last removed one were kept because removing
        them would overshoot the target (0 when a plain global threshold hits it).
    """

    keep: Keep
    counts: Counts
    reduction: float
    removed: int
    skipped: int


class Greedy(NamedTuple):
    """Result of :func:`prune_greedily`.

    Attributes:
      pruned: the final narrow network.
      removed: ``(group, index in the original wide model)`` of each removed channel, in order.
    """

    pruned: Pruned
    removed: list[tuple[str, int]]


# ---------------------------------------------------------------------------------------------
# Shared pieces.
# ---------------------------------------------------------------------------------------------


def _check_args(min_channels: int, on_empty: str) -> None:
    if on_empty not in _ON_EMPTY:
        raise ValueError(f"on_empty must be one of {_ON_EMPTY}, got {on_empty!r}")
    if not (isinstance(min_channels, int) and min_channels >= 1):
        raise ValueError(f"min_channels must be an int >= 1, got {min_channels!r}")


def _scores(
    structure: Structure, scores: Scores, groups: Iterable[str] | None
) -> dict[str, np.ndarray]:
    """The scores of the selected groups as float64 NumPy arrays, validated."""
    names = structure.group_names if groups is None else list(groups)
    out = {}
    for name in names:
        g = structure.group(name)
        if name not in scores:
            raise KeyError(f"no scores for channel group {name!r}; scores have {sorted(scores)}")
        s = np.asarray(scores[name], np.float64)
        if s.shape != (g.width,):
            raise ValueError(f"scores[{name!r}] has shape {s.shape}, expected ({g.width},)")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"scores[{name!r}] has non-finite entries")
        out[name] = s
    return out


def _removal_order(s: np.ndarray) -> np.ndarray:
    """Indices, first to remove first: lowest score, ties the higher index first."""
    idx = np.arange(s.size)
    return np.lexsort((-idx, s))


def _protected(structure: Structure, name: str, s: np.ndarray, min_channels: int) -> np.ndarray:
    """Bool (width,): the best ``min_channels`` of the group (in each stage's prefix)."""
    g = structure.group(name)
    prot = np.zeros(g.width, bool)
    for t in g.targets:
        order = _removal_order(s[: t.size])[::-1]  # best first
        prot[order[: min(min_channels, t.size)]] = True
    return prot


def _check_min(structure: Structure, keep: Keep, names: Iterable[str], min_channels: int) -> None:
    for name in names:
        g = structure.group(name)
        for t in g.targets:
            n = int(np.sum(keep[name] < t.size))
            if n < min_channels:
                where = "" if t.size == g.width else f" in its first {t.size} channels"
                raise ValueError(
                    f"channel group {name!r} would keep {n} channel(s){where}, fewer than "
                    f"min_channels={min_channels}; lower the pruning ratio, skip this layer, "
                    "or pass on_empty='clamp'"
                )


def _keep_from_removed(structure: Structure, removed: Mapping[str, np.ndarray]) -> Keep:
    keep = {}
    for g in structure.groups:
        k = np.ones(g.width, bool)
        k[removed.get(g.name, np.zeros(0, int))] = False
        keep[g.name] = np.flatnonzero(k)
    return keep


# ---------------------------------------------------------------------------------------------
# Policies.
# ---------------------------------------------------------------------------------------------


def prune_to_widths(structure: Structure, scores: Scores, widths: Mapping[str, int]) -> Keep:
    """Keep the ``widths[group]`` best-scored channels of each listed group (others: all).

    Args:
      structure: the groups.
      scores: ``{group: (width,)}`` for at least the listed groups.
      widths: target widths, each in ``[1, width]``.

    Returns:
      Keep-sets for every group.
    """
    s = _scores(structure, scores, list(widths))
    removed = {}
    for name, w in widths.items():
        width = structure.group(name).width
        if not (isinstance(w, int | np.integer) and 1 <= w <= width):
            raise ValueError(f"widths[{name!r}] must be an int in [1, {width}], got {w!r}")
        removed[name] = _removal_order(s[name])[: width - int(w)]
    return check_keep(structure, _keep_from_removed(structure, removed))


def prune_by_ratio(
    structure: Structure,
    scores: Scores,
    ratios: float | Mapping[str, float],
    *,
    skip: Iterable[str] = (),
    min_channels: int = 1,
    on_empty: str = "clamp",
) -> Keep:
    """Remove a fraction of each group's channels, lowest scores first (layer-wise pruning).

    Each group keeps ``floor(width * (1 - ratio))`` channels (Li et al.'s reference rule,
    ``int(width * (1 - ratio))``, guarded against float round-off).

    Args:
      structure: the groups.
      scores: ``{group: (width,)}`` for the pruned groups.
      ratios: one fraction for every group, or ``{group: fraction}`` (unlisted groups: 0).
      skip: groups left untouched.
      min_channels: the fewest channels a group may keep.
      on_empty: ``"clamp"`` keeps ``min_channels`` (the best), ``"raise"`` raises.

    Returns:
      Keep-sets for every group.

    Raises:
      ValueError: a ratio outside [0, 1], or (``on_empty="raise"``) a group below
        ``min_channels``, named.
    """
    _check_args(min_channels, on_empty)
    skip = set(skip)
    unknown = skip - set(structure.group_names)
    if unknown:
        raise KeyError(
            f"unknown groups in skip: {sorted(unknown)}; groups: {structure.group_names}"
        )
    if isinstance(ratios, Mapping):
        per_group = dict(ratios)
    else:
        per_group = {n: ratios for n in structure.group_names}
    per_group = {n: r for n, r in per_group.items() if n not in skip}
    for name, r in per_group.items():
        if not (isinstance(r, int | float) and 0.0 <= r <= 1.0):
            raise ValueError(f"prune ratio for {name!r} must be in [0, 1], got {r!r}")
    s = _scores(structure, scores, list(per_group))
    removed = {}
    for name, r in per_group.items():
        width = structure.group(name).width
        n_keep = math.floor(width * (1.0 - r) + 1e-9)
        order = _removal_order(s[name])
        if on_empty == "clamp":
            prot = _protected(structure, name, s[name], min_channels)
            order = order[~prot[order]]
            n_remove = min(width - n_keep, order.size)
        else:
            n_remove = width - n_keep
        removed[name] = order[:n_remove]
    keep = _keep_from_removed(structure, removed)
    _check_min(structure, keep, per_group, min_channels)
    return check_keep(structure, keep)


def _global_candidates(
    structure: Structure, s: Mapping[str, np.ndarray], min_channels: int, on_empty: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """All removable channels in global removal order: (scores, group ids, indices, names)."""
    names = list(s)
    scores, gids, idxs = [], [], []
    for gi, name in enumerate(names):
        ok = np.ones(s[name].size, bool)
        if on_empty == "clamp":
            ok = ~_protected(structure, name, s[name], min_channels)
        idx = np.flatnonzero(ok)
        scores.append(s[name][idx])
        gids.append(np.full(idx.size, gi))
        idxs.append(idx)
    scores, gids, idxs = (np.concatenate(a) for a in (scores, gids, idxs))
    order = np.lexsort((-idxs, -gids, scores))
    return scores[order], gids[order], idxs[order], names


def _remove_first(structure, cands, n: int) -> Keep:
    _, gids, idxs, names = cands
    removed = {name: idxs[:n][gids[:n] == gi] for gi, name in enumerate(names)}
    return _keep_from_removed(structure, removed)


def prune_by_global_threshold(
    structure: Structure,
    scores: Scores,
    *,
    ratio: float | None = None,
    threshold: float | None = None,
    groups: Iterable[str] | None = None,
    min_channels: int = 1,
    on_empty: str = "clamp",
) -> Keep:
    """One threshold over the raw scores of all groups (Network Slimming's global percentile).

    With ``ratio``, exactly ``int(total * ratio)`` channels with the lowest scores are removed,
    ``total`` being the channels of the selected groups (Liu et al.'s ``thre_index =
    int(total * percent)``), ties broken as the module docstring says. With ``threshold``, every
    channel scoring below it is removed. Scores are compared raw, not normalized per layer.

    Args:
      structure: the groups.
      scores: ``{group: (width,)}`` for the selected groups.
      ratio: fraction of all selected channels to remove, in [0, 1].
      threshold: alternatively, remove channels with ``score < threshold``.
      groups: groups that take part (default: all).
      min_channels: the fewest channels a group may keep.
      on_empty: ``"clamp"``: each group's best ``min_channels`` are never removed (the others
        still total exactly ``int(total * ratio)``); ``"raise"``: raise if a group would drop
        below ``min_channels``.

    Returns:
      Keep-sets for every group.

    Raises:
      ValueError: neither or both of ``ratio``/``threshold``; a ratio that cannot be met with
        ``min_channels`` per group; (``"raise"``) a group below ``min_channels``.

    Reference: Liu et al. 2017, https://arxiv.org/abs/1708.06519
    """
    _check_args(min_channels, on_empty)
    if (ratio is None) == (threshold is None):
        raise ValueError("give exactly one of ratio= or threshold=")
    s = _scores(structure, scores, groups)
    cands = _global_candidates(structure, s, min_channels, on_empty)
    if ratio is not None:
        if not (isinstance(ratio, int | float) and 0.0 <= ratio <= 1.0):
            raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
        total = sum(v.size for v in s.values())
        n = int(total * ratio)
        if n > cands[0].size:
            raise ValueError(
                f"cannot remove {n} of {total} channels while keeping min_channels="
                f"{min_channels} per group: at most {cands[0].size} are removable"
            )
    else:
        n = int(np.sum(cands[0] < threshold))
    keep = _remove_first(structure, cands, n)
    _check_min(structure, keep, s, min_channels)
    return check_keep(structure, keep)


def prune_to_budget(
    structure: Structure,
    scores: Scores,
    *,
    macs: int | None = None,
    params: int | None = None,
    input_shape: Sequence[int] | None = None,
    groups: Iterable[str] | None = None,
    allocation: str = "global",
    min_channels: int = 1,
) -> Budgeted:
    """Prune the fewest channels that bring the model within a MAC or parameter budget.

    ``"global"``: remove the ``n`` lowest-scored channels over all groups (one global threshold,
    as Pruning from Scratch sets channel numbers from its learned gates), ``n`` the smallest
    that fits, found by bisection. ``"uniform"``: the same ratio in every group
    (:func:`prune_by_ratio`), the smallest that fits (bisection to 1e-6). Counts are exact
    (:mod:`~jaxprune.structured.costs`); every group keeps at least ``min_channels``.

    Args:
      structure: the groups.
      scores: ``{group: (width,)}`` for the selected groups.
      macs: MAC budget (per example); or
      params: parameter budget.
      input_shape: per-example input shape for counting (default: the model's registered one).
      groups: groups that may be pruned (default: all).
      allocation: ``"global"`` or ``"uniform"``.
      min_channels: the fewest channels a group may keep.

    Returns:
      :class:`Budgeted` ``(keep, counts)`` with ``counts.<metric> <= budget``. ``"global"``:
      keeping back the last removed channel would exceed it; ``"uniform"``: any ratio 1e-6
      smaller would.

    Raises:
      ValueError: neither or both budgets, an unknown allocation, or a budget below what
        ``min_channels`` per group allows.

    Reference: Wang et al. 2020, "Pruning from Scratch", https://arxiv.org/abs/1909.12579
    """
    if (macs is None) == (params is None):
        raise ValueError("give exactly one of macs= or params=")
    if allocation not in ("global", "uniform"):
        raise ValueError(f"allocation must be 'global' or 'uniform', got {allocation!r}")
    _check_args(min_channels, "clamp")
    metric, budget = ("macs", macs) if macs is not None else ("params", params)
    count = cost_model(structure, input_shape=input_shape)
    s = _scores(structure, scores, groups)

    if allocation == "global":
        cands = _global_candidates(structure, s, min_channels, "clamp")
        keep_of = lambda n: _remove_first(structure, cands, int(n))
        hi = cands[0].size
    else:
        keep_of = lambda r: prune_by_ratio(
            structure, s, {n: r for n in s}, min_channels=min_channels
        )
        hi = 1.0

    def fits(arg) -> bool:
        return getattr(count(keep_of(arg)), metric) <= budget

    if fits(0):
        keep = keep_of(0)
    elif not fits(hi):
        smallest = getattr(count(keep_of(hi)), metric)
        raise ValueError(
            f"{metric} budget {budget:,} is below {smallest:,}, the smallest this structure "
            f"reaches with min_channels={min_channels} per group"
        )
    else:
        lo = 0  # lo does not fit, hi fits
        if allocation == "global":
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        else:
            lo = 0.0
            while hi - lo > 1e-6:
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        keep = keep_of(hi)
    keep = check_keep(structure, keep)
    return Budgeted(keep, count(keep))


def prune_to_reduction(
    structure: Structure,
    scores: Scores,
    reduction: float,
    *,
    reference: int,
    metric: str = "macs",
    tolerance: float = 1e-3,
    fill: bool = True,
    input_shape: Sequence[int] | None = None,
    groups: Iterable[str] | None = None,
    min_channels: int = 1,
) -> Reduced:
    """The global threshold whose reduction against ``reference`` hits ``reduction``.

    Channels are removed in one global order (lowest score first, ties as the module docstring
    says); removing more never adds cost, so bisection over how many are removed finds the two
    global cuts on either side of the target exactly. If the nearer is within ``tolerance`` it
    is returned. Otherwise (one channel costs more than the tolerance window: a ResNet-56
    block channel is 0.06-0.24% of the model's MACs, while 0.1% of a 50% target is 0.05%) and
    with ``fill``, removal goes on down the same order from the lower cut, keeping any channel
    whose removal would overshoot the window, until inside it.

    Pruning from Scratch (Wang et al. 2020) searches this way over its learned gates, with
    ``reference`` the MACs of the *standard-width* model while the gates live on a wider one,
    and accepts ``|achieved - target| / target <= 0.001`` (``prune_model.py``: ``args.eps``);
    where its 10 halvings of the kept ratio miss that window it silently keeps the last try.
    Here a miss is an error.

    Args:
      structure: the groups (of the possibly expanded model that carries the scores).
      scores: ``{group: (width,)}`` for the selected groups.
      reduction: target ``1 - pruned / reference``, in (0, 1).
      reference: the count the reduction is measured against (e.g. the standard model's MACs).
      metric: ``"macs"`` or ``"params"``.
      tolerance: accepted relative error ``|achieved - reduction| / reduction``.
      fill: when no global cut is within the tolerance, fill the gap as described above
        (``False``: raise instead).
      input_shape: per-example input shape for counting (default: the model's registered one).
      groups: groups that may be pruned (default: all).
      min_channels: the fewest channels a group may keep.

    Returns:
      :class:`Reduced` ``(keep, counts, reduction, removed, skipped)``.

    Raises:
      ValueError: a target outside (0, 1), an unknown metric, a target beyond what removing
        every removable channel reaches (or short of the unpruned model's own reduction), or no
        structure within the tolerance (the two nearest global cuts are named).

    Reference: Wang et al. 2020, "Pruning from Scratch", https://arxiv.org/abs/1909.12579
    """
    if not 0.0 < reduction < 1.0:
        raise ValueError(f"target reduction must lie in (0, 1), got {reduction}")
    if metric not in ("macs", "params"):
        raise ValueError(f"metric must be 'macs' or 'params', got {metric!r}")
    if not (reference > 0 and tolerance >= 0):
        raise ValueError(f"need reference > 0 and tolerance >= 0, got {reference}, {tolerance}")
    _check_args(min_channels, "clamp")
    count = cost_model(structure, input_shape=input_shape)
    cands = _global_candidates(structure, _scores(structure, scores, groups), min_channels,
                               "clamp")
    _, gids, idxs, names = cands

    def achieved_by(removed: np.ndarray) -> float:  # removed: bool over the candidates
        keep = _keep_from_removed(structure, {name: idxs[removed & (gids == gi)]
                                               for gi, name in enumerate(names)})
        return 1.0 - getattr(count(keep), metric) / reference

    first = lambda n: np.arange(idxs.size) < n
    achieved = lambda n: achieved_by(first(n))
    hi = idxs.size
    lo_r, hi_r = achieved(0), achieved(hi)
    if not lo_r <= reduction <= hi_r:
        raise ValueError(
            f"no structure reduces {metric} by {reduction:.2%}: from these scores the "
            f"reductions against {reference:,} run from {lo_r:.2%} (nothing removed) to "
            f"{hi_r:.2%} ({min_channels} channel(s) left per group); choose a target in between"
        )
    lo = 0  # achieved(lo) <= reduction <= achieved(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if achieved(mid) <= reduction else (lo, mid)
    window = tolerance * reduction
    n = min((lo, hi), key=lambda k: (abs(achieved(k) - reduction), k))
    removed, skipped = first(n), 0
    if abs(achieved(n) - reduction) > window and fill:
        removed = first(lo)
        for i in range(lo, idxs.size):
            removed[i] = True
            got = achieved_by(removed)
            if got > reduction + window:
                removed[i], skipped = False, skipped + 1
            elif got >= reduction - window:
                break
    got = achieved_by(removed)
    if abs(got - reduction) > window:
        raise ValueError(
            f"no structure from these scores reduces {metric} by {reduction:.2%} within "
            f"{tolerance:g} (relative): removing {lo} channels gives {achieved(lo):.4%}, "
            f"{hi} gives {achieved(hi):.4%}"
            + ("; filling the gap with cheaper channels did not reach it either" if fill else "")
            + "; raise the tolerance or move the target"
        )
    keep = check_keep(structure, _keep_from_removed(
        structure, {name: idxs[removed & (gids == gi)] for gi, name in enumerate(names)}))
    return Reduced(keep, count(keep), float(got), int(removed.sum()), skipped)


def prune_greedily(
    structure: Structure,
    variables: PyTree,
    *,
    score_fn: Callable[[Structure, PyTree], Scores],
    num_channels: int,
    fine_tune: Callable[[Pruned, int], PyTree] | None = None,
    groups: Iterable[str] | None = None,
    min_channels: int = 1,
    on_empty: str = "clamp",
    input_shape: Sequence[int] | None = (),
) -> Greedy:
    """Remove ``num_channels`` channels one at a time, re-scoring (and fine-tuning) in between.

    Each step scores the current narrow network, removes the single lowest-scored channel over
    the selected groups by surgery, then calls ``fine_tune(pruned, step)`` for the new
    variables (Crowley et al. prune one channel every 100 fine-tuning steps with Fisher scores).

    Args:
      structure: the wide model's groups.
      variables: its variables.
      score_fn: ``(structure, variables) -> {group: (width,)}``, e.g.
        ``lambda s, v: criteria.get("fisher", structure=s)(v, batch=batch)``.
      num_channels: how many channels to remove.
      fine_tune: ``(pruned, step) -> variables`` run after each removal (default: none).
      groups: groups that may be pruned (default: all).
      min_channels: the fewest channels a group may keep.
      on_empty: ``"clamp"``: groups at ``min_channels`` are not candidates; ``"raise"``:
        raise if the lowest channel overall sits in such a group.
      input_shape: passed to :func:`~jaxprune.structured.surgery.prune_channels` to check
        shapes (default ``()``: no check).

    Returns:
      :class:`Greedy` ``(pruned, removed)``.

    Reference: Crowley et al. 2018, https://arxiv.org/abs/1810.04622
    """
    _check_args(min_channels, on_empty)
    names = structure.group_names if groups is None else list(groups)
    origin = {g.name: np.arange(g.width) for g in structure.groups}
    pruned = Pruned(structure, structure.model, variables)
    removed: list[tuple[str, int]] = []
    for step in range(num_channels):
        s = _scores(pruned.structure, score_fn(pruned.structure, pruned.variables), names)
        cands = _global_candidates(pruned.structure, s, min_channels, on_empty)
        if cands[0].size == 0:
            raise ValueError(
                f"step {step}: every selected group is at min_channels={min_channels}; "
                f"{len(removed)} of {num_channels} channels removed"
            )
        name, idx = cands[3][cands[1][0]], int(cands[2][0])
        keep = _keep_from_removed(pruned.structure, {name: np.array([idx])})
        _check_min(pruned.structure, keep, [name], min_channels)
        removed.append((name, int(origin[name][idx])))
        origin[name] = np.delete(origin[name], idx)
        pruned = prune_channels(pruned.structure, pruned.variables, keep, input_shape=input_shape)
        if fine_tune is not None:
            pruned = pruned._replace(variables=fine_tune(pruned, step))
    return Greedy(pruned, removed)


# ---------------------------------------------------------------------------------------------
# Li et al. 2017 presets.
# ---------------------------------------------------------------------------------------------


def li_resnet_layer(structure: Structure, layer: int) -> str:
    """The block group whose ``conv1`` is Li et al.'s conv layer number ``layer`` (1-based).

    Raises:
      ValueError: the number is the stem (1), a block's ``conv2`` (odd), or past the last conv.
    """
    n_blocks = sum(1 for g in structure.groups if g.name.endswith("/conv1"))
    if not (isinstance(layer, int) and 2 <= layer <= 1 + 2 * n_blocks and layer % 2 == 0):
        raise ValueError(
            f"conv layer {layer!r} is not a block's first conv in {structure.name}: those are the "
            f"even numbers 2..{2 * n_blocks} (layer 1 is the stem, odd layers are conv2)"
        )
    return [g.name for g in structure.groups if g.name.endswith("/conv1")][(layer - 2) // 2]


def li_resnet_ratios(
    structure: Structure, stage_ratios: Sequence[float], *, skip_layers: Iterable[int] = ()
) -> dict[str, float]:
    """Per-group prune ratios of Li et al.'s ResNet rule: ``stage_ratios[s]`` for every block's
    ``conv1`` output in stage ``s + 1``, except the skipped conv layers (numbered as in the module
    docstring).

    Args:
      structure: a ResNet's groups.
      stage_ratios: 3 ratios, one per stage.
      skip_layers: conv-layer numbers to leave unpruned, e.g. ``LI_RESNET56["A"]["skip_layers"]``.

    Returns:
      ``{group: ratio}`` for :func:`prune_by_ratio`.
    """
    if structure.name[:6] != "resnet" or len(stage_ratios) != 3:
        raise ValueError(
            f"li_resnet_ratios needs a CIFAR ResNet and 3 stage ratios, got {structure.name!r} "
            f"and {tuple(stage_ratios)}"
        )
    skip = {li_resnet_layer(structure, layer) for layer in skip_layers}
    return {
        g.name: float(stage_ratios[int(g.name[5]) - 1])
        for g in structure.groups
        if g.name.endswith("/conv1") and g.name not in skip
    }
