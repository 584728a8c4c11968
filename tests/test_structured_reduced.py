"""Reduced networks: the widest uniformly thinned model within a budget, to one channel."""

from __future__ import annotations

import numpy as np
import pytest

from jaxprune import models
from jaxprune.structured import channel_groups, reduce_to_budget
from jaxprune.structured.reduced import counts_of, multiplier_breakpoints


def _widths(name, options):
    s = channel_groups(name, **options)
    return np.array([g.width for g in s.groups])


def test_hits_a_mac_budget_within_one_channel():
    full = counts_of("lenet5")
    budget = full.macs // 3
    r = reduce_to_budget("lenet5", macs=budget)
    assert r.counts.macs <= budget < r.next_counts.macs
    assert r.counts == counts_of(r.name, **r.options)
    # The next wider member differs by at most one channel per layer (one breakpoint up).
    pts = multiplier_breakpoints(models.get("lenet5").widths)
    up = pts[np.searchsorted(pts, r.width_multiplier)] + 1e-9
    lo, hi = _widths("lenet5", r.options), _widths("lenet5", {"width_multiplier": up})
    assert np.all((hi - lo >= 0) & (hi - lo <= 1)) and np.any(hi > lo)
    assert counts_of("lenet5", width_multiplier=up) == r.next_counts


def test_param_budget_and_depth_change():
    # ResNet-56's budget met by a ResNet-20: the depth option switches the registered name.
    r = reduce_to_budget("resnet56", params=300_000, depth=20, shortcut="B")
    assert r.name == "resnet20" and r.width_multiplier == 1.0
    assert r.counts == counts_of("resnet20", shortcut="B")
    third = counts_of("wrn", (8, 8, 3), depth=10, widen_factor=1).params // 3
    r = reduce_to_budget("wrn", params=third, depth=10, widen_factor=1, input_shape=(8, 8, 3))
    assert r.options["depth"] == 10 and r.counts.params <= third < r.next_counts.params
    assert r.counts == counts_of("wrn", (8, 8, 3), **r.options)


def test_fits_already_and_errors():
    full = counts_of("lenet5")
    r = reduce_to_budget("lenet5", params=full.params)
    assert r.width_multiplier == 1.0 and r.next_counts is None and r.counts == full
    with pytest.raises(ValueError, match="every width 1"):
        reduce_to_budget("lenet5", macs=10)
    with pytest.raises(ValueError, match="exactly one"):
        reduce_to_budget("lenet5")
    with pytest.raises(ValueError, match="searches"):
        reduce_to_budget("lenet5", macs=1000, width_multiplier=0.5)
    with pytest.raises(ValueError, match="resnet20"):
        reduce_to_budget("resnet56", macs=10**6, depth=26)
    with pytest.raises(ValueError, match="name='wrn'"):
        reduce_to_budget("wrn16_4", macs=10**6, depth=10)
    with pytest.raises(ValueError, match="ResNets and WRNs"):
        reduce_to_budget("lenet5", macs=10**6, depth=3)
