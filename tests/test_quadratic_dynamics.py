"""SAM on quadratics: USAM's stability condition and normalized SAM's 2-cycle, run with the engine."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import make_quadratic_loss, spd_matrices
from hypothesis import assume, event, given
from hypothesis import strategies as st

from samtheory.theory import quadratic_dynamics as qd
from samtheory import sam, train

DIM = 4
STEPS = 400


def _iterate(a_matrix, x0, eta, rho, normalize, steps):
    """Run the engine's full-batch SAM on ½xᵀAx; return the last two iterates."""
    loss = make_quadratic_loss(a_matrix)
    result = train.run(
        loss, {"x": x0}, {"c": jnp.zeros((1, DIM))}, variant=sam.SAM(rho, normalize=normalize),
        num_steps=steps, learning_rate=eta, record_steps=np.array([steps - 1, steps]),
        metrics_fn=lambda p: {"x": p["x"]},
    )
    return result.metrics["x"], result.diverged_step


_iterate_usam = jax.jit(lambda a, x0, eta, rho: _iterate(a, x0, eta, rho, False, STEPS))
_iterate_sam = jax.jit(lambda a, x0, eta, rho: _iterate(a, x0, eta, rho, True, 3000))


@given(spd=spd_matrices(DIM, min_eig=0.05, max_eig=4.0), eta=st.floats(0.01, 1.0), rho=st.floats(0.0, 2.0),
       seed=st.integers(0, 10**6))
def test_usam_is_stable_iff_eta_lambda_one_plus_rho_lambda_below_two(spd, eta, rho, seed):
    a_matrix, eigs = spd
    margin = qd.usam_stability_margin(eigs, eta, rho)
    assume(abs(margin - 1.0) > 0.05)  # away from the boundary, where the rate is ~1
    x0 = jnp.asarray(np.random.default_rng(seed).normal(size=DIM))
    xs, diverged = _iterate_usam(jnp.asarray(a_matrix), x0, eta, rho)
    x_final = np.asarray(xs[-1])
    event("stable" if margin < 1 else "unstable")
    if qd.usam_is_stable(eigs, eta, rho):
        assert int(diverged) == -1
        assert np.linalg.norm(x_final) <= np.linalg.norm(x0) * (1 + 1e-9)
        # and the engine's iterate is exactly the closed-form linear map applied STEPS times
        m = qd.usam_transition_matrix(a_matrix, eta, rho)
        np.testing.assert_allclose(x_final, np.linalg.matrix_power(m, STEPS) @ np.asarray(x0), rtol=1e-7, atol=1e-12)
    else:
        assert int(diverged) > 0 or np.linalg.norm(x_final) > 1e6 * np.linalg.norm(x0)


def test_critical_rho_is_the_boundary():
    lam, eta = 2.0, 0.3
    rho_c = qd.usam_critical_rho(lam, eta)
    np.testing.assert_allclose(qd.usam_stability_margin([lam], eta, rho_c), 1.0, rtol=1e-14)
    assert qd.usam_is_stable([lam], eta, 0.99 * rho_c) and not qd.usam_is_stable([lam], eta, 1.01 * rho_c)
    assert qd.usam_critical_rho(lam, 1.5) < 0  # ηλ > 2: even GD is unstable


@given(top=st.floats(0.5, 5.0), ratios=st.lists(st.floats(0.2, 0.5), min_size=DIM - 1, max_size=DIM - 1),
       eta_lam=st.floats(0.2, 0.9), rho=st.floats(0.01, 1.0), seed=st.integers(0, 10**6))
def test_normalized_sam_settles_into_the_bartlett_two_cycle(top, ratios, eta_lam, rho, seed):
    """‖x‖ → ηρλ₁/(2 − ηλ₁), x ∥ e₁, and x⁺ = −x (Bartlett, Long & Bousquet 2023)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    eigs = np.array([top] + [top * r for r in ratios])
    a_matrix = (q * eigs) @ q.T
    eta = eta_lam / top
    x0 = rng.normal(size=DIM)
    assume(abs(q[:, 0] @ x0) > 1e-2)  # a component along e₁ to start the cycle
    xs, diverged = _iterate_sam(jnp.asarray(a_matrix), jnp.asarray(x0), eta, rho)
    prev, last = np.asarray(xs[0]), np.asarray(xs[1])
    radius = qd.normalized_sam_cycle_radius(eta, rho, top)
    assert int(diverged) == -1
    np.testing.assert_allclose(np.linalg.norm(last), radius, rtol=1e-9)
    np.testing.assert_allclose(last, -prev, atol=1e-9 * radius)
    np.testing.assert_allclose(abs(q[:, 0] @ last), radius, rtol=1e-9)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: qd.usam_transition_matrix(np.ones((2, 3)), 0.1, 0.1), "a_matrix"),
        (lambda: qd.usam_stability_margin([1.0, -1.0], 0.1, 0.1), "eigenvalues"),
        (lambda: qd.usam_is_stable([1.0], 0.0, 0.1), "eta"),
        (lambda: qd.normalized_sam_cycle_radius(1.0, 0.1, 1.5), "eta \\* lam_max"),
        (lambda: qd.usam_critical_rho(0.0, 0.1), "lam"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_stochastic_normalized_sam_floor_scales_as_rho_squared():
    """Si & Yun (2023): constant-ρ stochastic normalized SAM stalls at a suboptimality ∝ ρ².

    The η → 0 limit of stochastic SAM with uniformly drawn minibatches of size b
    follows the *expected* direction E_B ∇L_B(w + ρ ĝ_B). Listing every size-b
    minibatch as one chunk of a data set makes that expectation exactly the
    m-SAM direction with m = b, so the floor is computed without Monte Carlo
    noise by full-batch m-SAM run to its fixed point. The floor is nonzero
    because normalization is nonlinear: E_B[ĝ_B] ≠ 0 at the minimizer even though
    E_B[∇L_B] = 0 there.
    """
    import itertools

    from samtheory.models.quadratic import QuadraticFamily

    family = QuadraticFamily.from_spectrum(np.array([2.0, 1.0, 0.5]), 6, 0)
    pairs = np.array(list(itertools.combinations(range(6), 2))).reshape(-1)
    all_minibatches = {"c": jnp.asarray(family.centers[pairs])}
    rhos = np.geomspace(1e-3, 1e-2, 5)

    def floor(rho):
        result = train.run(family.loss_fn, jnp.asarray(family.minimizer), all_minibatches,
                           variant=sam.SAM(rho, m=2), num_steps=4000, learning_rate=0.3,
                           record_steps=np.array([3999, 4000]),
                           metrics_fn=lambda w: {"gap": family.loss_fn(w, family.batch) - family.min_loss, "w": w})
        return result.metrics["gap"], result.metrics["w"]

    gaps, ws = jax.jit(jax.vmap(floor))(jnp.asarray(rhos))
    np.testing.assert_allclose(ws[:, 0], ws[:, 1], rtol=1e-10, atol=1e-14)  # at the fixed point
    gaps = np.asarray(gaps[:, -1])
    assert np.all(gaps > 0)
    slope = np.polyfit(np.log(rhos), np.log(gaps), 1)[0]
    assert 1.95 < slope < 2.05, (slope, gaps)
