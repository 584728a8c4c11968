"""Policies: exact counts, tie-breaking, no empty layers, budgets, greedy; Li et al.'s figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from structured_helpers import random_variables

from jaxprune.structured import (
    LI_RESNET56,
    LI_VGG16_A_WIDTHS,
    channel_groups,
    count_pruned,
    criteria,
    li_resnet_ratios,
    prune_by_global_threshold,
    prune_by_ratio,
    prune_greedily,
    prune_to_budget,
    prune_to_widths,
    reduction,
)
from jaxprune.structured.policies import li_resnet_layer


def _scores(structure, seed=0):
    rng = np.random.default_rng(seed)
    return {g.name: rng.random(g.width) for g in structure.groups}


def _l1_scores(structure):
    """L1 filter norms of a random init (the counts do not depend on which filters go)."""
    v = random_variables(structure.model, (32, 32, 3), seed=0)
    return criteria.get("l1", structure=structure)(v)


def test_prune_by_ratio_uses_li_rounding_and_keeps_the_best():
    s = channel_groups("lenet5", widths=(16, 64, 10, 7))
    sc = _scores(s)
    keep = prune_by_ratio(s, sc, 0.1)
    assert [keep[n].size for n in s.group_names] == [14, 57, 9, 6]  # int(w * 0.9)
    for n in s.group_names:  # the kept ones are the top scores
        assert np.asarray(sc[n])[keep[n]].min() >= np.delete(sc[n], keep[n]).max()
    keep = prune_by_ratio(s, sc, {"conv1": 0.5, "fc1": 0.3}, skip=["fc1"])
    assert [keep[n].size for n in s.group_names] == [8, 64, 10, 7]
    # 30% of 10 is exactly 3 (10 * 0.7 = 7.000000000000001 must not become 6 or 8)
    assert prune_by_ratio(s, sc, {"fc1": 0.3})["fc1"].size == 7


def test_ties_keep_the_first_channels():
    s = channel_groups("lenet5", widths=(6, 16, 12, 7))
    flat = {g.name: np.zeros(g.width) for g in s.groups}
    assert prune_by_ratio(s, flat, 0.5)["conv2"].tolist() == list(range(8))
    assert prune_to_widths(s, flat, {"fc1": 5})["fc1"].tolist() == list(range(5))


def test_no_layer_silently_empties():
    s = channel_groups("lenet5", widths=(6, 16, 12, 7))
    sc = _scores(s)
    keep = prune_by_ratio(s, sc, 1.0)
    assert all(k.size == 1 for k in keep.values())
    assert prune_by_ratio(s, sc, 1.0, min_channels=3)["conv1"].size == 3
    with pytest.raises(ValueError, match="'conv1' would keep 0 channel"):
        prune_by_ratio(s, sc, 1.0, on_empty="raise")
    # Global: conv1 scores all lowest; clamping keeps its best channel, the count stays exact.
    low = {**sc, "conv1": sc["conv1"] - 10.0}
    total = sum(g.width for g in s.groups)
    keep = prune_by_global_threshold(s, low, ratio=0.3)
    assert keep["conv1"].tolist() == [int(np.argmax(low["conv1"]))]
    assert sum(k.size for k in keep.values()) == total - int(total * 0.3)
    with pytest.raises(ValueError, match="'conv1' would keep 0"):
        prune_by_global_threshold(s, low, ratio=0.3, on_empty="raise")
    with pytest.raises(ValueError, match="on_empty"):
        prune_by_ratio(s, sc, 0.5, on_empty="ignore")


def test_global_threshold_ratio_and_threshold():
    s = channel_groups("vgg11", width_multiplier=0.0625, classifier_widths=())
    sc = _scores(s, seed=3)
    keep = prune_by_global_threshold(s, sc, ratio=0.4)
    allv = np.concatenate([sc[n] for n in s.group_names])
    cut = np.sort(allv)[int(allv.size * 0.4)]
    for n in s.group_names:  # removed exactly the scores below the int(total * 0.4)-th
        np.testing.assert_array_equal(keep[n], np.flatnonzero(sc[n] >= cut))
    keep_t = prune_by_global_threshold(s, sc, threshold=float(cut))
    assert all(np.array_equal(keep[n], keep_t[n]) for n in keep)
    with pytest.raises(ValueError, match="exactly one"):
        prune_by_global_threshold(s, sc)


def test_prune_to_budget_global_and_uniform():
    s = channel_groups("conv2", widths=(8, 12, 16, 10))
    sc = _scores(s, seed=1)
    shape = (8, 8, 3)
    dense = count_pruned(s, input_shape=shape)
    budget = dense.macs // 2
    got = prune_to_budget(s, sc, macs=budget, input_shape=shape)
    assert got.counts.macs <= budget
    assert got.counts == count_pruned(s, got.keep, input_shape=shape)
    # Keeping the last removed channel back would exceed the budget.
    removed = [
        (n, i)
        for n in s.group_names
        for i in np.setdiff1d(np.arange(s.group(n).width), got.keep[n])
    ]
    last = max(removed, key=lambda ni: (sc[ni[0]][ni[1]],))
    back = {**got.keep, last[0]: np.sort(np.append(got.keep[last[0]], last[1]))}
    assert count_pruned(s, back, input_shape=shape).macs > budget

    uni = prune_to_budget(s, sc, params=dense.params // 3, input_shape=shape, allocation="uniform")
    assert uni.counts.params <= dense.params // 3
    with pytest.raises(ValueError, match="below"):
        prune_to_budget(s, sc, macs=10, input_shape=shape)


def test_prune_greedily_removes_one_lowest_channel_per_step():
    s = channel_groups("lenet_300_100", widths=(6, 5))
    v = random_variables(s.model, (4, 4, 1), seed=0)
    calls = []

    def fine_tune(pruned, step):
        calls.append((step, pruned.model.widths))
        return pruned.variables

    l1 = lambda st, var: criteria.l1(st)(var)
    first = l1(s, v)
    res = prune_greedily(
        s, v, score_fn=l1, num_channels=4, fine_tune=fine_tune, input_shape=(4, 4, 1)
    )
    lowest = min(
        ((n, i) for n in first for i in range(first[n].size)),
        key=lambda ni: float(first[ni[0]][ni[1]]),
    )
    assert res.removed[0] == lowest
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert sum(res.pruned.model.widths) == 11 - 4
    # Original indices: the surviving kernel columns are the wide ones not removed.
    for name in ("fc1", "fc2"):
        gone = [i for n, i in res.removed if n == name]
        kept = np.setdiff1d(np.arange(s.group(name).width), gone)
        np.testing.assert_array_equal(
            res.pruned.variables["params"][name]["bias"],
            np.asarray(v["params"][name]["bias"])[kept],
        )
    with pytest.raises(ValueError, match="min_channels"):
        prune_greedily(s, v, score_fn=l1, num_channels=10)


def test_li_resnet_numbering():
    s = channel_groups("resnet56")
    assert li_resnet_layer(s, 2) == "stage1_block00/conv1"
    assert li_resnet_layer(s, 16) == "stage1_block07/conv1"
    assert li_resnet_layer(s, 20) == "stage2_block00/conv1"
    assert li_resnet_layer(s, 38) == "stage3_block00/conv1"
    assert li_resnet_layer(s, 54) == "stage3_block08/conv1"
    for bad in (1, 17, 56):
        with pytest.raises(ValueError, match="first conv"):
            li_resnet_layer(s, bad)
    ratios = li_resnet_ratios(s, **LI_RESNET56["B"])
    assert len(ratios) == 27 - 6 and ratios["stage1_block00/conv1"] == 0.6
    assert "stage2_block07/conv1" not in ratios and ratios["stage3_block01/conv1"] == 0.1


# --- Acceptance figures (Li et al. 2017, Table 1) -------------------------------------------


def test_vgg16_a_figures():
    s = channel_groups("vgg16")
    sc = _l1_scores(s)
    widths = {f"conv{i + 1}": w for i, w in enumerate(LI_VGG16_A_WIDTHS)}
    keep = prune_to_widths(s, sc, widths)
    dense, pruned = count_pruned(s), count_pruned(s, keep)
    assert dense == (14_987_722, 313_463_808)
    assert pruned == (5_397_034, 206_279_680)
    r = reduction(dense, pruned)
    assert round(100 * r["params"], 1) == 64.0 and round(100 * r["macs"], 1) == 34.2  # paper


@pytest.mark.parametrize("variant,macs_pct,params_pct", [("A", 10.4, 9.3), ("B", 27.6, 13.8)])
def test_resnet56_figures(variant, macs_pct, params_pct):
    s = channel_groups("resnet56")
    sc = _l1_scores(s)
    keep = prune_by_ratio(s, sc, li_resnet_ratios(s, **LI_RESNET56[variant]))
    r = reduction(count_pruned(s), count_pruned(s, keep))
    assert round(100 * r["macs"], 1) == macs_pct  # paper: 10.4% (A), 27.6% (B)
    assert round(100 * r["params"], 1) == params_pct  # paper: 9.4% (A), 13.7% (B)
    assert math.isclose(count_pruned(s).macs, 1.25e8, rel_tol=0.01)
