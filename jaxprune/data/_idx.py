"""A strict reader for the IDX files of MNIST and Fashion-MNIST.

IDX: a big-endian header (two zero bytes, a type code, the number of dimensions, then each
dimension as uint32) followed by the data. The official files are gzipped and hold uint8:
magic 2051 (``0x00000803``, 3 dims: N, rows, cols) for images and 2049 (``0x00000801``, 1 dim: N)
for labels.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from jaxprune.data._errors import DataFormatError

#: The magic numbers of the IDX headers of image and of label files (``read_idx(magic=...)``).
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_NDIM = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}

#: split -> (images file, labels file), as published.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_bytes(path: Path) -> bytes:
    """All bytes of ``path``, gunzipped if its name ends in ``.gz``; errors name the file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataFormatError(
            f"{path} is not a valid gzip file ({type(e).__name__}: {e}); it is probably truncated "
            "or corrupted. Download it again (compare its sha256 with the published one)."
        ) from None


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> np.ndarray:
    """Read one uint8 IDX file (gzipped if the name ends in ``.gz``), checking it strictly.

    Checks the magic number (2051 images / 2049 labels, or exactly ``magic`` if given), the
    number of dimensions, and that the data length equals the product of the dimensions.

    Args:
      path: the file, e.g. ``".../train-images-idx3-ubyte.gz"``.
      magic: the magic number the file must have (``IMAGES_MAGIC`` or ``LABELS_MAGIC``);
        ``None`` accepts either.

    Returns:
      uint8 array of the shape in the header: ``(N, rows, cols)`` for images, ``(N,)`` for labels.

    Raises:
      DataFormatError: naming the file and what is wrong with it.

    Example:
      >>> labels = read_idx("mnist/train-labels-idx1-ubyte.gz", magic=LABELS_MAGIC)  # (60000,)
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path} is too short ({len(raw)} bytes) to be an IDX file")
    (found,) = struct.unpack(">I", raw[:4])
    if found not in _NDIM:
        raise DataFormatError(
            f"{path} has magic number {found} (0x{found:08x}); IDX uint8 files start with "
            f"{IMAGES_MAGIC} (images) or {LABELS_MAGIC} (labels). Is it the right file, "
            "and gunzipped only once?"
        )
    if magic is not None and found != magic:
        raise DataFormatError(
            f"{path} is an IDX {_KIND[found]} file (magic {found}), but {_KIND[magic]} "
            f"(magic {magic}) were expected here: check the file names."
        )
    ndim = _NDIM[found]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path} ends inside its header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path} is {what}: its header says shape {dims} ({expected} bytes of data) but it "
            f"holds {len(raw) - header} bytes. Download it again."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_idx_folder(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of MNIST-style IDX files from ``folder``.

    Args:
      folder: directory holding the files of ``IDX_FILES[split]``.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images, labels)``: float32 ``(N, rows, cols, 1)`` in [0, 1] and int32 ``(N,)``.

    Raises:
      DataFormatError: a file is corrupted, or the two files disagree on N.
    """
    images_file, labels_file = (Path(folder) / f for f in IDX_FILES[split])
    images = read_idx(images_file, magic=IMAGES_MAGIC)  # (N, rows, cols) uint8
    labels = read_idx(labels_file, magic=LABELS_MAGIC)  # (N,) uint8
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
            "labels; the two files come from different releases or one is damaged."
        )
    x = images.astype(np.float32)[..., None]  # (N, rows, cols, 1)
    x /= np.float32(255)
    return x, labels.astype(np.int32)
