"""The image data sets a ResNet run can train on, by name, from :mod:`samtheory.data`.

* ``cifar10`` / ``cifar100``: :func:`samtheory.data.load_cifar` on
  ``data_dir`` (required: nothing is downloaded).
* ``fashion_mnist``: :func:`samtheory.data.load_fashion_mnist`, from
  ``data_dir`` or the Debian package's default directory; 28×28×1, trained
  at its native size.
* ``synthetic``: :func:`samtheory.data.synthetic_images`, 8×8×3, 4 classes,
  drawn with data seed 0 whatever the run's seed; for tests and smoke runs.

Label noise ([label-noise]) is applied to the training labels with
:func:`samtheory.data.with_label_noise`, seeded by the run's seed.

Conventions: [data-layout], [label-noise].
"""

from __future__ import annotations

from samtheory import data
from samtheory.data import ArrayDataset

__all__ = ["DATASETS", "load_dataset"]

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "synthetic")


def load_dataset(
    name: str,
    data_dir: str | None,
    *,
    label_noise: float = 0.0,
    seed: int = 0,
    synthetic_train: int = 512,
    synthetic_test: int = 256,
) -> ArrayDataset:
    """The data set ``name`` (see module docstring), with ``label_noise`` on its training labels.

    Raises ``ValueError`` naming ``name`` or ``data_dir``, and
    :class:`samtheory.data.DataError` for missing or broken files.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    if name in ("cifar10", "cifar100"):
        if not data_dir:
            raise ValueError(f"data_dir is required for {name} (nothing is downloaded)")
        ds = data.load_cifar(data_dir, num_classes=10 if name == "cifar10" else 100)
    elif name == "fashion_mnist":
        ds = data.load_fashion_mnist(data_dir) if data_dir else data.load_fashion_mnist()
    else:
        ds = data.synthetic_images(0, n_train=synthetic_train, n_test=synthetic_test)
    if label_noise:
        ds = data.with_label_noise(ds, label_noise, seed)
    return ds
