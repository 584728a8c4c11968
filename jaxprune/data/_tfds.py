"""TensorFlow Datasets as a fallback source, returning the same arrays as the local readers.

TFDS is imported lazily, inside functions, so the rest of jaxprune never needs TensorFlow.
Preparing a dataset (writing its TFRecords) needs ``tensorflow`` (``pip install 'jaxprune[tfds]'``).

TFDS stores examples shuffled: at preparation time it sorts them by ``md5(split + str(key))``
(``tensorflow_datasets/core/hashing.py``; TFDS bumps a dataset's major version if this ever
changes). ``load_tfds(..., official_order=True)`` undoes that so the arrays match the official
files example for example: for CIFAR through the ``id`` feature (``"train_00042"``), for
(Fashion-)MNIST, whose key is the example's index in the official file, by recomputing the hash.

TFDS quirk: preparing from a ``manual_dir`` extracts to ``<download_dir>/extracted/GZIP.<name>``
and reuses whatever file is already there. MNIST and Fashion-MNIST have the same file names, so
with a shared download dir the second one prepared silently holds the first one's data.
``load_tfds`` therefore prepares from a ``manual_dir`` with a fresh temporary download dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jaxprune.data._errors import DataFormatError, DatasetNotFoundError
from jaxprune.data._idx import IDX_FILES

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
              "cifar100": "cifar100"}

# The files TFDS looks for in a manual_dir (the basenames of its download URLs).
TFDS_MANUAL_FILES = {
    "mnist": IDX_FILES["train"] + IDX_FILES["test"],
    "fashion_mnist": IDX_FILES["train"] + IDX_FILES["test"],
    "cifar10": ("cifar-10-binary.tar.gz",),
    "cifar100": ("cifar-100-binary.tar.gz",),
}

# (host, port) each TFDS builder downloads from; probed first, as offline TFDS retries for minutes.
DOWNLOAD_HOSTS = {
    "mnist": ("storage.googleapis.com", 443),
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),  # http only
    "cifar10": ("www.cs.toronto.edu", 443),
    "cifar100": ("www.cs.toronto.edu", 443),
}

INSTALL_HINT = "pip install 'jaxprune[tfds]'  (tensorflow-datasets + tensorflow-cpu)"


def _import_tfds() -> Any:
    """``tensorflow_datasets``, or ``ImportError`` saying how to install it."""
    try:
        import tensorflow_datasets as tfds
    except Exception as e:  # a broken TF install fails with more than ImportError
        raise ImportError(
            f"tensorflow_datasets is not usable ({type(e).__name__}: {_short(e)}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return tfds


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """absl (TFDS's logger) at ERROR level inside the block."""
    from absl import logging as absl_logging

    old = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(old)


def _short(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception message, cut to ``limit`` characters."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` s (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo itself has no timeout
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def tfds_shuffled_order(split: str, num_examples: int) -> np.ndarray:
    """Where TFDS puts examples keyed ``0..num_examples-1``: sorted by ``md5(split + str(key))``.

    Args:
      split: the TFDS split name used as hash salt, ``"train"`` or ``"test"``.
      num_examples: examples in the split.

    Returns:
      int64 ``(num_examples,)``: ``order[j]`` is the key (official index) of the ``j``-th example
      TFDS stores, so ``official[order] = stored`` restores the official order.
    """
    salt = hashlib.md5(split.encode())
    hashes = []
    for key in range(num_examples):
        h = salt.copy()
        h.update(str(key).encode())
        hashes.append(int(h.hexdigest(), 16))
    return np.array(sorted(range(num_examples), key=hashes.__getitem__), dtype=np.int64)


def _official_order(name: str, split: str, data: dict[str, np.ndarray]) -> np.ndarray:
    """For each stored example, its index in the official files (see module docstring)."""
    n = len(data["label"])
    if "id" in data:  # CIFAR: id = b"train_00042"
        order = np.array([int(bytes(i).rsplit(b"_", 1)[1]) for i in data["id"]], dtype=np.int64)
    else:
        order = tfds_shuffled_order(split, n)
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise DataFormatError(
            f"TFDS {name!r} {split}: could not recover the official order; "
            "pass official_order=False to get TFDS's stored order."
        )
    return order


def load_tfds(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = False,
    official_order: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset through TensorFlow Datasets, preparing it first if asked to.

    If TFDS has not prepared ``name`` in ``data_dir`` yet, it is prepared from ``manual_dir``
    (the official files, e.g. the four MNIST ``.gz`` files; TFDS checks their sha256) when one
    is given, downloaded when ``download=True``, and otherwise ``DatasetNotFoundError`` is raised.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.
      split: ``"train"`` or ``"test"``.
      data_dir: TFDS data directory; ``None`` uses ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.
      manual_dir: folder with the official files to prepare from, without network.
      download: let TFDS download (network) and prepare the dataset if it is not prepared.
      official_order: reorder examples to the order of the official files (default), so the
        arrays equal those of the local readers; ``False`` keeps TFDS's shuffled order.

    Returns:
      ``(images, labels)``: float32 ``(N, H, W, C)`` in [0, 1] and int32 ``(N,)``.

    Raises:
      ImportError: tensorflow_datasets is not installed (says how to install it).
      DatasetNotFoundError: not prepared and not allowed to prepare, or preparation failed.
      DataFormatError: the prepared data could not be read.

    Example:
      >>> x, y = load_tfds("mnist", "test", data_dir="/tmp/tfds", manual_dir="data/mnist")
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"no TFDS source for {name!r}; TFDS serves: {', '.join(TFDS_NAMES)}")
    tfds = _import_tfds()
    try:
        tfds_dir = None if data_dir is None else str(data_dir)
        with _quiet_absl():  # "Variant folder ... has no dataset_info.json": we say it better
            builder = tfds.builder(TFDS_NAMES[name], data_dir=tfds_dir)
            prepared = builder.is_prepared()
    except Exception as e:
        raise DatasetNotFoundError(
            f"TFDS could not open {name!r} in data_dir={data_dir}: {type(e).__name__}: {_short(e)}"
        ) from None
    if not prepared:
        where = builder.data_dir
        if manual_dir is None and not download:
            raise DatasetNotFoundError(
                f"TFDS has not prepared {name!r} in {where}. Pass download=True to let TFDS "
                "download and prepare it (needs network), or prepare it offline with "
                f"load_tfds({name!r}, {split!r}, manual_dir=FOLDER) from a FOLDER holding "
                f"{', '.join(TFDS_MANUAL_FILES[name])}."
            )
        files = TFDS_MANUAL_FILES[name]
        missing = files if manual_dir is None else [
            f for f in files if not (Path(manual_dir) / f).is_file()
        ]
        if missing and not download:  # TFDS would fetch these from the network
            raise DatasetNotFoundError(
                f"manual_dir {manual_dir} lacks {', '.join(missing)}, which TFDS needs to "
                f"prepare {name!r} offline; add them or pass download=True."
            )
        host, port = DOWNLOAD_HOSTS[name]
        if missing and not _reachable(host, port):
            raise DatasetNotFoundError(
                f"TFDS has not prepared {name!r} in {where}, and download=True cannot reach "
                f"{host}:{port} (no network?). Put the official files in place instead."
            )
        config = tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir), try_download_gcs=False
        )
        try:
            if manual_dir is None:
                builder.download_and_prepare(download_config=config)
            else:
                # TFDS extracts manual files to <download_dir>/extracted/GZIP.<file name> and
                # reuses any file already there: MNIST and Fashion-MNIST share file names, so a
                # shared download dir silently turns Fashion-MNIST into MNIST. Use a fresh one.
                with tempfile.TemporaryDirectory(prefix="jaxprune-tfds-") as tmp:
                    builder.download_and_prepare(download_dir=tmp, download_config=config)
        except Exception as e:
            raise DatasetNotFoundError(
                f"TFDS could not prepare {name!r} in {where}: {type(e).__name__}: {_short(e)}"
            ) from None
    try:
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    except Exception as e:
        raise DataFormatError(
            f"TFDS could not read {name!r} {split} from {builder.data_dir}: "
            f"{type(e).__name__}: {_short(e)}. Delete that folder to have it prepared again."
        ) from None
    images, labels = data["image"], data["label"]  # uint8 (N, H, W, C), int64 (N,)
    if official_order and not builder.info.disable_shuffling:
        order = _official_order(name, split, data)
        images, labels = np.empty_like(images), np.empty_like(labels)
        images[order], labels[order] = data["image"], data["label"]
    x = images.astype(np.float32)
    x /= np.float32(255)
    return x, labels.astype(np.int32)
