"""Hutchinson's estimator of the Hessian trace, with a standard-error stopping rule.

For a probe ``z`` with independent Rademacher (±1) entries,
``E[zᵀ H z] = Tr(H)`` and ``Var[zᵀ H z] = 2 (‖H‖_F² − Σ_i H_ii²)``
(Hutchinson 1990, who showed that among probes with i.i.d. zero-mean,
unit-variance entries the Rademacher probe has the smallest variance; Avron &
Toledo 2011 give probe-count bounds). The estimate is the mean of
``n`` probes, its standard error ``s/√n`` with ``s`` the sample standard
deviation.

Probes come in batches of ``probes_per_batch``, evaluated together with
``jax.vmap``; a ``lax.while_loop`` adds batches until

    SE ≤ max(rel_tol · |estimate|, abs_tol)   (after at least ``min_probes``)

or ``max_probes`` is reached. Batch ``b`` uses ``fold_in(key, b)``, so a run
that stops later extends, probe for probe, the one that stopped earlier. The
running mean and sum of squared deviations are merged batch by batch with
the pairwise update of Chan, Golub & LeVeque (1979), which avoids the
cancellation of the textbook ``Σx² − n x̄²``.

The stopping rule uses the estimated SE, which is itself random: a rule that
stops when the SE *looks* small is biased toward stopping on an
underestimate. ``min_probes`` (default 32) keeps that effect small.

Conventions: [loss-mean], [rng], [float].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.monte_carlo import MonteCarloEstimate
from samtheory.sharpness.hessian import hvp

__all__ = ["hutchinson_trace"]


def hutchinson_trace(
    loss_fn: Callable,
    params,
    batch,
    *,
    key: jax.Array,
    rel_tol: float = 1e-2,
    abs_tol: float = 0.0,
    probes_per_batch: int = 16,
    min_probes: int = 32,
    max_probes: int = 1024,
) -> MonteCarloEstimate:
    """``Tr ∇²L(params)`` by Hutchinson's estimator with Rademacher probes.

    Args:
      loss_fn, params, batch: the mean loss ([loss-mean]) and where to evaluate it.
      key: PRNG key for the probes.
      rel_tol, abs_tol: stop once ``SE ≤ max(rel_tol·|estimate|, abs_tol)``.
        ``rel_tol = abs_tol = 0`` runs exactly ``max_probes`` probes (unless the
        samples have zero spread, as for a diagonal ``H``, where one batch
        already gives the exact trace).
      probes_per_batch: probes evaluated together per ``vmap`` (≥ 2).
      min_probes, max_probes: bounds on the probe count; multiples of
        ``probes_per_batch`` with ``min_probes ≤ max_probes``.

    Returns:
      :class:`samtheory.monte_carlo.MonteCarloEstimate` ``(estimate, standard_error, num_samples)``, ``num_samples`` counting the probes used (a multiple of ``probes_per_batch``).

    Conventions: [loss-mean], [rng], [float].
    """
    per_batch = check_positive_int("probes_per_batch", probes_per_batch)
    min_probes = check_positive_int("min_probes", min_probes)
    max_probes = check_positive_int("max_probes", max_probes)
    check_nonnegative("rel_tol", rel_tol)
    check_nonnegative("abs_tol", abs_tol)
    if per_batch < 2:
        raise ValueError("probes_per_batch must be >= 2 (a standard error needs two samples)")
    if min_probes % per_batch or max_probes % per_batch:
        raise ValueError(
            f"min_probes={min_probes} and max_probes={max_probes} must be multiples of "
            f"probes_per_batch={per_batch}"
        )
    if min_probes > max_probes:
        raise ValueError(f"min_probes={min_probes} exceeds max_probes={max_probes}")

    flat, unravel = ravel_pytree(params)
    dtype = flat.dtype

    def quadratic_form(z_flat):
        z = unravel(z_flat)
        return optax.tree.vdot(z, hvp(loss_fn, params, batch, z))

    def batch_stats(b):
        # The whole batch of probes in one draw over the raveled pytree.
        probes = jax.random.rademacher(jax.random.fold_in(key, b), (per_batch,) + flat.shape, dtype)
        samples = jax.vmap(quadratic_form)(probes)
        mean = jnp.mean(samples)
        return mean, jnp.sum((samples - mean) ** 2)

    def standard_error(count, m2):
        return jnp.sqrt(m2 / ((count - 1) * count))

    def keep_going(state):
        b, count, mean, m2 = state
        se = standard_error(jnp.maximum(count, 2.0), m2)
        converged = se <= jnp.maximum(rel_tol * jnp.abs(mean), abs_tol)
        return (count < max_probes) & ((count < min_probes) | ~converged)

    def add_batch(state):
        b, count, mean, m2 = state
        batch_mean, batch_m2 = batch_stats(b)
        total = count + per_batch
        delta = batch_mean - mean
        mean = mean + delta * (per_batch / total)
        m2 = m2 + batch_m2 + delta**2 * (count * per_batch / total)
        return b + 1, total, mean, m2

    zero = jnp.zeros((), dtype)
    init = (jnp.zeros((), jnp.int32), zero, zero, zero)
    _, count, mean, m2 = jax.lax.while_loop(keep_going, add_batch, init)
    return MonteCarloEstimate(mean, standard_error(count, m2), count.astype(jnp.int32))
