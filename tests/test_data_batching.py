"""Batching: epoch permutations, eval coverage, class-balanced picks."""

from __future__ import annotations

import functools
import itertools

import jax
import numpy as np
import pytest

from jaxprune.data import batching

_jit_epoch_batches = jax.jit(
    batching.epoch_batches, static_argnums=(1, 2), static_argnames="drop_last"
)


# Few distinct N on purpose: each new N compiles a permutation (~1 s on a busy 2-core machine).
@pytest.mark.parametrize("n", [1, 10, 37])
def test_epoch_batches_cover(n):
    for bs, seed in itertools.product([1, 3, 10, 37, 50], [0, 1]):
        key = jax.random.key(seed)
        full = np.asarray(batching.epoch_batches(key, n, bs, drop_last=False))
        assert full.shape == (-(-n // bs), bs) and full.dtype == np.int32
        assert set(full.ravel()) == set(range(n))  # every example at least once
        assert len(np.unique(full.ravel()[:n])) == n  # the first N entries are a permutation
        if bs <= n:
            dropped = np.asarray(batching.epoch_batches(key, n, bs))
            assert dropped.shape == (n // bs, bs)
            assert len(np.unique(dropped)) == dropped.size  # no repeats
            np.testing.assert_array_equal(dropped.ravel(), full.ravel()[: dropped.size])


def test_epoch_batches_deterministic_and_jittable():
    key = jax.random.key(0)
    a = batching.epoch_batches(key, 100, 8)
    np.testing.assert_array_equal(a, batching.epoch_batches(key, 100, 8))
    assert not np.array_equal(a, batching.epoch_batches(jax.random.key(1), 100, 8))
    np.testing.assert_array_equal(_jit_epoch_batches(key, 100, 8), a)
    np.testing.assert_array_equal(_jit_epoch_batches(key, 100, 8, drop_last=False),
                                  batching.epoch_batches(key, 100, 8, drop_last=False))
    per_key = jax.vmap(functools.partial(batching.epoch_batches, num_examples=100, batch_size=10))
    keys = jax.random.split(key, 3)
    np.testing.assert_array_equal(per_key(keys)[2], batching.epoch_batches(keys[2], 100, 10))


def test_epoch_batches_errors():
    with pytest.raises(ValueError, match="leaves no full batch.*drop_last=False"):
        batching.epoch_batches(jax.random.key(0), 10, 32)
    with pytest.raises(ValueError, match="must both be positive"):
        batching.epoch_batches(jax.random.key(0), 10, 0)


@pytest.mark.parametrize("n, bs", [(10, 3), (9, 3), (1, 5), (1000, 1000)])
def test_eval_batches_cover_once(n, bs):
    batches = batching.eval_batches(n, bs)
    assert len(batches) == -(-n // bs)
    for idx, valid in batches:
        assert idx.shape == valid.shape == (bs,) and idx.dtype == np.int32 and valid.dtype == bool
        assert idx.min() >= 0 and idx.max() < n
    taken = np.concatenate([idx[valid] for idx, valid in batches])
    np.testing.assert_array_equal(taken, np.arange(n))  # every example once, in order
    assert sum(int(v.sum()) for _, v in batches) == n


def test_class_balanced_indices():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    key = jax.random.key(0)
    idx = batching.class_balanced_indices(key, labels, 10)
    assert idx.shape == (100,) and np.all(np.diff(idx) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), [10] * 10)
    np.testing.assert_array_equal(idx, batching.class_balanced_indices(key, labels, 10))
    assert not np.array_equal(idx, batching.class_balanced_indices(jax.random.key(1), labels, 10))
    # Within a class, the pick is random rather than the first examples of that class.
    assert not np.array_equal(idx[labels[idx] == 3], np.flatnonzero(labels == 3)[:10])


def test_class_balanced_indices_errors():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 9)
    with pytest.raises(ValueError, match=r"have fewer \(class: count\): \{1: 2\}.*at most 2"):
        batching.class_balanced_indices(jax.random.key(0), labels, 3)
    with pytest.raises(ValueError, match=r"\{3: 0\}"):
        batching.class_balanced_indices(jax.random.key(0), labels, 2, num_classes=4)
    idx = batching.class_balanced_indices(jax.random.key(0), labels, 2, num_classes=3)
    assert idx.shape == (6,)
    with pytest.raises(ValueError, match="1-D"):
        batching.class_balanced_indices(jax.random.key(0), labels[None], 2)
