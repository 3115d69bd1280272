"""On-device data augmentation: zero-padded random crops and horizontal flips.

The standard CIFAR recipe, done in JAX on ``uint8`` NHWC batches before
normalization: each image is padded with ``pad`` black (zero) pixels on
every side, a window of the original size is cut at a uniformly random
offset, and the result is mirrored left-right with probability 1/2. Zero
padding of the raw image is what torchvision's ``RandomCrop(32, padding=4)``
does, so the two pipelines see the same images.

The random numbers of a whole batch are drawn from one key, which the
trainer derives from the step index (``fold_in(augment_key, step)``): the
augmentation of a step does not depend on how steps are grouped into
compiled segments, on resuming, or on how the batch is sharded.

Conventions: [rng].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["random_crop_flip", "normalize_images"]


def _crop(image: jax.Array, offset: jax.Array, height: int, width: int) -> jax.Array:
    zero = jnp.zeros((), offset.dtype)  # all start indices must share a dtype, also under x64
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], zero), (height, width, image.shape[-1]))


def random_crop_flip(key: jax.Array, images: jax.Array, *, pad: int = 4, flip: bool = True) -> jax.Array:
    """Random ``pad``-pixel zero-padded crops (and flips if ``flip``) of an NHWC batch.

    ``pad=0`` and ``flip=False`` return ``images`` unchanged. Works on any
    dtype; the trainer calls it on ``uint8``. Conventions: [rng].
    """
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be an integer >= 0, got {pad!r}")
    if images.ndim != 4:
        raise ValueError(f"images must be an NHWC batch, got shape {images.shape}")
    n, height, width, _ = images.shape
    crop_key, flip_key = jax.random.split(key)
    if pad:
        offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * pad + 1, dtype=jnp.int32)
        padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        images = jax.vmap(_crop, in_axes=(0, 0, None, None))(padded, offsets, height, width)
    if flip:
        mirror = jax.random.bernoulli(flip_key, 0.5, (n,))
        images = jnp.where(mirror[:, None, None, None], images[:, :, ::-1, :], images)
    return images


def normalize_images(images: jax.Array, mean: jax.Array | np.ndarray, std: jax.Array | np.ndarray) -> jax.Array:
    """``(images / 255 - mean) / std`` in float32, per channel (``mean``, ``std`` on the [0, 1] scale)."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (images.astype(jnp.float32) / jnp.float32(255) - mean) / std
