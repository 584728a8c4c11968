"""Crowley et al.'s greedy Fisher pruning: the lowest-scored channel goes, counts are exact."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxprune import data, flops
from jaxprune import structured as st
from jaxprune.studies import crowley
from jaxprune.train import TrainConfig, init_model


def test_lowest_channel_skips_removed_and_full_groups_and_breaks_ties_late():
    s = st.channel_groups("lenet_300_100", widths=(4, 3))
    keep = {"fc1": np.array([0, 1, 3]), "fc2": np.array([0, 1, 2])}
    scores = {"fc1": np.array([0.5, 0.2, 0.0, 0.2]), "fc2": np.array([0.3, 0.2, 0.2])}
    # fc1[2] (0.0) is already gone; 0.2 ties: the later group, then the later channel
    assert crowley.lowest_channel(scores, keep, s, ["fc1", "fc2"], 1) == ("fc2", 2)
    assert crowley.lowest_channel(scores, keep, s, ["fc1"], 1) == ("fc1", 3)
    assert crowley.lowest_channel(scores, keep, s, ["fc1", "fc2"], 3) is None


def test_fisher_prune_removes_the_lowest_fisher_channel_and_recounts_exactly():
    x, y = data.load("digits", "train")
    s = st.channel_groups("lenet_300_100", widths=(8, 6))
    v = init_model(s.model, jax.random.key(0), x)
    batches = [(x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]) for i in range(8)]
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, schedule="constant")
    run = crowley.fisher_prune(s, v, lambda i: batches[i], channels=4, steps_between=1,
                               config=cfg, key=jax.random.key(1), record=(2,),
                               input_shape=(8, 8, 1))
    # The first removal: the lowest Fisher score of the untouched network on batch 0.
    first = st.criteria.get("fisher", structure=s, train=True)(v, batch=batches[0])
    flat = [(float(first[g][i]), -gi, -i, g) for gi, g in enumerate(("fc1", "fc2"))
            for i in range(s.group(g).width)]
    lowest = min(flat)  # dead ReLUs score 0 here: the tie goes to the later channel
    assert lowest[0] == 0.0 and sum(f[0] == 0.0 for f in flat) > 1
    assert run.removed[0][:2] == (lowest[3], -lowest[2])
    assert run.removed[0][2] == pytest.approx(lowest[0], abs=1e-12)
    assert len({r[:2] for r in run.removed}) == 4  # never the same channel twice
    assert sorted(run.points) == [2, 4]
    for n, p in run.points.items():
        gone = {(g, i) for g, i, _ in run.removed[:n]}
        for g in ("fc1", "fc2"):
            want = [i for i in range(s.group(g).width) if (g, i) not in gone]
            assert p.keep[g].tolist() == want
        narrow = st.channel_groups("lenet_300_100", widths=tuple(p.keep[g].size
                                                                 for g in ("fc1", "fc2")))
        assert p.counts.params == flops.count_params(p.variables["params"])
        assert p.counts.macs == flops.count_macs(narrow.model, p.variables, (8, 8, 1))
    with pytest.raises(ValueError, match="only 12 can go"):
        crowley.fisher_prune(s, v, lambda i: batches[0], channels=13, steps_between=1,
                             config=cfg, key=jax.random.key(1))
