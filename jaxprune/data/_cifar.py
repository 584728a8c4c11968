"""A reader for the official "python version" pickles of CIFAR-10 and CIFAR-100.

Each file is a pickle (``encoding="bytes"``) of a dict with ``b"data"``, uint8 ``[N, 3072]`` (the
R, G and B planes of a 32x32 image, row-major), and the labels under ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100). Only the few globals these files need are unpickled (numpy arrays
and dtypes), so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxprune.data._errors import DataFormatError


class CifarLayout(NamedTuple):
    """Where a CIFAR variant keeps its files and which key holds its labels."""

    folder: str  # the folder inside the official tarball
    files: dict[str, tuple[str, ...]]  # split -> files, in order
    label_key: bytes


#: name -> where its official pickle batches are and which key holds the labels.
CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        b"labels",
    ),
    "cifar100": CifarLayout(
        "cifar-100-python", {"train": ("train",), "test": ("test",)}, b"fine_labels"
    ),
}

# The only globals an official CIFAR pickle refers to (numpy 1 and numpy 2 spellings).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(*_ALLOWED[module, name])


def read_cifar_batch(
    path: str | os.PathLike, label_key: bytes = b"labels"
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR pickle file, checking its layout.

    Args:
      path: e.g. ``".../cifar-10-batches-py/data_batch_1"``.
      label_key: ``b"labels"`` for CIFAR-10, ``b"fine_labels"`` for CIFAR-100.

    Returns:
      ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` (NHWC) and int64 ``(N,)``.

    Raises:
      DataFormatError: naming the file, when it is not a valid CIFAR pickle.
    """
    path = Path(path)
    try:
        batch = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError) as e:
        raise DataFormatError(
            f"{path} is not a readable CIFAR python pickle ({type(e).__name__}: {e}); it is "
            "probably truncated or corrupted. Extract the official cifar-*-python.tar.gz again."
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFormatError(
            f"{path} should hold a dict with keys b'data' and {label_key!r}, found {keys}"
        )
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise DataFormatError(f"{path}: b'data' should be uint8 [N, 3072], found {desc}")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataFormatError(
            f"{path}: {len(data)} images but {label_key!r} has shape {labels.shape}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3072) -> (N, 32, 32, 3)
    return images, labels


def load_cifar_folder(
    folder: str | os.PathLike, name: str, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of CIFAR-10/100 from its official folder.

    Args:
      folder: the ``cifar-10-batches-py`` or ``cifar-100-python`` directory.
      name: ``"cifar10"`` or ``"cifar100"``.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images, labels)``: float32 ``(N, 32, 32, 3)`` in [0, 1] and int32 ``(N,)``, in file order.
    """
    layout = CIFAR_LAYOUTS[name]
    parts = [read_cifar_batch(Path(folder) / f, layout.label_key) for f in layout.files[split]]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)  # (N, 32, 32, 3)
    x /= np.float32(255)
    return x, np.concatenate([p[1] for p in parts]).astype(np.int32)
