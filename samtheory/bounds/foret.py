"""Foret et al. (2021), Theorem 2 (eq. 4) and its PAC-Bayes form (App. A, eq. 13), evaluated.

Setting (App. A): ``k`` parameters, ``n`` training examples, a loss in
``[0, 1]`` (the proof needs it; the paper does not say so), posterior
``Q = N(w, σ²I)`` with ``σ = ρ/(√k + √ln n)`` (then ``‖ε‖₂ ≤ ρ`` with
probability ``≥ 1 − 1/√n`` for ``ε ~ N(0, σ²I)``), prior ``P = N(μ_P, σ_P²I)``
with ``σ_P²`` from the data-independent grid
``σ_P² = c·e^{(1−j)/k}``, ``c = ρ²(1 + e^{4n/k})``, ``j = 1, 2, …`` and
confidence ``δ_j = 6δ/(π² j²)`` for grid point ``j``.

**Prior mean.** The paper takes ``μ_P = 0``, so its bounds depend on
``‖w‖₂``. Any ``μ_P`` fixed before seeing the data is equally valid (the
PAC-Bayes theorem only needs ``P`` independent of ``S``), in particular the
random initialization ``w₀`` drawn from its own seed; the bound then depends
on ``‖w − w₀‖₂``, usually much smaller for a trained network. Every
function here takes ``weight_distance = ‖w − μ_P‖₂`` and is Foret's own
bound when it is ``‖w‖₂``.

Natural logarithms throughout. Four evaluations:

* :func:`foret_theorem2_bound`: eq. 4 as printed, its ``Õ(1)`` being the
  ``8 ln(6n + 3k)`` of the proof's last line, added to the worst-case loss
  ``max_{‖ε‖≤ρ} L_S(w + ε)``.
* :func:`foret_eq13_bound`: eq. 13 as printed, added to the Gaussian-averaged
  loss ``E_ε L_S(w + ε)``; it bounds ``E_ε L_D(w + ε)``.
* :func:`foret_kl_bound`: the same prior grid and posterior without the
  paper's relaxations: the grid point ``j`` is computed, the KL is exact,
  the union-bound cost is ``ln(π² j²/6)`` exactly, and the kl form of the
  PAC-Bayes bound replaces the square root. Valid for every input (no case
  analysis: any ``j ≥ 1`` gives a valid bound).
* :func:`foret_monte_carlo_bound`: :func:`foret_kl_bound` and eq. 13 with the
  Gaussian-averaged loss replaced by its certified Monte Carlo upper bound.

None of them clips at 1: a value above 1 is vacuous and stays visible.
docs/bounds.md lists what we found in the paper's algebra (the KL direction
of eqs. 6 and 9, the dropped constants) and the ResNet-18 numbers.

Conventions: [bounds], [rho-sam], [loss-mean], [rng], [float].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from samtheory.bounds._checks import (
    check_at_least,
    check_nonnegative,
    check_open_probability,
    check_positive,
    check_probability,
)
from samtheory.bounds.gaussian_kl import isotropic_gaussian_kl
from samtheory.bounds.monte_carlo import gaussian_loss_bound
from samtheory.bounds.pac_bayes import grid_union_cost, pac_bayes_kl_bound
from samtheory.batching import batch_size
from samtheory.monte_carlo import MonteCarloEstimate

__all__ = [
    "ForetBound",
    "ForetGridPrior",
    "ForetKlBound",
    "ForetMonteCarloBound",
    "foret_posterior_std",
    "foret_theorem2_bound",
    "foret_eq13_bound",
    "foret_grid_prior",
    "foret_kl_bound",
    "foret_monte_carlo_bound",
]


class ForetBound(NamedTuple):
    """A bound of the form ``loss term + complexity``, with the paper's case analysis.

    Attributes:
      bound: ``loss term + complexity`` (not clipped at 1).
      complexity: the square-root term.
      sigma: the posterior standard deviation ``ρ/(√k + √ln n)``.
      in_range: whether the input falls in the case the proof treats. When it
        is ``False`` the printed formula is still returned; it then exceeds
        1, so it is true but vacuous for a loss in ``[0, 1]`` (see each function).
        An invalid traced input gives ``bound = NaN`` and ``in_range = False``.
    """

    bound: jax.Array
    complexity: jax.Array
    sigma: jax.Array
    in_range: jax.Array


class ForetGridPrior(NamedTuple):
    """The prior of Foret et al.'s grid picked for a posterior ``N(w, σ²I)``.

    Attributes:
      grid_index: ``j = max(1, ⌊1 + k ln(c/(σ² + d²/k))⌋)``, as a float.
      log_prior_variance: ``ln σ_P² = ln c + (1 − j)/k``.
      log_grid_scale: ``ln c = 2 ln ρ + ln(1 + e^{4n/k})``.
      kl: the exact ``KL(Q‖P)``.
      log_union_cost: ``ln(π² j²/6)``.
    """

    grid_index: jax.Array
    log_prior_variance: jax.Array
    log_grid_scale: jax.Array
    kl: jax.Array
    log_union_cost: jax.Array


class ForetKlBound(NamedTuple):
    """Attributes: ``bound`` (``kl⁻¹`` of the loss term), ``grid`` (:class:`ForetGridPrior`), ``sigma``."""

    bound: jax.Array
    grid: ForetGridPrior
    sigma: jax.Array


class ForetMonteCarloBound(NamedTuple):
    """Foret et al.'s stochastic-predictor bounds with a Monte Carlo loss term.

    Both bounds hold for ``E_{ε~N(0,σ²I)} L_D(w + ε)`` with probability
    ``≥ 1 − δ − δ'`` (``δ`` for the PAC-Bayes step over the training set,
    ``δ'`` for the Monte Carlo draws). Under Foret et al.'s assumption
    ``L_D(w) ≤ E_ε L_D(w + ε)`` they also bound ``L_D(w)``.

    Attributes:
      kl_form: :func:`foret_kl_bound` at ``monte_carlo.certified_upper``.
      eq13: :func:`foret_eq13_bound` at ``monte_carlo.certified_upper``.
      monte_carlo: the certified :class:`~samtheory.monte_carlo.MonteCarloEstimate` of ``E_ε L_S(w + ε)``.
      grid: the :class:`ForetGridPrior` used by ``kl_form``.
      sigma, num_params, n, weight_distance, delta, delta_prime: the inputs.
    """

    kl_form: jax.Array
    eq13: ForetBound
    monte_carlo: MonteCarloEstimate
    grid: ForetGridPrior
    sigma: jax.Array
    num_params: int
    n: int
    weight_distance: jax.Array
    delta: float
    delta_prime: float


def _check_common(num_params, n, weight_distance, rho, delta=None, min_n=2):
    """The checked ``(num_params, n, weight_distance, rho, delta)`` (NaN where traced and invalid)."""
    return (
        check_at_least("num_params", num_params, 1),
        check_at_least("n", n, min_n),
        check_nonnegative("weight_distance", weight_distance),
        check_positive("rho", rho),
        None if delta is None else check_open_probability("delta", delta),
    )


def _valid_case(in_range, bound):
    # An invalid traced input made ``bound`` NaN (it depends on every input):
    # such an input is in no case of the proof.
    return in_range & ~jnp.isnan(bound)


def _floats(*values):
    dtype = jnp.result_type(*values, float)
    return tuple(jnp.asarray(v, dtype) for v in values)


def _checked_floats(loss_name, loss, num_params, n, weight_distance, rho, delta):
    """The checked inputs of a bound with a loss term, as floats ``(loss, k, n, d, ρ, δ)``."""
    loss = check_probability(loss_name, loss)
    num_params, n, weight_distance, rho, delta = _check_common(num_params, n, weight_distance, rho, delta)
    return _floats(loss, num_params, n, weight_distance, rho, delta)


def _sigma(rho, k, n):
    """``σ = ρ/(√k + √ln n)`` on checked floats (:func:`foret_posterior_std`)."""
    return rho / (jnp.sqrt(k) + jnp.sqrt(jnp.log(n)))


def foret_posterior_std(rho, num_params, n) -> jax.Array:
    """``σ = ρ/(√k + √ln n)``: the posterior scale of App. A.

    With it, ``σ²(√k + √ln n)² = ρ²`` bounds the Laurent–Massart tail
    ``σ²(k + 2√(k ln√n) + 2 ln√n)``, so ``P(‖ε‖₂ > ρ) ≤ 1/√n``.
    Conventions: [bounds], [rho-sam].
    """
    rho = check_positive("rho", rho)
    num_params = check_at_least("num_params", num_params, 1)
    n = check_at_least("n", n, 1)
    rho, k, n = _floats(rho, num_params, n)
    return _sigma(rho, k, n)


def _log_grid_scale(rho, k, n):
    # ln c = ln(ρ²(1 + e^{4n/k})), never forming e^{4n/k} (it overflows for k ≪ n).
    return 2 * jnp.log(rho) + jnp.logaddexp(0.0, 4 * n / k)


def foret_theorem2_bound(max_perturbed_loss, num_params, n, weight_distance, rho, delta) -> ForetBound:
    """Foret et al. eq. 4, with ``Õ(1) = 8 ln(6n + 3k)`` from the last line of the proof:

        L_D(w) ≤ max_{‖ε‖₂≤ρ} L_S(w + ε)
                 + √[(k ln(1 + (d²/ρ²)(1 + √(ln n/k))²) + 4 ln(n/δ) + 8 ln(6n + 3k)) / (n − 1)]

    with ``d = weight_distance``. It holds with probability ``≥ 1 − δ`` under
    the paper's assumption ``L_D(w) ≤ E_{ε~N(0,σ²I)} L_D(w + ε)``.

    Case analysis: the proof treats ``d² ≤ ρ²(e^{4n/k} − 1)`` (``in_range``).
    Outside it the complexity term exceeds ``√(k ln(1 + d²/ρ²)/(n − 1)) > 1``,
    so the returned (unchanged) formula is vacuous and trivially true.

    Args:
      max_perturbed_loss: ``max_{‖ε‖₂≤ρ} L_S(w + ε)`` in ``[0, 1]``. A SAM
        ascent step only gives a lower estimate of this maximum, which makes
        the result an estimate, not a certificate.
      num_params: ``k``.
      n: the training-set size, ``≥ 2``.
      weight_distance: ``‖w − μ_P‖₂`` (``‖w‖₂`` in the paper).
      rho: ``ρ > 0``, the radius of the ℓ₂ ball ([rho-sam]).
      delta: ``δ ∈ (0, 1)``.

    Returns:
      :class:`ForetBound`, elementwise over broadcast inputs.

    Conventions: [bounds], [rho-sam].
    """
    loss, k, n, d, rho, delta = _checked_floats(
        "max_perturbed_loss", max_perturbed_loss, num_params, n, weight_distance, rho, delta
    )
    ratio = (d / rho) ** 2 * (1 + jnp.sqrt(jnp.log(n) / k)) ** 2
    numerator = k * jnp.log1p(ratio) + 4 * jnp.log(n / delta) + 8 * jnp.log(6 * n + 3 * k)
    complexity = jnp.sqrt(numerator / (n - 1))
    in_range = jnp.log1p((d / rho) ** 2) <= 4 * n / k
    sigma = _sigma(rho, k, n)
    return ForetBound(loss + complexity, complexity, sigma, _valid_case(in_range, loss + complexity))


def foret_eq13_bound(gaussian_loss, num_params, n, weight_distance, rho, delta) -> ForetBound:
    """Foret et al. eq. 13 as printed, with ``σ = ρ/(√k + √ln n)``:

        E_ε L_D(w + ε) ≤ E_ε L_S(w + ε)
                 + √[(¼ k ln(1 + d²/(kσ²)) + ¼ + ln(n/δ) + 2 ln(6n + 3k)) / (n − 1)]

    for ``ε ~ N(0, σ²I)`` and ``d = weight_distance``, with probability ``≥ 1 − δ``.

    Case analysis: the proof needs a grid point with ``σ_P² ≥ σ² + d²/k``,
    i.e. ``σ² + d²/k ≤ c = ρ²(1 + e^{4n/k})`` (``in_range``). Outside it
    ``d²/(kσ²) > e^{4n/k}``, so ``¼ k ln(1 + d²/(kσ²)) > n`` and the returned
    (unchanged) formula exceeds 1: vacuous and trivially true.

    Args:
      gaussian_loss: ``E_ε L_S(w + ε)`` in ``[0, 1]``, or an upper bound on
        it such as :class:`~samtheory.monte_carlo.MonteCarloEstimate` ``.certified_upper``.
      num_params, n, weight_distance, rho, delta: as in :func:`foret_theorem2_bound`.

    Returns:
      :class:`ForetBound`, elementwise over broadcast inputs.

    Conventions: [bounds], [rho-sam].
    """
    loss, k, n, d, rho, delta = _checked_floats("gaussian_loss", gaussian_loss, num_params, n, weight_distance, rho, delta)
    sigma = _sigma(rho, k, n)
    numerator = (
        0.25 * k * jnp.log1p(d**2 / (k * sigma**2))
        + 0.25
        + jnp.log(n / delta)
        + 2 * jnp.log(6 * n + 3 * k)
    )
    complexity = jnp.sqrt(numerator / (n - 1))
    log_x = jnp.logaddexp(2 * jnp.log(sigma), 2 * jnp.log(d) - jnp.log(k))
    in_range = log_x <= _log_grid_scale(rho, k, n)
    return ForetBound(loss + complexity, complexity, sigma, _valid_case(in_range, loss + complexity))


def foret_grid_prior(num_params, n, weight_distance, rho) -> ForetGridPrior:
    """The grid prior Foret et al.'s proof picks for ``Q = N(w, σ²I)``, and the exact ``KL(Q‖P)``.

    ``x = σ² + d²/k`` is the KL-optimal prior variance (App. A, after eq. 6);
    ``j = ⌊1 + k ln(c/x)⌋`` is the grid point just above it, as in the proof
    (``x ≤ σ_P² ≤ e^{1/k} x``, eq. 8). When ``x > c`` (outside the proof's
    case) ``j = 1``, ``σ_P² = c``: the union bound still covers it, so the
    bound stays valid, only large.

    Args:
      num_params: ``k``.
      n: the training-set size.
      weight_distance: ``d = ‖w − μ_P‖₂``.
      rho: ``ρ > 0``; ``σ = ρ/(√k + √ln n)`` and ``c = ρ²(1 + e^{4n/k})``.

    Returns:
      :class:`ForetGridPrior`.

    Conventions: [bounds], [rho-sam].
    """
    num_params, n, weight_distance, rho, _ = _check_common(num_params, n, weight_distance, rho)
    k, n, d, rho = _floats(num_params, n, weight_distance, rho)
    log_sigma2 = 2 * jnp.log(_sigma(rho, k, n))
    log_c = _log_grid_scale(rho, k, n)
    log_x = jnp.logaddexp(log_sigma2, 2 * jnp.log(d) - jnp.log(k))
    j = jnp.maximum(jnp.floor(1 + k * (log_c - log_x)), 1.0)
    log_prior_variance = log_c + (1 - j) / k
    kl = isotropic_gaussian_kl(k, d**2, log_sigma2, log_prior_variance)
    return ForetGridPrior(j, log_prior_variance, log_c, kl, grid_union_cost(j))


def foret_kl_bound(gaussian_loss, num_params, n, weight_distance, rho, delta) -> ForetKlBound:
    """``kl⁻¹(E_ε L_S(w + ε), (KL(Q‖P_j) + ln(2√n/δ) + ln(π² j²/6))/n)`` on Foret et al.'s grid.

    The tight evaluation of the same argument as eq. 13: exact KL, exact
    union-bound cost, kl form (Maurer's constant). It bounds
    ``E_{ε~N(0,σ²I)} L_D(w + ε)`` with probability ``≥ 1 − δ``, for every
    input (see :func:`foret_grid_prior`).

    Args:
      gaussian_loss: ``E_ε L_S(w + ε)`` or an upper bound on it, in ``[0, 1]``.
      num_params: ``k``.
      n: the training-set size, ``≥ 8``.
      weight_distance: ``‖w − μ_P‖₂``.
      rho: ``ρ > 0``.
      delta: ``δ ∈ (0, 1)``.

    Returns:
      :class:`ForetKlBound`.

    Conventions: [bounds], [rho-sam].
    """
    gaussian_loss = check_probability("gaussian_loss", gaussian_loss)
    num_params, n, weight_distance, rho, delta = _check_common(
        num_params, n, weight_distance, rho, delta, min_n=8
    )
    grid = foret_grid_prior(num_params, n, weight_distance, rho)
    bound = pac_bayes_kl_bound(gaussian_loss, grid.kl, n, delta, grid.log_union_cost)
    return ForetKlBound(bound, grid, foret_posterior_std(rho, num_params, n))


def foret_monte_carlo_bound(
    loss_fn: Callable,
    params,
    batch,
    *,
    rho: float,
    key: jax.Array,
    num_samples: int,
    prior_mean=None,
    delta: float = 0.05,
    delta_prime: float = 0.01,
    chunk_size: int = 256,
) -> ForetMonteCarloBound:
    """Foret et al.'s PAC-Bayes bound for a trained network, with a certified Monte Carlo loss term.

    ``k`` is the number of entries of ``params``, ``n`` the number of
    examples in ``batch``, ``σ = ρ/(√k + √ln n)``. ``E_ε L_S(w + ε)`` is
    estimated from ``num_samples`` draws and replaced by its kl upper
    confidence bound (probability ``δ'``); it is then fed to
    :func:`foret_kl_bound` and :func:`foret_eq13_bound` (probability ``δ``).

    Args:
      loss_fn: ``loss_fn(params, batch)``, the mean of a loss in ``[0, 1]``
        over the training set ([loss-mean]); e.g. the 0-1 loss.
      params: the trained weights ``w`` (the posterior mean).
      batch: the whole training set ``S``.
      rho: ``ρ > 0``.
      key: PRNG key for the draws ([rng]).
      num_samples: Monte Carlo draws ``N``.
      prior_mean: ``μ_P``: ``None`` for Foret's ``0``, or a pytree like
        ``params`` fixed before seeing ``S`` (e.g. the random initialization).
      delta: PAC-Bayes confidence ``δ``.
      delta_prime: Monte Carlo confidence ``δ'``.
      chunk_size: draws evaluated at once.

    Returns:
      :class:`ForetMonteCarloBound`.

    Conventions: [bounds], [rho-sam], [loss-mean], [rng], [float].
    """
    rho = check_positive("rho", rho)
    delta = check_open_probability("delta", delta)
    flat, _ = ravel_pytree(params)
    num_params = flat.size
    n = batch_size(batch)
    if prior_mean is None:
        weight_distance = jnp.linalg.norm(flat)
    else:
        if jax.tree.structure(prior_mean) != jax.tree.structure(params):
            raise ValueError("prior_mean must be None or a pytree with the structure of params")
        weight_distance = jnp.linalg.norm(flat - ravel_pytree(prior_mean)[0])
    sigma = foret_posterior_std(rho, num_params, n)
    monte_carlo = gaussian_loss_bound(
        loss_fn, params, batch, sigma.astype(flat.dtype), key=key, num_samples=num_samples,
        delta_prime=delta_prime, chunk_size=chunk_size,
    )
    kl_form = foret_kl_bound(monte_carlo.certified_upper, num_params, n, weight_distance, rho, delta)
    eq13 = foret_eq13_bound(monte_carlo.certified_upper, num_params, n, weight_distance, rho, delta)
    return ForetMonteCarloBound(
        kl_form.bound, eq13, monte_carlo, kl_form.grid, sigma, num_params, n, weight_distance,
        delta, delta_prime,
    )
