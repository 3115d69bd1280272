"""Convergence-rate bounds for stochastic unnormalized SAM (Andriushchenko & Flammarion 2022, Thm 2).

The iteration (the talk's eq. (4), "m-SAM" with the minibatch as the chunk):

    w_{t+1} = w_t − γ_t ∇L_{I_t}(w_t + ρ_t ∇L_{I_t}(w_t)),

where the **same** minibatch ``I_t`` of size ``b`` is used for the ascent and
the descent, and ``L_I`` is the mean loss over ``I``. Assumptions:

* (A1) bounded variance: ``E_i‖∇ℓ_i(w) − ∇L(w)‖² ≤ σ²`` for ``i`` uniform, all ``w``;
* (A2) individual β-smoothness of every ``ℓ_i``;
* (A3) PL: ``½‖∇L(w)‖² ≥ μ (L(w) − L*)``.

Statements (Theorem 2):

* under (A1, A2), with ``γ = 1/(√T β)`` and ``ρ = 1/(T^{1/4} β)``,
  ``(1/T) Σ_{t<T} E‖∇L(w_t)‖² ≤ 4β(L(w₀) − L*)/√T + 8σ²/(b√T)``;
* under (A1–A3), with ``γ_t = min{(8t+4)/(3μ(t+1)²), 1/(2β)}`` and
  ``ρ_t = √(γ_t/β)``,
  ``E[L(w_T)] − L* ≤ 3β²(L(w₀) − L*)/(μ²T²) + 22βσ²/(μ²bT)``.

Minibatches here are ``b`` indices drawn uniformly **with replacement**, so
that the minibatch gradient has variance ``σ²/b`` as in the proof. The
expectation is estimated by Monte Carlo over independent seeds, vmapped.

Conventions: [loss-mean], [rho-sam] (USAM: ρ is an ascent step), [m], [rng].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from samtheory._validation import check_nonnegative, check_positive, check_positive_int
from samtheory.batching import batch_size
from samtheory import train
from samtheory.sam.variants import SAM

__all__ = [
    "nonconvex_bound",
    "pl_bound",
    "nonconvex_schedule",
    "pl_schedule",
    "StochasticRun",
    "run_stochastic_usam",
]


def nonconvex_bound(smoothness, noise_variance, batch, num_steps, initial_gap) -> float:
    """``4β(L(w₀) − L*)/√T + 8σ²/(b√T)`` (Thm 2, first part). Conventions: [loss-mean]."""
    check_positive("smoothness", smoothness)
    check_nonnegative("noise_variance", noise_variance)
    check_positive_int("batch", batch)
    check_positive_int("num_steps", num_steps)
    check_nonnegative("initial_gap", initial_gap)
    root_t = np.sqrt(num_steps)
    return 4 * smoothness * initial_gap / root_t + 8 * noise_variance / (batch * root_t)


def pl_bound(smoothness, pl_constant, noise_variance, batch, num_steps, initial_gap) -> float:
    """``3β²(L(w₀) − L*)/(μ²T²) + 22βσ²/(μ²bT)`` (Thm 2, PL part). Conventions: [loss-mean]."""
    check_positive("smoothness", smoothness)
    check_positive("pl_constant", pl_constant)
    check_nonnegative("noise_variance", noise_variance)
    check_positive_int("batch", batch)
    check_positive_int("num_steps", num_steps)
    check_nonnegative("initial_gap", initial_gap)
    beta, mu, t = smoothness, pl_constant, num_steps
    return 3 * beta**2 * initial_gap / (mu**2 * t**2) + 22 * beta * noise_variance / (mu**2 * batch * t)


def nonconvex_schedule(smoothness: float, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant ``γ = 1/(√T β)``, ``ρ = 1/(T^{1/4} β)`` for all ``T`` steps. Conventions: [rho-sam]."""
    check_positive("smoothness", smoothness)
    check_positive_int("num_steps", num_steps)
    gamma = np.full(num_steps, 1.0 / (np.sqrt(num_steps) * smoothness))
    rho = np.full(num_steps, 1.0 / (num_steps**0.25 * smoothness))
    return gamma, rho


def pl_schedule(smoothness: float, pl_constant: float, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``γ_t = min{(8t+4)/(3μ(t+1)²), 1/(2β)}``, ``ρ_t = √(γ_t/β)``, t = 0..T−1. Conventions: [rho-sam]."""
    check_positive("smoothness", smoothness)
    check_positive("pl_constant", pl_constant)
    check_positive_int("num_steps", num_steps)
    t = np.arange(num_steps, dtype=float)
    gamma = np.minimum((8 * t + 4) / (3 * pl_constant * (t + 1) ** 2), 1.0 / (2 * smoothness))
    return gamma, np.sqrt(gamma / smoothness)


class StochasticRun(NamedTuple):
    """Per-step values along one run: ``‖∇L(w_t)‖²`` and ``L(w_t)`` for t = 0..T (full-data)."""

    grad_norm_sq: jax.Array
    loss: jax.Array
    final_params: object


def run_stochastic_usam(
    loss_fn: Callable, params, data, *, gammas, rhos, batch: int, key: jax.Array
) -> StochasticRun:
    """Stochastic unnormalized SAM with the same minibatch for ascent and descent.

    ``gammas`` and ``rhos`` are arrays of length ``T`` (one value per step).
    Each step draws ``batch`` indices uniformly with replacement. Records the
    full-data ``‖∇L‖²`` and ``L`` at every iterate ``w_0 … w_T``. A call of
    :func:`samtheory.train.run` with schedules for the step and ρ. Pure,
    ``jit``- and ``vmap``-friendly (vmap over ``key`` for Monte Carlo).
    Conventions: [loss-mean], [rho-sam], [m], [rng].
    """
    check_positive_int("batch", batch)
    gammas, rhos = jnp.asarray(gammas), jnp.asarray(rhos)
    if gammas.shape != rhos.shape or gammas.ndim != 1:
        raise ValueError(f"gammas and rhos must be 1-D of equal length, got {gammas.shape} and {rhos.shape}")
    batch_size(data)  # raises ValueError on an inconsistent data set
    full_grad = jax.grad(loss_fn)

    def observe(w):
        g = full_grad(w, data)
        return {"grad_norm_sq": sum(jnp.sum(x**2) for x in jax.tree.leaves(g)), "loss": loss_fn(w, data)}

    num_steps = gammas.shape[0]
    result = train.run(
        loss_fn, params, data, variant=SAM(rhos[0], normalize=False), num_steps=num_steps,
        learning_rate=lambda t: gammas[t], rho=lambda t: rhos[t], batch_size_per_step=batch,
        sampling="with_replacement", record_steps=np.arange(num_steps + 1), metrics_fn=observe, key=key,
    )
    return StochasticRun(result.metrics["grad_norm_sq"], result.metrics["loss"], result.params)
