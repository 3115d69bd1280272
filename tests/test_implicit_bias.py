"""Hyperbolic entropy and the minimum-entropy interpolator (docs/theory.md, "Hyperbolic entropy and its dual").

Every reference is independent of the code under test: mpmath at high
precision (the textbook formula for q, with enough digits to survive its
cancellation, and Newton on the KKT system for β_α), HiGHS for the ℓ₁
limit (certified by an explicit dual vector), the pseudo-inverse for the ℓ₂
limit, and a diffrax integration of the w± network for the implicit bias
itself. Asymptotic statements are checked by fitted log-log slopes against
the slopes the theory predicts, and by their constants.
"""

from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from samtheory.theory import implicit_bias as ib
from samtheory.models import dln

N, D = 5, 12  # fixed shapes: the solver compiles once for the whole file
EPS = np.finfo(np.float64).eps


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _gaussian_problem(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.standard_normal(N)


# ---------------------------------------------------------------------------
# High-precision references.
# ---------------------------------------------------------------------------


def _mp_entropy_term(b, a):
    """α² q(b/α²) by the textbook formula, with enough digits to survive ``2 − √(4 + z²)``."""
    with mp.workdps(40):
        z = mp.mpf(b) / mp.mpf(a) ** 2
        digits = int(2 * abs(mp.log10(z))) + 40
    with mp.workdps(digits):
        a2 = mp.mpf(a) ** 2
        z = mp.mpf(b) / a2
        return a2 * (2 - mp.sqrt(4 + z * z) + z * mp.asinh(z / 2))


def _mp_solution(x, y, alpha, mu0, iterations=12):
    """β_α from 60-digit Newton on the KKT system, started at ``mu0``; returns (β, ‖Xβ − y‖)."""
    with mp.workdps(60):
        xm = mp.matrix(np.asarray(x).tolist())
        ym = mp.matrix(np.asarray(y).tolist())
        a2 = [mp.mpf(float(a)) ** 2 for a in np.broadcast_to(alpha, (D,))]
        mu = mp.matrix([mp.mpf(float(m)) for m in mu0])
        for _ in range(iterations + 1):
            v = xm.T * mu
            beta = mp.matrix([2 * a2[j] * mp.sinh(v[j]) for j in range(D)])
            grad = xm * beta - ym
            weights = [2 * a2[j] * mp.cosh(v[j]) for j in range(D)]
            hess = mp.matrix(N, N)
            for i in range(N):
                for k in range(N):
                    hess[i, k] = mp.fsum(xm[i, j] * weights[j] * xm[k, j] for j in range(D))
            mu = mu - mp.lu_solve(hess, grad)
        return np.array([float(b) for b in beta]), float(mp.norm(grad))


# ---------------------------------------------------------------------------
# The hyperbolic entropy.
# ---------------------------------------------------------------------------

_BETAS = [1e-300, 1e-200, 1e-100, 1e-20, 1e-8, 1e-3, 0.5, 1.0, 7.0, 1e3, 1e20, 1e100, 1e200, 1e300]
_ALPHAS = [1e-200, 1e-150, 1e-100, 1e-12, 1e-3, 1.0, 1e3, 1e12, 1e100, 1e150]
_entropy_terms = jax.jit(jax.vmap(ib.hyperbolic_entropy))


def test_entropy_is_accurate_to_a_few_ulps_at_extreme_scales():
    pairs, refs = [], []
    for b in _BETAS:
        for a in _ALPHAS:
            ref = _mp_entropy_term(b, a)
            if 1e-300 < ref < 1e300:  # representable, not subnormal
                pairs.append((b, a))
                refs.append(ref)
    b, a = np.array(pairs).T
    ours = np.asarray(_entropy_terms(b, a))
    rel = [abs((mp.mpf(float(o)) - r) / r) for o, r in zip(ours, refs)]
    assert len(pairs) > 100  # the grid covers z from 1e-600 to 1e700
    assert max(rel) <= 4 * EPS


def test_textbook_formula_fails_where_the_stable_form_does_not():
    """Why the rewriting exists: at z = 1e-9 the textbook q is 2× too large; at z = 1e200 it is NaN."""
    def textbook(z):
        return 2 - np.sqrt(4 + z * z) + z * np.arcsinh(z / 2)

    with np.errstate(over="ignore", invalid="ignore"):
        assert textbook(1e-9) == pytest.approx(2 * 0.25e-18, rel=1e-6)
        assert not np.isfinite(textbook(1e200))
    assert float(ib.hyperbolic_entropy(1e-9, 1.0)) == pytest.approx(0.25e-18, rel=4 * EPS)
    ref = _mp_entropy_term(1e200, 1.0)
    assert float(ib.hyperbolic_entropy(1e200, 1.0)) == pytest.approx(float(ref), rel=4 * EPS)


def test_first_derivatives_are_the_stated_formulas_and_derivatives_of_the_value():
    grad_b = jax.jit(jax.vmap(jax.grad(ib.hyperbolic_entropy, argnums=0)))
    grad_a = jax.jit(jax.vmap(jax.grad(ib.hyperbolic_entropy, argnums=1)))
    bs = np.array([b * s for b in [1e-300, 1e-20, 1e-3, 1.0, 1e3, 1e20, 1e300] for s in (1, -1)])
    for a in [1e-200, 1e-12, 1e-3, 1.0, 1e3, 1e100]:
        gb = np.asarray(grad_b(bs, np.full_like(bs, a)))
        ga = np.asarray(grad_a(bs, np.full_like(bs, a)))
        # Autodiff and the explicit mirror map are the same formula (up to
        # how XLA fuses it under jit versus eagerly: one ulp).
        np.testing.assert_allclose(gb, np.asarray(ib.hyperbolic_entropy_grad(bs, a)), rtol=2 * EPS)
        with mp.workdps(1300):
            for b, g_b, g_a in zip(bs, gb, ga):
                z = mp.mpf(b) / mp.mpf(a) ** 2
                ref_b = mp.asinh(z / 2)
                ref_a = 2 * mp.mpf(a) * (2 - mp.sqrt(4 + z * z))
                if 1e-300 < abs(ref_b) < 1e300:
                    assert abs((g_b - ref_b) / ref_b) <= 4 * EPS
                if 1e-300 < abs(ref_a) < 1e300:
                    assert abs((g_a - ref_a) / ref_a) <= 8 * EPS
    # q'(z) = arcsinh(z/2) and the α-derivative are derivatives of the value
    # (high-precision numerical differentiation of the textbook formula).
    def textbook(b, a):  # at the ambient mpmath precision, which mp.diff raises as it needs
        z = b / a**2
        return a**2 * (2 - mp.sqrt(4 + z * z) + z * mp.asinh(z / 2))

    bs, alphas = np.array([0.3, -2.0, 5.0, 1e-4]), np.array([1.0, 0.5, 1e-3, 10.0])
    for b, a, g_b, g_a in zip(bs, alphas, grad_b(bs, alphas), grad_a(bs, alphas)):
        with mp.workdps(60):
            d_b = mp.diff(lambda t: textbook(t, mp.mpf(a)), mp.mpf(b))
            d_a = mp.diff(lambda s: textbook(mp.mpf(b), s), mp.mpf(a))
        assert float(g_b) == pytest.approx(float(d_b), rel=4 * EPS)
        assert float(g_a) == pytest.approx(float(d_a), rel=8 * EPS)


_hessian = jax.jit(jax.hessian(ib.hyperbolic_entropy))
_mixed = jax.jit(jax.jacfwd(jax.grad(ib.hyperbolic_entropy, 0), 1))


@given(
    beta=arrays(np.float64, (D,), elements=_floats(-1e3, 1e3)),
    log_alpha=arrays(np.float64, (D,), elements=_floats(-10, 3)),
)
def test_second_derivatives_are_exact(beta, log_alpha):
    """∂²Q/∂β² = diag(1/√(4α⁴ + β²)) (q'' = 1/√(4 + z²) > 0), and the mixed derivative."""
    alpha = np.exp(log_alpha)
    hess = np.asarray(_hessian(beta, alpha))
    mixed = np.asarray(_mixed(beta, alpha))
    expected = 1 / np.sqrt(4 * alpha**4 + beta**2)
    np.testing.assert_allclose(np.diag(hess), expected, rtol=4 * EPS)
    np.testing.assert_array_equal(hess - np.diag(np.diag(hess)), 0.0)
    # XLA on CPU flushes subnormal results to zero: an exact value below the smallest
    # normal float (found by hypothesis at β = 2.2e-308) may come back as 0.
    np.testing.assert_allclose(np.diag(mixed), -2 * beta / alpha * expected, rtol=8 * EPS, atol=np.finfo(np.float64).tiny)
    assert np.all(np.diag(hess) > 0)


@given(z=_floats(-1e6, 1e6), w=_floats(-1e6, 1e6), t=_floats(0, 1))
def test_q_is_even_nonnegative_zero_at_zero_and_convex(z, w, t):
    q = lambda s: float(ib.hyperbolic_entropy(s, 1.0))  # noqa: E731  (α = 1: Q = q)
    assert q(0.0) == 0.0
    assert q(z) == q(-z)
    assert q(z) >= 0.0
    if abs(z) > 1e-150:  # below that, q(z) ≈ z²/4 underflows to 0
        assert q(z) > 0.0
    mid = t * z + (1 - t) * w
    assert q(mid) <= t * q(z) + (1 - t) * q(w) + 4 * EPS * (q(z) + q(w))


def test_small_alpha_expansion_value_over_log_converges_to_l1_at_rate_one_over_log():
    """Q_α(β) = λ‖β‖₁ + C(β) + 2|S|α² + O(α⁴), λ = log(1/α²), C = Σ_S |β|(log|β| − 1)."""
    beta = np.array([0.7, -1.3, 0.0, 2.5, 1e-3, 0.0, -0.05, 0.0, 0.0, 0.0, 0.0, 0.0])
    support = beta != 0
    l1 = np.abs(beta).sum()
    c = float(np.sum(np.abs(beta[support]) * (np.log(np.abs(beta[support])) - 1)))
    # Q/λ → ‖β‖₁ at rate exactly C/λ: slope −1 in λ, with the constant C.
    alphas = 10.0 ** -np.arange(8, 101, 8)
    lam = np.log(1 / alphas**2)
    q = np.array([float(ib.hyperbolic_entropy(beta, a)) for a in alphas])
    assert _slope(lam, np.abs(q / lam - l1)) == pytest.approx(-1.0, abs=1e-9)
    np.testing.assert_allclose(q - lam * l1, c, rtol=0, atol=8 * EPS * lam.max() * l1)
    # The next term: 2|S|α² (slope 2 in α).
    alphas = 10.0 ** -np.arange(2.0, 5.5, 0.5)
    lam = np.log(1 / alphas**2)
    rest = np.array([float(ib.hyperbolic_entropy(beta, a)) for a in alphas]) - lam * l1 - c
    assert _slope(alphas, rest) == pytest.approx(2.0, abs=2e-3)
    assert rest[-1] / (2 * support.sum() * alphas[-1] ** 2) == pytest.approx(1.0, abs=1e-4)


def test_large_alpha_expansion_is_quadratic_with_quartic_correction():
    """Q_α(β) = ‖β‖²/(4α²) − Σβ⁴/(192α⁶) + O(α⁻¹⁰)."""
    beta = np.linspace(-2, 3, D)
    alphas = np.array([10.0, 20.0, 40.0, 80.0])
    ratio = np.array([float(ib.hyperbolic_entropy(beta, a)) for a in alphas]) * 4 * alphas**2 / (beta @ beta)
    defect = 1 - ratio  # = Σβ⁴/(48α⁴‖β‖²)·(1 + O(α⁻⁴))
    assert _slope(alphas, defect) == pytest.approx(-4.0, abs=1e-4)
    relative = defect / (np.sum(beta**4) / (48 * alphas**4 * (beta @ beta))) - 1
    assert abs(relative[2]) < 1e-6
    assert _slope(alphas[:2], np.abs(relative[:2])) == pytest.approx(-4.0, abs=0.01)  # the next order


def test_entropy_keeps_float32_and_rejects_bad_alpha():
    assert ib.hyperbolic_entropy(np.ones(3, np.float32), np.float32(0.5)).dtype == np.float32
    with pytest.raises(ValueError, match="alpha"):
        ib.hyperbolic_entropy(np.ones(3), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        ib.hyperbolic_entropy(np.ones(3), -1.0)
    with pytest.raises(ValueError, match="alpha"):
        ib.hyperbolic_entropy_grad(np.ones(3), np.ones(4))


# ---------------------------------------------------------------------------
# The minimum-entropy interpolator.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, alpha",
    [
        (0, 1e-12),
        (1, 1e-3),
        (2, 1e2),
        (3, np.exp(np.random.default_rng(3).uniform(np.log(1e-12), np.log(1e2), D))),
    ],
    ids=["alpha=1e-12", "alpha=1e-3", "alpha=1e2", "per-coordinate"],
)
def test_solver_matches_a_60_digit_reference_componentwise(seed, alpha):
    x, y = _gaussian_problem(seed)
    result = ib.min_entropy_interpolator(x, y, alpha)
    ref, ref_residual = _mp_solution(x, y, alpha, np.asarray(result.mu))
    assert ref_residual < 1e-40  # the reference itself converged
    # First-order error of evaluating β_j = 2α_j² sinh(v_j), v = Xᵀμ, in
    # floating point: the dot product is off by ~eps·|x_j|ᵀ|μ| (times
    # dβ/dv = c_j = 2α_j² cosh v_j), the exponential by ~eps·|v_j| relative.
    # The solver must be as accurate as that evaluation of the exact answer.
    mu = np.asarray(result.mu)
    v = x.T @ mu
    c = 2 * np.broadcast_to(alpha, (D,)) ** 2 * np.cosh(v)
    bound = 4 * EPS * (np.abs(ref) * (1 + np.abs(v)) + c * (np.abs(x).T @ np.abs(mu)))
    assert np.all(np.abs(np.asarray(result.beta) - ref) <= bound)
    assert int(result.iterations) <= 30


@st.composite
def problems(draw):
    """Well-conditioned 5×12 designs, targets with ‖y‖ ≥ 0.1, scalar or per-coordinate α in [1e-12, 1e3]."""
    x = draw(arrays(np.float64, (N, D), elements=_floats(-2, 2)))
    sv = np.linalg.svd(x, compute_uv=False)
    assume(sv[-1] > 0.05 * sv[0])
    y = draw(arrays(np.float64, (N,), elements=_floats(-1, 1)))
    assume(np.linalg.norm(y) > 0.1)
    log10_alpha = draw(arrays(np.float64, (D,), elements=_floats(-12, 3)))
    alpha = 10.0 ** (log10_alpha if draw(st.booleans()) else log10_alpha[0])
    return x, y, alpha


def _null_space(x):
    return np.linalg.svd(x)[2][N:].T  # (D, D − N), orthonormal, X @ it = 0


@given(problem=problems(), z=arrays(np.float64, (D - N,), elements=_floats(-1, 1)))
def test_kkt_conditions_hold_and_null_space_moves_increase_entropy(problem, z):
    x, y, alpha = problem
    assume(np.linalg.norm(z) > 1e-3)
    result = ib.min_entropy_interpolator(x, y, alpha)
    beta, mu = np.asarray(result.beta), np.asarray(result.mu)
    # Feasibility, in the solver's scale-invariant sense and in the plain one.
    assert bool(result.converged)
    scale = np.linalg.norm(y) + np.linalg.norm(np.abs(x) @ np.abs(beta))
    assert np.linalg.norm(x @ beta - y) <= 1e-12 * scale
    assert float(result.relative_residual) <= 1e-12
    # Stationarity: the mirror map of β is Xᵀμ (so it lies in range(Xᵀ)).
    mirror = np.asarray(ib.hyperbolic_entropy_grad(beta, alpha))
    tol = 32 * EPS * (1 + np.max(np.abs(x).T @ np.abs(mu)))
    np.testing.assert_allclose(mirror, x.T @ mu, rtol=0, atol=tol)
    # Optimality among interpolators: moves in null(X) of several sizes.
    q0 = float(ib.hyperbolic_entropy(beta, alpha))
    direction = _null_space(x) @ z
    direction *= np.linalg.norm(beta) / np.linalg.norm(direction)
    for t in (1e-3, 1e-1, 1.0):
        moved = beta + t * direction
        assert np.linalg.norm(x @ moved - y) <= 1e-10 * scale  # still an interpolator
        assert float(ib.hyperbolic_entropy(moved, alpha)) >= q0 * (1 - 8 * EPS)


def test_alpha_to_zero_gives_the_l1_interpolator_at_the_rate_alpha_to_the_2gamma():
    """‖β_α − β_ℓ₁‖ = Θ(α^{2γ}), γ = 1 − max_{j∉S}|x_jᵀν*| (not 1/log(1/α)); the value converges like 1/λ."""
    x, y = _gaussian_problem(2)
    b1 = ib.l1_interpolator(x, y)
    support = np.flatnonzero(b1)
    off = np.setdiff1d(np.arange(D), support)
    # Certify the LP solution: a dual vector with X_Sᵀν = sign(β_S), ‖Xᵀν‖∞ ≤ 1.
    assert support.size == N
    nu = np.linalg.solve(x[:, support].T, np.sign(b1[support]))
    gamma = 1 - np.max(np.abs(x[:, off].T @ nu))
    assert gamma > 0.1  # strict complementarity: the rate below is the theorem's
    np.testing.assert_allclose(x @ b1, y, rtol=0, atol=1e-14)
    alphas = 10.0 ** -np.arange(6, 37, 6)
    results = [ib.min_entropy_interpolator(x, y, a) for a in alphas]
    errors = np.array([np.linalg.norm(np.asarray(r.beta) - b1) for r in results])
    assert np.all(np.diff(errors) < 0)
    assert _slope(alphas[1:], errors[1:]) == pytest.approx(2 * gamma, rel=1e-3)
    # Far faster than 1/log(1/α): λ·error falls by orders of magnitude.
    lam = np.log(1 / alphas**2)
    assert lam[-1] * errors[-1] < 1e-6 * lam[0] * errors[0]
    # The *value* does converge like 1/λ: Q_α(β_α) − λ‖β_ℓ₁‖₁ → C(β_ℓ₁).
    c = float(np.sum(np.abs(b1[support]) * (np.log(np.abs(b1[support])) - 1)))
    values = np.array([float(ib.hyperbolic_entropy(r.beta, a)) for r, a in zip(results, alphas)])
    gaps = values / lam - np.abs(b1).sum()
    assert _slope(lam[1:], np.abs(gaps[1:])) == pytest.approx(-1.0, abs=1e-3)
    assert lam[-1] * gaps[-1] == pytest.approx(c, abs=1e-8)


def test_alpha_to_zero_in_exact_sparse_recovery_is_still_a_power_law():
    """y = Xβ*, β* 2-sparse: ℓ₁ recovers β*, and ‖β_α − β*‖ decays with a constant log-log slope."""
    data = dln.sparse_regression(jax.random.PRNGKey(0), N, D, 2, 1)
    x, y, beta_star = (np.asarray(a) for a in (data.train["x"], data.train["y"], data.beta_star))
    np.testing.assert_allclose(ib.l1_interpolator(x, y), beta_star, rtol=0, atol=1e-14)
    alphas = 10.0 ** -np.arange(3, 16, 3)
    errors = np.array(
        [np.linalg.norm(np.asarray(ib.min_entropy_interpolator(x, y, a).beta) - beta_star) for a in alphas]
    )
    local = np.diff(np.log(errors)) / np.diff(np.log(alphas))
    assert np.all(local > 0.3)
    # A 1/log(1/α) law would have local slopes 2/λ that halve as λ doubles.
    assert np.ptp(local[1:]) < 0.01 * local[-1]


def test_alpha_to_infinity_gives_the_l2_interpolator_with_error_alpha_to_the_minus_4():
    """α⁴(β_α − β_ℓ₂) → P_null(β_ℓ₂³)/24; with a profile α = s·a the limit is argmin Σβ²/a²."""
    x, y = _gaussian_problem(2)
    b2 = np.asarray(ib.l2_interpolator(x, y))
    np.testing.assert_allclose(b2, np.linalg.pinv(x) @ y, rtol=1e-13, atol=1e-15)
    limit = (np.eye(D) - np.linalg.pinv(x) @ x) @ b2**3 / 24
    alphas = np.array([3.0, 5.0, 10.0, 20.0, 40.0])
    betas = [np.asarray(ib.min_entropy_interpolator(x, y, a).beta) for a in alphas]
    errors = np.array([np.linalg.norm(b - b2) for b in betas])
    assert _slope(alphas, errors) == pytest.approx(-4.0, abs=1e-3)
    constant_error = np.array([np.linalg.norm(a**4 * (b - b2) - limit) for a, b in zip(alphas, betas)])
    constant_error /= np.linalg.norm(limit)
    assert constant_error[2] < 1e-6
    assert _slope(alphas[:2], constant_error[:2]) == pytest.approx(-4.0, abs=0.05)  # next order
    for a in (1e3, 1e6, 1e12):
        beta = np.asarray(ib.min_entropy_interpolator(x, y, a).beta)
        np.testing.assert_allclose(beta, b2, rtol=0, atol=1e-14 * np.max(np.abs(b2)))
    # Per-coordinate profile.
    profile = np.exp(np.random.default_rng(7).uniform(-1, 1, D))
    b2w = np.asarray(ib.l2_interpolator(x, y, profile))
    a_mat = np.diag(profile**2)
    np.testing.assert_allclose(b2w, a_mat @ x.T @ np.linalg.solve(x @ a_mat @ x.T, y), rtol=1e-12)
    scales = np.array([3.0, 10.0, 30.0])
    errors = [np.linalg.norm(np.asarray(ib.min_entropy_interpolator(x, y, s * profile).beta) - b2w) for s in scales]
    assert _slope(scales, errors) == pytest.approx(-4.0, abs=1e-3)


@jax.jit
@partial(jax.vmap, in_axes=(None, None, 0))
def _network_flow(x, y, alpha):
    """β(∞) of gradient flow on the w± network from w±(0) = α (diffrax, to t = 1e4)."""
    batch = {"x": x, "y": y}

    def field(t, w, args):
        return jax.tree.map(jnp.negative, jax.grad(dln.loss_pm)(w, batch))

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        0.0,
        1e4,
        1e-3,
        dln.init_pm(D, alpha),
        stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-14),
        max_steps=100_000,
    )
    return dln.beta_pm(jax.tree.map(lambda leaf: leaf[-1], sol.ys))


