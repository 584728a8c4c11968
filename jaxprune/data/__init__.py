"""Datasets as NumPy arrays, pure preprocessing, and deterministic batching.

Loading (``load(name, split)``) tries, in order: embedded data (``mnist1d``, ``digits``), the
official files in a local folder (``data_dir`` or ``$JAXPRUNE_DATA_DIR``), and TensorFlow Datasets
(optional: ``pip install 'jaxprune[tfds]'``). Every source gives float32 NHWC images in [0, 1]
(MNIST-1D: the raw ``(N, 40, 1)`` signal) and int32 labels, in the official order. MNIST-1D is
generated once and kept in ``cache_dir()`` (``$JAXPRUNE_CACHE_DIR``, else ``~/.cache/jaxprune``;
``cached_arrays`` keeps any arrays there).

  >>> from jaxprune import data
  >>> x, y = data.load("mnist", "train", "path/to/data")  # path/to/data/mnist/*-ubyte.gz
  >>> data.info("cifar10").input_shape
  (32, 32, 3)

The official files' layout: ``IDX_FILES`` (the (Fashion-)MNIST file names per split; their IDX
headers' magic numbers are ``IMAGES_MAGIC`` and ``LABELS_MAGIC``, see ``read_idx``) and
``CIFAR_LAYOUTS`` (folder, files per split and label key of each CIFAR pickle set);
``tfds_shuffled_order`` is the order TFDS stores (Fashion-)MNIST in.

Modules: ``preprocess`` (channel stats, normalize, crop/flip augmentation) and ``batching``
(epoch permutations, eval batches with a validity mask, class-balanced picks). This package knows
nothing of models or pruning.
"""

from jaxprune.data import batching, preprocess
from jaxprune.data._cifar import CIFAR_LAYOUTS, read_cifar_batch
from jaxprune.data._embedded import CACHE_ENV, cache_dir, cached_arrays
from jaxprune.data._errors import DataFormatError, DatasetNotFoundError
from jaxprune.data._idx import IDX_FILES, IMAGES_MAGIC, LABELS_MAGIC, read_idx
from jaxprune.data._info import SPLITS, DatasetInfo, info, names
from jaxprune.data._load import ENV_VAR, load, resolve_data_dir
from jaxprune.data._tfds import load_tfds, tfds_shuffled_order

__all__ = [
    "CACHE_ENV",
    "CIFAR_LAYOUTS",
    "ENV_VAR",
    "IDX_FILES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SPLITS",
    "DataFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "batching",
    "cache_dir",
    "cached_arrays",
    "info",
    "load",
    "load_tfds",
    "names",
    "preprocess",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
    "tfds_shuffled_order",
]
