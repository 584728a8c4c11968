"""The TensorFlow Datasets fallback: offline preparation from the official files, and its errors."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from jaxprune import data

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow_datasets is not installed")


def test_not_prepared_says_download_true(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("mnist", "test", tmp_path / "files", tfds_data_dir=tmp_path / "tfds")
    msg = str(e.value)
    assert str(tmp_path / "files" / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert f"TFDS has not prepared 'mnist' in {tmp_path / 'tfds'}" in msg
    assert "download=True" in msg
    assert "Traceback" not in msg and e.value.__cause__ is None


def test_manual_dir_without_files_fails_offline(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="lacks train-images-idx3-ubyte.gz"):
        data.load_tfds("mnist", "test", data_dir=tmp_path / "tfds", manual_dir=tmp_path)


def test_tfds_shuffled_order_is_a_permutation():
    order = data.tfds_shuffled_order("test", 1000)
    assert sorted(order.tolist()) == list(range(1000))
    assert not np.array_equal(order, np.arange(1000))


@pytest.fixture(scope="module")
def tfds_mnist_dir(shared_data_dir, build_once):
    """A TFDS data dir with ``mnist`` prepared offline from the official files (about 20 s),
    once per run for all workers."""
    pytest.importorskip("tensorflow", reason="preparing a TFDS dataset needs tensorflow")
    return build_once("tfds-mnist", lambda d: data.load_tfds(
        "mnist", "test", data_dir=d, manual_dir=shared_data_dir / "mnist"))


# TFDS extracts manual files to <download_dir>/extracted/GZIP.<file name> and reuses them across
# datasets; MNIST and Fashion-MNIST share file names, so preparing Fashion-MNIST after MNIST in
# one data dir silently gave MNIST. load_tfds prepares with a fresh download dir instead.


@pytest.mark.slow
def test_tfds_preparation_leaves_no_shared_extractions(tfds_mnist_dir):
    leftovers = list((tfds_mnist_dir / "downloads").rglob("*ubyte*"))
    assert leftovers == []


@pytest.mark.slow
def test_tfds_fashion_mnist_after_mnist_is_fashion_mnist(tfds_mnist_dir, shared_data_dir):
    manual = shared_data_dir / "fashion_mnist"
    x_tfds, y_tfds = data.load_tfds("fashion_mnist", "test", data_dir=tfds_mnist_dir,
                                    manual_dir=manual)
    x_idx, y_idx = data.load("fashion_mnist", "test", shared_data_dir)
    np.testing.assert_array_equal(y_tfds, y_idx)
    np.testing.assert_array_equal(x_tfds, x_idx)


@pytest.mark.slow
def test_tfds_mnist_equals_idx_reader(tfds_mnist_dir, shared_data_dir, tmp_path):
    for split in ("test", "train"):
        x_idx, y_idx = data.load("mnist", split, shared_data_dir)
        x_tfds, y_tfds = data.load_tfds("mnist", split, data_dir=tfds_mnist_dir)
        assert (x_tfds.dtype, y_tfds.dtype) == (np.float32, np.int32)
        np.testing.assert_array_equal(x_tfds, x_idx)
        np.testing.assert_array_equal(y_tfds, y_idx)
    x_t, y_t = data.load("mnist", "test", shared_data_dir)
    # load() falls back to the prepared TFDS copy when no local files are found.
    x_fb, y_fb = data.load("mnist", "test", tmp_path, tfds_data_dir=tfds_mnist_dir)
    np.testing.assert_array_equal(x_fb, x_t)
    np.testing.assert_array_equal(y_fb, y_t)
    # TFDS's own (hash-shuffled) order is available too, and holds the same examples.
    x_raw, y_raw = data.load_tfds("mnist", "test", data_dir=tfds_mnist_dir, official_order=False)
    assert not np.array_equal(y_raw, y_t)
    order = data.tfds_shuffled_order("test", 10000)
    np.testing.assert_array_equal(x_raw, x_t[order])
    np.testing.assert_array_equal(y_raw, y_t[order])


def test_download_offline_fails_fast(tmp_path, monkeypatch):
    # Offline, TFDS itself retries a download for minutes; load_tfds probes the host first.
    def unreachable(address, *args, **kwargs):
        raise OSError(f"no route to {address} (test)")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(data.DatasetNotFoundError, match="cannot reach storage.googleapis.com:443"):
        data.load("mnist", "test", tmp_path / "files", download=True, tfds_data_dir=tmp_path)


def test_a_hanging_probe_is_bounded(tmp_path, monkeypatch):
    # Name resolution has no timeout of its own: a probe that hangs is given up after its 5 s.
    release = threading.Event()

    def hang(address, *args, **kwargs):
        release.wait(60)
        raise OSError(f"no answer from {address} (test)")

    monkeypatch.setattr(socket, "create_connection", hang)
    t = time.monotonic()
    try:
        with pytest.raises(data.DatasetNotFoundError, match="cannot reach"):
            data.load_tfds("mnist", "test", data_dir=tmp_path, download=True)
    finally:
        release.set()
    assert time.monotonic() - t < 30
