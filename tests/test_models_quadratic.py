"""Quadratic families: every constant against an independent computation.

Smoothness against ``jax.hessian`` + ``eigvalsh`` and against the Lipschitz
ratio of the gradient; noise variance against per-example gradients from
``jax.vmap(jax.grad)``; PL against the inequality itself, and its tightness.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from samtheory.models.quadratic import LeastSquares, QuadraticFamily, least_squares_loss

EXACT = 1e-12  # relative tolerance for identities that hold exactly in real arithmetic
EPS = np.finfo(np.float64).eps
N, D = 6, 4  # QuadraticFamily shapes (fixed, so each jitted helper compiles once)
LS_SHAPES = [(7, 3), (3, 5)]  # least squares: over- and under-determined


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _vec(d, lo=-3, hi=3):
    return arrays(np.float64, (d,), elements=_floats(lo, hi))


# ---------------------------------------------------------------------------
# QuadraticFamily.
# ---------------------------------------------------------------------------


@st.composite
def quadratic_families(draw, rank):
    """``A = BᵀB/D`` with ``B`` of ``rank`` rows; well conditioned on its range, or exactly singular."""
    b = draw(arrays(np.float64, (rank, D), elements=_floats(-2, 2)))
    a = b.T @ b / D
    a = (a + a.T) / 2
    lam = np.linalg.eigvalsh(a)
    assume(lam[-1] > 1e-2)
    # Either clearly zero (well under the class's threshold 10·d·eps·λ_max) or
    # clearly not: keeps "is A ≻ 0" and the PL tightness well posed.
    assume(np.all((np.abs(lam) < 4 * D * EPS * lam[-1]) | (lam > 1e-5 * lam[-1])))
    centers = draw(arrays(np.float64, (N, D), elements=_floats(-3, 3)))
    return a, centers


@jax.jit
def _qf_derivatives(a, centers, w):
    """Loss, gradient, Hessian, per-example gradients and Hessians, from the class's loss_fn."""
    fam = QuadraticFamily(a, centers)  # traced: checks skipped, loss_fn usable
    one = lambda w, c: fam.loss_fn(w, {"c": c[None]})  # noqa: E731 - ℓ_i as a one-example batch
    batch = {"c": centers}
    return {
        "loss": fam.loss_fn(w, batch),
        "grad": jax.grad(fam.loss_fn)(w, batch),
        "hess": jax.hessian(fam.loss_fn)(w, batch),
        "per_grad": jax.vmap(jax.grad(one), in_axes=(None, 0))(w, centers),
        "per_hess": jax.vmap(jax.hessian(one), in_axes=(None, 0))(w, centers),
    }


def _variance(per_example_grads):
    g = np.asarray(per_example_grads)
    return np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1))


