"""Fashion-MNIST from local IDX files (nothing is downloaded).

The default directory is where the Debian package ``dataset-fashion-mnist``
puts the files (``scripts/install_datasets.sh`` installs it). Any directory
holding the four standard files works, each gzipped or not.

Conventions: [data-layout] (images NHWC ``uint8`` ``(n, 28, 28, 1)``,
labels ``int32``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from samtheory.data.dataset import ArrayDataset
from samtheory.data.errors import DataError
from samtheory.data.idx import read_idx

__all__ = ["FASHION_MNIST_DEFAULT_DIR", "FASHION_MNIST_FILES", "FASHION_MNIST_CLASSES", "load_fashion_mnist"]

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files.
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"

#: Role -> standard file name without the optional ``.gz``.
FASHION_MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Class names in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_IMAGE_SIDE = 28
_INSTALL_HINT = (
    "install the Debian package with `sudo apt-get install dataset-fashion-mnist` "
    "(or run scripts/install_datasets.sh), or pass directory= a folder holding "
    + ", ".join(f"{name}[.gz]" for name in FASHION_MNIST_FILES.values())
)


def _find_file(directory: Path, stem: str) -> Path:
    # The uncompressed file is preferred when both exist: it reads faster.
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"missing {stem} (or {stem}.gz); {_INSTALL_HINT}", directory / f"{stem}.gz")


def _read_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8, file holds {images.dtype}", path)
    if images.ndim != 3 or images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise DataError(f"images must have shape (n, {_IMAGE_SIDE}, {_IMAGE_SIDE}), file holds {images.shape}", path)
    return images[..., np.newaxis]


def _read_labels(path: Path, num_images: int, images_path: Path) -> np.ndarray:
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"labels must be 1-D uint8, file holds {labels.ndim}-D {labels.dtype}", path)
    if len(labels) != num_images:
        raise DataError(f"{len(labels)} labels but {images_path} holds {num_images} images", path)
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"label {int(labels.max())} out of range [0, {len(FASHION_MNIST_CLASSES)})", path)
    return labels.astype(np.int32)


def load_fashion_mnist(directory: str | os.PathLike[str] = FASHION_MNIST_DEFAULT_DIR) -> ArrayDataset:
    """Load Fashion-MNIST from the IDX files in ``directory``.

    Returns 60 000 train and 10 000 test images for the real data set (any
    counts for other files), ``uint8`` ``(n, 28, 28, 1)``, labels ``int32``
    in ``[0, 10)``. ``info`` records the files read.

    Raises :class:`~samtheory.data.DataError` naming the directory or file
    if the directory or a file is missing (the message says how to install
    the Debian package), a file is corrupt or truncated, images are not
    ``28 x 28`` ``uint8``, or image and label counts differ.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"no such directory; {_INSTALL_HINT}", folder)
    paths = {role: _find_file(folder, stem) for role, stem in FASHION_MNIST_FILES.items()}
    x_train = _read_images(paths["train_images"])
    y_train = _read_labels(paths["train_labels"], len(x_train), paths["train_images"])
    x_test = _read_images(paths["test_images"])
    y_test = _read_labels(paths["test_labels"], len(x_test), paths["test_images"])
    return ArrayDataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=len(FASHION_MNIST_CLASSES),
        name="fashion_mnist",
        info={
            "source": "fashion_mnist",
            "format": "idx",
            "files": {role: str(path) for role, path in paths.items()},
            "classes": list(FASHION_MNIST_CLASSES),
            "transforms": [],
        },
    )
