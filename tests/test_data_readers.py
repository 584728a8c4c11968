"""Dataset readers and ``load`` on tiny synthetic files written here, and the embedded datasets."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxprune import data
from jaxprune.data import CIFAR_LAYOUTS, IDX_FILES, IMAGES_MAGIC, LABELS_MAGIC

# ----------------------------------------------------------------------------- helpers


def write_idx(path: Path, magic: int, array: np.ndarray, *, extra: bytes = b"",
              dims: tuple[int, ...] | None = None) -> Path:
    """Write ``array`` (uint8) as a gzipped IDX file; ``dims`` overrides the header's sizes."""
    dims = array.shape if dims is None else dims
    raw = struct.pack(f">I{len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes() + extra
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(raw)
    return path


def write_mnist_folder(folder: Path, n_train: int = 5, n_test: int = 3, seed: int = 0):
    """Four IDX files with random 28x28 images; returns {split: (images uint8, labels uint8)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, (n,), dtype=np.uint8)
        write_idx(folder / IDX_FILES[split][0], IMAGES_MAGIC, x)
        write_idx(folder / IDX_FILES[split][1], LABELS_MAGIC, y)
        out[split] = (x, y)
    return out


def write_cifar_folder(root: Path, name: str, per_file: int = 4, seed: int = 0):
    """The official CIFAR pickle layout, tiny random batches; returns {split: (data, labels)}."""
    layout = CIFAR_LAYOUTS[name]
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    num_classes = data.info(name).num_classes
    out = {}
    for split, files in layout.files.items():
        parts = []
        for f in files:
            d = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, num_classes, per_file)]
            batch = {b"data": d, layout.label_key: y, b"batch_label": b"synthetic"}
            if name == "cifar100":
                batch[b"coarse_labels"] = [v // 5 for v in y]
            with open(folder / f, "wb") as fh:
                pickle.dump(batch, fh, protocol=2)
            parts.append((d, np.array(y)))
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


@pytest.fixture
def no_tfds(monkeypatch):
    """Make the TFDS fallback unavailable, as on a machine without tensorflow_datasets."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # its import then fails
    monkeypatch.delenv(data.ENV_VAR, raising=False)


# ----------------------------------------------------------------------------- registry


def test_names_and_info_contract():
    assert set(data.names()) == {"mnist1d", "digits", "mnist", "fashion_mnist", "cifar10",
                                 "cifar100"}
    for name in data.names():
        i = data.info(name)
        assert i.name == name
        assert i.num_classes in (10, 100) and i.train_size > i.test_size > 0
        assert all(isinstance(d, int) and d > 0 for d in i.input_shape)
        assert i.source


@pytest.mark.parametrize("bad", ["mnsit", "MNIST", "imagenet", ""])
def test_unknown_name_lists_valid_names(bad):
    with pytest.raises(ValueError, match="valid names: mnist1d, digits, mnist, fashion_mnist"):
        data.load(bad, "train")
    with pytest.raises(ValueError, match="valid names"):
        data.info(bad)


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match="Did you mean 'fashion_mnist'"):
        data.info("fashion-mnist")


@pytest.mark.parametrize("bad", ["val", "validation", "TRAIN", "train[:10%]"])
def test_unknown_split_lists_valid_splits(bad):
    with pytest.raises(ValueError, match="valid splits: train, test"):
        data.load("digits", bad)


# ----------------------------------------------------------------------------- embedded


def test_mnist1d_official_split_and_cache():
    x, y = data.load("mnist1d", "train")
    xt, yt = data.load("mnist1d", "test")
    assert x.shape == (4000, 40, 1) and xt.shape == (1000, 40, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32 and yt.dtype == np.int32
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))
    assert x.min() < -1 and x.max() > 1  # raw signal, not rescaled to [0, 1]
    x[:] = 0  # callers get fresh copies: mutating one must not poison the cache
    x2, y2 = data.load("mnist1d", "train")
    assert x2.std() > 0.1 and np.array_equal(y, y2)


