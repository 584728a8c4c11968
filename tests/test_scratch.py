"""Pruning from Scratch (jaxprune.studies.scratch): gate learning, the search, the narrow build."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from structured_helpers import random_variables

from jaxprune import flops, models, seeds
from jaxprune import structured as st
from jaxprune.studies import scratch
from jaxprune.train import Split, cross_entropy

TINY = {"width_multiplier": 1 / 16, "classifier_widths": ()}  # VGG-11, widths 4 .. 32


def _data(n, seed):
    rng = np.random.default_rng(seed)
    return Split(rng.random((n, 32, 32, 3), np.float32), rng.integers(0, 10, n).astype(np.int32))


@pytest.fixture(scope="module")
def tiny():
    structure = st.channel_groups("vgg11", **TINY)
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = seeds.init_seeds(structure.model.init, keys, jnp.zeros((1, 32, 32, 3)))
    return structure, stacked, _data(64, 0), _data(40, 1)


def test_penalty_density_and_clamp_by_hand():
    g = {"b": jnp.array([0.5, -0.25]), "a": jnp.array([1.0, 0.0, 0.75])}
    flat = np.array([1.0, 0.0, 0.75, 0.5, -0.25])  # every gate at once, not a mean of means
    assert float(scratch.gate_penalty(g, penalty=0.5, target=0.2)) == pytest.approx(
        0.5 * (np.abs(flat).mean() - 0.2) ** 2)
    assert float(scratch.gate_density(g)) == pytest.approx(4 / 5)
    c = scratch.clamp({"x": jnp.array([-0.3, 0.0, 0.4, 1.7])})
    np.testing.assert_array_equal(np.asarray(c["x"]), np.float32([0.0, 0.0, 0.4, 1.0]))


def test_one_gate_step_is_adam_on_ce_plus_penalty_then_clamp(tiny):
    structure, stacked, train, _ = tiny
    variables = jax.tree.map(lambda a: a[0], stacked)
    cfg = scratch.GateConfig(batch_size=16, augment=False, normalize=False, learning_rate=0.3)
    progs = scratch.gate_programs(structure, cfg, train)
    gates = st.init_gates(structure)
    gates["conv2"] = gates["conv2"].at[:3].set(jnp.array([0.0, 0.1, 0.5]))
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}
    idx = np.arange(16)
    key = jax.random.key_data(jax.random.key(1))
    carry = (gates, progs.tx.init(gates), state)
    zeros = {k: jnp.zeros((), jnp.float32) for k in ("ce", "penalty", "count", "correct")}
    (new, _, new_state), sums = jax.jit(progs.step)(params, carry, zeros, train.images,
                                                    train.labels, idx, key)

    def loss(g):  # by hand: the mean CE of the gated net in train mode + the penalty
        logits, _ = st.apply_with_gates(structure, variables, g, train.images[:16], train=True,
                                        mutable=["batch_stats"])
        mean_abs = jnp.mean(jnp.abs(jnp.concatenate([g[k] for k in sorted(g)])))
        return cross_entropy(logits, train.labels[:16]).mean() + 0.5 * (mean_abs - 0.2) ** 2

    grads = jax.jit(jax.grad(loss))(gates)  # one program (eager would compile ~300 ops)
    for k in gates:  # Adam's first step: lr * m_hat / (sqrt(v_hat) + eps) = lr * g / (|g| + eps)
        g = np.asarray(grads[k], np.float64)
        want = np.clip(np.asarray(gates[k]) - 0.3 * g / (np.abs(g) + 1e-8), 0.0, 1.0)
        # atol: optax's float32 bias corrections (1 - 0.999 is 0.0009999871 in float32)
        np.testing.assert_allclose(np.asarray(new[k]), want, atol=1e-5)
    assert float(np.asarray(new["conv2"])[0]) in (0.0, 0.3)  # a gate at 0 moves to 0.3 or stays
    assert float(sums["count"]) == 16
    # batch statistics moved (train mode), the weights are not even part of the carry
    assert not np.allclose(np.asarray(new_state["batch_stats"]["conv1_bn"]["mean"]),
                           np.asarray(state["batch_stats"]["conv1_bn"]["mean"]))


def test_only_gates_and_batch_stats_change(tiny):
    structure, stacked, train, val = tiny
    variables = jax.tree.map(lambda a: a[0], stacked)
    before = jax.tree.map(np.array, variables)
    cfg = scratch.GateConfig(epochs=2, batch_size=16, target=0.5)
    out = scratch.learn_gates(structure, variables, train, val, cfg, progress=False)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(variables), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))  # the caller's arrays untouched
    for a, b in zip(jax.tree.leaves(before["params"]), jax.tree.leaves(out.variables["params"]),
                    strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))  # frozen: bit for bit
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(
        jax.tree.leaves(before["batch_stats"]), jax.tree.leaves(out.variables["batch_stats"]),
        strict=True))
    assert set(out.gates) == set(structure.group_names)
    flat = np.concatenate([np.ravel(g) for g in out.gates.values()])
    assert flat.min() >= 0.0 and flat.max() <= 1.0 and flat.min() < 1.0
    assert [r["epoch"] for r in out.history] == [1, 2]
    assert 1 <= out.selected_epoch <= 2
    if out.met_target:
        assert out.history[out.selected_epoch - 1]["density"] <= 0.5


def test_stacked_networks_equal_a_per_network_loop(tiny):
    structure, stacked, train, val = tiny
    cfg = scratch.GateConfig(epochs=2, batch_size=16, target=0.9)
    vm = scratch.learn_gates(structure, stacked, train, val, cfg, stacked=True,
                             strategy="vmap", progress=False)
    lp = scratch.learn_gates(structure, stacked, train, val, cfg, stacked=True,
                             strategy="loop", progress=False)
    assert (vm.strategy, lp.strategy) == ("vmap", "loop")
    for i in range(3):
        one = scratch.learn_gates(structure, jax.tree.map(lambda a, i=i: a[i], stacked), train,
                                  val, cfg, progress=False)
        for k in one.gates:  # the loop IS the single-network program: bit for bit
            np.testing.assert_array_equal(np.asarray(lp.gates[k][i]), np.asarray(one.gates[k]))
            np.testing.assert_allclose(np.asarray(vm.gates[k][i]), np.asarray(one.gates[k]),
                                       atol=2e-5)
        assert lp.selected_epoch[i] == one.selected_epoch
        for row_l, row_1 in zip(lp.history, one.history, strict=True):
            assert row_l["val_accuracy"][i] == row_1["val_accuracy"]
            assert row_l["density"][i] == row_1["density"]


@pytest.mark.parametrize(("name", "options", "expansion", "targets"), [
    ("vgg16", {"classifier_widths": ()}, 1.25, (0.3, 0.5, 0.7, 0.9)),
    ("resnet56", {}, 1.5, (0.3, 0.5, 0.7)),
])
def test_search_hits_the_reduction_of_the_standard_model(name, options, expansion, targets):
    wide = st.channel_groups(name, width_multiplier=expansion, **options)
    reference = scratch.standard_macs(name, **options)
    std_model = models.get(name, **options)  # independent count: jaxprune.flops on real models
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    assert reference == flops.count_macs(std_model, jax.eval_shape(std_model.init,
                                                                    jax.random.key(0), x),
                                         (32, 32, 3))
    rng = np.random.default_rng(0)
    gates = {g.name: rng.random(g.width) for g in wide.groups}
    for p in targets:
        found = scratch.search(wide, gates, p, reference_macs=reference)
        narrow = models.get(name, **found.options)
        macs = flops.count_macs(narrow, jax.eval_shape(narrow.init, jax.random.key(0), x),
                                (32, 32, 3))
        assert macs == found.counts.macs
        assert abs((1 - macs / reference) - p) <= 1e-3 * p, (name, p, 1 - macs / reference)
        assert all(w >= 1 for w in found.widths.values())


@pytest.mark.parametrize("name, options, width, seed, reduction, skipped", [
    ("vgg16", {"classifier_widths": ()}, 1.25, 1, 0.5, 0),  # a plain global threshold hits it
    ("resnet56", {}, 1.5, 1, 0.3, 3),                 # the fill keeps 3 channels out of order
])
def test_search_follows_the_global_gate_order(name, options, width, seed, reduction, skipped):
    wide = st.channel_groups(name, width_multiplier=width, **options)
    rng = np.random.default_rng(seed)
    gates = {g.name: rng.random(g.width) for g in wide.groups}
    reference = scratch.standard_macs(name, **options)
    found = scratch.search(wide, gates, reduction, reference_macs=reference)
    kept = np.concatenate([gates[g][found.keep[g]] for g in gates])
    cut = np.concatenate([np.delete(gates[g], found.keep[g]) for g in gates])
    plan = st.prune_to_reduction(wide, gates, reduction, reference=reference)
    assert all(np.array_equal(found.keep[g], plan.keep[g]) for g in gates)
    assert plan.skipped == skipped
    # Every removed channel ranks below every kept one, except the channels the fill kept
    # because removing them would overshoot: exactly `skipped` kept channels rank lower.
    assert int(np.sum(kept < cut.max())) == skipped


def test_unreachable_targets_and_bad_settings_raise():
    wide = st.channel_groups("lenet5", width_multiplier=2.0)
    gates = {g.name: np.linspace(0, 1, g.width) for g in wide.groups}
    ref = scratch.standard_macs("lenet5")
    with pytest.raises(ValueError, match="no structure reduces macs by 99.00%"):
        scratch.search(wide, gates, 0.99, reference_macs=ref)
    with pytest.raises(ValueError, match="within 1e-06"):
        scratch.search(wide, gates, 0.5, reference_macs=ref, tolerance=1e-6)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        scratch.search(wide, gates, 1.0, reference_macs=ref)
    for r in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"gate target r must lie in \(0, 1\)"):
            scratch.GateConfig(target=r).validate()
    with pytest.raises(ValueError, match="expansion must be >= 1"):
        scratch.check_expansion(0.5)
    assert scratch.budget_epochs(160, 0.5) == 320
    assert scratch.budget_epochs(160, 0.7) == int(1 / 0.3 * 160) == 533


def test_narrow_network_from_gates_computes_the_gated_wide_one():
    structure = st.channel_groups("resnet20", width_multiplier=0.5)
    variables = random_variables(structure.model, (32, 32, 3), seed=3)
    rng = np.random.default_rng(0)
    gates = {g.name: np.where(rng.random(g.width) < 0.4, 0.0, rng.uniform(0.2, 1.0, g.width))
             for g in structure.groups}
    for g in gates.values():
        g[0] = max(g[0], 0.5)  # no empty group
    keep = {k: np.flatnonzero(g) for k, g in gates.items()}
    x = jnp.asarray(rng.random((4, 32, 32, 3)), jnp.float32)
    gated = st.apply_with_gates(structure, variables, {k: jnp.asarray(g, jnp.float32)
                                                       for k, g in gates.items()}, x)
    folded = scratch.fold_gates(structure, variables, gates)
    narrow = st.prune_channels(structure, folded, keep)
    np.testing.assert_allclose(np.asarray(narrow.model.apply(narrow.variables, x)),
                               np.asarray(gated), rtol=1e-4, atol=1e-4)
    assert st.count_pruned(structure, keep).params == sum(
        a.size for a in jax.tree.leaves(narrow.variables["params"]))


def test_diversity_metrics_by_hand():
    w = np.array([[2.0, 4.0], [2.0, 4.0], [4.0, 2.0]])
    d = scratch.pairwise(w, [4, 8])
    assert list(itertools.combinations(range(3), 2)) == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_allclose(d["l1"], [0.0, 4 / 12, 4 / 12])
    np.testing.assert_allclose(d["cosine"], [1.0, 16 / 20, 16 / 20])
    s = scratch.diversity(w, [4, 8])
    np.testing.assert_allclose(s["layer_spread"], np.std(w / [4, 8], axis=0))
    a, b = scratch.pca_2d(w[:2], w[2:])
    assert a.shape == (2, 2) and b.shape == (1, 2)


def test_channel_groups_of_a_model_with_an_init_scheme():
    """`init=` subclasses the family (the official PfS init): groups, counts and the fresh
    narrow network still work, and the narrow network keeps the scheme."""
    s = st.channel_groups("vgg11", init="pfs", **TINY)
    assert s.options["init"] == "pfs" and s.group_names[0] == "conv1"
    assert st.count_pruned(s) == st.count_pruned(st.channel_groups("vgg11", **TINY))
    keep = {g.name: np.arange(max(1, g.width // 2)) for g in s.groups}
    narrow = st.fresh_init(s, keep, key=jax.random.key(0), input_shape=(32, 32, 3))
    assert narrow.structure.options["init"] == "pfs"


def test_more_diverse_tests_spread_not_a_shift():
    """Two equally tight groups around different structures are not 'more diverse' (pooling
    the raw vectors would say they are); a wider group is, with a small p-value."""
    rng = np.random.default_rng(0)
    full = [40, 40, 40]
    tight_a = np.array([10, 20, 30]) + rng.integers(-1, 2, (20, 3))
    tight_b = np.array([30, 20, 10]) + rng.integers(-1, 2, (8, 3))
    shifted = scratch.more_diverse(tight_a, tight_b, full, permutations=500)
    assert shifted["p_value"] > 0.05
    wide = np.array([10, 20, 30]) + rng.integers(-8, 9, (20, 3))
    spread = scratch.more_diverse(wide, tight_b, full, permutations=500)
    assert spread["p_value"] < 0.01 and spread["spread_a"] > 3 * spread["spread_b"]
    by_hand = np.abs(wide - wide.mean(0)).sum(1).mean() / 120
    assert spread["spread_a"] == pytest.approx(by_hand)