def test_gradient_flow_on_the_network_converges_to_argmin_q_alpha():
    """The [alpha] convention end to end: the w± flow from α lands on argmin Q_α, not Q_{α/2} or Q_{α²}."""
    data = dln.sparse_regression(jax.random.PRNGKey(1), N, D, 2, 1)
    x, y = data.train["x"], data.train["y"] + 0.3 * jnp.arange(N) / N  # not exactly sparse
    alphas = np.array([0.3, 0.03])
    flows = np.asarray(_network_flow(x, y, jnp.asarray(alphas)))
    for alpha, beta_flow in zip(alphas, flows):
        target = np.asarray(ib.min_entropy_interpolator(x, y, alpha).beta)
        # Measured: 2e-11 and 3e-11 (the ODE tolerance is 1e-11).
        assert np.linalg.norm(beta_flow - target) <= 1e-10 * np.linalg.norm(target)
        for wrong in (alpha / 2, alpha**2):  # measured: 5% to 17% away
            other = np.asarray(ib.min_entropy_interpolator(x, y, wrong).beta)
            assert np.linalg.norm(beta_flow - other) > 1e-2 * np.linalg.norm(target)


def test_vmap_over_alpha_and_y_and_jit_match_single_calls():
    x, _ = _gaussian_problem(4)
    ys = np.random.default_rng(5).standard_normal((6, N))
    alphas = 10.0 ** np.linspace(-12, 3, 6)
    batched = jax.jit(jax.vmap(lambda a, yy: ib.min_entropy_interpolator(x, yy, a)))(alphas, ys)
    assert np.all(np.asarray(batched.converged))
    for a, yy, beta in zip(alphas, ys, np.asarray(batched.beta)):
        single = np.asarray(ib.min_entropy_interpolator(x, yy, a).beta)
        np.testing.assert_allclose(beta, single, rtol=0, atol=1e-13 * np.max(np.abs(single)))


