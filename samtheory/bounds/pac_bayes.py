"""PAC-Bayes bounds for losses in ``[0, 1]``: the kl form, the square-root form, and grid union bounds.

Fix a prior ``P`` before seeing the training set ``S`` of ``n`` i.i.d.
examples. For every posterior ``Q`` simultaneously, with ``ê = E_Q L_S`` and
``e = E_Q L_D``:

* **kl form** (Seeger 2002, with Maurer's 2004 constant, valid for ``n ≥ 8``):
  with probability ``≥ 1 − δ``,

      kl(ê‖e) ≤ (KL(Q‖P) + ln(2√n/δ))/n,   hence   e ≤ kl⁻¹(ê, (KL + ln(2√n/δ))/n).

* **square-root form** (McAllester 1999, as used by Dziugaite & Roy 2017 and
  by Foret et al. 2021, App. A eq. 5): ``e ≤ ê + √((KL + ln(n/δ))/(2(n − 1)))``.
  It follows from the Langford–Seeger kl form ``kl(ê‖e) ≤ (KL + ln(n/δ))/(n − 1)``
  by Pinsker's inequality ``kl(q‖p) ≥ 2(p − q)²``; the kl form is tighter.

**Grids of priors.** If prior ``P_j`` is used with confidence
``δ_j = 6δ/(π² j²)``, ``j = 1, 2, …`` (``Σ_j δ_j = δ``), all the bounds hold
together with probability ``≥ 1 − δ``, so ``j`` may be chosen after seeing
``S``. The price is ``ln(1/δ_j) − ln(1/δ) = ln(π² j²/6)``
(:func:`grid_union_cost`), added to the numerator.

Conventions: [bounds].
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from samtheory.bounds._checks import check_at_least, check_nonnegative, check_open_probability, check_probability
from samtheory.bounds.kl import kl_inverse

__all__ = ["grid_union_cost", "pac_bayes_kl_budget", "pac_bayes_kl_bound", "mcallester_bound"]


def grid_union_cost(grid_index) -> jax.Array:
    """``ln(π² j²/6) = ln(1/δ_j) − ln(1/δ)`` for prior ``j ≥ 1`` of a grid with ``δ_j = 6δ/(π² j²)``.

    Conventions: [bounds].
    """
    grid_index = check_at_least("grid_index", grid_index, 1)
    j = jnp.asarray(grid_index, jnp.result_type(grid_index, float))
    return 2.0 * jnp.log(j) + math.log(math.pi**2 / 6)


def pac_bayes_kl_budget(kl_divergence, n, delta, log_union_cost=0.0) -> jax.Array:
    """``(KL(Q‖P) + ln(2√n/δ) + log_union_cost)/n``: the right-hand side of the kl-form bound.

    Args:
      kl_divergence: ``KL(Q‖P) ≥ 0``.
      n: the number of training examples, ``≥ 8`` (Maurer's constant).
      delta: ``δ ∈ (0, 1)``.
      log_union_cost: extra confidence cost, e.g. :func:`grid_union_cost`.

    Conventions: [bounds].
    """
    kl_divergence = check_nonnegative("kl_divergence", kl_divergence)
    n = check_at_least("n", n, 8)
    delta = check_open_probability("delta", delta)
    log_union_cost = check_nonnegative("log_union_cost", log_union_cost)
    n = jnp.asarray(n, jnp.result_type(kl_divergence, n, float))
    return (kl_divergence + jnp.log(2 * jnp.sqrt(n) / delta) + log_union_cost) / n


def pac_bayes_kl_bound(empirical, kl_divergence, n, delta, log_union_cost=0.0) -> jax.Array:
    """``kl⁻¹(ê, (KL + ln(2√n/δ) + log_union_cost)/n)``: the kl-form PAC-Bayes bound on ``E_Q L_D``.

    ``empirical`` may itself be an upper bound on ``ê`` (e.g. the Monte Carlo
    bound of :mod:`samtheory.bounds.monte_carlo`): ``kl⁻¹`` is increasing in
    its first argument, so the result stays an upper bound, and the failure
    probabilities add.

    Args:
      empirical: ``ê = E_Q L_S`` (or an upper bound on it), in ``[0, 1]``.
      kl_divergence, n, delta, log_union_cost: see :func:`pac_bayes_kl_budget`.

    Conventions: [bounds].
    """
    empirical = check_probability("empirical", empirical)
    return kl_inverse(empirical, pac_bayes_kl_budget(kl_divergence, n, delta, log_union_cost))


def mcallester_bound(empirical, kl_divergence, n, delta, log_union_cost=0.0) -> jax.Array:
    """``ê + √((KL + ln(n/δ) + log_union_cost)/(2(n − 1)))``: Foret et al. App. A eq. 5.

    Not clipped at 1: a value above 1 is vacuous, and it is left visible.

    Args:
      empirical: ``ê`` (or an upper bound on it), in ``[0, 1]``.
      kl_divergence: ``KL(Q‖P) ≥ 0``.
      n: the number of training examples, ``≥ 2``.
      delta: ``δ ∈ (0, 1)``.
      log_union_cost: extra confidence cost, e.g. :func:`grid_union_cost`.

    Conventions: [bounds].
    """
    empirical = check_probability("empirical", empirical)
    kl_divergence = check_nonnegative("kl_divergence", kl_divergence)
    n = check_at_least("n", n, 2)
    delta = check_open_probability("delta", delta)
    log_union_cost = check_nonnegative("log_union_cost", log_union_cost)
    n = jnp.asarray(n, jnp.result_type(empirical, kl_divergence, n, float))
    numerator = kl_divergence + jnp.log(n / delta) + log_union_cost
    return empirical + jnp.sqrt(numerator / (2 * (n - 1)))
