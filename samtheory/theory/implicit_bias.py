"""The implicit bias of diagonal linear networks: hyperbolic entropy and its minimizers.

Gradient flow on the w± diagonal network ``β = w₊² − w₋²`` started at
``w₊(0) = w₋(0) = α`` (and run to an interpolator) returns

    ``β_α = argmin Q_α(β)  subject to  Xβ = y``,

where ``Q_α`` is the *hyperbolic entropy* (Woodworth et al. 2020)

    ``Q_α(β) = Σ_i α_i² q(β_i / α_i²)``,  ``q(z) = 2 − √(4 + z²) + z·arcsinh(z/2)``.

``Q_α`` interpolates between ``‖β‖²/(4α²)`` for large α (the "kernel regime":
``β_α`` → the minimum-ℓ₂ interpolator) and ``log(1/α²)·‖β‖₁`` for small α
(the "rich regime": ``β_α`` → the minimum-ℓ₁ interpolator). This module
evaluates ``Q_α`` and its gradient without loss of precision at any scale,
and computes ``β_α`` by Newton's method on the smooth dual

    ``D(μ) = Σ_i 2α_i² cosh((Xᵀμ)_i) − μᵀy``,   ``β(μ) = 2α² ⊙ sinh(Xᵀμ)``,

together with the two limits (:func:`l1_interpolator`,
:func:`l2_interpolator`). Derivations, the limits with their rates, and the
numerical design are in ``docs/theory.md``, section "Hyperbolic entropy and
its dual".

References:
    B. Woodworth, S. Gunasekar, J. Lee, E. Moroshko, P. Savarese, I. Golan,
    D. Soudry, N. Srebro. *Kernel and Rich Regimes in Overparametrized
    Models.* COLT 2020.

    R. Cominetti, J. San Martín. *Asymptotic analysis of the exponential
    penalty trajectory in linear programming.* Math. Programming 67, 1994.

    A. J. Cox, N. J. Higham. *Stability of Householder QR factorization for
    weighted least squares problems.* 1998.

Conventions: [alpha], [float].
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from samtheory._validation import check_positive, check_positive_int, concrete_values

__all__ = [
    "MinEntropyResult",
    "NonConvergenceError",
    "hyperbolic_entropy",
    "hyperbolic_entropy_grad",
    "l1_interpolator",
    "l2_interpolator",
    "min_entropy_interpolator",
]


# --------------------------------------------------------------------------
# The hyperbolic entropy, coordinate by coordinate.
#
# q is even; with b = |β|, z = b/α² ≥ 0 and ξ = arcsinh(z/2) (so z = 2 sinh ξ,
# √(4 + z²) = 2 cosh ξ):
#
#     α² q(z) = α²(2 − 2cosh ξ + 2ξ sinh ξ) = b·(ξ − tanh(ξ/2)),
#
# using (cosh ξ − 1)/sinh ξ = tanh(ξ/2). Since 0 ≤ tanh(ξ/2) ≤ ξ/2, the
# difference is at least half of ξ: the subtraction loses at most one bit, at
# every z. The textbook formula instead computes 2 − √(4+z²) = 0 for z ≲ 1e-8
# and returns z²/2, twice the true z²/4, and overflows once z² > 1.8e308.
# Multiplying by b (not by α²) keeps α² q(z) ≈ β²/(4α²) representable for
# huge α and ≈ |β| log(|β|/α²) for tiny α.
#
# z itself is formed as b/α/α (two correctly rounded divisions: relative error
# ≤ 2 eps, no spurious overflow of α²), and ξ by the (accurate at every
# scale) arcsinh. z is +inf only when the true z exceeds the largest float;
# then ξ = log z + O(z⁻²) = log b − 2 log α to working precision, and since
# ξ > 709 there, the absolute error eps·(|log b| + 2|log α|) of that sum is a
# relative error of a few eps.
# --------------------------------------------------------------------------


def _xi(b: jax.Array, alpha: jax.Array) -> jax.Array:
    """``ξ = arcsinh(z/2)`` at ``z = b/α²``, for ``b ≥ 0``, also where z overflows."""
    z = b / alpha / alpha
    direct = jnp.isfinite(z)
    # Each branch gets arguments that are harmless in it, so that neither
    # produces inf/NaN that could leak into derivatives (the double `where`).
    xi_direct = jnp.arcsinh(0.5 * jnp.where(direct, z, 1.0))
    xi_log = jnp.log(jnp.where(direct, 1.0, b)) - 2.0 * jnp.log(alpha)
    return jnp.where(direct, xi_direct, xi_log)


@jax.custom_jvp
def _mirror(beta: jax.Array, alpha: jax.Array) -> jax.Array:
    """``∂Q_α/∂β = arcsinh(β/(2α²))``, elementwise, at every scale."""
    return jnp.sign(beta) * _xi(jnp.abs(beta), alpha)


@_mirror.defjvp
def _mirror_jvp(primals, tangents):
    beta, alpha = primals
    d_beta, d_alpha = tangents
    # d/dβ arcsinh(β/(2α²)) = 1/√(4α⁴ + β²) = q''(z)/α²;
    # d/dα arcsinh(β/(2α²)) = −2β/(α √(4α⁴ + β²)).
    inv = 1.0 / jnp.hypot(2.0 * alpha * alpha, beta)
    return _mirror(beta, alpha), inv * d_beta - (2.0 * beta / alpha) * inv * d_alpha


@jax.custom_jvp
def _entropy_terms(beta: jax.Array, alpha: jax.Array) -> jax.Array:
    """``α_i² q(β_i/α_i²) = |β_i|(ξ_i − tanh(ξ_i/2))``, elementwise."""
    b = jnp.abs(beta)
    xi = _xi(b, alpha)
    return b * (xi - jnp.tanh(0.5 * xi))


@_entropy_terms.defjvp
def _entropy_terms_jvp(primals, tangents):
    beta, alpha = primals
    d_beta, d_alpha = tangents
    b = jnp.abs(beta)
    # ∂/∂β = q'(z) = arcsinh(z/2) = sign(β) ξ.
    # ∂/∂α = 2α q(z) − 2zα q'(z) = 2α(2 − √(4 + z²)) = −4α(cosh ξ − 1)
    #      = −(2b/α)·tanh(ξ/2)   (b/α² = 2 sinh ξ; no cancellation, no α² overflow).
    return (
        _entropy_terms(beta, alpha),
        _mirror(beta, alpha) * d_beta - (2.0 * b / alpha) * jnp.tanh(0.5 * _xi(b, alpha)) * d_alpha,
    )


def _float_dtype(*values) -> jnp.dtype:
    """The floating dtype of the arguments ([float]: a float32 caller gets float32)."""
    return jnp.result_type(*values, float)


def _check_alpha_shape(alpha: ArrayLike, shape: tuple[int, ...], what: str) -> None:
    if jnp.shape(alpha) not in ((), shape):
        raise ValueError(
            f"alpha must be a scalar or have the shape {shape} of {what}, got shape {jnp.shape(alpha)}"
        )


def _checked_beta_alpha(beta: ArrayLike, alpha: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Validate α, cast both to a common float dtype and broadcast α to β's shape."""
    check_positive("alpha", alpha)
    _check_alpha_shape(alpha, jnp.shape(beta), "beta")
    dtype = _float_dtype(beta, alpha)
    beta = jnp.asarray(beta, dtype)
    alpha = jnp.broadcast_to(jnp.asarray(alpha, dtype), beta.shape)
    return beta, alpha


