"""samtheory.sharpness against dense Hessians, closed forms and exact moments.

Ground truth is ``jax.hessian`` of the raveled loss and ``numpy.linalg.eigh``.
Problems: the tanh net of ``_problems`` (D = 20, indefinite Hessians away from
a minimum) and quadratics with per-example matrices
``ℓ_i(x) = ½ (x − c_i)ᵀ A_i (x − c_i)``, whose Hessian is the mean of the
``A_i`` everywhere. The matrices are data, not closures, so every jitted
function below compiles once per test.

Statistical tests compare with *exact* variances where they are known and are
``derandomize``d: a pass or a failure is reproducible, not a coin flip.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import N_EXAMPLES, no_tiny, tanh_net_loss, tanh_problems
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.flatten_util import ravel_pytree

from samtheory import sharpness as sh
from samtheory.sam.objectives import worst_direction_perturbation

finite = dict(allow_nan=False, allow_infinity=False)
KEY = jax.random.PRNGKey(0)

# ---------------------------------------------------------------------------
# Problems and ground truth
# ---------------------------------------------------------------------------

QUAD_DIM = 24
QUAD_N = 4
TANH_DIM = 20


def quad_loss(params, batch):
    """Mean over examples of ½ (x − c_i)ᵀ A_i (x − c_i), x = the raveled params."""
    x = jnp.concatenate([params["u"], params["v"].reshape(-1)])
    diff = x[None, :] - batch["c"]
    return 0.5 * jnp.mean(jnp.einsum("ni,nij,nj->n", diff, batch["A"], diff))


def quad_params(x):
    x = jnp.asarray(x)
    return {"u": x[:4], "v": x[4:].reshape(2, 10)}


def orthogonal(seed, dim):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


@st.composite
def symmetric_matrices(draw, dim=QUAD_DIM, low=-3.0, high=5.0):
    """A symmetric matrix with hypothesis-drawn eigenvalues (indefinite in general).

    Eigenvalues are rounded to multiples of 1e-6: no matrix at the edge of the
    float range (a Hessian of norm 1e-180 squares to 0), while repeated values
    and the zero matrix, which exercise Lanczos breakdowns, stay likely.
    """
    eigs = np.round(np.array(draw(st.lists(st.floats(low, high, **finite), min_size=dim, max_size=dim))), 6)
    q = orthogonal(draw(st.integers(0, 2**31 - 1)), dim)
    return (q * eigs) @ q.T


@st.composite
def quadratic_problems(draw):
    """(params, batch, A) with every A_i = A, so the Hessian is A."""
    a = draw(symmetric_matrices())
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    batch = {"A": jnp.broadcast_to(jnp.asarray(a), (QUAD_N, QUAD_DIM, QUAD_DIM)),
             "c": jnp.asarray(rng.normal(size=(QUAD_N, QUAD_DIM)))}
    return quad_params(rng.normal(size=QUAD_DIM)), batch, a


@partial(jax.jit, static_argnums=0)
def dense_hessian(loss_fn, params, batch):
    x0, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss_fn(unravel(x), batch))(x0)


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def sphere_quadform_std(eigs):
    """Standard deviation of qᵀHq for q uniform on the unit sphere of R^D.

    E q_i⁴ = 3/(D(D+2)) and E q_i² q_j² = 1/(D(D+2)) give
    E (qᵀHq)² = (2 Tr H² + (Tr H)²) / (D(D+2)).
    """
    d = eigs.size
    second = (2 * np.sum(eigs**2) + np.sum(eigs) ** 2) / (d * (d + 2))
    return np.sqrt(max(second - (np.sum(eigs) / d) ** 2, 0.0))


# Jitted entry points: loss_fn and integer sizes are static, data are traced.
eigenvalues = jax.jit(sh.hessian_eigenvalues, static_argnums=0,
                      static_argnames=("num_iter", "num_eigenvalues", "reorthogonalize"))
slq = jax.jit(sh.slq_spectral_density, static_argnums=0, static_argnames=("num_iter", "num_starts"))
hutchinson = jax.jit(sh.hutchinson_trace, static_argnums=0,
                     static_argnames=("probes_per_batch", "min_probes", "max_probes"))
m_sharp = jax.jit(sh.m_sharpness, static_argnums=0, static_argnames=("m", "steps", "restarts"))
avg_sharp = jax.jit(sh.average_sharpness, static_argnums=0,
                    static_argnames=("distribution", "num_samples", "antithetic"))
worst = jax.jit(worst_direction_perturbation, static_argnums=0, static_argnames=("steps", "restarts"))
direction = jax.jit(sh.filter_normalized_direction, static_argnames="one_dim")
slice_1d = jax.jit(sh.loss_slice_1d, static_argnums=0, static_argnames="chunk_size")
slice_2d = jax.jit(sh.loss_slice_2d, static_argnums=0, static_argnames="chunk_size")
interpolate = jax.jit(sh.linear_interpolation, static_argnums=0, static_argnames="chunk_size")
hvp = jax.jit(sh.hvp, static_argnums=0)

# ---------------------------------------------------------------------------
# Hessian-vector products
# ---------------------------------------------------------------------------


# Entries below 1e-6 are drawn as 0 (no_tiny): H·v near 1e-308 is subnormal, which XLA flushes to zero
# and NumPy does not (hypothesis found v = 1.1e-308·1 in a clean-clone run).
@given(problem=tanh_problems(), v=hnp.arrays(np.float64, (TANH_DIM,), elements=st.floats(-2, 2, **finite).map(no_tiny)))
def test_hvp_matches_the_dense_hessian(problem, v):
    params, batch = problem
    _, unravel = ravel_pytree(params)
    got = flat(hvp(tanh_net_loss, params, batch, unravel(jnp.asarray(v))))
    h = np.asarray(dense_hessian(tanh_net_loss, params, batch))
    np.testing.assert_allclose(got, h @ v, rtol=1e-12, atol=1e-12 * np.abs(h).sum() * np.abs(v).max())


# ---------------------------------------------------------------------------
# Lanczos: extreme eigenvalues
# ---------------------------------------------------------------------------


@given(problem=tanh_problems(), seed=st.integers(0, 2**31 - 1))
def test_full_lanczos_gives_both_ends_of_the_tanh_net_spectrum(problem, seed):
    """num_iter = D: λ_max, λ_min (and the next two at each end) to 1e-8 of ‖H‖, with small residuals."""
    params, batch = problem
    h = np.asarray(dense_hessian(tanh_net_loss, params, batch))
    exact = np.linalg.eigh(h)[0]
    scale = max(np.abs(exact).max(), 1e-300)
    got = eigenvalues(tanh_net_loss, params, batch, key=jax.random.PRNGKey(seed),
                      num_iter=TANH_DIM, num_eigenvalues=3)
    np.testing.assert_allclose(got.largest, exact[::-1][:3], rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(got.smallest, exact[:3], rtol=0, atol=1e-8 * scale)
    assert np.all(np.asarray(got.largest_error) <= 1e-8 * scale)
    assert np.all(np.asarray(got.smallest_error) <= 1e-8 * scale)


@given(problem=quadratic_problems(), seed=st.integers(0, 2**31 - 1))
def test_partial_lanczos_residual_bounds_and_interlacing_hold(problem, seed):
    """num_iter = D/2: every Ritz value lies within its residual of an eigenvalue, inside [λ_min, λ_max]."""
    params, batch, a = problem
    exact = np.linalg.eigh(a)[0]
    scale = np.abs(exact).max()
    got = eigenvalues(quad_loss, params, batch, key=jax.random.PRNGKey(seed),
                      num_iter=QUAD_DIM // 2, num_eigenvalues=2)
    theta, resid = np.asarray(got.ritz.values), np.asarray(got.ritz.residuals)
    distance = np.abs(theta[:, None] - exact[None, :]).min(axis=1)
    assert np.all(distance <= resid * (1 + 1e-8) + 1e-12 * scale), (distance, resid)
    assert theta[-1] <= exact[-1] + 1e-12 * scale and theta[0] >= exact[0] - 1e-12 * scale
    np.testing.assert_allclose(got.largest, theta[::-1][:2])
    np.testing.assert_allclose(got.smallest, theta[:2])


@partial(jax.jit, static_argnames=("num_iter", "reorthogonalize"))
def dense_ritz(a, v0, *, num_iter, reorthogonalize=True):
    """Ritz values of a dense matrix: the matrix is an argument, so one compilation per shape."""
    return sh.ritz_values(sh.lanczos_tridiagonal(lambda v: a @ v, v0, num_iter, key=KEY,
                                                 reorthogonalize=reorthogonalize))


@pytest.mark.parametrize("reorthogonalize", [True, False])
@pytest.mark.parametrize(
    "eigs",
    [np.full(8, 2.0), np.array([-1.0, -1, -1, 0, 0, 4, 4, 4]), np.zeros(8), np.array([3.0, 3, 1, 1, 1, 1, 1, 1])],
    ids=["2I", "multiplicities", "zero", "two-values"],
)
def test_breakdown_is_handled_and_multiplicities_are_recovered(eigs, reorthogonalize):
    """A start vector sees one copy of each distinct eigenvalue; 0/0 at β = 0 must not happen.

    With a restart after each breakdown and num_iter = D, the reorthogonalized run
    returns the whole spectrum with multiplicities; without reorthogonalization the
    extremes are still right and nothing is NaN.
    """
    dim = eigs.size
    q = orthogonal(7, dim)
    a = jnp.asarray((q * eigs) @ q.T)
    v0 = jnp.asarray(np.random.default_rng(1).normal(size=dim))
    # Without reorthogonalization nothing bounds the step count by D: run past it.
    ritz = dense_ritz(a, v0, num_iter=dim if reorthogonalize else 2 * dim, reorthogonalize=reorthogonalize)
    values = np.asarray(ritz.values)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(np.asarray(ritz.residuals)))
    tol = 1e-12 * max(1.0, np.abs(eigs).max())
    if reorthogonalize:
        np.testing.assert_allclose(values, np.sort(eigs), rtol=0, atol=tol)
    np.testing.assert_allclose([values[0], values[-1]], [eigs.min(), eigs.max()], rtol=0, atol=tol)
    np.testing.assert_allclose(np.sum(np.asarray(ritz.weights)), 1.0, rtol=1e-13)


@given(
    eigs=st.lists(st.one_of(st.floats(-3, 5, **finite).map(lambda x: round(x, 6)), st.sampled_from([-1.0, 0.0, 2.0])),
                  min_size=8, max_size=8),
    seed=st.integers(0, 2**31 - 1),
)
def test_lanczos_on_random_symmetric_matrices_with_and_without_reorthogonalization(eigs, seed):
    """Random spectra, often with repeated values. Reorthogonalized, num_iter = D: the whole
    spectrum to 1e-8·‖A‖. Not reorthogonalized (O(D) memory), 2D steps: ghosts may appear,
    but λ_min and λ_max are right to 1e-8·‖A‖ and every Ritz value lies in [λ_min, λ_max]."""
    eigs = np.sort(np.array(eigs))
    q = orthogonal(seed, 8)
    a = jnp.asarray((q * eigs) @ q.T)
    v0 = jnp.asarray(np.random.default_rng(seed).normal(size=8))
    tol = 1e-8 * max(np.abs(eigs).max(), 1e-300)
    full = np.asarray(dense_ritz(a, v0, num_iter=8).values)
    np.testing.assert_allclose(full, eigs, rtol=0, atol=tol)
    plain = np.asarray(dense_ritz(a, v0, num_iter=16, reorthogonalize=False).values)
    np.testing.assert_allclose([plain[0], plain[-1]], [eigs[0], eigs[-1]], rtol=0, atol=tol)
    assert eigs[0] - tol <= plain.min() and plain.max() <= eigs[-1] + tol


@pytest.mark.parametrize("dtype, factor", [(np.float64, 1e-200), (np.float64, 1e150), (np.float32, 1e-25)])
def test_lanczos_is_invariant_to_the_scale_of_the_operator(dtype, factor):
    """Ritz values of cA are c times those of A, also where squared entries underflow."""
    eigs = np.linspace(-1.0, 2.0, 8)
    q = orthogonal(5, 8)
    a = (q * eigs) @ q.T
    v0 = np.random.default_rng(2).normal(size=8)
    base = np.asarray(dense_ritz(jnp.asarray(a, dtype), jnp.asarray(v0, dtype), num_iter=8).values)
    scaled = np.asarray(dense_ritz(jnp.asarray(a * factor, dtype), jnp.asarray(v0, dtype), num_iter=8).values)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(scaled.astype(np.float64) / factor, base, rtol=0, atol=rtol * 2)
    np.testing.assert_allclose(base, eigs, rtol=0, atol=rtol * 2)


def test_zero_start_vector_is_replaced_and_lanczos_needs_valid_sizes():
    a = jnp.diag(jnp.linspace(-1.0, 2.0, 8))
    ritz = dense_ritz(a, jnp.zeros(8), num_iter=8)
    np.testing.assert_allclose(ritz.values, np.linspace(-1.0, 2.0, 8), atol=1e-12)
    with pytest.raises(ValueError, match="exceeds the dimension"):
        sh.lanczos_tridiagonal(lambda v: a @ v, jnp.ones(4), 5, key=KEY)
    with pytest.raises(ValueError, match="num_eigenvalues"):
        sh.hessian_eigenvalues(quad_loss, quad_params(np.ones(QUAD_DIM)), {}, key=KEY, num_iter=2,
                               num_eigenvalues=3)


# ---------------------------------------------------------------------------
# Lanczos quadrature and stochastic Lanczos quadrature
# ---------------------------------------------------------------------------


@given(a=symmetric_matrices(), v=hnp.arrays(np.float64, (QUAD_DIM,), elements=st.floats(-1, 1, **finite)))
def test_lanczos_quadrature_is_exact_up_to_degree_2k_minus_1(a, v):
    """Σ_j τ_j θ_j^p = q̂ᵀ A^p q̂ for p ≤ 2k − 1 (Gauss quadrature from k = 4 steps)."""
    if np.linalg.norm(v) < 1e-3:
        v = np.ones_like(v)
    k = 4
    ritz = dense_ritz(jnp.asarray(a), jnp.asarray(v), num_iter=k)
    q = v / np.linalg.norm(v)
    scale = np.abs(np.linalg.eigvalsh(a)).max()
    for p in range(2 * k):
        exact = q @ np.linalg.matrix_power(a, p) @ q
        got = np.sum(np.asarray(ritz.weights) * np.asarray(ritz.values) ** p)
        assert abs(got - exact) <= 1e-11 * scale**p, (p, got, exact)


@settings(derandomize=True)
@given(problem=tanh_problems())
def test_slq_moments_match_the_trace_within_monte_carlo_error(problem):
    """∫λ dμ ≈ Tr(H)/D and ∫λ² dμ ≈ Tr(H²)/D within 4.5 exact standard errors of the start average."""
    params, batch = problem
    num_starts = 64
    density = slq(tanh_net_loss, params, batch, key=KEY, num_iter=6, num_starts=num_starts)
    nodes, weights = np.asarray(density.nodes), np.asarray(density.weights)
    assert nodes.shape == weights.shape == (num_starts, 6)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    exact = np.linalg.eigh(np.asarray(dense_hessian(tanh_net_loss, params, batch)))[0]
    for power in (1, 2):
        # Degree ≤ 2k − 1: each start's quadrature is its exact q̂ᵀHᵖq̂, an unbiased sample.
        estimate = np.sum(weights * nodes**power)
        se = sphere_quadform_std(exact**power) / np.sqrt(num_starts)
        target = np.mean(exact**power)
        assert abs(estimate - target) <= 4.5 * se + 1e-10 * np.abs(exact).max() ** power, (power, estimate, target, se)


def test_gaussian_smoothed_density_is_a_density_with_the_right_mean():
    params, batch = _fixed_tanh_problem()
    density = slq(tanh_net_loss, params, batch, key=KEY, num_iter=6, num_starts=64)
    span = float(np.abs(np.asarray(density.nodes)).max()) + 3.0
    grid = jnp.linspace(-span, span, 20001)
    phi = np.asarray(sh.gaussian_smoothed_density(density, grid, 0.3))
    assert np.all(phi >= 0)
    np.testing.assert_allclose(np.trapezoid(phi, grid), 1.0, rtol=1e-10)
    mean = np.sum(np.asarray(density.weights) * np.asarray(density.nodes))
    np.testing.assert_allclose(np.trapezoid(phi * np.asarray(grid), grid), mean, rtol=1e-9, atol=1e-9)
    assert sh.gaussian_smoothed_density(density, grid[:500].reshape(100, 5), 0.3).shape == (100, 5)


def _fixed_tanh_problem(seed=42):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "a": rng.normal(size=4)}
    batch = {"x": rng.normal(size=(N_EXAMPLES, 3)), "y": rng.normal(size=N_EXAMPLES)}
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, batch)


def _fixed_quadratic(eigs=None, seed=3):
    eigs = np.linspace(-2.0, 5.0, QUAD_DIM) if eigs is None else np.asarray(eigs)
    q = orthogonal(seed, QUAD_DIM)
    a = (q * eigs) @ q.T
    rng = np.random.default_rng(seed)
    batch = {"A": jnp.broadcast_to(jnp.asarray(a), (QUAD_N, QUAD_DIM, QUAD_DIM)),
             "c": jnp.asarray(rng.normal(size=(QUAD_N, QUAD_DIM)))}
    return quad_params(rng.normal(size=QUAD_DIM)), batch, a


# ---------------------------------------------------------------------------
# Hutchinson
# ---------------------------------------------------------------------------


def rademacher_std(h):
    """Var zᵀHz = 2 (‖H‖_F² − Σ H_ii²) for Rademacher z."""
    return np.sqrt(2 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)))


@settings(derandomize=True)
@given(problem=tanh_problems())
def test_hutchinson_is_within_a_few_standard_errors_of_the_trace(problem):
    params, batch = problem
    h = np.asarray(dense_hessian(tanh_net_loss, params, batch))
    got = hutchinson(tanh_net_loss, params, batch, key=KEY, rel_tol=0.0, max_probes=256)
    # rel_tol = 0 runs the whole budget, unless the samples have no spread at all.
    assert int(got.num_samples) == 256 or (float(got.standard_error) == 0.0 and int(got.num_samples) == 32)
    exact_se = rademacher_std(h) / 16.0
    assert abs(float(got.estimate) - np.trace(h)) <= 4.5 * exact_se + 1e-12 * np.abs(h).sum()
    # The reported SE estimates the exact one (256 probes: within a factor 1.5).
    if exact_se > 1e-10 * np.abs(h).sum():
        assert 1 / 1.5 <= float(got.standard_error) / exact_se <= 1.5


def test_hutchinson_standard_error_matches_the_spread_over_seeds():
    params, batch, a = _fixed_quadratic()
    keys = jax.random.split(jax.random.PRNGKey(11), 200)
    runs = jax.vmap(lambda k: hutchinson(quad_loss, params, batch, key=k, rel_tol=0.0, max_probes=64))(keys)
    spread = np.std(np.asarray(runs.estimate), ddof=1)
    exact_se = rademacher_std(a) / 8.0
    # 200 seeds: the spread is within ±15% of its expectation with overwhelming probability.
    assert 0.85 <= spread / exact_se <= 1.15, (spread, exact_se)
    assert 0.9 <= np.mean(np.asarray(runs.standard_error)) / exact_se <= 1.1
    assert abs(np.mean(np.asarray(runs.estimate)) - np.trace(a)) <= 4.5 * exact_se / np.sqrt(200)


def test_hutchinson_stops_at_the_first_batch_meeting_the_rule():
    rel_tol = 0.03
    params, batch, a = _fixed_quadratic(eigs=np.linspace(0.5, 3.0, QUAD_DIM))
    kwargs = dict(key=KEY, probes_per_batch=8, min_probes=16)
    got = hutchinson(quad_loss, params, batch, rel_tol=rel_tol, max_probes=4096, **kwargs)
    used = int(got.num_samples)
    assert used % 8 == 0 and 16 <= used < 4096
    assert float(got.standard_error) <= rel_tol * abs(float(got.estimate))
    # The same probes with a fixed budget: identical prefix, and one batch fewer fails the rule.
    same = hutchinson(quad_loss, params, batch, rel_tol=0.0, max_probes=used, **kwargs)
    np.testing.assert_allclose(same.estimate, got.estimate, rtol=1e-13)
    if used > 16:
        shorter = hutchinson(quad_loss, params, batch, rel_tol=0.0, max_probes=used - 8, **kwargs)
        assert float(shorter.standard_error) > rel_tol * abs(float(shorter.estimate))


def test_hutchinson_is_exact_for_a_diagonal_hessian_and_validates_its_arguments():
    params, batch, a = _fixed_quadratic()
    eigs = np.linspace(-1.0, 2.0, QUAD_DIM)
    diagonal = dict(batch, A=jnp.broadcast_to(jnp.diag(jnp.asarray(eigs)), (QUAD_N, QUAD_DIM, QUAD_DIM)))
    got = hutchinson(quad_loss, params, diagonal, key=KEY, rel_tol=0.0, probes_per_batch=8, min_probes=16,
                     max_probes=4096)
    np.testing.assert_allclose(got.estimate, eigs.sum(), rtol=1e-13, atol=1e-13)
    assert float(got.standard_error) == 0.0 and int(got.num_samples) == 16
    for bad in [dict(probes_per_batch=1), dict(min_probes=40), dict(min_probes=64, max_probes=32)]:
        with pytest.raises(ValueError):
            sh.hutchinson_trace(quad_loss, params, batch, key=KEY, **bad)


# ---------------------------------------------------------------------------
# m-sharpness
# ---------------------------------------------------------------------------

M_DIM = 3


def m_loss(params, batch):
    diff = params["x"][None, :] - batch["c"]
    return 0.5 * jnp.mean(jnp.einsum("ni,nij,nj->n", diff, batch["A"], diff))


SPIKE = 30.0


@st.composite
def per_example_quadratics(draw):
    """n = 8 examples, A_i = SPIKE·vvᵀ + B_i B_iᵀ, a common minimizer c.

    B_i has entries in [−1, 1], so ‖B_i B_iᵀ‖ ≤ ‖B_i‖_F² ≤ 9 and, by Weyl, every
    chunk mean has λ₁ ≥ 30 and λ₂ ≤ 9. The normalized projected ascent contracts
    the non-leading components by ≤ (1 + λ₂/λ₁)/2 < 0.65 per step: 50 steps reach
    the maximum to rounding, so the closed form can be tested to 1e-9. (With a
    tiny spectral gap the ascent converges arbitrarily slowly; it is still a lower
    bound, which the tanh-net test checks.)
    """
    b = draw(hnp.arrays(np.float64, (N_EXAMPLES, M_DIM, M_DIM), elements=st.floats(-1, 1, **finite)))
    c = draw(hnp.arrays(np.float64, (M_DIM,), elements=st.floats(-1, 1, **finite)))
    v = orthogonal(draw(st.integers(0, 2**31 - 1)), M_DIM)[:, 0]
    a = SPIKE * np.outer(v, v)[None] + np.einsum("nij,nkj->nik", b, b)
    return {"x": jnp.asarray(c)}, {"A": jnp.asarray(a), "c": jnp.broadcast_to(jnp.asarray(c), (N_EXAMPLES, M_DIM))}


@given(problem=per_example_quadratics(), rho=st.floats(0.05, 1.0), seed=st.integers(0, 2**31 - 1))
def test_m_sharpness_at_a_common_minimizer_is_half_rho_squared_mean_chunk_lambda_max(problem, rho, seed):
    """Every chunk loss is ½(w − c)ᵀĀ_C(w − c): its sharpness is exactly ρ²λ_max(Ā_C)/2.

    The ascent is a lower bound (never above) and here reaches it to 1e-9; and,
    λ_max being convex, finer chunks are never less sharp: S_1 ≥ S_4 ≥ S_8.
    """
    params, batch = problem
    a = np.asarray(batch["A"])
    values = {}
    for m in (1, 4, None):
        size = N_EXAMPLES if m is None else m
        chunk_means = a.reshape(N_EXAMPLES // size, size, M_DIM, M_DIM).mean(axis=1)
        exact = 0.5 * rho**2 * np.mean([np.linalg.eigvalsh(h)[-1] for h in chunk_means])
        got = m_sharp(m_loss, params, batch, rho, m=m, key=jax.random.PRNGKey(seed), steps=50, restarts=2)
        assert got.per_chunk.shape == (N_EXAMPLES // size,)
        value = float(got.sharpness)
        assert exact * (1 - 1e-9) <= value <= exact * (1 + 1e-12), (m, value, exact)
        values[m] = value
    tol = 1e-9 * values[1]
    assert values[1] + tol >= values[4] and values[4] + tol >= values[None]


@given(problem=per_example_quadratics(), rho=st.floats(1e-3, 0.5),
       shift=hnp.arrays(np.float64, (M_DIM,), elements=st.floats(-1, 1, **finite)))
def test_m_sharpness_reuses_the_engine_per_chunk(problem, rho, shift):
    """Away from the minimizer, chunk c's value is worst_direction_perturbation on chunk c with
    key split(key)[c], minus L_C; each is ≥ 0 and the result is their mean."""
    params, batch = problem
    params = {"x": params["x"] + jnp.asarray(shift)}
    got = m_sharp(m_loss, params, batch, rho, m=4, key=KEY, steps=50, restarts=2)
    keys = jax.random.split(KEY, 2)
    for c in range(2):
        chunk = jax.tree.map(lambda x: x[4 * c: 4 * (c + 1)], batch)
        _, value = worst(m_loss, params, chunk, rho, key=keys[c], steps=50, restarts=2)
        np.testing.assert_allclose(got.per_chunk[c], value - m_loss(params, chunk), rtol=1e-10, atol=1e-14)
        assert float(got.per_chunk[c]) >= 0.0
    np.testing.assert_allclose(got.sharpness, np.mean(np.asarray(got.per_chunk)), rtol=1e-14)


def test_m_sharpness_is_zero_at_rho_zero():
    """S_m(ρ = 0) = 0 by definition (the engine's ascent alone returns NaN there: its projection onto
    the radius-0 ball divides 0/0)."""
    params, batch = _fixed_m_problem()
    got = m_sharp(m_loss, jax.tree.map(lambda x: x + 1.0, params), batch, 0.0, m=1, key=KEY, steps=50, restarts=2)
    np.testing.assert_array_equal(got.per_chunk, 0.0)


def test_m_sharpness_rejects_a_chunk_size_that_does_not_divide_n():
    params, batch = _fixed_m_problem()
    with pytest.raises(ValueError, match="divide"):
        sh.m_sharpness(m_loss, params, batch, 0.1, m=3, key=KEY)


def _fixed_m_problem():
    rng = np.random.default_rng(0)
    b = rng.normal(size=(N_EXAMPLES, M_DIM, M_DIM))
    return {"x": jnp.zeros(M_DIM)}, {"A": jnp.asarray(b @ b.transpose(0, 2, 1)), "c": jnp.zeros((N_EXAMPLES, M_DIM))}


# ---------------------------------------------------------------------------
# Average sharpness
# ---------------------------------------------------------------------------


@settings(derandomize=True)
@pytest.mark.parametrize("antithetic", [True, False])
@pytest.mark.parametrize("distribution", ["sphere", "gaussian"])
@given(problem=quadratic_problems(), scale=st.floats(0.01, 1.0))
def test_average_sharpness_of_a_quadratic_is_half_the_scaled_trace(distribution, antithetic, problem, scale):
    """Sphere: ρ² Tr(A)/(2D). Gaussian: σ² Tr(A)/2. Exact for a quadratic at any point.

    L(w + δ) − L(w) = gᵀδ + ½δᵀAδ, and the two terms are uncorrelated, so the
    exact variance of one draw is Var(gᵀδ) + ¼Var(δᵀAδ); the antithetic pair mean
    drops gᵀδ. The estimate must lie within 4.5 exact standard errors, and the
    reported SE must estimate the exact one.
    """
    params, batch, a = problem
    num_samples = 512
    got = avg_sharp(quad_loss, params, batch, scale, key=KEY, distribution=distribution,
                    num_samples=num_samples, antithetic=antithetic)
    eigs = np.linalg.eigvalsh(a)
    g2 = np.sum(flat(jax.grad(quad_loss)(params, batch)) ** 2)
    if distribution == "sphere":
        exact = 0.5 * scale**2 * eigs.sum() / QUAD_DIM
        var_linear, var_quadratic = scale**2 * g2 / QUAD_DIM, (scale**2 * sphere_quadform_std(eigs)) ** 2
    else:
        exact = 0.5 * scale**2 * eigs.sum()
        var_linear, var_quadratic = scale**2 * g2, scale**4 * 2 * np.sum(eigs**2)
    units = num_samples // 2 if antithetic else num_samples
    exact_se = np.sqrt((0.0 if antithetic else var_linear) + 0.25 * var_quadratic) / np.sqrt(units)
    assert got.num_samples == num_samples
    rounding = 1e-12 * (scale**2 * np.abs(a).sum() + scale * np.sqrt(g2))
    assert abs(float(got.estimate) - exact) <= 4.5 * exact_se + rounding
    if exact_se > rounding:
        assert 1 / 1.3 <= float(got.standard_error) / exact_se <= 1.3
    else:  # e.g. A = cI on the sphere: every antithetic pair gives the same value
        assert float(got.standard_error) <= rounding


def test_average_sharpness_validates_its_arguments():
    params, batch, _ = _fixed_quadratic()
    with pytest.raises(ValueError, match="distribution"):
        sh.average_sharpness(quad_loss, params, batch, 0.3, key=KEY, distribution="cube")
    with pytest.raises(ValueError, match="even"):
        sh.average_sharpness(quad_loss, params, batch, 0.3, key=KEY, num_samples=7)


# ---------------------------------------------------------------------------
# Landscape
# ---------------------------------------------------------------------------

LANDSCAPE_SHAPES = {"dense": (3, 4), "conv": (2, 2, 3, 5), "bias": (4,), "scale": ()}


@st.composite
def landscape_params(draw):
    tree = {name: draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2, **finite)))
            for name, shape in LANDSCAPE_SHAPES.items()}
    if draw(st.booleans()):
        tree["dense"][:, 1] = 0.0  # a dead unit: its filter direction must be zero, not NaN
    return jax.tree.map(jnp.asarray, tree)


def filter_norms(leaf):
    """Per-filter norms (last axis), computed on the max-scaled leaf so tiny weights do not underflow."""
    leaf = np.asarray(leaf)
    axes = tuple(range(leaf.ndim)) if leaf.ndim <= 1 else tuple(range(leaf.ndim - 1))
    s = np.max(np.abs(leaf), axis=axes)
    safe = np.where(s > 0, s, 1.0)
    return s * np.sqrt(np.sum((leaf / np.expand_dims(safe, axes)) ** 2, axis=axes))


@given(params=landscape_params(), seed=st.integers(0, 2**31 - 1))
def test_filter_normalized_direction_has_the_weights_filter_norms(params, seed):
    key = jax.random.PRNGKey(seed)
    d = direction(key, params)
    for name in LANDSCAPE_SHAPES:
        assert d[name].shape == params[name].shape and d[name].dtype == params[name].dtype
        np.testing.assert_allclose(filter_norms(d[name]), filter_norms(params[name]), rtol=1e-12, atol=1e-300)
    zeroed = direction(key, params, one_dim="zero")
    for name in ("dense", "conv"):
        np.testing.assert_array_equal(zeroed[name], d[name])
    for name in ("bias", "scale"):
        np.testing.assert_array_equal(zeroed[name], 0.0)
    # Random, not a copy of the weights: another key gives another direction.
    other = direction(jax.random.fold_in(key, 1), params)
    if np.linalg.norm(np.asarray(params["conv"])) > 0:
        assert not np.allclose(other["conv"], d["conv"], rtol=1e-6, atol=0)


def test_filter_normalization_is_scale_free():
    """Weights of size 1e-170, whose squares underflow, get the same direction scaled by 1e-170."""
    params, _ = _landscape_problem()
    d = direction(KEY, params)
    tiny = direction(KEY, jax.tree.map(lambda x: 1e-170 * x, params))
    for name in LANDSCAPE_SHAPES:
        np.testing.assert_allclose(np.asarray(tiny[name]) * 1e170, d[name], rtol=1e-12, atol=0)


def landscape_loss(params, batch):
    """A smooth non-quadratic loss of all four leaves."""
    h = jnp.tanh(batch["x"] @ params["dense"] + params["bias"])  # (n, 4)
    conv = jnp.sum(params["conv"] ** 2) * params["scale"]
    return jnp.mean((jnp.sum(h, axis=1) - batch["y"]) ** 2) + 0.1 * jnp.sin(conv)


jloss = jax.jit(landscape_loss)


def _landscape_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {name: jnp.asarray(rng.normal(size=shape)) for name, shape in LANDSCAPE_SHAPES.items()}
    batch = {"x": jnp.asarray(rng.normal(size=(N_EXAMPLES, 3))), "y": jnp.asarray(rng.normal(size=N_EXAMPLES))}
    return params, batch


def _moved(params, *pairs):
    out = params
    for coefficient, direction in pairs:
        out = jax.tree.map(lambda w, d: w + coefficient * d, out, direction)
    return out


def test_1d_and_2d_slices_equal_pointwise_evaluation():
    params, batch = _landscape_problem()
    d1 = direction(jax.random.PRNGKey(1), params)
    d2 = direction(jax.random.PRNGKey(2), params)
    alphas = jnp.linspace(-1.0, 1.0, 5)
    betas = jnp.array([-0.5, 0.0, 0.25, 0.5])
    line = np.asarray(slice_1d(landscape_loss, params, batch, d1, alphas))
    direct = [float(jloss(_moved(params, (a, d1)), batch)) for a in alphas]
    np.testing.assert_allclose(line, direct, rtol=1e-13)
    np.testing.assert_allclose(line[2], landscape_loss(params, batch), rtol=1e-14)  # α = 0
    grid = np.asarray(slice_2d(landscape_loss, params, batch, (d1, d2), alphas, betas))
    assert grid.shape == (5, 4)
    for i, j in [(0, 0), (4, 3), (2, 2), (1, 3)]:
        expected = jloss(_moved(params, (alphas[i], d1), (betas[j], d2)), batch)
        np.testing.assert_allclose(grid[i, j], expected, rtol=1e-13)
    np.testing.assert_allclose(grid[:, 1], line, rtol=1e-13)  # β = 0 is the 1-D slice
    chunked = slice_2d(landscape_loss, params, batch, (d1, d2), alphas, betas, chunk_size=3)
    np.testing.assert_allclose(chunked, grid, rtol=1e-14)


def test_linear_interpolation_hits_both_endpoints_exactly():
    params_a, batch = _landscape_problem(0)
    params_b, _ = _landscape_problem(1)
    ts = jnp.array([0.0, 0.3, 1.0, 1.5])
    # (1 − t) w_a + t w_b is w_a, w_b bit for bit at t = 0, 1: the squared distance is exactly 0.
    for target in (params_a, params_b):
        def distance(p, _):
            return sum(jnp.sum((x - y) ** 2) for x, y in zip(jax.tree.leaves(p), jax.tree.leaves(target)))
        d = np.asarray(interpolate(distance, params_a, params_b, batch, ts))
        assert d[0 if target is params_a else 2] == 0.0 and d[2 if target is params_a else 0] > 0
    ends = [float(jloss(params_a, batch)), float(jloss(params_b, batch))]
    mid = jax.tree.map(lambda a, b: 0.7 * a + 0.3 * b, params_a, params_b)
    for chunk_size in (None, 2):
        got = np.asarray(interpolate(landscape_loss, params_a, params_b, batch, ts, chunk_size=chunk_size))
        # The loss values agree to rounding only: XLA may compile the loss differently
        # inside a batched map than standalone (observed: 1 ulp inside lax.map).
        np.testing.assert_allclose(got[[0, 2]], ends, rtol=1e-15)
        np.testing.assert_allclose(got[1], landscape_loss(mid, batch), rtol=1e-13)


def test_float32_parameters_stay_float32():
    """[float]: library functions compute in the parameters' dtype."""
    params, batch = _landscape_problem()
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    b32 = jax.tree.map(lambda x: x.astype(jnp.float32), batch)
    d = direction(KEY, p32)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(d))
    assert slice_1d(landscape_loss, p32, b32, d, jnp.linspace(-1, 1, 3)).dtype == jnp.float32
    assert hutchinson(landscape_loss, p32, b32, key=KEY, max_probes=32).estimate.dtype == jnp.float32
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(hvp(landscape_loss, p32, b32, params)))
