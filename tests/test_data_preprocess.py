"""Preprocessing: channel statistics, normalization, and crop/flip augmentation vs NumPy loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.data import preprocess


@pytest.mark.parametrize("shape", [(50, 6, 5, 3), (40, 40, 1), (7, 2)])
def test_channel_stats_matches_numpy(shape):
    x = np.random.default_rng(0).uniform(0.2, 0.9, shape).astype(np.float32)
    mean, std = preprocess.channel_stats(x)
    axes = tuple(range(len(shape) - 1))
    assert mean.shape == std.shape == (shape[-1],) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axes), rtol=1e-6)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axes), rtol=1e-5)


def test_channel_stats_chunks_and_offsets():
    # More rows than one chunk, values far from zero: a naive E[x^2] - E[x]^2 would lose digits.
    x = (1000.0 + np.random.default_rng(1).normal(0, 0.01, (300_000, 4))).astype(np.float32)
    mean, std = preprocess.channel_stats(x)
    np.testing.assert_allclose(std, x.astype(np.float64).std(0), rtol=1e-4)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-7)


def test_channel_stats_rejects_flat_input():
    with pytest.raises(ValueError, match=r"non-empty \(..., C\)"):
        preprocess.channel_stats(np.zeros(5))


def test_normalize_standardizes_and_jits():
    x = np.random.default_rng(2).uniform(0, 1, (20, 4, 4, 3)).astype(np.float32)
    mean, std = preprocess.channel_stats(x)
    z = jax.jit(preprocess.normalize)(x, mean, std)
    assert z.shape == x.shape and z.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(z).mean((0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(z).std((0, 1, 2)), 1, atol=1e-4)
    z2 = preprocess.normalize(x, *preprocess.STATS["cifar10"])
    np.testing.assert_allclose(z2[..., 2], (x[..., 2] - 0.4465) / 0.2616, rtol=1e-5)


def test_normalize_shape_error():
    with pytest.raises(ValueError, match=r"must both be \(C,\) = \(3,\).*channel_stats"):
        preprocess.normalize(jnp.zeros((2, 4, 4, 3)), preprocess.MNIST_MEAN, preprocess.MNIST_STD)


def test_stats_constants_well_formed():
    for name, (mean, std) in preprocess.STATS.items():
        assert len(mean) == len(std) in (1, 3), name
        assert all(0 < m < 1 for m in mean) and all(0 < s < 1 for s in std)


def crop_flip_reference(images, offsets, flips, pad):
    """Plain NumPy loop: zero-pad, crop at (row, col), flip left-right."""
    n, h, w, c = images.shape
    out = np.empty_like(images)
    for i in range(n):
        padded = np.zeros((h + 2 * pad, w + 2 * pad, c), images.dtype)
        padded[pad : pad + h, pad : pad + w] = images[i]
        r, col = offsets[i]
        crop = padded[r : r + h, col : col + w]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return out


@pytest.mark.parametrize(
    "shape, pad", [((16, 32, 32, 3), 4), ((9, 6, 10, 1), 2), ((5, 8, 8, 2), 0)]
)
def test_random_crop_flip_matches_numpy_loop(shape, pad):
    images = np.random.default_rng(3).uniform(size=shape).astype(np.float32)
    key = jax.random.key(7)
    offsets, flips = preprocess.sample_crop_flip(key, shape[0], pad=pad)
    out = preprocess.random_crop_flip(key, images, pad=pad)
    ref = crop_flip_reference(images, np.asarray(offsets), np.asarray(flips), pad)
    np.testing.assert_array_equal(np.asarray(out), ref)
    np.testing.assert_array_equal(np.asarray(preprocess.crop_flip(images, offsets, flips, pad=pad)),
                                  ref)


def test_crop_flip_extreme_offsets():
    images = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    offsets = np.array([[0, 0], [4, 4]], np.int32)  # top-left and bottom-right corners, pad=2
    flips = np.array([False, True])
    out = np.asarray(preprocess.crop_flip(images, offsets, flips, pad=2))
    np.testing.assert_array_equal(out, crop_flip_reference(images, offsets, flips, 2))
    assert out[0, :2].sum() == 0 and out[0, :, :2].sum() == 0  # zero padding shows up


def test_random_crop_flip_properties():
    images = jnp.asarray(np.random.default_rng(4).uniform(size=(256, 8, 8, 3)), jnp.float32)
    key = jax.random.key(0)
    out = jax.jit(preprocess.random_crop_flip)(key, images)
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_array_equal(out, preprocess.random_crop_flip(key, images))  # jit == eager
    np.testing.assert_array_equal(out, preprocess.random_crop_flip(key, images))  # deterministic
    assert not np.array_equal(out, preprocess.random_crop_flip(jax.random.key(1), images))
    offsets, flips = preprocess.sample_crop_flip(key, 256)
    offsets = np.asarray(offsets)
    assert offsets.min() == 0 and offsets.max() == 8  # uniform over [0, 2 * pad]
    assert len({tuple(o) for o in offsets}) > 40  # per-example randomness
    assert 0.35 < np.mean(flips) < 0.65
    _, no_flips = preprocess.sample_crop_flip(key, 256, flip=False)
    assert not np.any(no_flips)
    same = preprocess.random_crop_flip(key, images, pad=0, flip=False)
    np.testing.assert_array_equal(same, images)


def test_random_crop_flip_vmaps_over_keys():
    images = jnp.asarray(np.random.default_rng(5).uniform(size=(4, 8, 8, 3)), jnp.float32)
    keys = jax.random.split(jax.random.key(3), 5)
    out = jax.vmap(preprocess.random_crop_flip, in_axes=(0, None))(keys, images)
    assert out.shape == (5, 4, 8, 8, 3)
    one = jax.jit(preprocess.random_crop_flip)
    for i in range(5):
        np.testing.assert_array_equal(out[i], one(keys[i], images))


def test_random_crop_flip_wants_a_batch():
    with pytest.raises(ValueError, match=r"NHWC.*images\[None\]"):
        preprocess.random_crop_flip(jax.random.key(0), jnp.zeros((32, 32, 3)))
