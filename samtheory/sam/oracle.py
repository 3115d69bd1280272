"""The SAM gradient oracle: the one place where a SAM direction is differentiated.

The plain n-SAM step (Foret et al. 2021, eq. 3) is three lines::

    g = ∇L(w)                               # gradient
    ε = ρ g / ‖g‖₂                          # dual-norm ascent
    D = ∇L(w + ε), with w + ε held fixed    # gradient at the stopped perturbed point

:func:`n_sam_gradient` is exactly that. Every other variant generalizes one
of its lines, and :func:`gradient` runs them all:

* **the ascent** is the variant's ``ascent(g, w, key)`` (ℓ_p dual norm,
  USAM's ``ρ g``, ASAM's rescaling, RandomSAM's draw, which needs no ``g``),
  repeated ``ascent_steps`` times with ``continue_ascent``;
* **the batch** is cut into ``n/m`` contiguous chunks, each with its own
  ``ε_C`` (and its own key), processed with ``jax.vmap``; the direction is
  the mean ``(m/n) Σ_C ∇L_C(w + ε_C)`` ([m]);
* **the derivative** is the total ``d/dw L_C(w + ε_C(w))`` instead of the
  partial one when ``second_order=True`` (Foret et al. §2, App. C.4);
* **ERM** (``perturbs=False``) skips the ascent: ``D = ∇L(w)``.

:func:`step` is the same computation for callers that also want what the
clean pass at ``w`` yields (the loss, and auxiliary outputs such as
BatchNorm statistics): the network step of :mod:`samtheory.nn` calls it.
Chunks are vmapped, so 1-SAM costs two per-example gradient passes, the
same as n-SAM's two full-batch passes.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from samtheory.batching import batch_size, split_into_chunks
from samtheory.sam.perturbation import dual_norm_perturbation
from samtheory.sam.variants import Variant

__all__ = ["n_sam_gradient", "gradient", "chunk_perturbation", "perturbations", "step", "Step"]


def n_sam_gradient(loss_fn: Callable, params, batch, rho):
    """The plain n-SAM direction ``∇L(w + ρ ∇L(w)/‖∇L(w)‖₂)``, the partial derivative at the stopped point.

    Equal to ``gradient(SAM(rho), loss_fn, params, batch)``.
    Conventions: [loss-mean], [rho-sam].
    """
    g = jax.grad(loss_fn)(params, batch)
    eps = dual_norm_perturbation(g, rho)
    return jax.grad(loss_fn)(jax.lax.stop_gradient(jax.tree.map(jnp.add, params, eps)), batch)


def _ascend(variant, loss_fn, params, chunk, key, g):
    """``ε`` of one chunk; ``g`` is ``∇L_C(params)`` or ``None`` (computed here if the variant reads it)."""
    if g is None and variant.needs_gradient:
        g = jax.grad(loss_fn)(params, chunk)
    eps = variant.ascent(g, params, key)
    if variant.ascent_steps == 1:
        return eps
    grad_fn = jax.grad(loss_fn)
    return jax.lax.fori_loop(
        0,
        variant.ascent_steps - 1,
        lambda _, e: variant.continue_ascent(e, grad_fn(jax.tree.map(jnp.add, params, e), chunk), params),
        eps,
    )


def chunk_perturbation(variant: Variant, loss_fn: Callable, params, chunk, key=None):
    """The perturbation ``ε_C`` that ``variant`` evaluates the gradient of ``chunk`` at (one chunk, no split).

    Conventions: [loss-mean], [rho-sam], [normalize], [rng].
    """
    if not variant.perturbs:
        raise ValueError(f"variant {variant!r} has no perturbation")
    return _ascend(variant, loss_fn, params, chunk, key, None)


def _chunk_direction(variant, value_fn, params, chunk, key, clean_grad, want_value):
    """Direction of one chunk, and ``(loss, aux)`` at ``params`` if ``want_value``.

    ``value_fn(params, chunk) -> (loss, aux)``. The clean pass that gives the
    ascent gradient also gives the value; a variant that reads no gradient
    (RandomSAM) pays a forward pass for the value, and only if it is wanted.
    """
    loss_fn = lambda p, c: value_fn(p, c)[0]  # noqa: E731
    if not variant.perturbs:
        if want_value:
            value, g = jax.value_and_grad(value_fn, has_aux=True)(params, chunk)
            return g, value
        return jax.grad(loss_fn)(params, chunk), None
    value = None
    if variant.second_order:
        def sharpness_aware_loss(w):
            return loss_fn(jax.tree.map(jnp.add, w, _ascend(variant, loss_fn, w, chunk, key, None)), chunk)

        if want_value:
            value = value_fn(params, chunk)
        return jax.grad(sharpness_aware_loss)(params), value
    g = clean_grad
    if g is None and variant.needs_gradient:
        if want_value:
            value, g = jax.value_and_grad(value_fn, has_aux=True)(params, chunk)
        else:
            g = jax.grad(loss_fn)(params, chunk)
    elif want_value:
        value = value_fn(params, chunk)
    eps = _ascend(variant, loss_fn, params, chunk, key, g)
    perturbed = jax.lax.stop_gradient(jax.tree.map(jnp.add, params, eps))
    return jax.grad(loss_fn)(perturbed, chunk), value


class Step(NamedTuple):
    """What :func:`step` returns.

    Attributes:
      direction: the update direction, a pytree like the parameters.
      loss: ``(num_chunks,)`` losses of the chunks at the clean point ``w``.
      aux: the auxiliary output of ``loss_fn`` at ``w``, per chunk (leading
        axis ``num_chunks``; ``None`` without ``has_aux``).

    n-SAM and ERM have one chunk.
    """

    direction: Any
    loss: jax.Array
    aux: Any


def _over_chunks(variant, batch, key, fn, constrain_chunks=None):
    """``fn(chunk, key)`` on each of the ``n/m`` contiguous chunks (stacked), and whether the batch was cut.

    The batch is cut only when ``m < n`` (else ``fn(batch, key)``, unstacked);
    each chunk gets its own key split from ``key`` if the variant draws.
    """
    if variant.needs_key and key is None:
        raise ValueError(f"key is required by {type(variant).__name__}")
    n = batch_size(batch)
    m = variant.m
    if m is None or m == n:
        return fn(batch, key, True), False
    chunks = split_into_chunks(batch, m)
    if constrain_chunks is not None:
        chunks = constrain_chunks(chunks)
    keys = jax.random.split(key, n // m) if variant.needs_key else None
    return jax.vmap(lambda c, k: fn(c, k, False), in_axes=(0, 0 if keys is not None else None))(chunks, keys), True


def _run(variant, value_fn, params, batch, key, clean_grad, want_value, constrain_chunks):
    if not variant.perturbs:
        return _chunk_direction(variant, value_fn, params, batch, key, None, want_value), False

    def one(chunk, k, whole_batch):
        # The caller's clean gradient is that of the whole batch: usable only when it is one chunk.
        return _chunk_direction(variant, value_fn, params, chunk, k, clean_grad if whole_batch else None, want_value)

    (direction, value), chunked = _over_chunks(variant, batch, key, one, constrain_chunks)
    if chunked:
        direction = jax.tree.map(lambda g: jnp.mean(g, axis=0), direction)
    return (direction, value), chunked


def perturbations(variant: Variant, loss_fn: Callable, params, batch, key=None):
    """The perturbations ``ε_C`` of every chunk, stacked (leading axis ``n/m``; 1 for n-SAM).

    For inspection and tests: the same chunks and keys as :func:`gradient`.
    Conventions: [rho-sam], [m], [rng].
    """
    if not variant.perturbs:
        raise ValueError(f"variant {variant!r} has no perturbation")
    eps, chunked = _over_chunks(variant, batch, key, lambda c, k, _: _ascend(variant, loss_fn, params, c, k, None))
    return eps if chunked else jax.tree.map(lambda x: jnp.expand_dims(x, 0), eps)


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
      A pytree like ``params``: ERM's ``∇L_B(w)``; otherwise
      ``(m/n) Σ_C ∇L_C(w + ε_C(w))`` over the ``n/m`` contiguous chunks
      (the partial derivative at the perturbed point, or the total one with
      ``second_order=True``).

    Raises:
      ValueError: ``m`` does not divide ``n``; inconsistent batch; missing key.

    Works under ``jit``, under ``vmap`` over ``rho`` (a traced ``rho`` inside
    the variant) and over keys. Returns no NaN when ``∇L = 0``.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    value_fn = lambda p, c: (loss_fn(p, c), None)  # noqa: E731
    (direction, _), _ = _run(variant, value_fn, params, batch, key, clean_grad, False, None)
    return direction


def step(
    variant: Variant,
    loss_fn: Callable,
    params,
    batch,
    key: jax.Array | None = None,
    *,
    has_aux: bool = False,
    constrain_chunks: Callable[[Any], Any] | None = None,
) -> Step:
    """:func:`gradient`, plus the loss (and ``loss_fn``'s auxiliary output) at the clean point, per chunk.

    With ``has_aux``, ``loss_fn(params, batch) -> (loss, aux)`` (as in
    ``jax.grad``); the auxiliary output of the clean pass at ``w`` is
    returned, that of the pass at ``w + ε`` is dropped (so BatchNorm running
    statistics never see perturbed weights). ``constrain_chunks`` is applied
    to the chunked batch (leading axis ``n/m``), e.g. to pin it to devices.
    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    value_fn = loss_fn if has_aux else (lambda p, c: (loss_fn(p, c), None))
    (direction, (loss, aux)), chunked = _run(variant, value_fn, params, batch, key, None, True, constrain_chunks)
    if not chunked:  # one chunk: give it its leading axis
        loss, aux = jax.tree.map(lambda x: jnp.expand_dims(x, 0), (loss, aux))
    return Step(direction, loss, aux)
