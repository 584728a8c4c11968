"""Deterministic index batching: shuffled epochs, full-coverage evaluation, class-balanced picks.

Everything here returns indices into a split; gather the examples yourself
(``images[idx], labels[idx]``), so the data can stay in NumPy or on device as you like.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _check_sizes(num_examples: int, batch_size: int) -> None:
    if num_examples <= 0 or batch_size <= 0:
        raise ValueError(
            f"num_examples ({num_examples}) and batch_size ({batch_size}) must both be positive"
        )


def epoch_batches(
    key: jax.Array, num_examples: int, batch_size: int, *, drop_last: bool = True
) -> jax.Array:
    """One epoch's batches: a random permutation of ``range(num_examples)`` cut into rows.

    With ``drop_last=True`` the ``num_examples % batch_size`` examples left over are skipped this
    epoch (a different set each epoch). With ``drop_last=False`` the last batch is filled up by
    wrapping around to the start of the same permutation, so every example appears at least once
    and a few appear twice. Jittable with ``num_examples``, ``batch_size`` and ``drop_last``
    static; use a fresh key per epoch, e.g. ``jax.random.fold_in(key, epoch)``.

    Args:
      key: PRNG key.
      num_examples: N, the size of the split.
      batch_size: B.
      drop_last: drop the incomplete last batch (default) instead of filling it up.

    Returns:
      int32 ``(num_batches, batch_size)``: ``N // B`` rows if ``drop_last`` else ``ceil(N / B)``.

    Example:
      >>> for idx in epoch_batches(jax.random.key(epoch), len(y), 128):
      ...     state = train_step(state, x[idx], y[idx])
    """
    _check_sizes(num_examples, batch_size)
    num_batches = num_examples // batch_size if drop_last else -(-num_examples // batch_size)
    if num_batches == 0:
        raise ValueError(
            f"batch_size {batch_size} > num_examples {num_examples} leaves no full batch; "
            "use a smaller batch_size or drop_last=False"
        )
    perm = jax.random.permutation(key, num_examples).astype(jnp.int32)  # (N,)
    if num_batches * batch_size > num_examples:  # fill up by wrapping around the permutation
        perm = perm[np.arange(num_batches * batch_size) % num_examples]
    return perm[: num_batches * batch_size].reshape(num_batches, batch_size)  # (num_batches, B)


def eval_batches(num_examples: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batches that cover every example exactly once, in order, all of the same shape.

    The last batch is padded with index 0 and its padding is marked invalid, so a jitted eval
    step sees a single shape; weight per-example metrics by ``valid``.

    Args:
      num_examples: N.
      batch_size: B.

    Returns:
      A list of ``ceil(N / B)`` pairs ``(idx, valid)``: int32 ``(B,)`` indices and bool ``(B,)``.
      Stack them (``np.stack``) for a ``(num_batches, B)`` array to scan over.

    Example:
      >>> for idx, valid in eval_batches(len(y), 1000):
      ...     correct += np.sum((predict(x[idx]) == y[idx]) & valid)
    """
    _check_sizes(num_examples, batch_size)
    num_batches = -(-num_examples // batch_size)
    flat = np.arange(num_batches * batch_size)  # (num_batches * B,)
    valid = flat < num_examples
    idx = np.where(valid, flat, 0).astype(np.int32)
    return [
        (idx[i * batch_size : (i + 1) * batch_size], valid[i * batch_size : (i + 1) * batch_size])
        for i in range(num_batches)
    ]


def class_balanced_indices(
    key: jax.Array, labels: np.ndarray, per_class: int, *, num_classes: int | None = None
) -> np.ndarray:
    """Pick ``per_class`` random examples of every class, e.g. a SNIP/GraSP scoring batch.

    Deterministic given ``key``: one permutation of the whole split; each class takes its first
    ``per_class`` members in that permutation.

    Args:
      key: PRNG key.
      labels: int ``(N,)`` class labels.
      per_class: examples to take from each class.
      num_classes: if given, classes are ``0..num_classes-1`` and each must have enough examples
        (a class absent from ``labels`` is an error); else the classes present in ``labels``.

    Returns:
      int64 ``(num_classes * per_class,)`` indices into ``labels``, sorted ascending.

    Raises:
      ValueError: a class has fewer than ``per_class`` examples (lists the short classes).

    Example:
      >>> idx = class_balanced_indices(jax.random.key(0), y_train, 10)  # 100 indices for 10 classes
      >>> scores = snip_score(params, batch=(x_train[idx], y_train[idx]))
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if per_class <= 0:
        raise ValueError(f"per_class must be positive, got {per_class}")
    classes = np.arange(num_classes) if num_classes is not None else np.unique(labels)
    counts = {int(c): int(np.sum(labels == c)) for c in classes}
    short = {c: n for c, n in counts.items() if n < per_class}
    if short:
        raise ValueError(
            f"class_balanced_indices needs {per_class} examples per class, but these classes "
            f"have fewer (class: count): {short}. Lower per_class to at most "
            f"{min(counts.values())} or use a larger split."
        )
    perm = np.asarray(jax.random.permutation(key, len(labels)))  # (N,)
    by_class = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, random within
    sorted_labels = labels[by_class]
    starts = np.searchsorted(sorted_labels, classes)
    picks = [by_class[s : s + per_class] for s in starts]
    return np.sort(np.concatenate(picks)).astype(np.int64)