def test_mnist1d_is_kept_in_the_cache_dir():
    x, y = data.load("mnist1d", "train")  # generated, or read from this run's cache
    (path,) = data.cache_dir().glob("mnist1d-*.npz")
    assert "jaxprune-test-caches-" in str(path)  # the suite's run folder, not ~/.cache
    with np.load(path) as f:
        np.testing.assert_array_equal(f["x"].astype(np.float32)[..., None], x)
        np.testing.assert_array_equal(f["y"], y)


def test_cached_arrays_write_once_read_back_and_remake_a_broken_file(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "c"))
    calls = []

    def make():
        calls.append(1)
        return {"a": np.arange(5.0), "b": np.ones((2, 3), np.int32)}

    first = data.cached_arrays("thing", ("v1", 3), make)
    (path,) = (tmp_path / "c").iterdir()  # one file, no temporary left behind
    assert path.name.startswith("thing-") and path.suffix == ".npz"
    again = data.cached_arrays("thing", ("v1", 3), make)
    assert len(calls) == 1  # read back, not made again
    for k in ("a", "b"):
        np.testing.assert_array_equal(again[k], first[k])
        assert again[k].dtype == first[k].dtype
    data.cached_arrays("thing", ("v2", 3), make)  # other settings: another file
    assert len(calls) == 2 and len(list((tmp_path / "c").iterdir())) == 2
    path.write_bytes(path.read_bytes()[:40])  # a cut-off file is made again and replaced
    np.testing.assert_array_equal(data.cached_arrays("thing", ("v1", 3), make)["a"], first["a"])
    assert len(calls) == 3
    assert data.cached_arrays("thing", ("v1", 3), make) and len(calls) == 3
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(data.CACHE_ENV, str(blocked))  # unwritable: made every time, no error
    np.testing.assert_array_equal(data.cached_arrays("thing", ("v1", 3), make)["b"], first["b"])
    assert len(calls) == 4


def test_digits_fixed_split():
    x, y = data.load("digits", "train")
    xt, yt = data.load("digits", "test")
    assert x.shape == (1442, 8, 8, 1) and xt.shape == (355, 8, 8, 1)
    assert (x.dtype, y.dtype) == (np.float32, np.int32)
    assert x.min() == 0.0 and x.max() == 1.0
    from sklearn.datasets import load_digits

    full = load_digits()
    # independent reference: walk the file, counting examples per class
    seen = {c: 0 for c in range(10)}
    is_test = []
    for label in full.target:
        is_test.append(seen[label] % 5 == 4)
        seen[label] += 1
    is_test = np.array(is_test)
    np.testing.assert_array_equal(yt, full.target[is_test])
    np.testing.assert_array_equal(y, full.target[~is_test])
    np.testing.assert_array_equal(xt[..., 0] * 16, full.images[is_test])
    # stratified: every class holds ~20% of its examples out
    np.testing.assert_array_equal(np.bincount(yt, minlength=10),
                                  [35, 36, 35, 36, 36, 36, 36, 35, 34, 36])


def test_embedded_ignore_data_dir(tmp_path):
    assert data.load("digits", "test", tmp_path / "nowhere")[0].shape == (355, 8, 8, 1)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("layout", ["named_subfolder", "direct"])
def test_idx_roundtrip(tmp_path, layout, no_tfds):
    folder = tmp_path / "mnist" if layout == "named_subfolder" else tmp_path
    ref = write_mnist_folder(folder)
    for split in ("train", "test"):
        x, y = data.load("mnist", split, tmp_path)
        assert x.shape == (len(ref[split][0]), 28, 28, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(x[..., 0], ref[split][0].astype(np.float32) / 255)
        np.testing.assert_array_equal(y, ref[split][1].astype(np.int32))
        assert y.dtype == np.int32


def test_read_idx_uncompressed(tmp_path):
    y = np.arange(7, dtype=np.uint8)
    p = tmp_path / "labels-idx1-ubyte"
    p.write_bytes(struct.pack(">II", LABELS_MAGIC, 7) + y.tobytes())
    np.testing.assert_array_equal(data.read_idx(p), y)


def test_env_var_and_argument_precedence(tmp_path, monkeypatch, no_tfds):
    a = write_mnist_folder(tmp_path / "a" / "mnist", seed=1)
    b = write_mnist_folder(tmp_path / "b" / "mnist", seed=2)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "a"))
    np.testing.assert_array_equal(data.load("mnist", "test")[1], a["test"][1])
    np.testing.assert_array_equal(data.load("mnist", "test", tmp_path / "b")[1], b["test"][1])


