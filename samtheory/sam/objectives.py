"""Sharpness-aware losses of Wen, Ma & Li (2023), "How does SAM minimize sharpness?".

For a loss ``L`` and radius ``rho``:

* worst direction   ``L^Max(x) = max_{‖v‖₂ ≤ 1} L(x + rho v)``;
* ascent direction  ``L^Asc(x) = L(x + rho ∇L(x)/‖∇L(x)‖₂)``;
* average direction ``L^Avg(x) = E_{g ~ N(0, I)} L(x + rho g/‖g‖₂)``.

At a minimizer with Hessian ``H`` in dimension ``D``, ``L^Max = L + rho² λ₁(H)/2``
and ``L^Avg = L + rho² Tr(H)/(2D)`` up to ``O(rho³)``. ``L^Asc`` is only
defined where ``∇L ≠ 0`` (it is ``L`` at a stationary point, by our zero-gradient
convention). Along a manifold of minimizers their implicit biases are toward
small λ₁, small λ_min and small trace respectively.

All take ``(loss_fn, params, batch, rho)`` with ``loss_fn`` the mean loss over
the batch. Conventions: [loss-mean], [rho-sam], [rng].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.sam import perturbation as pert

__all__ = [
    "ascent_direction_loss",
    "average_direction_samples",
    "average_direction_loss",
    "worst_direction_loss",
    "worst_direction_perturbation",
]


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


def ascent_direction_loss(loss_fn: Callable, params, batch, rho) -> jax.Array:
    """``L^Asc``: the loss one normalized ascent step of length ``rho`` away.

    Differentiating it keeps the dependence of the direction on ``params``
    (unlike the SAM update, which drops it). ``∇L = 0`` gives ``L``.
    Conventions: [loss-mean], [rho-sam].
    """
    check_nonnegative("rho", rho)
    eps = pert.dual_norm_perturbation(jax.grad(loss_fn)(params, batch), rho, 2.0)
    return loss_fn(_add(params, eps), batch)


def average_direction_samples(
    loss_fn: Callable, params, batch, rho, *, key: jax.Array, num_samples: int = 256,
    antithetic: bool = True,
) -> jax.Array:
    """Monte Carlo samples ``L(x + rho u_k)``, ``u_k`` uniform on the unit sphere.

    With ``antithetic=True`` the directions come in pairs ``(u, −u)``
    (``num_samples`` must be even): the pair mean cancels every odd-order term
    of the Taylor expansion, so the estimator of ``L^Avg − L`` has variance
    ``O(rho⁴)`` instead of ``O(rho²)``. Each pair mean is an unbiased sample.
    Returns the ``num_samples`` values (pairs adjacent).
    Conventions: [loss-mean], [rho-sam], [rng].
    """
    check_nonnegative("rho", rho)
    check_positive_int("num_samples", num_samples)
    if antithetic and num_samples % 2:
        raise ValueError(f"num_samples must be even with antithetic=True, got {num_samples}")
    draws = num_samples // 2 if antithetic else num_samples
    keys = jax.random.split(key, draws)

    def values(k):
        u = pert.random_sphere_perturbation(k, params, rho)
        plus = loss_fn(_add(params, u), batch)
        if not antithetic:
            return plus[None]
        minus = loss_fn(_add(params, jax.tree.map(jnp.negative, u)), batch)
        return jnp.stack([plus, minus])

    return jax.vmap(values)(keys).reshape(-1)


def average_direction_loss(
    loss_fn: Callable, params, batch, rho, *, key: jax.Array, num_samples: int = 256,
    antithetic: bool = True,
) -> jax.Array:
    """``L^Avg`` estimated by the mean of :func:`average_direction_samples`.

    Conventions: [loss-mean], [rho-sam], [rng].
    """
    return jnp.mean(
        average_direction_samples(
            loss_fn, params, batch, rho, key=key, num_samples=num_samples, antithetic=antithetic
        )
    )


def worst_direction_perturbation(
    loss_fn: Callable, params, batch, rho, *, key: jax.Array, steps: int = 50, restarts: int = 8
):
    """Best ``eps`` found for ``max_{‖eps‖₂ ≤ rho} L(x + eps)`` and its loss value.

    Projected gradient ascent on the ball, ``eps ← Π(eps + rho ∇/‖∇‖)``, run
    from the normalized-gradient point and from ``restarts`` uniform points on
    the sphere; the best iterate over all runs and steps (and ``eps = 0``) is
    returned. The value is a lower bound on the true maximum; restarts guard
    against the local maxima that the non-concave inner problem has.
    Returns ``(eps, value)``. Conventions: [loss-mean], [rho-sam], [rng].
    """
    check_nonnegative("rho", rho)
    check_positive_int("steps", steps)
    if restarts < 0:
        raise ValueError(f"restarts must be >= 0, got {restarts}")
    grad_at = jax.grad(lambda e: loss_fn(_add(params, e), batch))
    value_at = lambda e: loss_fn(_add(params, e), batch)
    g0 = jax.grad(loss_fn)(params, batch)
    zero = jax.tree.map(jnp.zeros_like, params)
    starts = [pert.dual_norm_perturbation(g0, rho, 2.0)]
    starts += [pert.random_sphere_perturbation(k, params, rho) for k in jax.random.split(key, restarts)]
    starts = jax.tree.map(lambda *xs: jnp.stack(xs), *starts)

    def climb(eps0):
        def step(carry, _):
            eps, best_eps, best_val = carry
            eps = pert.project_to_ball(
                _add(eps, pert.dual_norm_perturbation(grad_at(eps), rho, 2.0)), rho, 2.0
            )
            val = value_at(eps)
            better = val > best_val
            best_eps = jax.tree.map(lambda new, old: jnp.where(better, new, old), eps, best_eps)
            return (eps, best_eps, jnp.maximum(val, best_val)), None

        init = (eps0, eps0, value_at(eps0))
        (_, best_eps, best_val), _ = jax.lax.scan(step, init, None, length=steps)
        return best_eps, best_val

    all_eps, all_vals = jax.vmap(climb)(starts)
    i = jnp.argmax(all_vals)
    best_eps = jax.tree.map(lambda x: x[i], all_eps)
    base = value_at(zero)
    use_zero = base >= all_vals[i]
    best_eps = jax.tree.map(lambda e, z: jnp.where(use_zero, z, e), best_eps, zero)
    return best_eps, jnp.maximum(base, all_vals[i])


def worst_direction_loss(
    loss_fn: Callable, params, batch, rho, *, key: jax.Array, steps: int = 50, restarts: int = 8
) -> jax.Array:
    """``L^Max`` by :func:`worst_direction_perturbation`.

    The returned value is ``L(x + eps*)`` with ``eps*`` held fixed, so its
    gradient is the Danskin gradient ``∇L(x + eps*)``.
    Conventions: [loss-mean], [rho-sam], [rng].
    """
    eps, _ = worst_direction_perturbation(
        loss_fn, params, batch, rho, key=key, steps=steps, restarts=restarts
    )
    return loss_fn(_add(params, jax.lax.stop_gradient(eps)), batch)