@pytest.mark.parametrize("rank", [D, 2])
@given(data=st.data(), w=_vec(D), v=_vec(D))
def test_quadratic_family_constants(rank, data, w, v):
    a, centers = data.draw(quadratic_families(rank))
    fam = QuadraticFamily(a, centers)
    out = _qf_derivatives(a, centers, w)
    beta = fam.smoothness
    lam_h = np.linalg.eigvalsh(np.asarray(out["hess"]))

    # Smoothness: the Hessian's top eigenvalue, also for every ℓ_i.
    assert abs(lam_h[-1] - beta) <= EXACT * beta
    per_top = np.linalg.eigvalsh(np.asarray(out["per_hess"]))[:, -1]
    assert abs(per_top.max() - fam.individual_smoothness) <= EXACT * beta
    np.testing.assert_allclose(fam.eigenvalues, lam_h, rtol=0, atol=EXACT * beta)

    # Noise variance: per-example gradients, at two points (it is w-independent).
    sigma2 = fam.noise_variance
    for point in (w, v):
        g = _qf_derivatives(a, centers, point)["per_grad"]
        assert abs(_variance(g) - sigma2) <= EXACT * max(sigma2, 1.0)
        assert abs(fam.noise_variance_at(point) - sigma2) <= EXACT * max(sigma2, 1.0)
    np.testing.assert_allclose(out["grad"], np.mean(out["per_grad"], axis=0), rtol=0, atol=EXACT * beta * 10)

    # Minimizer and L*: zero gradient there, and L − L* is the centered quadratic.
    at_min = _qf_derivatives(a, centers, fam.minimizer)
    assert np.max(np.abs(at_min["grad"])) <= EXACT * beta * 10
    assert abs(at_min["loss"] - fam.min_loss) <= EXACT * max(fam.min_loss, 1.0)
    e = w - fam.minimizer
    assert abs(out["loss"] - fam.min_loss - 0.5 * e @ a @ e) <= EXACT * max(out["loss"], 1.0)

    # PL: holds at w, and is tight along the bottom eigenvector when A ≻ 0.
    mu = fam.pl_constant
    grad_sq = float(np.sum(np.asarray(out["grad"]) ** 2))
    assert 0.5 * grad_sq >= mu * (out["loss"] - fam.min_loss) - EXACT * max(grad_sq, 1.0)
    eigvecs = np.linalg.eigh(a)[1]
    if lam_h[0] > 1e-5 * beta:  # A ≻ 0 (the strategy keeps eigenvalues clearly 0 or not)
        assert mu > 0 and abs(mu - fam.eigenvalues[0]) <= EXACT * beta
        along = _qf_derivatives(a, centers, fam.minimizer + 0.7 * eigvecs[:, 0])
        ratio = 0.5 * np.sum(np.asarray(along["grad"]) ** 2) / (along["loss"] - fam.min_loss)
        assert abs(ratio - mu) <= 1e-9 * beta
    else:
        assert mu == 0.0

    # Smoothness as the Lipschitz constant of ∇L: never exceeded, attained on the top eigenvector.
    assume(np.linalg.norm(w - v) > 1e-3)
    g_v = _qf_derivatives(a, centers, v)["grad"]
    lipschitz = np.linalg.norm(out["grad"] - g_v) / np.linalg.norm(w - v)
    assert lipschitz <= beta * (1 + EXACT)
    g_top = _qf_derivatives(a, centers, w + 0.5 * eigvecs[:, -1])["grad"]
    assert abs(np.linalg.norm(g_top - out["grad"]) / 0.5 - beta) <= 1e-10 * beta


@given(
    spectrum=arrays(np.float64, (D,), elements=_floats(0.0, 10.0)),
    seed=st.integers(0, 2**31 - 1),
    scale=_floats(0.0, 3.0),
)
def test_from_spectrum(spectrum, seed, scale):
    fam = QuadraticFamily.from_spectrum(spectrum, N, seed, center_scale=scale)
    top = max(spectrum.max(), 1e-300)
    np.testing.assert_allclose(fam.eigenvalues, np.sort(spectrum), rtol=0, atol=1e-13 * top)
    assert abs(fam.smoothness - spectrum.max()) <= 1e-13 * top
    assert fam.A.shape == (D, D) and fam.centers.shape == (N, D)
    assert np.array_equal(fam.A, fam.A.T)
    if spectrum.min() > 1e-3 * top:
        assert abs(fam.pl_constant - spectrum.min()) <= 1e-13 * top
    if scale == 0:
        assert fam.noise_variance == 0 and fam.min_loss == 0
    again = QuadraticFamily.from_spectrum(spectrum, N, jax.random.key(seed), center_scale=scale)
    assert np.array_equal(again.A, fam.A) and np.array_equal(again.centers, fam.centers)


def test_quadratic_family_is_dtype_agnostic_and_read_only():
    fam = QuadraticFamily.from_spectrum([1.0, 2.0, 3.0], 4, 0)
    w32 = jnp.ones(3, jnp.float32)
    batch32 = {"c": jnp.asarray(fam.centers, jnp.float32)}
    assert fam.loss_fn(w32, batch32).dtype == jnp.float32
    assert jax.grad(fam.loss_fn)(w32, batch32).dtype == jnp.float32
    assert fam.loss_fn(jnp.ones(3), fam.batch).dtype == jnp.float64
    with pytest.raises(ValueError):
        fam.A[0, 0] = 5.0  # read-only
    # The loss of a chunk is the mean over the chunk ([loss-mean]).
    w = jnp.asarray([0.3, -1.0, 2.0])
    halves = [fam.loss_fn(w, {"c": fam.centers[:2]}), fam.loss_fn(w, {"c": fam.centers[2:]})]
    assert abs(np.mean(halves) - fam.loss_fn(w, fam.batch)) <= 1e-14 * fam.loss_fn(w, fam.batch)


