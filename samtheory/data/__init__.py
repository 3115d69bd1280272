"""Offline real and synthetic data sets, as in-memory NumPy arrays.

Nothing here downloads. Sources:

* :func:`load_mnist1d`: MNIST-1D, generated locally with the ``mnist1d``
  package (:mod:`samtheory.data.mnist1d`), cached in a file you name.
* :func:`load_fashion_mnist`: Fashion-MNIST from IDX files, by default those
  of the Debian package ``dataset-fashion-mnist``
  (``scripts/install_datasets.sh`` installs it).
* :func:`load_cifar`: CIFAR-10/100 python-pickle batches from a directory you
  give.
* :func:`synthetic_images`: a tiny learnable image set for tests.

Transforms: :func:`binary_subset`, :func:`with_label_noise`,
:func:`standardize_images` (with :func:`channel_stats`). Files:
:func:`read_idx`, :func:`write_idx`. Every loader problem raises
:class:`DataError` naming the file.

Conventions: [data-layout], [label-noise].
"""

from samtheory.data.cifar import load_cifar
from samtheory.data.dataset import ArrayDataset
from samtheory.data.errors import DataError
from samtheory.data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_DIR, load_fashion_mnist
from samtheory.data.idx import read_idx, write_idx
from samtheory.data.mnist1d import load_mnist1d, mnist1d_generation_args
from samtheory.data.preprocessing import channel_stats, standardize_images
from samtheory.data.synthetic import synthetic_images
from samtheory.data.transforms import binary_subset, num_noisy_labels, with_label_noise

__all__ = [
    "ArrayDataset",
    "DataError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEFAULT_DIR",
    "binary_subset",
    "channel_stats",
    "load_cifar",
    "load_fashion_mnist",
    "load_mnist1d",
    "mnist1d_generation_args",
    "num_noisy_labels",
    "read_idx",
    "standardize_images",
    "synthetic_images",
    "with_label_noise",
    "write_idx",
]
