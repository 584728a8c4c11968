"""Sanity-check ablations: shuffle within layers, reinitialize, invert scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import criteria, masks, sanity


def _params(seed):
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
    return {
        "conv": {"kernel": f(3, 3, 1, 4), "bias": f(4)},
        "fc": {"kernel": f(16, 3), "bias": f(3)},
    }


PARAMS = _params(0)


def _kept_counts(mask):
    return [int(np.asarray(m).sum()) for m in jax.tree.leaves(mask)]


def test_shuffle_keeps_per_layer_counts():
    mask = masks.mask_by_topk(criteria.magnitude()(PARAMS), 0.7)
    mask["conv"]["bias"] = jnp.array([True, False, True, False])  # non-prunable: left alone
    shuffle = jax.jit(lambda m, k: sanity.shuffle_mask(m, key=k))
    a = shuffle(mask, jax.random.key(0))
    assert _kept_counts(a) == _kept_counts(mask)
    np.testing.assert_array_equal(a["conv"]["bias"], mask["conv"]["bias"])
    assert not all(
        bool(jnp.all(x == y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(mask), strict=True)
    )
    jax.tree.map(np.testing.assert_array_equal, a, shuffle(mask, jax.random.key(0)))
    many = jax.vmap(shuffle, in_axes=(None, 0))(mask, jax.random.split(jax.random.key(1), 4))
    assert [int(x) for x in many["fc"]["kernel"].sum(axis=(1, 2))] == [
        int(mask["fc"]["kernel"].sum())
    ] * 4


def test_reinitialize_keeps_mask_and_fresh_values():
    mask = masks.mask_by_topk(criteria.magnitude()(PARAMS), 0.5)
    fresh = _params(1)
    out = sanity.reinitialize(fresh, mask)
    for o, f, m in zip(
        jax.tree.leaves(out), jax.tree.leaves(fresh), jax.tree.leaves(mask), strict=True
    ):
        np.testing.assert_array_equal(o, jnp.where(m, f, 0.0))
    with pytest.raises(ValueError, match="mask tree does not match"):
        sanity.reinitialize({"fc": fresh["fc"]}, mask)
    with pytest.raises(ValueError, match="needs key="):
        sanity.shuffle_mask(mask, key=None)


def test_inverted_scores_prune_the_highest():
    scores = criteria.magnitude()(PARAMS)
    inv = sanity.invert_scores(criteria.magnitude())(PARAMS)
    mask = masks.mask_by_topk(inv, 0.25)
    paths = masks.prunable_paths(PARAMS)
    flat = lambda t: np.concatenate([np.ravel(t[a][b]) for a, b in paths])
    s, m = flat(scores), flat(mask)
    assert (~m).sum() == round(0.25 * s.size)
    assert s[~m].min() > s[m].max()  # the largest magnitudes went