def test_folder_of_the_other_mnist_is_not_used(tmp_path, no_tfds):
    write_mnist_folder(tmp_path / "fashion_mnist")  # same file names as MNIST
    with pytest.raises(data.DatasetNotFoundError):
        data.load("mnist", "test", tmp_path / "fashion_mnist")
    assert data.load("fashion_mnist", "test", tmp_path / "fashion_mnist")[0].shape[0] == 3


def _corrupt(tmp_path: Path, how: str) -> Path:
    """An MNIST folder whose test images file is broken in way ``how``; returns that file."""
    folder = tmp_path / "mnist"
    write_mnist_folder(folder)
    img = folder / IDX_FILES["test"][0]
    x = np.zeros((3, 28, 28), np.uint8)
    if how == "truncated_gzip":
        img.write_bytes(img.read_bytes()[:-30])
    elif how == "not_gzip":
        img.write_bytes(b"<html>404 Not Found</html>")
    elif how == "truncated_data":
        write_idx(img, IMAGES_MAGIC, x.reshape(-1)[:1000], dims=(3, 28, 28))  # 2352 promised
    elif how == "trailing_bytes":
        write_idx(img, IMAGES_MAGIC, x, extra=b"\0" * 5)
    elif how == "bad_magic":
        write_idx(img, 2050, x)
    elif how == "swapped":
        write_idx(img, LABELS_MAGIC, np.zeros(3, np.uint8))
    elif how == "short_header":
        with gzip.open(img, "wb") as f:
            f.write(struct.pack(">II", IMAGES_MAGIC, 3))
    return img


@pytest.mark.parametrize("how, match", [
    ("truncated_gzip", "not a valid gzip file.*truncated or corrupted"),
    ("not_gzip", "not a valid gzip file"),
    ("truncated_data", r"is truncated: its header says shape \(3, 28, 28\)"),
    ("trailing_bytes", "has trailing bytes"),
    ("bad_magic", "magic number 2050"),
    ("swapped", "is an IDX labels file .* but images"),
    ("short_header", "ends inside its header"),
])
def test_corrupted_idx_names_the_file(tmp_path, how, match, no_tfds):
    img = _corrupt(tmp_path, how)
    with pytest.raises(data.DataFormatError, match=match) as e:
        data.load("mnist", "test", tmp_path)
    assert str(img) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_idx_count_mismatch_and_bad_labels(tmp_path, no_tfds):
    folder = tmp_path / "mnist"
    write_mnist_folder(folder)
    write_idx(folder / IDX_FILES["test"][1], LABELS_MAGIC, np.zeros(4, np.uint8))
    with pytest.raises(data.DataFormatError, match="3 images but .* 4 labels"):
        data.load("mnist", "test", tmp_path)
    write_idx(folder / IDX_FILES["test"][1], LABELS_MAGIC, np.array([0, 10, 1], np.uint8))
    with pytest.raises(data.DataFormatError, match=r"labels should lie in \[0, 10\)"):
        data.load("mnist", "test", tmp_path)
    write_idx(folder / IDX_FILES["test"][0], IMAGES_MAGIC, np.zeros((3, 20, 20), np.uint8))
    with pytest.raises(data.DataFormatError, match=r"shape \(28, 28, 1\), found \(20, 20, 1\)"):
        data.load("mnist", "test", tmp_path)


