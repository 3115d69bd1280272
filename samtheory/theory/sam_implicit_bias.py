"""Theorem 1 of Andriushchenko & Flammarion (2022): SAM lowers the effective α of a diagonal network.

Setting ([alpha], [loss-sq], [rho-sam] with ``normalize=False``):
``β = w₊² − w₋²``, ``w±(0) = α``, ``L = (1/2n)‖Xβ − y‖²``, ``r = Xβ − y``,
``g = Xᵀr/n``; a tilde marks a quantity at the perturbed point.

**Statement (exact form).** If the unnormalized SAM flow converges to an
interpolator ``β∞``, then ``β∞ = argmin Q_{α_eff}(β) s.t. Xβ = y`` with
``α_eff = α ⊙ exp(−ρΔ)`` and

* n-SAM: ``Δ = 4 ∫₀^∞ g ⊙ g̃ dt``;
* 1-SAM: ``Δ = (4/n) ∫₀^∞ Σ_i (x_i ⊙ x_i) r_i r̃_i dt``.

Derivation in ``docs/theory.md`` ("Theorem 1 ... exact form"): integrate
``d/dt log w±``; the part common to ``w₊`` and ``w₋`` is ``−ρ × rate``, the
rest lies in ``range(Xᵀ)``. The informal statement of the paper is the
first-order version, ``r̃ → r``, with an ``O(ρ²)`` error in ``log α_eff``.

This module gives the integrands (:func:`delta_rate`), to be integrated along
a flow with :func:`samtheory.flows.solve_flow` (``auxiliary=``), and
:func:`effective_alpha`. The integrands are written from the formulas above,
independently of the engine, so comparing them with the flow the engine
drives checks the derivation.

Conventions: [alpha], [loss-mean], [loss-sq], [rho-sam], [m], [normalize].
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from samtheory._validation import check_nonnegative, check_positive

__all__ = ["delta_rate", "effective_alpha", "log_alpha_product"]

Kind = Literal["n_sam", "one_sam"]


def _perturbed_beta(w_plus, w_minus, direction, rho):
    """β at ``w± ⊙ (1 ± 2ρ·direction)``: the USAM perturbation of w± along a β-gradient."""
    return (w_plus * (1 + 2 * rho * direction)) ** 2 - (w_minus * (1 - 2 * rho * direction)) ** 2


def delta_rate(kind: Kind, params, batch, rho, *, first_order: bool = False) -> jax.Array:
    """The integrand of Δ at ``params`` (w± network), so that ``Δ = ∫ delta_rate dt``.

    * ``"n_sam"``: ``4 g ⊙ g̃`` with ``g̃`` the β-gradient at
      ``w± ⊙ (1 ± 2ρ g)`` (the n-SAM ascent point);
    * ``"one_sam"``: ``(4/n) Σ_i (x_i ⊙ x_i) r_i r̃_i`` with ``r̃_i`` the
      residual of example ``i`` at ``w± ⊙ (1 ± 2ρ r_i x_i)``.

    ``first_order=True`` replaces ``r̃`` (and ``g̃``) by ``r`` (``g``): the
    integrand of the informal Theorem 1, independent of ρ.

    Args:
      kind: ``"n_sam"`` or ``"one_sam"``.
      params: ``{"w_plus": (d,), "w_minus": (d,)}``.
      batch: ``{"x": (n, d), "y": (n,)}``.
      rho: the USAM ascent step (≥ 0; may be traced).

    Conventions: [alpha], [loss-mean], [loss-sq], [rho-sam], [m].
    """
    check_nonnegative("rho", rho)
    x, y = batch["x"], batch["y"]
    n = x.shape[0]
    w_plus, w_minus = params["w_plus"], params["w_minus"]
    beta = w_plus**2 - w_minus**2
    r = x @ beta - y
    if kind == "n_sam":
        g = x.T @ r / n
        if first_order:
            return 4 * g * g
        g_tilde = x.T @ (x @ _perturbed_beta(w_plus, w_minus, g, rho) - y) / n
        return 4 * g * g_tilde
    if kind == "one_sam":
        if first_order:
            r_tilde = r
        else:
            per_example_beta = jax.vmap(lambda xi, ri: _perturbed_beta(w_plus, w_minus, ri * xi, rho))(x, r)
            r_tilde = jnp.einsum("nd,nd->n", x, per_example_beta) - y
        return 4 * jnp.mean((x * x) * (r * r_tilde)[:, None], axis=0)
    raise ValueError(f"kind must be 'n_sam' or 'one_sam', got {kind!r}")


def effective_alpha(alpha, rho, delta) -> jax.Array:
    """``α ⊙ exp(−ρΔ)``: the scale of the hyperbolic entropy that SAM's limit minimizes.

    Conventions: [alpha], [rho-sam].
    """
    check_positive("alpha", alpha)
    check_nonnegative("rho", rho)
    return jnp.asarray(alpha) * jnp.exp(-rho * jnp.asarray(delta))


def log_alpha_product(params) -> jax.Array:
    """``½(log w₊ + log w₋)``: equals ``log α_eff`` along the flow (it is ``log α`` at t = 0).

    Conventions: [alpha].
    """
    return 0.5 * (jnp.log(params["w_plus"]) + jnp.log(params["w_minus"]))
