"""Iterative pruning: schedules, exact final counts, no revival, one trace, an eager reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import criteria, masks, schedules


def _mlp(seed, sizes=(4, 6, 5, 3)):
    rng = np.random.default_rng(seed)
    return {
        f"fc{i}": {
            "kernel": jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a), jnp.float32),
            "bias": jnp.asarray(0.1 * rng.standard_normal((b,)), jnp.float32),
        }
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def _apply(params, x):
    n = len(params)
    for i in range(n):
        x = x @ params[f"fc{i}"]["kernel"] + params[f"fc{i}"]["bias"][None, :]
        x = jax.nn.relu(x) if i < n - 1 else x
    return x


PARAMS = _mlp(0)
N = 4 * 6 + 6 * 5 + 5 * 3  # prunable weights
rng = np.random.default_rng(1)
BATCH = (jnp.asarray(rng.standard_normal((8, 4)), jnp.float32), jnp.asarray(rng.integers(0, 3, 8)))
LOSS = criteria.softmax_xent_with_temperature(_apply, 1.0)


def _num_pruned(mask):
    return masks.summary(PARAMS, mask).num_pruned


def test_schedule_values():
    exp = schedules.exponential_schedule(0.99, 4)
    np.testing.assert_allclose(1 - exp, 0.01 ** (np.arange(1, 5) / 4))
    assert exp[-1] == 0.99
    alive = np.concatenate([[1.0], 1 - exp])
    np.testing.assert_allclose(alive[1:] / alive[:-1], alive[1])  # same fraction kept each round
    lin = schedules.linear_schedule(0.6, 3)
    np.testing.assert_allclose(lin, [0.2, 0.4, 0.6])
    assert schedules.exponential_schedule(1.0, 3).tolist() == [1.0, 1.0, 1.0]
    counts = schedules.removal_counts(schedules.exponential_schedule(0.9, 100), 69)
    assert counts[-1] == round(0.9 * 69) and np.all(np.diff(counts) >= 0)
    assert schedules.names() == ["exponential", "linear"]


def _reference_iterative(score_fn, params, sparsity, rounds, schedule, batch):
    """Plain eager loop with NumPy top-k: dead first out, then score descending, then index."""
    paths = masks.prunable_paths(params)
    mask = masks.ones_like(params)
    for c in schedules.removal_counts(schedules.get(schedule)(sparsity, rounds), N):
        scores = score_fn(masks.apply_mask(params, mask), batch=batch)
        flat = lambda t: np.concatenate([np.ravel(np.asarray(t[p[0]][p[1]])) for p in paths])
        s, alive = flat(scores).astype(np.float64), flat(mask)
        order = np.lexsort((np.arange(s.size), -s, ~alive))
        keep = np.zeros(s.size, bool)
        keep[order[: N - c]] = True
        mask, start = jax.tree.map(lambda m: m, mask), 0
        for p in paths:
            size = mask[p[0]][p[1]].size
            mask[p[0]][p[1]] = jnp.asarray(
                keep[start : start + size].reshape(mask[p[0]][p[1]].shape)
            )
            start += size
    return mask


@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_iterative_snip_matches_eager_reference(schedule):
    snip = criteria.snip(LOSS)
    ours = schedules.prune_iterative_snip(
        PARAMS, 0.8, loss_fn=LOSS, batch=BATCH, rounds=4, schedule=schedule
    )
    ref = _reference_iterative(snip, PARAMS, 0.8, 4, schedule, BATCH)
    jax.tree.map(np.testing.assert_array_equal, ours, ref)
    assert _num_pruned(ours) == round(0.8 * N)


def test_pruned_weights_are_never_revived():
    # A perverse criterion scoring zeros (already pruned weights) highest.
    perverse = lambda p, *, batch=None, key=None: jax.tree.map(
        lambda w: 1.0 / (jnp.abs(w) + 1e-3), p
    )
    one_round = masks.mask_by_topk(perverse(PARAMS), 0.2)
    final = schedules.prune_iteratively(perverse, PARAMS, 0.7, rounds=5, schedule="linear")
    assert _num_pruned(final) == round(0.7 * N)
    # round 1 removed the same weights as a one-shot 0.2; they are still removed at the end
    for a, b in zip(jax.tree.leaves(one_round), jax.tree.leaves(final), strict=True):
        assert not bool(jnp.any(~a & b))


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
def test_one_trace_for_100_rounds_and_every_sparsity_and_exact_counts():
    traces = []
    base = criteria.magnitude()

    def counting(p, *, batch=None, key=None):
        traces.append(1)  # runs at trace time only
        return base(p)

    for sparsity in (0.0, 0.5, 0.99, 1.0):
        mask = schedules.prune_iteratively(counting, PARAMS, sparsity, rounds=100)
        assert _num_pruned(mask) == round(sparsity * N)
    assert len(traces) == 1  # the keep counts are arguments of one compiled loop
    schedules.prune_iteratively(counting, PARAMS, 0.3, rounds=50)
    assert len(traces) == 2  # the number of rounds is a shape: a new program


def test_eager_prune_synflow_traces_its_loop_once_for_every_call_and_sparsity():
    calls = []

    def apply_fn(p, x):
        calls.append(1)  # runs at trace time only
        return _apply(p, x)

    first = schedules.prune_synflow(PARAMS, 0.9, apply_fn=apply_fn, input_shape=(4,), rounds=5)
    traced = len(calls)
    again = schedules.prune_synflow(PARAMS, 0.9, apply_fn=apply_fn, input_shape=(4,), rounds=5)
    other = schedules.prune_synflow(PARAMS, 0.5, apply_fn=apply_fn, input_shape=(4,), rounds=5)
    assert len(calls) == traced  # no new trace, hence no new compilation
    jax.tree.map(np.testing.assert_array_equal, first, again)
    assert _num_pruned(other) == round(0.5 * N)


def test_prune_by_keep_counts_is_prune_iteratively_and_takes_traced_counts():
    mag = criteria.magnitude()
    n_keep = N - schedules.removal_counts(schedules.linear_schedule(0.8, 4), N)  # (4,)
    ref = schedules.prune_iteratively(mag, PARAMS, 0.8, rounds=4, schedule="linear")
    got = jax.jit(lambda c: schedules.prune_by_keep_counts(mag, PARAMS, c))(n_keep)
    jax.tree.map(np.testing.assert_array_equal, got, ref)
    with pytest.raises(ValueError, match=r"keep_counts must be a \(rounds,\) array"):
        schedules.prune_by_keep_counts(mag, PARAMS, 3)


def test_prune_synflow_and_keyed_rounds():
    mask = schedules.prune_synflow(PARAMS, 0.9, apply_fn=_apply, input_shape=(4,), rounds=20)
    assert _num_pruned(mask) == round(0.9 * N)
    one = schedules.prune_synflow(PARAMS, 0.9, apply_fn=_apply, input_shape=(4,), rounds=1)
    oneshot = masks.mask_by_topk(criteria.synflow(_apply, (4,))(PARAMS), 0.9)
    jax.tree.map(np.testing.assert_array_equal, one, oneshot)

    # several inits at once (what a multi-seed engine does): float64 SynFlow inside vmap + loop
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), PARAMS, _mlp(1))
    both = jax.vmap(
        lambda p: schedules.prune_synflow(p, 0.9, apply_fn=_apply, input_shape=(4,), rounds=3)
    )(stacked)
    for i, p in enumerate([PARAMS, _mlp(1)]):
        alone = schedules.prune_synflow(p, 0.9, apply_fn=_apply, input_shape=(4,), rounds=3)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b), both, alone)

    rand = criteria.random()
    run = jax.jit(
        jax.vmap(lambda k: schedules.prune_iteratively(rand, PARAMS, 0.5, rounds=3, key=k))
    )
    keys = jax.random.split(jax.random.key(0), 2)
    a, b = run(keys), run(keys)
    jax.tree.map(np.testing.assert_array_equal, a, b)  # deterministic given keys
    k0 = a["fc1"]["kernel"]
    assert not bool(jnp.all(k0[0] == k0[1]))  # different keys, different masks
    for i in range(2):
        assert _num_pruned(jax.tree.map(lambda m, i=i: m[i], a)) == round(0.5 * N)


def test_schedule_misuse():
    mag = criteria.magnitude()
    with pytest.raises(ValueError, match="unknown schedule 'cosine'; valid names"):
        schedules.prune_iteratively(mag, PARAMS, 0.5, rounds=2, schedule="cosine")
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        schedules.prune_iteratively(mag, PARAMS, 0.5, rounds=0)
    with pytest.raises(ValueError, match="sparsity must be in"):
        schedules.prune_iteratively(mag, PARAMS, 2.0, rounds=2)
    with pytest.raises(ValueError, match="mask tree does not match"):
        schedules.prune_iteratively(mag, PARAMS, 0.5, rounds=2, mask={"fc0": PARAMS["fc0"]})
    with pytest.raises(ValueError, match="'snip' criterion needs batch="):
        schedules.prune_iteratively(criteria.snip(LOSS), PARAMS, 0.5, rounds=2)


def _nan_once_pruned(params, *, batch=None, key=None):
    """|theta| while a leaf is intact; NaN for a whole leaf once any of its weights is 0."""
    return jax.tree.map(lambda p: jnp.abs(p) * jnp.where(jnp.all(p != 0), 1.0, jnp.nan), params)


def test_a_nan_score_in_a_later_round_raises_naming_the_layer():
    # round 1 scores are finite; round 2 sees zeros in every kernel and scores NaN.
    with pytest.raises(ValueError, match="non-finite scores .* layer 'fc0/kernel'"):
        schedules.prune_iteratively(_nan_once_pruned, PARAMS, 0.5, rounds=3)
    counts = schedules.keep_counts(PARAMS, 0.5, rounds=3)
    mask, nonfinite = jax.jit(lambda p: schedules.run_rounds(_nan_once_pruned, p, counts))(PARAMS)
    assert nonfinite.tolist() == [True, True, True]  # under jit: flags, not an exception
    one_round = schedules.prune_iteratively(_nan_once_pruned, PARAMS, 0.5, rounds=1)
    assert _num_pruned(one_round) == round(0.5 * N)


def test_keep_counts_is_the_one_conversion():
    """Every budget kind from one function, matching what the mask builders remove."""
    from jaxprune import allocation

    g = schedules.keep_counts(PARAMS, 0.37)
    assert g.shape == () and int(g) == N - masks.num_to_remove(N, 0.37)
    assert _num_pruned(masks.mask_by_topk(jax.tree.map(jnp.abs, PARAMS), 0.37)) == N - int(g)
    layer = schedules.keep_counts(PARAMS, 0.37, "erk")
    removed = allocation.allocate_erk(PARAMS, 0.37)
    assert layer.tolist() == [n - removed[p] for p, n in
                              [(("fc0", "kernel"), 24), (("fc1", "kernel"), 30),
                               (("fc2", "kernel"), 15)]]
    rounds = schedules.keep_counts(PARAMS, 0.37, rounds=4)
    want = N - schedules.removal_counts(schedules.exponential_schedule(0.37, 4), N)
    assert rounds.tolist() == want.tolist() and rounds[-1] == g
    with pytest.raises(ValueError, match="needs rounds=1"):
        schedules.keep_counts(PARAMS, 0.37, "erk", rounds=4)