# ---------------------------------------------------------------------------
# LeastSquares.
# ---------------------------------------------------------------------------


@jax.jit
def _ls_derivatives(x, y, w):
    batch = {"x": x, "y": y}
    one = lambda w, xi, yi: least_squares_loss(w, {"x": xi[None], "y": yi[None]})  # noqa: E731
    return {
        "loss": least_squares_loss(w, batch),
        "grad": jax.grad(least_squares_loss)(w, batch),
        "hess": jax.hessian(least_squares_loss)(w, batch),
        "per_grad": jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(w, x, y),
        "per_hess": jax.vmap(jax.hessian(one), in_axes=(None, 0, 0))(w, x, y),
    }


@st.composite
def least_squares_problems(draw, n, d):
    x = draw(arrays(np.float64, (n, d), elements=_floats(-2, 2)))
    s = np.linalg.svd(x / np.sqrt(n), compute_uv=False)
    assume(s[0] > 1e-1)
    # Singular values clearly zero (under half the rank threshold max(n, d)·eps·s_max)
    # or clearly not; exact rank deficiency is allowed and common.
    assume(np.all((s < 0.5 * max(n, d) * EPS * s[0]) | (s > 1e-4 * s[0])))
    y = draw(arrays(np.float64, (n,), elements=_floats(-3, 3)))
    return x, y


@pytest.mark.parametrize("shape", LS_SHAPES, ids=lambda s: f"n{s[0]}d{s[1]}")
@given(data=st.data())
def test_least_squares_constants(shape, data):
    n, d = shape
    x, y = data.draw(least_squares_problems(n, d))
    w = data.draw(_vec(d), label="w")
    v = data.draw(_vec(d), label="v")
    ls = LeastSquares(x, y)
    out = _ls_derivatives(x, y, w)
    beta = ls.smoothness
    lam_h, vecs_h = np.linalg.eigh(np.asarray(out["hess"]))

    # Smoothness and the spectrum, against the autodiff Hessian.
    assert abs(lam_h[-1] - beta) <= EXACT * beta
    np.testing.assert_allclose(ls.eigenvalues, lam_h, rtol=0, atol=EXACT * beta)
    per_top = np.linalg.eigvalsh(np.asarray(out["per_hess"]))[:, -1]
    assert abs(per_top.max() - ls.individual_smoothness) <= EXACT * ls.individual_smoothness
    assert beta <= ls.individual_smoothness * (1 + EXACT)  # an average of PSD matrices

    # Noise variance at w and at the minimizer, against per-example gradients.
    sig = ls.noise_variance_at(w)
    assert abs(_variance(out["per_grad"]) - sig) <= EXACT * max(sig, 1.0)
    at_min = _ls_derivatives(x, y, ls.minimizer)
    sig_min = ls.noise_variance_at_minimizer
    assert abs(_variance(at_min["per_grad"]) - sig_min) <= EXACT * max(sig_min, 1.0)

    # σ²(w) is a quadratic in w along any line with curvature 2C, C the
    # variance of the per-example Hessians applied to the direction.
    direction = v / np.linalg.norm(v) if np.linalg.norm(v) > 1e-3 else np.eye(d)[0]
    hv = np.asarray(out["per_hess"]) @ direction
    c = np.mean(np.sum((hv - hv.mean(axis=0)) ** 2, axis=1))
    q = [float(ls.noise_variance_at(w + t * direction)) for t in (0.0, 1.0, 2.0)]
    assert abs(q[2] - 2 * q[1] + q[0] - 2 * c) <= 1e-9 * max(q[0], q[2], 1.0)

    # Minimizer: zero gradient, L* attained, minimum norm (orthogonal to ker X).
    scale = beta * (1 + np.linalg.norm(ls.minimizer)) + np.linalg.norm(x.T @ y) / n
    assert np.max(np.abs(at_min["grad"])) <= EXACT * scale * 10
    assert abs(at_min["loss"] - ls.min_loss) <= EXACT * max(ls.min_loss, 1.0)
    assert out["loss"] >= ls.min_loss - EXACT
    # ker X from the SVD of X (eigenvectors of H = XᵀX/n would square the conditioning).
    null = np.linalg.svd(x)[2][ls.rank :].T
    assert np.all(np.abs(null.T @ ls.minimizer) <= 1e-10 * (1 + np.linalg.norm(ls.minimizer)))
    if null.shape[1]:
        shifted = _ls_derivatives(x, y, ls.minimizer + null[:, 0])
        assert abs(shifted["loss"] - ls.min_loss) <= EXACT * max(ls.min_loss, 1.0)

    # PL with μ = λ_min⁺: holds at w, tight along the bottom nonzero eigenvector.
    mu = ls.pl_constant
    assert ls.rank >= 1 and abs(mu - lam_h[d - ls.rank]) <= EXACT * beta
    grad_sq = float(np.sum(np.asarray(out["grad"]) ** 2))
    assert 0.5 * grad_sq >= mu * (out["loss"] - ls.min_loss) - EXACT * max(grad_sq, 1.0)
    along = _ls_derivatives(x, y, ls.minimizer + 0.7 * vecs_h[:, d - ls.rank])
    ratio = 0.5 * np.sum(np.asarray(along["grad"]) ** 2) / (along["loss"] - ls.min_loss)
    assert abs(ratio - mu) <= 1e-8 * beta

    # Smoothness as the Lipschitz constant of ∇L, attained on the top eigenvector.
    assume(np.linalg.norm(w - v) > 1e-3)
    lipschitz = np.linalg.norm(out["grad"] - _ls_derivatives(x, y, v)["grad"]) / np.linalg.norm(w - v)
    assert lipschitz <= beta * (1 + EXACT)
    g_top = _ls_derivatives(x, y, w + 0.5 * vecs_h[:, -1])["grad"]
    assert abs(np.linalg.norm(g_top - out["grad"]) / 0.5 - beta) <= 1e-10 * beta


