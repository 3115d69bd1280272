"""``E_{ε~N(0, diag s)} L_S(w + ε)`` by Monte Carlo, with a certified upper bound.

PAC-Bayes bounds are stated for the stochastic predictor ``Q = N(w, diag s)``
and need its empirical loss ``ê_S(Q) = E_{ε} L_S(w + ε)``, which has no
closed form for a network. Draw ``ε_1, …, ε_N`` i.i.d. and let
``X_i = L_S(w + ε_i) ∈ [0, 1]`` (``L_S`` a mean of losses bounded in
``[0, 1]``, e.g. :func:`samtheory.bounds.zero_one_loss`). The ``X_i`` are
i.i.d. with mean ``ê_S(Q)``, and for variables in ``[0, 1]`` the Chernoff
bound in kl form holds (Maurer 2004, Lemma 1: the exponential moments are at
most the Bernoulli ones). Hence (Langford & Caruana 2002), with probability
at least ``1 − δ'`` over the draws, for the sample mean ``X̄``:

    ê_S(Q) ≤ kl⁻¹(X̄, ln(2/δ')/N).

``ln(2/δ')`` is the two-sided form Langford & Caruana and Dziugaite & Roy
(2017) use; the one-sided statement needs only ``ln(1/δ')``. We keep
``ln(2/δ')`` so the numbers compare with theirs; it is valid and slightly
conservative. The draws are independent of the training set given ``w`` and
``s``, so this ``δ'`` and the PAC-Bayes ``δ`` add: the combined bound holds
with probability at least ``1 − δ − δ'``.

Conventions: [loss-mean], [bounds], [rng], [float].
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from samtheory._validation import check_positive_int, concrete_values
from samtheory.bounds._checks import (
    check_at_least,
    check_nonnegative,
    check_open_probability,
    check_probability,
    is_scalar,
)
from samtheory.bounds.kl import kl_inverse
from samtheory.monte_carlo import MonteCarloEstimate

__all__ = [
    "gaussian_perturbed_losses",
    "mean_upper_bound",
    "monte_carlo_upper_bound",
    "gaussian_loss_bound",
]


@functools.partial(jax.jit, static_argnames=("loss_fn", "num_samples", "chunk_size"))
def _perturbed_losses(loss_fn, params, batch, std, key, num_samples, chunk_size):
    flat, unravel = ravel_pytree(params)
    flat_std = (jnp.asarray(std) if is_scalar(std) else ravel_pytree(std)[0]).astype(flat.dtype)
    num_chunks = -(-num_samples // chunk_size)

    def one(index):
        noise = jax.random.normal(jax.random.fold_in(key, index), flat.shape, flat.dtype)
        return loss_fn(unravel(flat + flat_std * noise), batch)

    # The last chunk may run past N; those extra draws are discarded unseen.
    indices = jnp.arange(num_chunks * chunk_size).reshape(num_chunks, chunk_size)
    return jax.lax.map(jax.vmap(one), indices).reshape(-1)[:num_samples]


def gaussian_perturbed_losses(
    loss_fn: Callable,
    params,
    batch,
    std,
    *,
    key: jax.Array,
    num_samples: int,
    chunk_size: int = 256,
) -> jax.Array:
    """``L_S(w + ε_i)`` for ``N`` independent draws ``ε_i ~ N(0, diag std²)``.

    Draw ``i`` uses ``jax.random.fold_in(key, i)`` over the raveled
    parameters, so the samples do not depend on ``chunk_size``. Chunks of
    ``chunk_size`` draws are ``vmap``ped and the chunks run one after the
    other under ``lax.map``: memory is that of ``chunk_size`` parameter
    copies and forward passes.

    Args:
      loss_fn: ``loss_fn(params, batch)``, the mean loss over ``batch`` ([loss-mean]).
      params: the posterior mean ``w``.
      batch: the training set (or any batch).
      std: per-coordinate standard deviation: a scalar ``σ`` or a pytree
        like ``params`` (``√s`` for ``N(w, diag s)``).
      key: PRNG key ([rng]).
      num_samples: ``N``.
      chunk_size: draws evaluated at once.

    Returns:
      ``(N,)`` array of losses.

    Conventions: [loss-mean], [bounds], [rng], [float].
    """
    num_samples = check_positive_int("num_samples", num_samples)
    chunk_size = min(check_positive_int("chunk_size", chunk_size), num_samples)
    if is_scalar(std):
        std = check_nonnegative("std", std)
    elif jax.tree.structure(std) == jax.tree.structure(params):
        std = jax.tree.map(lambda leaf: check_nonnegative("std", leaf), std)
    else:
        raise ValueError("std must be a scalar or a pytree with the structure of params")
    # jit keyed on loss_fn: repeated calls with the same function compile once.
    losses = _perturbed_losses(loss_fn, params, batch, std, key, num_samples, chunk_size)
    leaves = jax.tree.leaves(std)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        # A traced std that broke its check is NaN here. A loss that compares
        # scores (the 0-1 loss) would turn the NaN weights into a believable
        # 0, so the NaN is carried past loss_fn explicitly.
        std_invalid = jnp.any(jnp.stack([jnp.any(jnp.isnan(leaf)) for leaf in leaves]))
        losses = jnp.where(std_invalid, jnp.nan, losses)
    return losses


def mean_upper_bound(mean, num_samples, delta_prime) -> jax.Array:
    """Langford & Caruana's bound on a mean from ``N`` independent ``[0, 1]`` samples: ``kl⁻¹(X̄, ln(2/δ')/N)``.

    The one place of the certificate: :func:`monte_carlo_upper_bound` calls
    it on samples, and the figures that count errors of perturbed networks
    (``N`` independent 0-1 draws, not identically distributed: Hoeffding
    1963, Thm 1, gives the same bound for the mean of their means) call it
    on ``count / N``.

    Args:
      mean: the sample mean ``X̄ ∈ [0, 1]`` (broadcasts).
      num_samples: ``N ≥ 1``.
      delta_prime: ``δ' ∈ (0, 1)``, the probability that the bound fails.

    Returns:
      ``kl⁻¹(X̄, ln(2/δ')/N)``, in the float type of ``mean``; NaN where a
      traced input is out of range.

    Raises:
      ValueError: a concrete input out of range, naming it.

    Conventions: [bounds].
    """
    mean = check_probability("mean", mean)
    num_samples = check_at_least("num_samples", num_samples, 1)
    delta_prime = check_open_probability("delta_prime", delta_prime)
    dtype = jnp.result_type(mean)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    # Evaluated now, op by op, where δ' and N are concrete: staged under an
    # outer jit, XLA would rewrite the division as a product with 1/N and the
    # budget could move by an ulp between a jitted and an eager caller.
    with jax.ensure_compile_time_eval():
        budget = jnp.log(2.0 / jnp.asarray(delta_prime, dtype)) / num_samples
    return kl_inverse(mean, budget)


def monte_carlo_upper_bound(losses, delta_prime) -> MonteCarloEstimate:
    """The mean of i.i.d. ``[0, 1]`` samples, certified: ``kl⁻¹(X̄, ln(2/δ')/N)`` (:func:`mean_upper_bound`).

    Args:
      losses: ``(N,)`` samples in ``[0, 1]`` (e.g. from :func:`gaussian_perturbed_losses`).
      delta_prime: ``δ' ∈ (0, 1)``, the probability that the bound fails.

    Returns:
      :class:`~samtheory.monte_carlo.MonteCarloEstimate` with
      ``certified_upper`` (an upper bound on the true mean with probability
      ``≥ 1 − δ'``) and ``delta_prime``; ``standard_error`` is for reporting only.

    Raises:
      ValueError: concrete samples outside ``[0, 1]``, fewer than two
        samples, or ``δ'`` outside ``(0, 1)``.

    Conventions: [bounds].
    """
    losses = jnp.asarray(losses)
    if losses.ndim != 1 or losses.shape[0] < 2:
        raise ValueError(f"losses must be a 1-d array of at least 2 samples, got shape {losses.shape}")
    values = concrete_values(losses)
    if values is not None and (np.any(np.isnan(values)) or values.min() < 0 or values.max() > 1):
        raise ValueError(
            "losses must lie in [0, 1] (use zero_one_loss or clipped_cross_entropy); "
            f"got range [{values.min()}, {values.max()}]"
        )
    # A traced sample outside [0, 1] becomes NaN, and so do the mean and the bound.
    losses = check_probability("losses", losses)
    delta_prime = check_open_probability("delta_prime", delta_prime)
    num_samples = losses.shape[0]
    mean = jnp.mean(losses)
    standard_error = jnp.std(losses, ddof=1) / math.sqrt(num_samples)
    upper = mean_upper_bound(mean, num_samples, delta_prime)
    return MonteCarloEstimate(mean, standard_error, num_samples, upper, delta_prime)


def gaussian_loss_bound(
    loss_fn: Callable,
    params,
    batch,
    std,
    *,
    key: jax.Array,
    num_samples: int,
    delta_prime: float = 0.01,
    chunk_size: int = 256,
) -> MonteCarloEstimate:
    """Estimate and certify ``E_{ε~N(0, diag std²)} L_S(w + ε)`` for a loss in ``[0, 1]``.

    :func:`gaussian_perturbed_losses` followed by :func:`monte_carlo_upper_bound`.
    With probability ``≥ 1 − δ'`` over the draws, the true Gaussian-averaged
    loss is at most ``.certified_upper``.

    Conventions: [loss-mean], [bounds], [rng], [float].
    """
    losses = gaussian_perturbed_losses(
        loss_fn, params, batch, std, key=key, num_samples=num_samples, chunk_size=chunk_size
    )
    return monte_carlo_upper_bound(losses, delta_prime)