# ----------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("where", ["named", "official_folder_only", "direct"])
def test_cifar_roundtrip(tmp_path, name, where, no_tfds):
    folder = CIFAR_LAYOUTS[name].folder
    if where == "named":
        ref, data_dir = write_cifar_folder(tmp_path / name, name), tmp_path
    elif where == "official_folder_only":  # <data_dir>/cifar-10-batches-py
        ref, data_dir = write_cifar_folder(tmp_path, name), tmp_path
    else:  # data_dir is the cifar-10-batches-py folder itself
        ref, data_dir = write_cifar_folder(tmp_path, name), tmp_path / folder
    for split in ("train", "test"):
        x, y = data.load(name, split, data_dir)
        d, labels = ref[split]
        assert x.shape == (len(d), 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(y, labels)
        # Plain loop: pixel (r, c) of channel ch sits at ch * 1024 + r * 32 + c.
        for n in (0, len(d) - 1):
            for r, c, ch in ((0, 0, 0), (3, 17, 1), (31, 30, 2), (12, 5, 2)):
                assert x[n, r, c, ch] == np.float32(d[n, ch * 1024 + r * 32 + c]) / 255


def test_cifar_train_concatenates_batches_in_order(tmp_path, no_tfds):
    ref = write_cifar_folder(tmp_path / "cifar10", "cifar10", per_file=2)
    x, y = data.load("cifar10", "train", tmp_path)
    assert x.shape[0] == 10
    np.testing.assert_array_equal(
        (x.transpose(0, 3, 1, 2).reshape(10, 3072) * 255).round().astype(np.uint8), ref["train"][0]
    )


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("how, match", [
    ("truncated", "not a readable CIFAR python pickle"),
    ("garbage", "not a readable CIFAR python pickle"),
    ("evil", "refusing to load global posix.getcwd|refusing to load global os.getcwd"),
    ("missing_key", "keys b'data' and b'labels'"),
    ("wrong_shape", r"b'data' should be uint8 \[N, 3072\], found uint8 \(4, 3000\)"),
    ("label_count", r"4 images but b'labels' has shape \(3,\)"),
])
def test_corrupted_cifar_names_the_file(tmp_path, how, match, no_tfds):
    write_cifar_folder(tmp_path / "cifar10", "cifar10")
    f = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    d = np.zeros((4, 3072), np.uint8)
    payload = {
        "truncated": None,
        "garbage": None,
        "evil": {b"data": _Evil(), b"labels": [0]},
        "missing_key": {b"data": d, b"fine_labels": [0] * 4},
        "wrong_shape": {b"data": d[:, :3000], b"labels": [0] * 4},
        "label_count": {b"data": d, b"labels": [0] * 3},
    }[how]
    if how == "truncated":
        f.write_bytes(f.read_bytes()[:500])
    elif how == "garbage":
        f.write_bytes(b"\x00\x01garbage")
    else:
        f.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(data.DataFormatError, match=match) as e:
        data.load("cifar10", "test", tmp_path)
    assert str(f) in str(e.value)


# ----------------------------------------------------------------------------- not found


def test_missing_dataset_says_where_files_go(tmp_path, no_tfds):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("mnist", "train", tmp_path, download=False)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for f in IDX_FILES["train"] + IDX_FILES["test"]:
        assert str(tmp_path / "mnist" / f) in msg
    assert "pip install 'jaxprune[tfds]'" in msg and "download=True" in msg
    assert "looked in" in msg


def test_missing_cifar_names_official_folder(tmp_path, no_tfds):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("cifar100", "test", tmp_path)
    assert str(tmp_path / "cifar100" / "cifar-100-python" / "test") in str(e.value)
    assert "cifar-100-python.tar.gz" in str(e.value)


def test_missing_without_data_dir_mentions_env_var(no_tfds):
    with pytest.raises(data.DatasetNotFoundError, match=r"set JAXPRUNE_DATA_DIR") as e:
        data.load("fashion_mnist", "test")
    assert "$JAXPRUNE_DATA_DIR/fashion_mnist/t10k-images-idx3-ubyte.gz" in str(e.value)


def test_partial_folder_names_missing_files(tmp_path, no_tfds):
    folder = tmp_path / "mnist"
    write_mnist_folder(folder)
    (folder / IDX_FILES["test"][1]).unlink()
    lacks = re.escape(f"{folder} lacks t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DatasetNotFoundError, match=lacks):
        data.load("mnist", "test", tmp_path)
    assert data.load("mnist", "train", tmp_path)[0].shape == (5, 28, 28, 1)  # train still loads