def test_least_squares_rank_deficient_example():
    # Two copies of the same column: one zero eigenvalue; PL uses the next one.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3))
    x = np.column_stack([x, x[:, 0]])
    ls = LeastSquares(x, rng.normal(size=8))
    lam = np.linalg.eigvalsh(x.T @ x / 8)
    assert ls.rank == 3 and ls.eigenvalues[0] == 0
    assert abs(ls.pl_constant - lam[1]) <= 1e-12 * lam[-1]
    # The minimum-norm minimizer splits the duplicated coefficient evenly.
    assert abs(ls.minimizer[0] - ls.minimizer[3]) <= 1e-12 * np.abs(ls.minimizer).max()
    # Zero data: all constants 0, nothing raised.
    zero = LeastSquares(np.zeros((3, 2)), np.zeros(3))
    assert zero.rank == 0 and zero.pl_constant == 0 and zero.smoothness == 0 and zero.min_loss == 0


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


_EYE2 = QuadraticFamily(np.eye(2), np.zeros((3, 2)))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: QuadraticFamily(np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros((3, 2))), "A"),
        (lambda: QuadraticFamily(np.diag([1.0, -1.0]), np.zeros((3, 2))), "A"),
        (lambda: QuadraticFamily(np.eye(2)[:, :1], np.zeros((3, 2))), "A"),
        (lambda: QuadraticFamily(np.eye(2), np.zeros((3, 3))), "centers"),
        (lambda: QuadraticFamily(np.eye(2), np.zeros(2)), "centers"),
        (lambda: QuadraticFamily.from_spectrum([1.0, -0.1], 3, 0), "spectrum"),
        (lambda: QuadraticFamily.from_spectrum([1.0, 2.0], 0, 0), "n"),
        (lambda: _EYE2.loss_fn(np.zeros(3), {"c": np.zeros((3, 2))}), "w"),
        (lambda: _EYE2.loss_fn(np.zeros(2), {"c": np.zeros((3, 3))}), "batch"),
        (lambda: LeastSquares(np.zeros(3), np.zeros(3)), "X"),
        (lambda: LeastSquares(np.zeros((3, 2)), np.zeros(4)), "y"),
        (lambda: least_squares_loss(np.zeros(3), {"x": np.zeros((4, 2)), "y": np.zeros(4)}), "w"),
        (lambda: least_squares_loss(np.zeros(2), {"x": np.zeros((4, 2)), "y": np.zeros(3)}), "batch"),
        (lambda: LeastSquares(np.ones((3, 2)), np.zeros(3)).noise_variance_at(np.zeros(3)), "w"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
