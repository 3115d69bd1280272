"""``KL(Q‖P)`` between Gaussian posteriors and priors over a parameter pytree.

For ``Q = N(μ_Q, diag s_Q)`` and ``P = N(μ_P, diag s_P)`` in ``k`` dimensions,

    KL(Q‖P) = ½ Σ_i [ s_Q,i/s_P,i − 1 − ln(s_Q,i/s_P,i) + (μ_Q,i − μ_P,i)²/s_P,i ].

The first three terms are ``e^u − 1 − u ≥ 0`` with ``u = ln s_Q − ln s_P``,
evaluated as ``expm1(u) − u``, so the variances enter through their logs: a
prior variance like Foret et al.'s ``c = ρ²(1 + e^{4n/k})`` (which overflows
for small ``k``) and the tiny variances of trained posteriors cause no
overflow, and ``s_Q ≈ s_P`` no cancellation beyond ``eps·|u|``. With
``s_Q = σ_Q²``, ``s_P = σ_P²`` isotropic this is Foret et al. App. A eq. 6
(which is labelled ``KL(P‖Q)`` there but is ``KL(Q‖P)``; see docs/bounds.md).

Conventions: [bounds], [float].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from samtheory.bounds._checks import check_nonnegative, is_scalar

__all__ = ["isotropic_gaussian_kl", "diagonal_gaussian_kl"]


def _variance_gap(u):
    return jnp.expm1(u) - u


def isotropic_gaussian_kl(
    num_params, squared_distance, posterior_log_variance, prior_log_variance
) -> jax.Array:
    """``KL(N(μ_Q, σ_Q² I_k) ‖ N(μ_P, σ_P² I_k))`` from scalars (Foret et al. eq. 6).

    ``½[k(σ_Q²/σ_P² − 1 − ln(σ_Q²/σ_P²)) + ‖μ_Q − μ_P‖²/σ_P²]``.

    Args:
      num_params: ``k``, the dimension.
      squared_distance: ``‖μ_Q − μ_P‖₂²``.
      posterior_log_variance: ``ln σ_Q²``.
      prior_log_variance: ``ln σ_P²``.

    Returns:
      The KL in nats, elementwise with broadcasting.

    Conventions: [bounds], [float].
    """
    num_params = check_nonnegative("num_params", num_params)
    squared_distance = check_nonnegative("squared_distance", squared_distance)
    u = posterior_log_variance - prior_log_variance
    return 0.5 * (num_params * _variance_gap(u) + squared_distance * jnp.exp(-prior_log_variance))


def _like(tree_or_scalar, reference, name):
    """``tree_or_scalar`` as a pytree shaped like ``reference`` (a scalar is broadcast)."""
    if is_scalar(tree_or_scalar):
        return jax.tree.map(lambda _: tree_or_scalar, reference)
    if jax.tree.structure(tree_or_scalar) == jax.tree.structure(reference):
        return tree_or_scalar
    raise ValueError(f"{name} must be a scalar or a pytree with the structure of the posterior mean")


def diagonal_gaussian_kl(
    posterior_mean, posterior_log_variance, prior_mean, prior_log_variance
) -> jax.Array:
    """``KL(N(μ_Q, diag s_Q) ‖ N(μ_P, diag s_P))`` summed over every leaf of a parameter pytree.

    Args:
      posterior_mean: ``μ_Q``, a pytree of arrays.
      posterior_log_variance: ``ln s_Q``: a pytree like ``posterior_mean`` or a scalar.
      prior_mean: ``μ_P``: a pytree like ``posterior_mean`` (e.g. the random
        initialization) or a scalar (``0`` for Foret et al.'s prior).
      prior_log_variance: ``ln s_P``: a pytree like ``posterior_mean`` or a
        scalar (Dziugaite & Roy's ``ln λ``).

    Returns:
      The KL in nats, a scalar.

    Raises:
      ValueError: a non-scalar argument whose structure differs from ``posterior_mean``.

    Conventions: [bounds], [float].
    """
    log_s_q = _like(posterior_log_variance, posterior_mean, "posterior_log_variance")
    mu_p = _like(prior_mean, posterior_mean, "prior_mean")
    log_s_p = _like(prior_log_variance, posterior_mean, "prior_log_variance")

    def leaf(mu_q, lq, mp, lp):
        u = lq - lp
        return 0.5 * jnp.sum(_variance_gap(u) + (mu_q - mp) ** 2 * jnp.exp(-lp))

    terms = jax.tree.map(leaf, posterior_mean, log_s_q, mu_p, log_s_p)
    return sum(jax.tree.leaves(terms))
