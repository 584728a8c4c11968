"""Surgery: the narrow model computes what the masked wide model computes, for every family.

The reference is the wide model with ``mask_channels`` applied (every slice of a pruned channel
zeroed: producer columns, biases, BN scale *and* bias, consumer rows), evaluated in eval mode with
random running statistics. Binary gates must give the same outputs too. Counts of the narrow
model must equal the keep-set arithmetic, the masked counts, and hand counts.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from structured_helpers import random_keep, random_variables

from jaxprune import flops, masks, models
from jaxprune.structured import (
    apply_with_gates,
    channel_groups,
    channel_mask,
    count_pruned,
    fresh_init,
    keep_all,
    mask_channels,
    narrow_options,
    prune_channels,
)

# (name, residual, input shape, options): small widths and inputs, every family.
CASES = [
    ("lenet_300_100", False, (6, 6, 1), {"widths": (7, 5)}),
    ("mlp_6x100", False, (4, 4, 1), {"width_multiplier": 0.06}),
    ("lenet5", False, (28, 28, 1), {"widths": (4, 6, 8, 5)}),
    ("lenet5_caffe", False, (20, 20, 1), {"widths": (3, 5, 6)}),
    ("conv2", False, (8, 8, 3), {"widths": (4, 6, 7, 5)}),
    ("cnn1d_mnist1d", False, (40, 1), {"widths": (4, 5, 6)}),
    ("vgg11", False, (32, 32, 3), {"width_multiplier": 0.0625, "classifier_widths": (96,)}),
    ("resnet20", True, (8, 8, 3), {"width_multiplier": 0.25}),
    ("resnet20", True, (8, 8, 3), {"width_multiplier": 0.25, "shortcut": "B"}),
    ("wrn", True, (8, 8, 3), {"depth": 10, "widen_factor": 1, "width_multiplier": 0.375}),
    (
        "wrn",
        True,
        (8, 8, 3),
        {"depth": 10, "widen_factor": 1, "stem_width": 5, "width_multiplier": 0.375},
    ),
]


def _ids(case):
    name, residual, _, opts = case
    extra = "-res" if residual else ""
    return (
        name
        + extra
        + ("-B" if opts.get("shortcut") == "B" else "")
        + ("-stem" if "stem_width" in opts else "")
    )


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_narrow_equals_masked_wide(case):
    name, residual, shape, opts = case
    s = channel_groups(name, residual=residual, **opts)
    v = random_variables(s.model, shape, seed=1)
    keep = random_keep(s, seed=2)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, *shape)), jnp.float32)
    gates = {g.name: jnp.zeros(g.width).at[keep[g.name]].set(1.0) for g in s.groups}

    pruned = prune_channels(s, v, keep, input_shape=shape)

    @jax.jit  # one compilation for the three forward passes
    def outputs(v, narrow_v, x, gates):
        masked = s.model.apply(mask_channels(s, v, keep), x)
        gated = apply_with_gates(s, v, gates, x)
        return masked, gated, pruned.model.apply(narrow_v, x)

    masked, gated, narrow = outputs(v, pruned.variables, x, gates)

    assert all(len(keep[g.name]) < g.width for g in s.groups if g.width > 1)  # all pruned
    np.testing.assert_allclose(narrow, masked, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gated, masked, rtol=1e-4, atol=1e-5)

    # Counts: keep-set arithmetic == narrow model == masked wide model.
    counts = count_pruned(s, keep, input_shape=shape)
    mask = channel_mask(s, v["params"], keep)
    assert counts.params == flops.count_params(pruned.variables["params"])
    assert counts.params == flops.count_params(v["params"], mask)
    assert counts.macs == flops.count_macs(pruned.model, pruned.variables, shape)
    assert counts.macs == flops.count_macs(s.model, v, shape, mask=mask)
    # The narrow structure has the same groups, at the kept widths.
    assert pruned.structure.group_names == s.group_names
    for g in pruned.structure.groups:
        assert g.width == len(keep[g.name])


def test_batch_stats_and_flattened_rows_are_sliced():
    s = channel_groups("vgg11", width_multiplier=0.0625, classifier_widths=(8,))
    v = random_variables(s.model, (32, 32, 3), seed=0)
    keep = {"conv8": np.array([1, 3]), "conv2": np.array([0, 5, 7])}
    p = prune_channels(s, v, keep, input_shape=(32, 32, 3)).variables
    np.testing.assert_array_equal(
        p["batch_stats"]["conv8_bn"]["mean"], v["batch_stats"]["conv8_bn"]["mean"][np.array([1, 3])]
    )
    np.testing.assert_array_equal(
        p["batch_stats"]["conv2_bn"]["var"],
        v["batch_stats"]["conv2_bn"]["var"][np.array([0, 5, 7])],
    )
    np.testing.assert_array_equal(
        p["params"]["conv3"]["kernel"], v["params"]["conv3"]["kernel"][:, :, np.array([0, 5, 7]), :]
    )
    np.testing.assert_array_equal(
        p["params"]["fc1"]["kernel"], v["params"]["fc1"]["kernel"][np.array([1, 3])]
    )

    # LeNet-5: conv2 (16 channels at 5x5) flattened into fc1: rows c, c + 16, c + 32, ...
    s = channel_groups("lenet5")
    shapes = jax.eval_shape(s.model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    rows = np.arange(400, dtype=np.float32)[:, None] * np.ones((1, 120), np.float32)
    v = {
        "params": {
            **jax.tree.map(lambda a: jnp.zeros(a.shape), shapes["params"]),
            "fc1": {"kernel": jnp.asarray(rows), "bias": jnp.zeros(120)},
        }
    }
    p = prune_channels(s, v, {"conv2": np.array([2, 9])}).variables
    expect = np.array([p_ * 16 + c for p_ in range(25) for c in (2, 9)], np.float32)
    np.testing.assert_array_equal(p["params"]["fc1"]["kernel"][:, 0], expect)


def test_hand_counted_macs_and_params():
    # LeNet-5 with conv widths (4, 6), fc (8, 5): hand-computed per layer.
    s = channel_groups("lenet5")
    keep = {"conv1": np.arange(4), "conv2": np.arange(6), "fc1": np.arange(8), "fc2": np.arange(5)}
    c = count_pruned(s, keep)
    macs = 28 * 28 * 25 * 1 * 4 + 10 * 10 * 25 * 4 * 6 + 150 * 8 + 8 * 5 + 5 * 10
    params = (25 * 4 + 4) + (25 * 4 * 6 + 6) + (150 * 8 + 8) + (8 * 5 + 5) + (5 * 10 + 10)
    assert c == (params, macs)
    assert count_pruned(s) == (
        61_706,
        28 * 28 * 25 * 6 + 100 * 25 * 6 * 16 + 400 * 120 + 120 * 84 + 840,
    )

    # ResNet-56: Li et al. report 1.25e8 multiply-adds; ours, by hand: stem + 3 stages + fc.
    s = channel_groups("resnet56")
    hand = 32 * 32 * 9 * 3 * 16
    for stage, (hw, w) in enumerate([(32, 16), (16, 32), (8, 64)]):
        w_in = 16 if stage == 0 else w // 2
        hand += hw * hw * 9 * (w_in * w + w * w)  # block 0 (option A: no shortcut conv)
        hand += 8 * hw * hw * 9 * 2 * w * w  # blocks 1..8
    hand += 64 * 10
    assert count_pruned(s).macs == hand == 125_485_696
    assert math.isclose(hand, 1.25e8, rel_tol=0.01)


def test_narrow_options_nested_option_a_residual():
    s = channel_groups("resnet20", residual=True, width_multiplier=0.25)  # stages (4, 8, 16)
    # identities 0..3 live in all stages, 4..7 from stage 2, 8..15 in stage 3 only
    keep = {"residual": np.array([1, 5, 6, 9])}
    opts = narrow_options(s, keep)
    assert opts["stage_widths"] == (1, 3, 4)
    assert opts["block_widths"] == s.options["block_widths"]
    with pytest.raises(ValueError, match="below 4"):
        narrow_options(s, {"residual": np.array([5, 9])})  # stage 1 would be empty


def test_keep_validation_errors():
    s = channel_groups("lenet5")
    with pytest.raises(KeyError, match="conv1, conv2|'conv1', 'conv2'"):
        prune_channels(s, {}, {"conv9": np.array([0])})
    with pytest.raises(ValueError, match="no channel"):
        narrow_options(s, {"conv1": np.array([], int)})
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        narrow_options(s, {"conv1": np.array([0, 6])})
    with pytest.raises(ValueError, match="repeated"):
        narrow_options(s, {"conv1": np.array([1, 1])})
    wrong = random_variables(models.get("lenet5", widths=(5, 16, 120, 84)), (28, 28, 1))
    with pytest.raises(ValueError, match="variables of this model"):
        prune_channels(s, wrong, {"conv1": np.array([0])})


def test_wrn_stem_shortcut_cannot_become_identity():
    s = channel_groups(
        "wrn", residual=True, depth=10, widen_factor=1, stem_width=5, width_multiplier=0.375
    )  # stem 2, stage1 6
    assert "stem" in s.group_names
    with pytest.raises(ValueError, match="identity"):
        narrow_options(s, {"stage1": np.array([0, 1])})


def test_fresh_init_builds_the_pruned_architecture():
    s = channel_groups("lenet_300_100", widths=(7, 5))
    keep = {"fc1": np.array([0, 3, 4]), "fc2": np.array([1])}
    a = fresh_init(s, keep, key=jax.random.key(0), input_shape=(4, 4, 1))
    b = fresh_init(s, keep, key=jax.random.key(1), input_shape=(4, 4, 1))
    assert a.model.widths == (3, 1)
    assert a.variables["params"]["fc1"]["kernel"].shape == (16, 3)
    assert not np.allclose(
        a.variables["params"]["fc1"]["kernel"], b.variables["params"]["fc1"]["kernel"]
    )
    full = keep_all(s)
    assert fresh_init(s, full, key=jax.random.key(0), input_shape=(4, 4, 1)).model == s.model


def test_channel_mask_is_exact_zeroing():
    s = channel_groups("conv2", widths=(4, 6, 7, 5))
    v = random_variables(s.model, (8, 8, 3))
    keep = random_keep(s, seed=5)
    m = channel_mask(s, v["params"], keep)
    masks.check_mask_tree(v["params"], m)
    pruned_conv1 = np.setdiff1d(np.arange(4), keep["conv1"])
    assert not np.asarray(m["conv1"]["kernel"][..., pruned_conv1]).any()
    assert not np.asarray(m["conv2"]["kernel"][:, :, pruned_conv1, :]).any()
    assert np.asarray(m["fc3"]["bias"]).all()


def test_random_keep_helper_never_empties_a_stage():
    from jaxprune.structured import channel_groups, check_keep

    s = channel_groups("resnet20", residual=True, width_multiplier=0.25)
    for seed in range(20):
        keep = random_keep(s, seed=seed, fraction=0.1)
        check_keep(s, keep)  # raises on an empty group or stage
