"""Pure preprocessing: per-channel statistics, normalization, CIFAR-style augmentation.

Images are NHWC float arrays. ``random_crop_flip`` is the standard CIFAR augmentation (He et al.
2016): zero-pad 4 pixels on each side, take a random crop of the original size, flip
horizontally with probability 1/2, independently per example.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Per-channel mean and (population) std of the training split, images scaled to [0, 1].
# CIFAR values are the per-pixel statistics over all 50k training images; the often-copied
# (0.2023, 0.1994, 0.2010) "std" is a mean of per-image stds and is not used here.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

STATS = {
    "mnist": (MNIST_MEAN, MNIST_STD),
    "fashion_mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
}


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std over all axes but the last (NumPy, float64 sums).

    Accumulates in float64 over chunks of ~1M values, so a whole training split (CIFAR-10:
    50000x32x32x3) needs no float64 copy.

    Args:
      x: ``(..., C)`` array, e.g. a training split ``(N, H, W, C)``.

    Returns:
      ``(mean, std)``, each float32 ``(C,)``.

    Example:
      >>> mean, std = channel_stats(train_images)   # CIFAR-10: ~(0.491, 0.482, 0.447), ...
    """
    x = np.asarray(x)
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"channel_stats needs a non-empty (..., C) array, got shape {x.shape}")
    flat = x.reshape(-1, x.shape[-1])  # (M, C)
    shift = flat[0].astype(np.float64)  # subtracting any sample keeps sums well-conditioned
    total, total_sq = np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
    step = max(1, 2**20 // flat.shape[1])
    for i in range(0, len(flat), step):
        d = flat[i : i + step].astype(np.float64) - shift  # (step, C)
        total += d.sum(axis=0)
        total_sq += np.square(d).sum(axis=0)
    mean_d = total / len(flat)
    var = np.maximum(total_sq / len(flat) - np.square(mean_d), 0.0)
    return (mean_d + shift).astype(np.float32), np.sqrt(var).astype(np.float32)


def normalize(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """``(x - mean) / std`` per channel (the last axis).

    Args:
      x: ``(..., C)`` images.
      mean: ``(C,)``, e.g. ``CIFAR10_MEAN`` or from ``channel_stats``.
      std: ``(C,)``, positive.

    Returns:
      ``(..., C)``, in ``x``'s float dtype.
    """
    x = jnp.asarray(x)
    mean, std = jnp.asarray(mean, x.dtype), jnp.asarray(std, x.dtype)
    if mean.shape != (x.shape[-1],) or std.shape != (x.shape[-1],):
        raise ValueError(
            f"mean {mean.shape} and std {std.shape} must both be (C,) = ({x.shape[-1]},) for "
            f"images {x.shape}; compute them with channel_stats(train_images)"
        )
    bshape = (1,) * (x.ndim - 1) + (-1,)  # (1, ..., 1, C): explicit, no rank promotion
    return (x - mean.reshape(bshape)) / std.reshape(bshape)


def sample_crop_flip(
    key: jax.Array, num_examples: int, *, pad: int = 4, flip: bool = True
) -> tuple[jax.Array, jax.Array]:
    """Draw per-example crop offsets and flips for ``crop_flip``.

    Args:
      key: PRNG key.
      num_examples: N.
      pad: padding on each side; offsets are uniform in ``[0, 2 * pad]``.
      flip: if False, no example is flipped.

    Returns:
      ``(offsets, flips)``: int32 ``(N, 2)`` (row, column) into the padded image and bool ``(N,)``.
    """
    k_crop, k_flip = jax.random.split(key)
    offsets = jax.random.randint(k_crop, (num_examples, 2), 0, 2 * pad + 1, dtype=jnp.int32)
    flips = jax.random.bernoulli(k_flip, 0.5, (num_examples,))
    return offsets, flips & flip


def crop_flip(
    images: jax.Array, offsets: jax.Array, flips: jax.Array, *, pad: int = 4
) -> jax.Array:
    """Zero-pad, crop at the given offsets, and flip the chosen examples horizontally.

    Args:
      images: ``(N, H, W, C)``.
      offsets: int ``(N, 2)``, (row, column) of each crop's corner in the padded image, in
        ``[0, 2 * pad]``.
      flips: bool ``(N,)``, True flips that example left-right (after cropping).
      pad: zero padding on each side of H and W.

    Returns:
      ``(N, H, W, C)``, same dtype as ``images``.
    """
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # (N, H+2p, W+2p, C)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
    out = jax.vmap(crop)(padded, offsets)  # (N, H, W, C)
    return jnp.where(flips[:, None, None, None], out[:, :, ::-1, :], out)


def random_crop_flip(
    key: jax.Array, images: jax.Array, *, pad: int = 4, flip: bool = True
) -> jax.Array:
    """CIFAR augmentation: zero-pad ``pad`` px, random crop back to HxW, random horizontal flip.

    Each example gets its own offsets and flip (``sample_crop_flip``). Jittable, and vmappable
    over keys: ``jax.vmap(random_crop_flip, (0, None))(keys, images)``. Zero padding happens in
    whatever space ``images`` are in: apply it before ``normalize`` to pad with black, as
    torchvision's ``RandomCrop(32, padding=4)`` does.

    Args:
      key: PRNG key.
      images: ``(N, H, W, C)``.
      pad: padding on each side (4 for CIFAR).
      flip: also flip horizontally with probability 1/2.

    Returns:
      ``(N, H, W, C)`` augmented images, same dtype.

    Example:
      >>> x_aug = jax.jit(random_crop_flip)(jax.random.key(0), x_batch)
    """
    if jnp.ndim(images) != 4:
        raise ValueError(
            f"random_crop_flip expects NHWC images (N, H, W, C), got shape {jnp.shape(images)}; "
            "add a batch axis for one image (images[None])"
        )
    offsets, flips = sample_crop_flip(key, images.shape[0], pad=pad, flip=flip)
    return crop_flip(images, offsets, flips, pad=pad)
