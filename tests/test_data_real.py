"""Readers on the real files in ``shared_data_dir`` (skipped when that folder is absent)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from jaxprune import data
from jaxprune.data import preprocess


def _sha256sums(root: Path) -> dict[str, str]:
    lines = (root / "SHA256SUMS").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


@pytest.mark.parametrize("folder", ["mnist", "fashion_mnist"])
def test_files_match_sha256sums(shared_data_dir, folder):
    sums = _sha256sums(shared_data_dir)
    files = sorted(k for k in sums if k.startswith(folder + "/"))
    assert len(files) == 4
    for f in files:
        assert hashlib.sha256((shared_data_dir / f).read_bytes()).hexdigest() == sums[f], f


# name -> first train label, first test label, train class counts (None: all equal)
KNOWN = {
    "mnist": (5, 7, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    "fashion_mnist": (9, 9, None),
}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_real(shared_data_dir, name):
    x, y = data.load(name, "train", shared_data_dir)
    xt, yt = data.load(name, "test", shared_data_dir / name)  # folder given directly works too
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1)
    assert (x.dtype, y.dtype, yt.dtype) == (np.float32, np.int32, np.int32)
    assert x.min() == 0.0 and x.max() == 1.0 and xt.min() == 0.0 and xt.max() == 1.0
    first_train, first_test, counts = KNOWN[name]
    assert (y[0], yt[0]) == (first_train, first_test)
    expected = counts if counts is not None else [6000] * 10
    np.testing.assert_array_equal(np.bincount(y, minlength=10), expected)
    # The documented normalization constants are this training split's statistics.
    mean, std = preprocess.channel_stats(x)
    ref_mean, ref_std = preprocess.STATS[name]
    np.testing.assert_allclose(mean, ref_mean, atol=5e-5)
    np.testing.assert_allclose(std, ref_std, atol=5e-5)


@pytest.fixture(scope="session")
def cifar10_py(shared_data_dir, request, tmp_path_factory) -> Path:
    """A data dir with ``cifar10/cifar-10-batches-py`` from the shared converter.

    Converting takes about 10 s; the result is kept in pytest's cache (``.pytest_cache``), keyed
    by the JPEG pack's sha256, so later runs reuse it (a tmp dir under ``-p no:cacheprovider``).
    """
    pytest.importorskip("PIL", reason="the CIFAR-10 JPEG converter needs Pillow")
    sums = _sha256sums(shared_data_dir)
    pack = "cifar10_jpeg/cifar10_jpeg_q75.npz"
    digest = hashlib.sha256((shared_data_dir / pack).read_bytes()).hexdigest()
    assert digest == sums[pack]
    cache = getattr(request.config, "cache", None)
    base = cache.mkdir("jaxprune_cifar10_py") if cache else tmp_path_factory.mktemp("cifar")
    root = Path(base) / digest[:16]
    if not (root / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file():
        tmp = Path(tempfile.mkdtemp(dir=root.parent))
        script = shared_data_dir / "cifar10_jpeg" / "make_cifar10_py.py"
        subprocess.run([sys.executable, str(script), str(tmp / "cifar10")], check=True,
                       capture_output=True, timeout=300)
        try:
            tmp.rename(root)  # atomic: a concurrent run either wins or finds it done
        except OSError:
            shutil.rmtree(tmp)
    return root


def test_cifar10_real(cifar10_py):
    xt, yt = data.load("cifar10", "test", cifar10_py)
    assert xt.shape == (10000, 32, 32, 3) and xt.dtype == np.float32 and yt.dtype == np.int32
    assert 0.0 <= xt.min() and xt.max() <= 1.0 and xt.max() > 0.99
    np.testing.assert_array_equal(np.bincount(yt, minlength=10), [1000] * 10)
    # JPEG q75 moves pixels a little; the official-CIFAR statistics still hold to ~1e-2.
    mean, std = preprocess.channel_stats(xt)
    np.testing.assert_allclose(mean, preprocess.CIFAR10_MEAN, atol=0.01)
    np.testing.assert_allclose(std, preprocess.CIFAR10_STD, atol=0.01)
    # Train: 5 batches of 10000, 5000 per class (read as uint8 to keep memory low).
    folder = cifar10_py / "cifar10" / "cifar-10-batches-py"
    labels = [data.read_cifar_batch(folder / f"data_batch_{i}")[1] for i in range(1, 6)]
    assert [len(v) for v in labels] == [10000] * 5
    np.testing.assert_array_equal(np.bincount(np.concatenate(labels)), [5000] * 10)
