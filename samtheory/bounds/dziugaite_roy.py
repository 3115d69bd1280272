"""Dziugaite & Roy (2017): an optimized, non-vacuous PAC-Bayes bound for a stochastic network.

Posterior ``Q = N(w, diag s)`` over the raveled parameters, prior
``P_λ = N(w₀, λI)`` with ``w₀`` fixed before seeing the data (the random
initialization, from its own seed) and ``λ`` on the grid

    λ_j = c·e^{−j/b},   j = 1, 2, …      (j = b ln(c/λ)),

each grid point ``j`` used with confidence ``δ_j = 6δ/(π² j²)``. Since
``Σ_j δ_j = δ``, all grid bounds hold at once with probability ``≥ 1 − δ``,
so ``j`` may be picked after training, at the cost (:func:`~samtheory.bounds.grid_union_cost`)

    ln(1/δ_j) − ln(1/δ) = ln(π² j²/6) = 2 ln(b ln(c/λ)) + ln(π²/6).

**Step 1, optimize** (:func:`dziugaite_roy_optimize`). Minimize over ``w``,
``ln s`` and a continuous ``ln λ`` the square-root (McAllester) form with a
differentiable surrogate of the 0-1 loss,

    B(w, s, λ) = Ê_{ε~N(0, diag s)} ℓ̃_batch(w + ε)
                 + √[(KL(Q‖P_λ) + 2 ln max(1, b ln(c/λ)) + ln(π²/6) + ln(n/δ)) / (2(n − 1))],

with one reparametrized noise draw per step on a random minibatch (an
unbiased estimate of the first term), optax, and ``lax.scan``. It keeps its
own loop rather than :func:`samtheory.train.run`, because it descends a
bound over ``(w, ln s, ln λ)`` with fresh noise in the objective, not a SAM
direction of a loss over the weights. The
``max(1, ·)`` keeps the surrogate on the grid's range ``j ≥ 1`` (without
it, ``2 ln(b ln(c/λ)) → −∞`` as ``λ → c`` would reward leaving it).

**Step 2, certify** (:func:`dziugaite_roy_certify`). Round ``j`` to the two
neighbouring grid points ``⌊j⌋, ⌈j⌉`` (at least 1) and keep the one with the
smaller final bound (allowed: the union bound covers every ``j``). Estimate
the training 0-1 error of ``Q`` with ``N`` fresh draws and bound it by
``ê⁺ = kl⁻¹(ê_N, ln(2/δ')/N)`` (probability ``δ'``, Langford & Caruana 2002).
The final bound is the kl form with Maurer's constant:

    L_D(Q) ≤ kl⁻¹(ê⁺, (KL(Q‖P_j) + ln(2√n/δ) + ln(π² j²/6))/n),

with probability ``≥ 1 − δ − δ'`` over the training set and the draws.
(Dziugaite & Roy use ``(KL + ln(n/δ_j))/(n − 1)`` in the kl form; Maurer's
is smaller for ``n ≥ 8``.)

Conventions: [bounds], [loss-mean], [rng], [float].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from samtheory._validation import check_positive, check_positive_int
from samtheory.bounds._checks import check_at_least, check_open_probability, is_scalar
from samtheory.bounds.gaussian_kl import diagonal_gaussian_kl
from samtheory.bounds.losses import clipped_cross_entropy, zero_one_loss
from samtheory.bounds.monte_carlo import gaussian_loss_bound
from samtheory.bounds.pac_bayes import (
    grid_union_cost,
    mcallester_bound,
    pac_bayes_kl_bound,
    pac_bayes_kl_budget,
)

__all__ = [
    "DziugaiteRoyPosterior",
    "DziugaiteRoyBound",
    "dziugaite_roy_optimize",
    "dziugaite_roy_certify",
    "dziugaite_roy_grid_bound",
    "dziugaite_roy_bound",
]

_LOG_PI2_OVER_6 = math.log(math.pi**2 / 6)


class DziugaiteRoyPosterior(NamedTuple):
    """The optimized posterior ``N(mean, diag e^{log_variance})`` and the continuous prior variance.

    Attributes:
      mean: ``w``, a pytree like the initial parameters.
      log_variance: ``ln s``, a pytree like ``mean``.
      log_prior_variance: the continuous ``ln λ`` reached (before rounding to the grid).
      objective: ``(num_steps,)`` surrogate objective ``B`` at each step
        (one-draw, one-minibatch estimates).
    """

    mean: object
    log_variance: object
    log_prior_variance: jax.Array
    objective: jax.Array


class DziugaiteRoyBound(NamedTuple):
    """Every term of the certified Dziugaite–Roy bound.

    Attributes:
      bound: ``kl⁻¹(train_error_upper, kl_budget)``, an upper bound on the
        expected 0-1 test error of ``Q`` with probability ``≥ 1 − δ − δ'``.
      kl: ``KL(Q‖P_j)``.
      kl_budget: ``(kl + ln(2√n/δ) + log_union_cost)/n``.
      log_union_cost: ``ln(π² j²/6)``.
      grid_index: ``j``.
      prior_variance: ``λ_j = c e^{−j/b}``.
      train_error_mc: the Monte Carlo mean ``ê_N`` of the training 0-1 error of ``Q``.
      train_error_standard_error: its standard error (for reporting).
      train_error_upper: ``kl⁻¹(ê_N, ln(2/δ')/N)``.
      mcallester_bound: ``train_error_upper + √((kl + ln(n/δ) + log_union_cost)/(2(n − 1)))``,
        the square-root form at the same posterior and prior, for comparison.
      mean_train_error: the 0-1 training error of the mean ``w`` alone.
      posterior: the :class:`DziugaiteRoyPosterior` certified.
      n, num_mc_samples, delta, delta_prime: the inputs.
    """

    bound: jax.Array
    kl: jax.Array
    kl_budget: jax.Array
    log_union_cost: jax.Array
    grid_index: jax.Array
    prior_variance: jax.Array
    train_error_mc: jax.Array
    train_error_standard_error: jax.Array
    train_error_upper: jax.Array
    mcallester_bound: jax.Array
    mean_train_error: jax.Array
    posterior: DziugaiteRoyPosterior
    n: int
    num_mc_samples: int
    delta: float
    delta_prime: float


@dataclasses.dataclass(frozen=True)
class _ZeroOneError:
    """``L_S(w)`` in 0-1 loss for a ``(x, y)`` batch; hashable by ``predict_fn`` so jit caches reuse it."""

    predict_fn: Callable

    def __call__(self, params, batch):
        return zero_one_loss(self.predict_fn(params, batch[0]), batch[1])


def _check_data(x_train, y_train) -> int:
    x_leaves = jax.tree.leaves(x_train)
    n = jnp.shape(y_train)[0] if jnp.ndim(y_train) else None
    if n is None or any(jnp.ndim(x) == 0 or jnp.shape(x)[0] != n for x in x_leaves):
        raise ValueError("x_train and y_train must share a leading example axis")
    check_at_least("n", n, 8)
    return n


def _check_grid(grid_scale, grid_resolution, delta):
    check_positive("grid_scale", grid_scale)
    check_positive("grid_resolution", grid_resolution)
    check_open_probability("delta", delta)


def _flat_like(tree_or_scalar, flat_reference, name):
    if is_scalar(tree_or_scalar):
        return jnp.full_like(flat_reference, tree_or_scalar)
    flat, _ = ravel_pytree(tree_or_scalar)
    if flat.shape != flat_reference.shape:
        raise ValueError(f"{name} must be a scalar or a pytree like params")
    return flat.astype(flat_reference.dtype)


def dziugaite_roy_optimize(
    predict_fn: Callable,
    x_train,
    y_train,
    params,
    prior_mean,
    *,
    key: jax.Array,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    initial_log_variance=-6.0,
    initial_log_prior_variance: float = -6.0,
    grid_scale: float = 0.1,
    grid_resolution: float = 100.0,
    delta: float = 0.025,
    surrogate_loss: Callable = clipped_cross_entropy,
) -> DziugaiteRoyPosterior:
    """Train ``w``, ``ln s`` and a continuous ``ln λ`` on the square-root surrogate bound ``B``.

    Args:
      predict_fn: ``predict_fn(params, x) -> scores`` (``(m, C)`` or ``(m,)``).
      x_train, y_train: the training set; ``y_train`` integer labels.
      params: the initial posterior mean, usually weights trained by SGD.
      prior_mean: ``w₀``, a pytree like ``params``, independent of the data.
      key: PRNG key for minibatches and noise ([rng]).
      num_steps: optimizer steps (one ``lax.scan``).
      batch_size: examples per step (drawn with replacement).
      optimizer: an optax transformation; default ``optax.adam(learning_rate)``.
      learning_rate: used only by the default optimizer.
      initial_log_variance: ``ln s`` at the start: scalar or pytree like ``params``.
      initial_log_prior_variance: ``ln λ`` at the start.
      grid_scale: ``c``, the largest prior variance of the grid.
      grid_resolution: ``b``, grid points per unit of ``ln λ``.
      delta: ``δ`` in the surrogate (the optimum depends on it only mildly).
      surrogate_loss: ``surrogate_loss(scores, labels)``, a differentiable mean
        loss ([loss-mean]); default :func:`~samtheory.bounds.clipped_cross_entropy`.

    Returns:
      :class:`DziugaiteRoyPosterior`.

    Conventions: [bounds], [loss-mean], [rng], [float].
    """
    n = _check_data(x_train, y_train)
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    _check_grid(grid_scale, grid_resolution, delta)
    if jax.tree.structure(prior_mean) != jax.tree.structure(params):
        raise ValueError("prior_mean must be a pytree with the structure of params")
    flat_w, unravel = ravel_pytree(params)
    flat_w0 = ravel_pytree(prior_mean)[0].astype(flat_w.dtype)
    if flat_w0.shape != flat_w.shape:
        raise ValueError("prior_mean must have the shapes of params")
    flat_log_s = _flat_like(initial_log_variance, flat_w, "initial_log_variance")
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    log_c = math.log(grid_scale)
    confidence = math.log(n / delta) + _LOG_PI2_OVER_6

    def surrogate_bound(theta, step_key):
        w, log_s, log_lam = theta
        batch_key, noise_key = jax.random.split(step_key)
        idx = jax.random.randint(batch_key, (batch_size,), 0, n)
        noise = jax.random.normal(noise_key, w.shape, w.dtype)
        batch_x = jax.tree.map(lambda a: a[idx], x_train)
        scores = predict_fn(unravel(w + jnp.exp(0.5 * log_s) * noise), batch_x)
        empirical = surrogate_loss(scores, y_train[idx])
        kl = diagonal_gaussian_kl(w, log_s, flat_w0, log_lam)
        grid_position = jnp.maximum(grid_resolution * (log_c - log_lam), 1.0)
        numerator = kl + 2 * jnp.log(grid_position) + confidence
        return empirical + jnp.sqrt(numerator / (2 * (n - 1)))

    def step(carry, step_key):
        theta, opt_state = carry
        value, grads = jax.value_and_grad(surrogate_bound)(theta, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), value

    @jax.jit
    def train(theta, key):
        (theta, _), objective = jax.lax.scan(
            step, (theta, optimizer.init(theta)), jax.random.split(key, num_steps)
        )
        return theta, objective

    theta0 = (flat_w, flat_log_s, jnp.asarray(initial_log_prior_variance, flat_w.dtype))
    (w, log_s, log_lam), objective = train(theta0, key)
    return DziugaiteRoyPosterior(unravel(w), unravel(log_s), log_lam, objective)


def dziugaite_roy_grid_bound(
    posterior: DziugaiteRoyPosterior, prior_mean, train_error_upper, n: int, *,
    grid_scale: float, grid_resolution: float, delta: float,
) -> dict:
    """The kl-form bound at the better of the two grid points around the optimized ``λ``.

    Rounds ``j = b ln(c/λ)`` to ``⌊j⌋`` and ``⌈j⌉`` (at least 1) and keeps
    the one with the smaller bound on ``train_error_upper`` (``ê⁺``); the
    union bound covers every ``j``. Pure; ``vmap``-able over posteriors.

    Returns:
      dict of 0-d arrays: ``bound``, ``kl``, ``kl_budget``, ``log_union_cost``,
      ``grid_index``, ``prior_variance``, ``mcallester_bound`` (the
      square-root form at the same posterior and prior).

    Conventions: [bounds].
    """
    position = grid_resolution * (math.log(grid_scale) - posterior.log_prior_variance)
    candidates = jnp.maximum(jnp.stack([jnp.floor(position), jnp.ceil(position)]), 1.0)
    log_lambdas = math.log(grid_scale) - candidates / grid_resolution
    kls = jax.vmap(lambda ll: diagonal_gaussian_kl(posterior.mean, posterior.log_variance, prior_mean, ll))(
        log_lambdas
    )
    costs = grid_union_cost(candidates)
    bounds = pac_bayes_kl_bound(train_error_upper, kls, n, delta, costs)
    best = jnp.argmin(bounds)
    kl, cost = kls[best], costs[best]
    return {
        "bound": bounds[best],
        "kl": kl,
        "kl_budget": pac_bayes_kl_budget(kl, n, delta, cost),
        "log_union_cost": cost,
        "grid_index": candidates[best],
        "prior_variance": jnp.exp(log_lambdas[best]),
        "mcallester_bound": mcallester_bound(train_error_upper, kl, n, delta, cost),
    }


def dziugaite_roy_certify(
    predict_fn: Callable,
    x_train,
    y_train,
    posterior: DziugaiteRoyPosterior,
    prior_mean,
    *,
    key: jax.Array,
    num_mc_samples: int = 10_000,
    mc_chunk_size: int = 256,
    grid_scale: float = 0.1,
    grid_resolution: float = 100.0,
    delta: float = 0.025,
    delta_prime: float = 0.01,
) -> DziugaiteRoyBound:
    """The final bound for a posterior: grid rounding, Monte Carlo 0-1 error, kl inversions.

    ``grid_scale``, ``grid_resolution`` and ``delta`` must be those fixed
    before seeing the data (the same as in :func:`dziugaite_roy_optimize`
    if the optimized ``λ`` is to be near the grid point used).

    Args:
      predict_fn, x_train, y_train, prior_mean: as in :func:`dziugaite_roy_optimize`.
      posterior: the :class:`DziugaiteRoyPosterior` to certify.
      key: PRNG key for the Monte Carlo draws ([rng]), fresh (not used in training).
      num_mc_samples: ``N`` draws of ``w + ε``; each costs a forward pass over the training set.
      mc_chunk_size: draws evaluated at once.
      grid_scale, grid_resolution: ``c``, ``b``.
      delta: PAC-Bayes confidence ``δ``.
      delta_prime: Monte Carlo confidence ``δ'``.

    Returns:
      :class:`DziugaiteRoyBound`.

    Conventions: [bounds], [loss-mean], [rng], [float].
    """
    n = _check_data(x_train, y_train)
    _check_grid(grid_scale, grid_resolution, delta)
    check_open_probability("delta_prime", delta_prime)
    if jax.tree.structure(prior_mean) != jax.tree.structure(posterior.mean):
        raise ValueError("prior_mean must be a pytree with the structure of the posterior mean")
    data = (x_train, y_train)
    train_error = _ZeroOneError(predict_fn)
    std = jax.tree.map(lambda v: jnp.exp(0.5 * v), posterior.log_variance)
    monte_carlo = gaussian_loss_bound(
        train_error, posterior.mean, data, std, key=key, num_samples=num_mc_samples,
        delta_prime=delta_prime, chunk_size=mc_chunk_size,
    )
    grid = dziugaite_roy_grid_bound(
        posterior, prior_mean, monte_carlo.certified_upper, n,
        grid_scale=grid_scale, grid_resolution=grid_resolution, delta=delta,
    )
    return DziugaiteRoyBound(
        **grid,
        train_error_mc=monte_carlo.estimate,
        train_error_standard_error=monte_carlo.standard_error,
        train_error_upper=monte_carlo.certified_upper,
        mean_train_error=train_error(posterior.mean, data),
        posterior=posterior,
        n=n,
        num_mc_samples=num_mc_samples,
        delta=delta,
        delta_prime=delta_prime,
    )


def dziugaite_roy_bound(
    predict_fn: Callable,
    x_train,
    y_train,
    params,
    prior_mean,
    *,
    key: jax.Array,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    initial_log_variance=-6.0,
    initial_log_prior_variance: float = -6.0,
    grid_scale: float = 0.1,
    grid_resolution: float = 100.0,
    delta: float = 0.025,
    delta_prime: float = 0.01,
    num_mc_samples: int = 10_000,
    mc_chunk_size: int = 256,
    surrogate_loss: Callable = clipped_cross_entropy,
) -> DziugaiteRoyBound:
    """Optimize the surrogate (:func:`dziugaite_roy_optimize`) and certify (:func:`dziugaite_roy_certify`).

    ``key`` is split into independent keys for training and for the final
    Monte Carlo draws. Defaults follow Dziugaite & Roy (2017): ``b = 100``,
    ``c = 0.1``, ``δ = 0.025``, ``δ' = 0.01`` (they use ``N = 150 000``
    draws; the default here is ``10 000``). Arguments as in the two steps.

    Returns:
      :class:`DziugaiteRoyBound`; ``.bound`` holds with probability ``≥ 1 − δ − δ'``.

    Conventions: [bounds], [loss-mean], [rng], [float].
    """
    train_key, certify_key = jax.random.split(key)
    grid = dict(grid_scale=grid_scale, grid_resolution=grid_resolution, delta=delta)
    posterior = dziugaite_roy_optimize(
        predict_fn, x_train, y_train, params, prior_mean, key=train_key, num_steps=num_steps,
        batch_size=batch_size, optimizer=optimizer, learning_rate=learning_rate,
        initial_log_variance=initial_log_variance,
        initial_log_prior_variance=initial_log_prior_variance, surrogate_loss=surrogate_loss, **grid,
    )
    return dziugaite_roy_certify(
        predict_fn, x_train, y_train, posterior, prior_mean, key=certify_key,
        num_mc_samples=num_mc_samples, mc_chunk_size=mc_chunk_size, delta_prime=delta_prime, **grid,
    )