def hyperbolic_entropy(beta: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """The hyperbolic entropy ``Q_α(β) = Σ_i α_i² q(β_i/α_i²)``.

    ``q(z) = 2 − √(4 + z²) + z·arcsinh(z/2)`` is even, convex, ``q(0) = 0``,
    ``q'(z) = arcsinh(z/2)``, ``q''(z) = 1/√(4 + z²)``, with
    ``q(z) = z²/4 − z⁴/192 + O(z⁶)`` at 0 and ``q(z) = |z|(log|z| − 1) + 2 + O(1/|z|)``
    at infinity. Hence ``Q_α(β) ≈ ‖β‖²/(4α²)`` for ``α² ≫ |β|`` and
    ``Q_α(β) ≈ log(1/α²)‖β‖₁ + Σ|β_i|(log|β_i| − 1)`` for ``α² ≪ |β|``
    (Woodworth et al. 2020).

    Evaluated as ``Σ |β_i|·(ξ_i − tanh(ξ_i/2))``, ``ξ_i = arcsinh(|β_i|/(2α_i²))``
    (an exact rewriting), which loses at most one bit at every scale
    (the textbook formula returns twice the true value for ``z ≲ 1e-8`` and
    overflows for ``z ≳ 1e154``), and in the log domain where ``z`` itself
    overflows (e.g. ``α = 1e-200``). Derivatives (any order, with respect to
    both arguments) are exact formulas, not differentiated branches:
    ``∂Q/∂β_i = arcsinh(β_i/(2α_i²))`` and
    ``∂Q/∂α_i = 2α_i(2 − √(4 + z_i²))``.

    Args:
        beta: Coefficients, any shape.
        alpha: The [alpha] initialization scale ``α > 0``: a scalar, or one
            value per coordinate (the shape of ``beta``).

    Returns:
        ``Q_α(β)``, a scalar of the floating dtype of the inputs.

    Conventions: [alpha], [float].
    """
    return jnp.sum(_entropy_terms(*_checked_beta_alpha(beta, alpha)))


def hyperbolic_entropy_grad(beta: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """The mirror map ``∇_β Q_α(β) = arcsinh(β/(2α²))``, elementwise.

    The KKT condition of ``min Q_α(β) s.t. Xβ = y`` is that this vector lies
    in ``range(Xᵀ)``. Computed without forming ``β/(2α²)`` when that
    overflows (then ``arcsinh(β/(2α²)) = sign(β)(log|β| − 2 log α)`` to
    working precision). Equal to ``jax.grad(hyperbolic_entropy)``.

    Args:
        beta: Coefficients, any shape.
        alpha: ``α > 0``, a scalar or the shape of ``beta``.

    Returns:
        An array of the shape of ``beta``.

    Conventions: [alpha], [float].
    """
    return _mirror(*_checked_beta_alpha(beta, alpha))


# --------------------------------------------------------------------------
# The minimum-entropy interpolator, by Newton's method on the dual.
# --------------------------------------------------------------------------


class MinEntropyResult(NamedTuple):
    """Solution of ``min Q_α(β) s.t. Xβ = y`` and how it was obtained.

    Attributes:
        beta: The minimizer ``β = 2α² ⊙ sinh(Xᵀμ)``, shape ``(d,)``; all NaN
            if the solver did not converge (never a silent wrong answer).
        mu: The last dual iterate ``μ``, shape ``(n,)``: the Lagrange
            multiplier of ``Xβ = y``, ``arcsinh(β/(2α²)) = Xᵀμ`` to rounding.
        residual: ``‖Xβ − y‖₂`` at the last iterate (before any NaN fill).
        relative_residual: ``‖Xβ − y‖₂ / (‖y‖₂ + ‖|X||β|‖₂)``, the residual
            relative to the size of the terms that cancel in ``Xβ − y``
            (the normwise backward error of the constraint; at convergence
            it is a few eps).
        iterations: Number of Newton steps taken.
        converged: Whether ``relative_residual ≤ rtol`` was reached.
    """

    beta: jax.Array
    mu: jax.Array
    residual: jax.Array
    relative_residual: jax.Array
    iterations: jax.Array
    converged: jax.Array


class NonConvergenceError(RuntimeError):
    """:func:`min_entropy_interpolator` did not reach its tolerance within ``max_iter`` steps."""


# A Newton step is provably safe (guaranteed decrease of D, see _newton_solve)
# once it moves Xᵀμ by at most this much in sup norm.
_SAFE_STEP = 0.5


def _log_cosh_weights(v: jax.Array, log_alpha2: jax.Array) -> jax.Array:
    """``log(2α² cosh v) = |v| + log α² + log1p(e^{−2|v|})``: never overflows for finite v."""
    av = jnp.abs(v)
    return av + log_alpha2 + jnp.log1p(jnp.exp(-2.0 * av))


def _primal_of_dual(v: jax.Array, log_alpha2: jax.Array) -> jax.Array:
    """``β = 2α² sinh v = sign(v)·exp(|v| + log α²)·(1 − e^{−2|v|})``, accurate for tiny and huge |v|."""
    av = jnp.abs(v)
    return jnp.sign(v) * jnp.exp(av + log_alpha2) * -jnp.expm1(-2.0 * av)


def _dual_gradient(mu, x, y, log_alpha2):
    """``∇D(μ) = Xβ(μ) − y`` (inf or NaN if β overflows; callers treat that as a rejection)."""
    return x @ _primal_of_dual(x.T @ mu, log_alpha2) - y


def _newton_direction(mu, grad, x, log_alpha2):
    """The (regularized) Newton direction of ``D`` at ``μ``, as ``(p̂, ℓ)``: ``p = ℓp̂``, ``‖Xᵀp̂‖∞ = 1``.

    ``H = X diag(c) Xᵀ``, ``c = 2α² cosh(Xᵀμ)``. For small α the weights
    ``c_j`` span hundreds of orders of magnitude, so nothing is formed from
    ``c`` itself:

    * **Noise floor.** Each ``β_j = exp(|v_j| + log α_j²)·…`` carries a
      relative rounding error ``~eps·|v_j|``, so ``∇D`` is only known to
      about ``η = eps·max(1, ‖v‖∞)`` times the largest weight. A direction
      whose curvature is below that sees only noise in the gradient, and the
      exact Newton step amplifies the noise by the inverse curvature: in a
      sparse-recovery problem (n = 20, d = 30, 3-sparse) at α = 1e-100 the
      off-support weights are ``e^{-90}`` to ``e^{-240}`` times the largest,
      and the exact Newton step for the float64 gradient moves ``Xᵀμ`` by
      ``1e50`` along them; unregularized Newton then stalls. So the weights
      are floored, ``c̃ = c + η·max c`` (a Levenberg–Marquardt term in the
      metric of ``v = Xᵀμ``). ``p = −(X diag(c̃) Xᵀ)⁻¹∇D`` is still a descent
      direction, it is Newton's step in every direction the gradient can
      resolve, and the fixed point is unchanged (the floor only
      preconditions; convergence is judged on the true residual).
    * **Factorization.** ``H̃/max c = AᵀA`` with
      ``A = diag(√(c̃/max c)) Xᵀ``, computed from ``log c``, with the rows
      sorted by decreasing weight (Householder QR is then row-wise backward
      stable, Cox & Higham 1998). ``cond(A) ≤ cond(X)/√η``.
    * **Scale.** The full step length ``ℓ = ‖XᵀH̃⁻¹∇D‖∞`` is returned
      separately from the unit direction: at ``μ = 0`` with ``α = 1e-200`` it
      is ``~1e400``, which is not a float (it comes back as ``+inf``, which
      the step-length rule handles).
    """
    v = x.T @ mu
    log_c = _log_cosh_weights(v, log_alpha2)
    log_c_max = jnp.max(log_c)
    log_eta = jnp.log(jnp.finfo(x.dtype).eps * jnp.maximum(1.0, jnp.max(jnp.abs(v))))
    log_c_rel = jnp.logaddexp(log_c - log_c_max, log_eta)  # log(c̃ / max c)
    order = jnp.argsort(-log_c_rel)
    a = (jnp.exp(0.5 * log_c_rel)[:, None] * x.T)[order]
    r = jnp.linalg.qr(a, mode="r")
    p_rel = -solve_triangular(r, solve_triangular(r, grad, trans="T", lower=False), lower=False)
    s = jnp.max(jnp.abs(x.T @ p_rel))
    s = jnp.where(s > 0, s, 1.0)  # ∇D = 0: any unit direction, the length is 0
    return p_rel / s, s * jnp.exp(-log_c_max)


@jax.jit
def _newton_solve(x, y, log_alpha2, rtol, max_iter):
    """Damped Newton on the dual ``D`` from ``μ = 0``, then one refinement step in β.

    Step length. Let ``p`` be the step of :func:`_newton_direction`,
    ``s = ‖Xᵀp‖∞`` and ``δ² = −∇Dᵀp = pᵀH̃p ≥ pᵀHp``. Since
    ``cosh(a + b) ≤ cosh(a)e^{|b|}``, ``H(μ + τp) ⪯ e^{τs}H(μ)`` along the
    segment, so ``D(μ + tp) − D(μ) ≤ −tδ² + (t²/2)e^{ts}δ²``. With
    ``t_safe = min(1, 0.5/s)`` this is ``≤ −0.17 t_safe δ² < 0``: a decrease
    guaranteed without evaluating ``D`` (whose values cancel to rounding near
    the optimum, where ``s → 0``, ``t_safe = 1`` and the iteration is plain
    Newton, quadratically convergent). Far from the optimum (small α: the
    first direction overshoots ``log(1/α²)`` by a factor ~``1/α²``) the step
    is doubled from ``t_safe`` towards ``t = 1`` while the slope
    ``φ'(t) = pᵀ∇D(μ + tp)`` of the convex ``φ(t) = D(μ + tp)`` is still
    negative at the doubled step, i.e. while ``D`` still decreases there, so
    a long way is covered in ``O(log(1/t_safe))`` gradient evaluations and
    the step never passes the minimizer along the ray. Slopes, not values,
    are compared, because they are as accurate as ``∇D`` itself.

    Stopping. The loop ends when ``‖Xβ − y‖ ≤ rtol·(‖y‖ + ‖|X||β|‖)`` or when
    the Newton step in ``v = Xᵀμ`` is at rounding level
    (``≤ 64·eps·max(1, ‖v‖∞)``): ``β = 2α² sinh(Xᵀμ)`` cannot be evaluated
    more accurately than ``|δβ_j| ≈ c_j·eps·|x_j|ᵀ|μ|``, which for a
    coordinate with large ``α_j`` (``c_j ≈ 2α_j²``) and small ``v_j`` is far
    above ``eps·|β_j|``.

    Refinement. The last Newton correction ``δμ`` is then applied to β
    directly, ``β ← β + c ⊙ Xᵀδμ`` (the linearization of ``β(μ + δμ)``),
    which removes that floor: the feasibility residual drops to the rounding
    of ``Xβ`` itself, while stationarity ``arcsinh(β/(2α²)) = Xᵀ(μ + δμ)``
    changes by ``O(‖Xᵀδμ‖∞²)``; it is applied only when
    ``‖Xᵀδμ‖∞ ≤ √eps``, and kept only if it lowers the residual.
    """
    eps = jnp.finfo(x.dtype).eps
    y_norm = jnp.linalg.norm(y)
    abs_x = jnp.abs(x)

    def residual_and_scale(beta):
        """``(Xβ − y, ‖Xβ − y‖, ‖y‖ + ‖|X||β|‖)``: the residual and the size of what it cancels."""
        grad = x @ beta - y
        return grad, jnp.linalg.norm(grad), y_norm + jnp.linalg.norm(abs_x @ jnp.abs(beta))

    def residuals(mu):
        return residual_and_scale(_primal_of_dual(x.T @ mu, log_alpha2))

    def step_length(mu, p_hat, full):
        def grow(state):
            length, _ = state
            longer = 2.0 * length
            slope = p_hat @ _dual_gradient(mu + longer * p_hat, x, y, log_alpha2)
            accept = (longer <= full) & (slope < 0)
            return jnp.where(accept, longer, length), accept

        first = jnp.minimum(full, _SAFE_STEP)
        length, _ = jax.lax.while_loop(lambda st: st[1], grow, (first, first < full))
        return length

    def body(state):
        mu, grad, _, _, _, it = state
        p_hat, full = _newton_direction(mu, grad, x, log_alpha2)
        stalled = full <= 64.0 * eps * jnp.maximum(1.0, jnp.max(jnp.abs(x.T @ mu)))
        mu = mu + step_length(mu, p_hat, full) * p_hat
        return (mu, *residuals(mu), stalled, it + 1)

    def cond(state):
        _, _, res, scale, stalled, it = state
        return (res > rtol * scale) & ~stalled & (it < max_iter) & jnp.isfinite(res)

    mu0 = jnp.zeros_like(y)
    state = (mu0, *residuals(mu0), jnp.asarray(False), jnp.asarray(0))
    mu, grad, res, scale, _, it = jax.lax.while_loop(cond, body, state)

    # Refinement in β (see above).
    v = x.T @ mu
    beta = _primal_of_dual(v, log_alpha2)
    p_hat, full = _newton_direction(mu, grad, x, log_alpha2)
    small = full <= jnp.sqrt(eps)
    d_mu = jnp.where(small, full, 0.0) * p_hat
    beta_ref = beta + jnp.exp(_log_cosh_weights(v, log_alpha2)) * (x.T @ d_mu)
    _, res_ref, scale_ref = residual_and_scale(beta_ref)
    better = small & (res_ref < res)
    beta = jnp.where(better, beta_ref, beta)
    mu = jnp.where(better, mu + d_mu, mu)
    res = jnp.where(better, res_ref, res)
    scale = jnp.where(better, scale_ref, scale)

    converged = res <= rtol * scale
    return MinEntropyResult(
        beta=jnp.where(converged, beta, jnp.nan),
        mu=mu,
        residual=res,
        relative_residual=res / jnp.where(scale > 0, scale, 1.0),
        iterations=it,
        converged=converged,
    )


def _check_design(x: ArrayLike, y: ArrayLike) -> tuple[int, int]:
    if jnp.ndim(x) != 2:
        raise ValueError(f"X must have shape (n, d), got shape {jnp.shape(x)}")
    n, d = jnp.shape(x)
    if jnp.shape(y) != (n,):
        raise ValueError(f"y must have shape (n,) = ({n},) to match X, got shape {jnp.shape(y)}")
    if n > d:
        raise ValueError(f"X must have n <= d (an underdetermined system), got shape {(n, d)}")
    xv = concrete_values(x)
    if xv is not None:
        if not np.all(np.isfinite(xv)):
            raise ValueError("X must be finite")
        sv = np.linalg.svd(xv.astype(np.float64), compute_uv=False)
        if sv.size == 0 or sv[-1] <= max(n, d) * np.finfo(np.float64).eps * sv[0]:
            raise ValueError(f"X must have full row rank {n}; its singular values are {sv}")
    yv = concrete_values(y)
    if yv is not None and not np.all(np.isfinite(yv)):
        raise ValueError("y must be finite")
    return n, d


def min_entropy_interpolator(
    x: ArrayLike,
    y: ArrayLike,
    alpha: ArrayLike,
    *,
    rtol: float | None = None,
    max_iter: int = 100,
    raise_on_failure: bool = True,
) -> MinEntropyResult:
    """``argmin Q_α(β) subject to Xβ = y``: the limit of gradient flow on the w± network.

    Solved through the dual (derivation in ``docs/theory.md``, "Hyperbolic
    entropy and its dual"): the KKT conditions ``arcsinh(β/(2α²)) = Xᵀμ``,
    ``Xβ = y`` say that ``β = 2α² ⊙ sinh(Xᵀμ)`` where ``μ`` minimizes the
    smooth, strictly convex, coercive ``D(μ) = Σ_i 2α_i² cosh((Xᵀμ)_i) − μᵀy``
    (``∇D = Xβ(μ) − y``, ``∇²D = X diag(2α² cosh(Xᵀμ)) Xᵀ``). Stationarity
    holds by construction (to rounding); damped Newton on ``D`` runs until
    the feasibility residual is at the tolerance,
    ``‖Xβ − y‖₂ ≤ rtol·(‖y‖₂ + ‖|X||β|‖₂)`` (the normwise backward error of
    the constraint, scale invariant; ``= rtol·‖y‖`` up to a factor of a few
    on well-scaled data).

    Everything is computed in the log domain (``2α² cosh v = exp(|v| + log α²
    + log1p(e^{−2|v|}))``), with a noise-aware regularization of the Newton
    system and a final refinement step in β. It converges for α from 1e-200
    to 1e12 and for per-coordinate α spanning 15 decades; on non-degenerate
    problems the result agrees with a 60-digit reference componentwise to
    the accuracy with which ``2α² sinh(Xᵀμ*)`` can be evaluated at all
    (a few ulps times ``1 + |v_j|``, plus the rounding of ``v = Xᵀμ``).
    Typical Newton counts: 1–3 for α ≳ 1, 10–55 for α ≤ 1e-6; the count
    grows slowly with ``log(1/α)`` (the first steps are long line searches).

    As α → 0, ``β_α`` → the minimum-ℓ₁ interpolator (:func:`l1_interpolator`);
    as α → ∞ it → ``argmin Σβ_i²/α_i²`` (:func:`l2_interpolator`), with
    ``α⁴(β_α − β_ℓ₂) → P_null(β_ℓ₂³)/24`` for scalar α.

    Jit- and vmap-friendly (e.g. ``jax.vmap`` over α or y). Under a
    transformation nothing can be raised, so a run that did not converge
    returns ``converged=False`` and a NaN ``beta``: never a silent wrong
    answer.

    Args:
        x: Design ``X``, shape ``(n, d)`` with ``n ≤ d`` and full row rank.
        y: Targets, shape ``(n,)``.
        alpha: The [alpha] scale ``α > 0``: a scalar or a ``(d,)`` vector.
        rtol: Tolerance on the relative constraint residual, in ``(0, 1)``;
            ``None`` is ``1e-12`` in float64 and ``1e-4`` in lower precision.
        max_iter: Maximum number of Newton steps.
        raise_on_failure: If the result is concrete and did not converge,
            raise :class:`NonConvergenceError` (default). If False, return the
            flagged result.

    Returns:
        A :class:`MinEntropyResult`
        ``(beta, mu, residual, relative_residual, iterations, converged)``.

    Raises:
        ValueError: Bad shapes, ``alpha ≤ 0``, ``X`` not of full row rank or
            not finite, bad ``rtol`` or ``max_iter``.
        NonConvergenceError: See ``raise_on_failure``.

    Conventions: [alpha], [float].
    """
    _, d = _check_design(x, y)
    check_positive("alpha", alpha)
    _check_alpha_shape(alpha, (d,), "a row of X")
    max_iter = check_positive_int("max_iter", max_iter)
    dtype = _float_dtype(x, y, alpha)
    if rtol is None:
        rtol = 1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-4
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    x = jnp.asarray(x, dtype)
    y = jnp.asarray(y, dtype)
    log_alpha2 = jnp.broadcast_to(2.0 * jnp.log(jnp.asarray(alpha, dtype)), (d,))
    result = _newton_solve(x, y, log_alpha2, jnp.asarray(rtol, dtype), jnp.asarray(max_iter))
    converged = concrete_values(result.converged)
    if raise_on_failure and converged is not None and not bool(np.all(converged)):
        raise NonConvergenceError(
            f"min_entropy_interpolator did not converge in {int(result.iterations)} Newton steps "
            f"(max_iter={max_iter}): relative residual {float(result.relative_residual):.3e} "
            f"> rtol = {rtol:.1e}"
        )
    return result


# --------------------------------------------------------------------------
# The two limits.
# --------------------------------------------------------------------------


def l2_interpolator(x: ArrayLike, y: ArrayLike, alpha: ArrayLike | None = None) -> jax.Array:
    """The minimum weighted-ℓ₂ interpolator ``argmin Σ_i β_i²/α_i² s.t. Xβ = y``.

    The α → ∞ limit of :func:`min_entropy_interpolator` with a fixed profile
    ``α_i ∝ alpha_i`` (``Q_α(β) = Σβ_i²/(4α_i²) + O(α⁻⁶)``). With
    ``alpha=None`` (or a scalar) it is the minimum-norm solution ``X⁺y``.
    Computed as ``α ⊙ (X diag α)⁺ y`` by an SVD-based least-squares solve,
    never through ``(XXᵀ)⁻¹``.

    Args:
        x: ``(n, d)``, full row rank, ``n ≤ d``.
        y: ``(n,)``.
        alpha: ``None``, a scalar, or a ``(d,)`` vector of positive weights.

    Conventions: [alpha], [float].
    """
    _, d = _check_design(x, y)
    if alpha is not None:
        check_positive("alpha", alpha)
        _check_alpha_shape(alpha, (d,), "a row of X")
    dtype = _float_dtype(x, y) if alpha is None else _float_dtype(x, y, alpha)
    x = jnp.asarray(x, dtype)
    y = jnp.asarray(y, dtype)
    scale = jnp.ones((d,), dtype) if alpha is None else jnp.broadcast_to(jnp.asarray(alpha, dtype), (d,))
    gamma, *_ = jnp.linalg.lstsq(x * scale, y)
    return scale * gamma


def l1_interpolator(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """The minimum-ℓ₁ interpolator ``argmin ‖β‖₁ s.t. Xβ = y`` (the α → 0 limit).

    Solved as the linear program ``min 1ᵀ(β⁺ + β⁻)`` s.t.
    ``X(β⁺ − β⁻) = y``, ``β± ≥ 0`` with HiGHS dual simplex, which returns a
    vertex: a solution supported on ``|S| ≤ n`` linearly independent columns.
    The vertex is then polished to machine precision by solving
    ``X_S β_S = y`` exactly on its support (the LP's own feasibility
    tolerance is ~1e-7).

    If the minimizer is not unique (degenerate ``X``; not the case for
    generic, e.g. Gaussian, data) this returns one of them, not the
    α → 0 limit of :func:`min_entropy_interpolator`.

    Args:
        x: ``(n, d)``, full row rank, ``n ≤ d``.
        y: ``(n,)``.

    Returns:
        A NumPy float64 array of shape ``(d,)``.

    Raises:
        RuntimeError: If the LP solver fails.

    Conventions: [float] (NumPy, float64).
    """
    _check_design(x, y)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    res = scipy.optimize.linprog(
        c=np.ones(2 * d),
        A_eq=np.hstack([x, -x]),
        b_eq=y,
        bounds=(0, None),
        method="highs-ds",
    )
    if res.status != 0:
        raise RuntimeError(f"l1_interpolator: linprog failed: {res.message}")
    beta = res.x[:d] - res.x[d:]
    # A simplex vertex has its nonbasic variables exactly at 0, and at most one
    # of β⁺_j, β⁻_j basic (their columns are opposite), so this is its support.
    support = np.flatnonzero(beta)
    if 0 < support.size <= n:
        polished = np.zeros(d)
        polished[support] = np.linalg.lstsq(x[:, support], y, rcond=None)[0]
        # Keep the polish only if it is the same vertex (same signs) and exact.
        same_signs = np.array_equal(np.sign(polished[support]), np.sign(beta[support]))
        scale = np.linalg.norm(y) + np.linalg.norm(np.abs(x) @ np.abs(polished))
        exact = np.linalg.norm(x @ polished - y) <= 64 * np.finfo(np.float64).eps * scale
        if same_signs and exact:
            beta = polished
    return beta
