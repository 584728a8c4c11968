"""``load(name, split)``: embedded data, else local official files, else TensorFlow Datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxprune.data import _embedded, _tfds
from jaxprune.data._cifar import CIFAR_LAYOUTS, load_cifar_folder
from jaxprune.data._errors import DataFormatError, DatasetNotFoundError
from jaxprune.data._idx import IDX_FILES, load_idx_folder
from jaxprune.data._info import check_split, info, names

ENV_VAR = "JAXPRUNE_DATA_DIR"

_EMBEDDED = {"mnist1d": _embedded.load_mnist1d, "digits": _embedded.load_digits}

# Where to get the official files (what the not-found error tells the user).
_DOWNLOAD = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/ (TFDS's mirror of LeCun's files)",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist#get-the-data",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it)",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract it)",
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data directory: ``data_dir`` if given, else ``$JAXPRUNE_DATA_DIR``, else ``None``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def _subdir(name: str) -> str:
    """The folder the files sit in below ``<data_dir>/<name>/`` ("" for IDX datasets)."""
    return CIFAR_LAYOUTS[name].folder if name in CIFAR_LAYOUTS else ""


def expected_files(name: str, split: str) -> tuple[str, ...]:
    """The file names one split of a file-based dataset needs, e.g. the two MNIST test files."""
    return CIFAR_LAYOUTS[name].files[split] if name in CIFAR_LAYOUTS else IDX_FILES[split]


def local_candidates(name: str, data_dir: Path) -> list[Path]:
    """Folders that may hold ``name``'s files, most specific first.

    ``<data_dir>/<name>/<subdir>``, then ``<data_dir>/<subdir>``, then ``<data_dir>`` itself
    (``subdir`` is e.g. ``cifar-10-batches-py``; MNIST files sit directly in ``<name>/``). A
    ``data_dir`` named after another dataset (``.../fashion_mnist`` when loading ``mnist``) is
    skipped, since MNIST and Fashion-MNIST use the same file names.
    """
    sub = _subdir(name)
    out = [data_dir / name / sub, data_dir / sub, data_dir]
    if data_dir.resolve().name in names() and data_dir.resolve().name != name:
        out = out[:1]
    return list(dict.fromkeys(out))  # drops repeats: <data_dir>/mnist/"" is <data_dir>/mnist


def find_local(name: str, split: str, data_dir: Path) -> Path | None:
    """The first folder of ``local_candidates`` holding all files of ``split``, or ``None``."""
    for folder in local_candidates(name, data_dir):
        if all((folder / f).is_file() for f in expected_files(name, split)):
            return folder
    return None


def _read_local(name: str, split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    if name in CIFAR_LAYOUTS:
        return load_cifar_folder(folder, name, split)
    return load_idx_folder(folder, split)


def _check_arrays(name: str, where: str, x: np.ndarray, y: np.ndarray) -> None:
    """Raise ``DataFormatError`` unless shapes and label range match ``info(name)``."""
    i = info(name)
    if x.shape[1:] != i.input_shape:
        raise DataFormatError(
            f"{where}: {name} examples should have shape {i.input_shape}, found {x.shape[1:]}"
        )
    if len(y) and (y.min() < 0 or y.max() >= i.num_classes):
        raise DataFormatError(
            f"{where}: labels should lie in [0, {i.num_classes}), found [{y.min()}, {y.max()}]"
        )


def _not_found_message(name: str, split: str, data_dir: Path | None, tfds_reason: str) -> str:
    """Where the files should go, where we looked, and how TFDS could provide them instead."""
    root = str(data_dir) if data_dir is not None else f"${ENV_VAR}"
    folder = Path(root) / name / _subdir(name)
    files = [f for s in ("train", "test") for f in expected_files(name, s)]
    if data_dir is None:
        looked = f"no data directory given (pass data_dir=... or set {ENV_VAR})"
    else:
        cands = local_candidates(name, data_dir)
        looked = "looked in " + ", ".join(str(c) for c in cands)
        need = expected_files(name, split)
        partial = [
            f"{c} lacks {', '.join(f for f in need if not (c / f).is_file())}"
            for c in cands
            if c.is_dir() and any((c / f).exists() for f in files)
        ]
        if partial:
            looked += "; " + "; ".join(partial)
    lines = [
        f"dataset {name!r} ({split} split) not found.",
        f"Local files: {looked}.",
        f"Put the official files in {folder}/:",
        *(f"    {folder / f}" for f in files),
        f"  (get them from {_DOWNLOAD[name]})",
        f"TensorFlow Datasets fallback: {tfds_reason}",
    ]
    return "\n".join(lines)


def _brief(name: str, data_dir: Path | None) -> str:
    """The not-found error in one line, for a command line."""
    files = ", ".join(f for s in ("train", "test") for f in expected_files(name, s))
    if data_dir is None:
        return (f"dataset {name!r} not found: no data folder given. Put its official files "
                f"({files}; from {_DOWNLOAD[name]}) in DIR/{name}/ and pass --data-dir DIR or "
                f"set ${ENV_VAR}=DIR")
    folder = data_dir / name / _subdir(name)
    return (f"dataset {name!r} not found in {data_dir}: put its official files ({files}; from "
            f"{_DOWNLOAD[name]}) in {folder}/")


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    tfds_data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a dataset as NumPy arrays.

    Sources, in order: embedded data (``mnist1d``, ``digits``, no files needed); the official
    files under ``data_dir`` (else ``$JAXPRUNE_DATA_DIR``), in ``<data_dir>/<name>/`` or in
    ``data_dir`` itself (e.g. ``<data_dir>/mnist/train-images-idx3-ubyte.gz``,
    ``<data_dir>/cifar10/cifar-10-batches-py/data_batch_1``); then TensorFlow Datasets, if it has
    the dataset prepared in ``tfds_data_dir`` (else ``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``) or ``download=True`` lets it download and prepare it. Every source
    returns the same arrays in the same (official) order.

    Args:
      name: one of ``names()``: mnist1d, digits, mnist, fashion_mnist, cifar10, cifar100.
      split: ``"train"`` or ``"test"``.
      data_dir: folder with the official files (see above); ignored for embedded datasets.
      download: let TFDS download (network) and prepare the dataset when no local files exist.
      tfds_data_dir: TFDS data directory for the fallback.

    Returns:
      ``(images, labels)``: float32 ``(N, *info(name).input_shape)``, images NHWC in [0, 1]
      (MNIST-1D: the ``(N, 40, 1)`` signal as generated, not rescaled), and int32 ``(N,)``
      labels in ``[0, info(name).num_classes)``.

    Raises:
      ValueError: unknown name or split (lists the valid ones).
      DatasetNotFoundError: no source has the data; says where the files should go and how to
        let TFDS download them.
      DataFormatError: a file exists but is corrupted or truncated (names the file).

    Example:
      >>> x, y = load("mnist", "train", "data")  # data/mnist/train-images-idx3-ubyte.gz, ...
      >>> x.shape, x.dtype, y[:3]
      ((60000, 28, 28, 1), dtype('float32'), array([5, 0, 4], dtype=int32))
    """
    info(name)
    check_split(split)
    if name in _EMBEDDED:
        return _EMBEDDED[name](split)
    root = resolve_data_dir(data_dir)
    folder = find_local(name, split, root) if root is not None else None
    if folder is not None:
        x, y = _read_local(name, split, folder)
        _check_arrays(name, str(folder), x, y)
        return x, y
    try:
        x, y = _tfds.load_tfds(name, split, data_dir=tfds_data_dir, download=download)
    except ImportError as e:
        reason = f"{e}. Then load(..., download=True) lets TFDS download and prepare {name!r}."
        raise DatasetNotFoundError(_not_found_message(name, split, root, reason),
                                   brief=_brief(name, root)) from None
    except DatasetNotFoundError as e:
        raise DatasetNotFoundError(_not_found_message(name, split, root, str(e)),
                                   brief=_brief(name, root)) from None
    _check_arrays(name, f"TFDS {name!r}", x, y)
    return x, y
