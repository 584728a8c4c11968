"""Datasets that need no files: MNIST-1D (generated) and scikit-learn's digits (packaged)."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "JAXPRUNE_CACHE_DIR"


def cache_dir() -> Path:
    """Where generated datasets are kept between processes: ``$JAXPRUNE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/jaxprune``, else ``~/.cache/jaxprune``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jaxprune"


def cached_arrays(name: str, settings: Any, make: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
    """``make()``'s arrays, kept in :func:`cache_dir` between processes.

    The file is ``<name>-<hash of repr(settings)>.npz``: give every input that changes the
    arrays (versions included) in ``settings``. It is written under a temporary name and then
    renamed, so a reader never sees half a file; an unreadable file is made again and replaced,
    an unwritable folder only means making the arrays every time.
    """
    key = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{key}.npz"
    try:
        with open(path, "rb") as fh, np.load(fh) as f:  # closed even when np.load fails
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, or cut off
        pass
    arrays = make()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **arrays)
        os.replace(tmp.name, path)
    except OSError:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    return arrays


@functools.lru_cache(maxsize=1)
def _mnist1d_raw() -> dict:
    """MNIST-1D's arrays as ``make_dataset`` generates them (about 3 s), kept by
    :func:`cached_arrays` under the mnist1d version and its settings."""
    from importlib.metadata import version

    import mnist1d.data  # local: importing mnist1d pulls in scipy

    args = mnist1d.data.get_dataset_args()
    settings = (version("mnist1d"), sorted(vars(args).items()))

    def make() -> dict[str, np.ndarray]:
        # make_dataset, not get_dataset: get_dataset(download=True) reaches for the network.
        raw = mnist1d.data.make_dataset(args)
        return {k: raw[k] for k in ("x", "y", "x_test", "y_test")}

    return cached_arrays("mnist1d", settings, make)


def load_mnist1d(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D with its official split, generated (about 3 s the first time, then read from
    :func:`cache_dir`).

    Args:
      split: ``"train"`` (4000 examples) or ``"test"`` (1000 examples).

    Returns:
      ``(signals, labels)``: float32 ``(N, 40, 1)``, the signal exactly as generated (not rescaled,
      roughly in [-6, 5]), and int32 ``(N,)`` in [0, 10).
    """
    raw = _mnist1d_raw()
    x, y = (raw["x"], raw["y"]) if split == "train" else (raw["x_test"], raw["y_test"])
    return x.astype(np.float32)[..., None], y.astype(np.int32)  # (N, 40, 1), (N,); fresh copies


def digits_split_mask(labels: np.ndarray) -> np.ndarray:
    """The fixed, stratified, RNG-free digits split: every 5th example *of each class* is test.

    Within each class, examples are numbered in file order (0, 1, 2, ...); number ``r`` goes to
    "test" iff ``r % 5 == 4``.

    Args:
      labels: int ``(N,)`` class labels in file order.

    Returns:
      bool ``(N,)``, True for test examples.
    """
    labels = np.asarray(labels)
    rank = np.zeros(labels.shape, np.int64)  # position of each example within its class
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return rank % 5 == 4


def load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 handwritten digits with a fixed, stratified, RNG-free split.

    Within each class, every 5th example in file order (class-rank % 5 == 4) goes to "test":
    1442 train and 355 test examples, with test class counts 35, 36, 35, 36, 36, 36, 36, 35, 34, 36
    (classes 0..9).

    Args:
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images, labels)``: float32 ``(N, 8, 8, 1)`` in [0, 1] (pixel counts 0..16 divided by 16)
      and int32 ``(N,)`` in [0, 10).
    """
    from sklearn.datasets import load_digits as sk_load_digits  # local: sklearn is slow to import

    bunch = sk_load_digits()
    test = digits_split_mask(bunch.target)
    keep = test if split == "test" else ~test
    images = (bunch.images[keep] / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1)
    return images, bunch.target[keep].astype(np.int32)
