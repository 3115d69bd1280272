"""Batches: the example axis every data pytree shares, and its split into contiguous chunks.

A batch (or a whole data set) is a pytree whose leaves share a leading
example axis ([loss-mean]); m-SAM, m-sharpness and the Monte Carlo bounds
cut it into ``n/m`` contiguous chunks of ``m`` examples ([m]).

Conventions: [loss-mean], [m].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["batch_size", "split_into_chunks"]


def batch_size(batch) -> int:
    """The common leading (example) axis length of every leaf of ``batch``. Conventions: [loss-mean]."""
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError("batch must contain at least one array")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if None in sizes:
        raise ValueError("batch leaves must have a leading example axis; found a scalar leaf")
    if len(sizes) != 1:
        raise ValueError(f"batch leaves disagree on the number of examples: {sorted(sizes)}")
    return sizes.pop()


def split_into_chunks(batch, m: int):
    """Reshape every leaf from ``(n, ...)`` to ``(n/m, m, ...)``: contiguous chunks. Conventions: [m]."""
    n = batch_size(batch)
    if n % m:
        raise ValueError(f"m must divide the batch size: m={m}, batch size n={n}")
    return jax.tree.map(lambda x: jnp.reshape(x, (n // m, m) + jnp.shape(x)[1:]), batch)
