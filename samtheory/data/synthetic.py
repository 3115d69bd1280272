"""A tiny, learnable image data set for tests and smoke runs.

Each class has a fixed random mean image; an example is its class mean plus
independent Gaussian pixel noise, rounded and clipped to ``uint8``. With the
defaults the class means are far apart relative to the noise, so even a
nearest-class-mean classifier is nearly perfect, and a small network learns
it in a few steps. Labels are balanced (as far as the counts allow) and in
random order.

Randomness: a NumPy ``Generator`` per part (class means, train split, test
split), all derived from ``seed`` with ``np.random.SeedSequence``. The same
seed gives the same data set; the test split does not depend on
``n_train``, nor the train split on ``n_test``. No global RNG is touched.

Conventions: [data-layout] (images NHWC ``uint8``, labels ``int32``).
"""

from __future__ import annotations

import numbers

import numpy as np

from samtheory._validation import check_positive_int
from samtheory.data.dataset import ArrayDataset

__all__ = ["synthetic_images"]

# Spawn keys of the independent streams.
_MEANS, _TRAIN, _TEST = 0, 1, 2


def _split(
    means: np.ndarray, n: int, rng: np.random.Generator, noise_std: float
) -> tuple[np.ndarray, np.ndarray]:
    num_classes = len(means)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    noisy = means[labels] + noise_std * rng.standard_normal((n, *means.shape[1:]))
    images = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return images, labels


def synthetic_images(
    seed: int,
    *,
    n_train: int,
    n_test: int,
    image_shape: tuple[int, int, int] = (8, 8, 3),
    num_classes: int = 4,
    noise_std: float = 40.0,
) -> ArrayDataset:
    """A learnable NHWC ``uint8`` image classification data set, deterministic in ``seed``.

    Class means are drawn uniformly from ``[48, 208]`` per pixel; examples
    add ``N(0, noise_std^2)`` noise per pixel. ``n_test`` may be 0.
    ``info`` records all arguments.

    Raises ``ValueError`` naming the argument for a negative or non-integer
    ``seed``, ``n_train < 1``, ``n_test < 0``, an ``image_shape`` that is
    not three positive integers, ``num_classes < 2`` or a negative or
    non-finite ``noise_std``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n_train = check_positive_int("n_train", n_train)
    if isinstance(n_test, bool) or not isinstance(n_test, numbers.Integral) or n_test < 0:
        raise ValueError(f"n_test must be a non-negative integer, got {n_test!r}")
    shape = tuple(image_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ValueError(f"image_shape must be three positive integers (H, W, C), got {image_shape!r}")
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not isinstance(noise_std, numbers.Real) or not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")

    streams = np.random.SeedSequence(int(seed)).spawn(3)
    means = np.random.default_rng(streams[_MEANS]).uniform(48.0, 208.0, size=(num_classes, *shape))
    x_train, y_train = _split(means, n_train, np.random.default_rng(streams[_TRAIN]), float(noise_std))
    x_test, y_test = _split(means, int(n_test), np.random.default_rng(streams[_TEST]), float(noise_std))
    return ArrayDataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        name="synthetic_images",
        info={
            "source": "synthetic_images",
            "generation_args": {
                "seed": int(seed),
                "n_train": n_train,
                "n_test": int(n_test),
                "image_shape": [int(d) for d in shape],
                "num_classes": num_classes,
                "noise_std": float(noise_std),
            },
            "transforms": [],
        },
    )