def test_zero_targets_give_zero_and_float32_stays_float32():
    x, y = _gaussian_problem(6)
    zero = ib.min_entropy_interpolator(x, np.zeros(N), 1e-6)
    np.testing.assert_array_equal(np.asarray(zero.beta), 0.0)
    assert int(zero.iterations) == 0
    r32 = ib.min_entropy_interpolator(x.astype(np.float32), y.astype(np.float32), np.float32(1e-3))
    assert r32.beta.dtype == np.float32 and bool(r32.converged)
    r64 = ib.min_entropy_interpolator(x, y, 1e-3)
    np.testing.assert_allclose(np.asarray(r32.beta), np.asarray(r64.beta), rtol=0, atol=1e-3)


def test_non_convergence_raises_eagerly_and_flags_with_nan_under_jit():
    x, y = _gaussian_problem(0)
    with pytest.raises(ib.NonConvergenceError, match="did not converge"):
        ib.min_entropy_interpolator(x, y, 1e-12, max_iter=2)
    flagged = ib.min_entropy_interpolator(x, y, 1e-12, max_iter=2, raise_on_failure=False)
    assert not bool(flagged.converged) and int(flagged.iterations) == 2
    assert np.all(np.isnan(np.asarray(flagged.beta)))
    jitted = jax.jit(lambda a: ib.min_entropy_interpolator(x, y, a, max_iter=2))(1e-12)
    assert not bool(jitted.converged) and np.all(np.isnan(np.asarray(jitted.beta)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=-1.0), "alpha"),
        (dict(alpha=np.ones(D - 1)), "alpha"),
        (dict(alpha=np.nan), "alpha"),
        (dict(x=np.ones(D)), "X"),
        (dict(y=np.ones(N + 1)), "y"),
        (dict(x=np.ones((D + 1, D)), y=np.ones(D + 1)), "X"),
        (dict(x=np.ones((N, D))), "X"),  # rank 1
        (dict(y=np.full(N, np.inf)), "y"),
        (dict(rtol=0.0), "rtol"),
        (dict(rtol=1.5), "rtol"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(kwargs, name):
    x, y = _gaussian_problem(0)
    args = dict(x=x, y=y, alpha=1e-3) | kwargs
    call_kwargs = {k: v for k, v in args.items() if k in ("rtol", "max_iter")}
    with pytest.raises(ValueError, match=name):
        ib.min_entropy_interpolator(args["x"], args["y"], args["alpha"], **call_kwargs)
