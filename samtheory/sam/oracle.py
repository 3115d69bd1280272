"""The SAM gradient oracle: one function for every variant.

``gradient(variant, loss_fn, params, batch, key)`` returns

* ERM: ``∇L_B(w)``;
* every perturbing variant with chunk size ``m`` (``m=None`` meaning the
  whole batch):  ``(m/n) Σ_C ∇L_C(w + ε_C(w))``, the chunks ``C`` being
  the ``n/m`` contiguous blocks of the batch. The gradient is the partial
  derivative at the perturbed point (Foret et al. eq. 3), or the total
  derivative ``d/dw L_C(w + ε_C(w))`` when the variant has
  ``second_order=True``.

Chunks are processed with ``jax.vmap``, so 1-SAM costs two per-example
gradient passes, the same as n-SAM's two full-batch passes.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from samtheory.sam.variants import ERM, Variant

__all__ = ["gradient", "batch_size", "split_into_chunks"]


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


def _chunk_gradient(variant, loss_fn, params, chunk, key, clean_grad=None):
    if variant.second_order:
        def sharpness_aware_loss(w):
            eps = variant.perturbation(loss_fn, w, chunk, key)
            return loss_fn(jax.tree.map(jnp.add, w, eps), chunk)

        return jax.grad(sharpness_aware_loss)(params)
    eps = variant.perturbation(loss_fn, params, chunk, key, clean_grad)
    perturbed = jax.lax.stop_gradient(jax.tree.map(jnp.add, params, eps))
    return jax.grad(loss_fn)(perturbed, chunk)


def gradient(
    variant: Variant,
    loss_fn: Callable,
    params,
    batch,
    key: jax.Array | None = None,
    *,
    clean_grad=None,
):
    """The update direction of ``variant`` at ``params`` on ``batch``.

    Args:
      variant: ``ERM()``, ``SAM(...)``, ``RandomSAM(...)`` or ``ASAM(...)``.
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean over the
        leading axis of every leaf of ``batch`` ([loss-mean]).
      params: parameter pytree.
      batch: pytree of arrays with a common leading example axis ``n``.
      key: PRNG key; required by ``RandomSAM``, ignored otherwise. Each chunk
        uses its own key split from it.
      clean_grad: optional ``∇L_B(params)`` already computed by the caller. It
        is used for the first ascent step of an n-SAM variant (``m=None``)
        without the second-order term, saving one gradient pass. Ignored
        otherwise.

    Returns:
      A pytree like ``params``.

    Raises:
      ValueError: ``m`` does not divide ``n``; inconsistent batch; missing key.

    Works under ``jit``, under ``vmap`` over ``rho`` (a traced ``rho`` inside
    the variant) and over keys. Returns no NaN when ``∇L = 0``.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    if isinstance(variant, ERM):
        return jax.grad(loss_fn)(params, batch)
    if variant.needs_key and key is None:
        raise ValueError(f"key is required by {type(variant).__name__}")
    n = batch_size(batch)
    m = variant.m
    if m is None or m == n:
        return _chunk_gradient(variant, loss_fn, params, batch, key, clean_grad)
    chunks = split_into_chunks(batch, m)
    num_chunks = n // m
    keys = jax.random.split(key, num_chunks) if variant.needs_key else None
    per_chunk = jax.vmap(
        lambda chunk, k: _chunk_gradient(variant, loss_fn, params, chunk, k),
        in_axes=(0, 0 if keys is not None else None),
    )(chunks, keys)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_chunk)
