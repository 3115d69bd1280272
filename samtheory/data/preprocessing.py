"""Turning ``uint8`` images into ``float32`` network inputs.

Pixels are scaled to ``[0, 1]`` by ``x / 255``; optionally each channel is
then standardized with a mean and standard deviation on that ``[0, 1]``
scale, computed on the *training* split (:func:`channel_stats`) and applied
unchanged to the test split.

Conventions: [data-layout] (NHWC: the channel is the last axis).
"""

from __future__ import annotations

import numpy as np

__all__ = ["channel_stats", "standardize_images"]


def _check_uint8(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 image array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have an example axis and a channel axis, got shape {arr.shape}")
    return arr


def channel_stats(x_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` of ``x_uint8 / 255`` over all other axes, as ``float32`` ``(C,)``.

    Accumulated in float64, so the result does not depend on the number of
    images. Raises ``ValueError`` naming ``x_uint8`` for a non-``uint8`` or
    empty array.
    """
    arr = _check_uint8("x_uint8", x_uint8)
    if arr.size == 0:
        raise ValueError("x_uint8 is empty; channel statistics need at least one pixel")
    pixels = arr.reshape(-1, arr.shape[-1])
    # Sums of uint8 in float64 are exact far beyond any real data set size.
    mean = pixels.mean(axis=0, dtype=np.float64)
    mean_sq = np.square(pixels, dtype=np.float64).mean(axis=0)
    std = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
    return (mean / 255.0).astype(np.float32), (std / 255.0).astype(np.float32)


def standardize_images(
    x_uint8: np.ndarray,
    mean: np.ndarray | float | None = None,
    std: np.ndarray | float | None = None,
) -> np.ndarray:
    """``float32`` images ``(x_uint8 / 255 - mean) / std``; without ``mean``/``std`` just ``x / 255``.

    ``mean`` and ``std`` are on the ``[0, 1]`` scale, scalars or one value
    per channel (last axis), e.g. from :func:`channel_stats` of the training
    split; give both or neither. The shape is unchanged. Raises
    ``ValueError`` naming the argument for a non-``uint8`` ``x_uint8``, only
    one of ``mean``/``std``, a shape that does not broadcast over the
    channels, or a ``std`` entry that is not ``> 0`` and finite.
    """
    arr = _check_uint8("x_uint8", x_uint8)
    scaled = arr.astype(np.float32) / np.float32(255.0)
    if mean is None and std is None:
        return scaled
    if mean is None or std is None:
        raise ValueError("mean and std must be given together (or neither)")
    channels = arr.shape[-1]
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    for name, value in (("mean", mean_arr), ("std", std_arr)):
        if value.shape not in ((), (channels,)):
            raise ValueError(f"{name} must be a scalar or one value per channel ({channels},), got {value.shape}")
    if not np.all(np.isfinite(mean_arr)):
        raise ValueError(f"mean must be finite, got {mean!r}")
    if not np.all(np.isfinite(std_arr) & (std_arr > 0)):
        raise ValueError(f"std must be > 0 and finite, got {std!r}")
    scaled -= mean_arr
    scaled /= std_arr
    return scaled
