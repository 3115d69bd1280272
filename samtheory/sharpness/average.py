"""Average-case sharpness: ``E_δ[L(w + δ)] − L(w)`` for random ``δ``, by Monte Carlo.

Two noise models:

* ``"sphere"``: ``δ`` uniform on the ℓ₂ sphere of radius ``ρ`` (the average-
  direction loss of Wen, Ma & Li 2023 minus ``L``). At a point with Hessian
  ``H`` in dimension ``D`` it is ``ρ² Tr(H)/(2D) + O(ρ⁴)``.
* ``"gaussian"``: ``δ ~ N(0, σ² I)`` (the expected sharpness of the PAC-Bayes
  literature, e.g. Neyshabur et al. 2017, "Exploring generalization in deep
  learning"). It is ``σ² Tr(H)/2 + O(σ⁴)``.

The odd Taylor terms have zero mean under both models. With
``antithetic=True`` each draw is used as the pair ``±δ``; the pair mean cancels
the odd terms draw by draw, removing the ``O(scale)`` gradient term from the
variance (for a quadratic loss the remaining noise comes from ``δᵀHδ`` only).
The pair means are i.i.d., so the standard error is computed over pairs.

Conventions: [loss-mean], [rho-sam], [rng], [float].
"""

from __future__ import annotations

from typing import Callable, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.monte_carlo import MonteCarloEstimate
from samtheory.sam.objectives import average_direction_samples

__all__ = ["average_sharpness"]


def _gaussian_samples(loss_fn, params, batch, sigma, key, num_samples, antithetic):
    """``L(w ± σ z)`` for ``z ~ N(0, I)``, pairs adjacent, as in ``average_direction_samples``."""
    flat, unravel = ravel_pytree(params)
    draws = num_samples // 2 if antithetic else num_samples

    def values(z):
        delta = unravel(sigma * z)
        plus = loss_fn(jax.tree.map(jnp.add, params, delta), batch)
        if not antithetic:
            return plus[None]
        minus = loss_fn(jax.tree.map(jnp.subtract, params, delta), batch)
        return jnp.stack([plus, minus])

    # Every draw at once, over the raveled pytree: one random call to compile.
    return jax.vmap(values)(jax.random.normal(key, (draws,) + flat.shape, flat.dtype)).reshape(-1)


def average_sharpness(
    loss_fn: Callable,
    params,
    batch,
    scale,
    *,
    key: jax.Array,
    distribution: Literal["sphere", "gaussian"] = "sphere",
    num_samples: int = 256,
    antithetic: bool = True,
) -> MonteCarloEstimate:
    """Monte Carlo estimate of ``E_δ[L(params + δ)] − L(params)`` with its standard error.

    Args:
      loss_fn, params, batch: mean loss and where to evaluate it.
      scale: ``ρ``, the sphere's radius ([rho-sam]), for ``"sphere"``; ``σ``,
        the per-coordinate standard deviation, for ``"gaussian"``.
      key: PRNG key. For ``"sphere"`` the samples are exactly those of
        :func:`samtheory.sam.objectives.average_direction_samples` with the
        same key.
      distribution: ``"sphere"`` or ``"gaussian"``.
      num_samples: loss evaluations (even with ``antithetic``).
      antithetic: use each draw as ``±δ``.

    Returns:
      :class:`MonteCarloEstimate`; ``L(params)`` is subtracted exactly, so the
      standard error is that of the mean of the perturbed losses.

    Conventions: [loss-mean], [rho-sam], [rng], [float].
    """
    check_nonnegative("scale", scale)
    num_samples = check_positive_int("num_samples", num_samples)
    if antithetic and num_samples % 2:
        raise ValueError(f"num_samples must be even with antithetic=True, got {num_samples}")
    if (num_samples // 2 if antithetic else num_samples) < 2:
        raise ValueError("need at least two independent draws for a standard error")
    if distribution == "sphere":
        samples = average_direction_samples(
            loss_fn, params, batch, scale, key=key, num_samples=num_samples, antithetic=antithetic
        )
    elif distribution == "gaussian":
        samples = _gaussian_samples(loss_fn, params, batch, scale, key, num_samples, antithetic)
    else:
        raise ValueError(f"distribution must be 'sphere' or 'gaussian', got {distribution!r}")
    # Independent units: the pair means under antithetic sampling, else single samples.
    units = samples.reshape(-1, 2).mean(axis=1) if antithetic else samples
    estimate = jnp.mean(units) - loss_fn(params, batch)
    standard_error = jnp.std(units, ddof=1) / jnp.sqrt(units.shape[0])
    return MonteCarloEstimate(estimate, standard_error, num_samples)
