"""SAM gradient flows: exact linear solutions, the GD limit, events, log coordinates,
auxiliary integrals, divergence, transformations and cost accounting.

Shapes are fixed (3-dim quadratics, a 6-dim diagonal network) so every
configuration of ``solve_flow`` compiles once and hypothesis varies values only.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from _problems import spd_matrices
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samtheory import flows, train
from samtheory.flows import Termination
from samtheory.models import dln
from samtheory.sam import ERM, SAM, RandomSAM

DIM = 3
T_QUAD = 2.0


def quad_loss(params, batch):
    """Mean over examples of ½ wᵀA_i w; with every A_i = A this is L = ½ wᵀAw."""
    w = params["w"]
    return 0.5 * jnp.mean(jnp.einsum("i,nij,j->n", w, batch["A"], w))


def quad_data(a):
    return {"A": jnp.broadcast_to(jnp.asarray(a), (2, DIM, DIM))}


def _random_quadratic(seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    a = (q * rng.uniform(0.2, 4.0, DIM)) @ q.T
    return a, rng.normal(size=DIM)


vectors = hnp.arrays(np.float64, (DIM,), elements=st.floats(-2, 2, allow_nan=False)).filter(
    lambda v: np.linalg.norm(v) > 0.1
)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


# --------------------------------------------------------------------------
# Linear ODEs: the flows of a quadratic are matrix exponentials.
# --------------------------------------------------------------------------


@settings(max_examples=10)
@given(spd_matrices(DIM, min_eig=0.2, max_eig=4.0), vectors, st.floats(0.0, 0.3))
def test_quadratic_flows_are_matrix_exponentials(spd, w0, rho):
    a, _ = spd
    data = quad_data(a)
    erm = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, data, t_final=T_QUAD, rtol=1e-11, atol=1e-11)
    usam = flows.solve_flow(
        SAM(rho, normalize=False), quad_loss, {"w": jnp.asarray(w0)}, data, t_final=T_QUAD,
        rtol=1e-11, atol=1e-11,
    )
    # ERM: ẇ = −Aw. USAM: ẇ = −A(w + ρAw) = −(A + ρA²)w.
    assert int(erm.reason) == Termination.T_FINAL and int(usam.reason) == Termination.T_FINAL
    # Errors relative to ‖w₀‖: the solution itself can be e^{-20} small.
    scale = np.linalg.norm(w0)
    err = lambda w, exact: np.linalg.norm(np.asarray(w) - exact) / scale
    assert err(erm.final_params["w"], scipy.linalg.expm(-T_QUAD * a) @ w0) < 1e-9
    assert err(usam.final_params["w"], scipy.linalg.expm(-T_QUAD * (a + rho * a @ a)) @ w0) < 1e-9
    # The saved trajectory too, at every (log-spaced) save time.
    for t, w in zip(np.asarray(erm.times), np.asarray(erm.params["w"])):
        assert err(w, scipy.linalg.expm(-t * a) @ w0) < 1e-9


@settings(max_examples=5)
@given(st.integers(0, 2**31 - 1))
def test_error_shrinks_in_proportion_to_the_tolerance(seed):
    a, w0 = _random_quadratic(seed)
    exact = scipy.linalg.expm(-T_QUAD * a) @ w0
    tols = np.array([1e-4, 1e-7, 1e-10])
    errors = np.array([
        _rel(flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a),
                              t_final=T_QUAD, rtol=tol, atol=tol).final_params["w"], exact)
        for tol in tols
    ])
    assert np.all(np.diff(errors) < 0), errors
    # Error control per step makes the global error roughly ∝ tol (measured
    # slopes 0.88–1.06 per decade): not tol^5, not saturating.
    slopes = np.diff(np.log(errors)) / np.diff(np.log(tols))
    assert np.all((slopes > 0.6) & (slopes < 1.4)), slopes


# --------------------------------------------------------------------------
# GD is the explicit Euler scheme of the flow: first-order convergence.
# --------------------------------------------------------------------------

DLN_PROBLEM = dln.sparse_regression(jax.random.PRNGKey(1), 8, 6, 2, 1)
DLN_P0 = dln.init_pm(6, 0.5)
T_DLN = 2.0


def _dist(a, b):
    return float(np.sqrt(sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2)
                             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))))


@pytest.mark.parametrize("variant", [ERM(), SAM(0.1, m=1, normalize=False)], ids=["ERM", "1-USAM"])
def test_gd_converges_to_the_flow_at_first_order(variant):
    data = DLN_PROBLEM.train
    ref = flows.solve_flow(variant, dln.loss_pm, DLN_P0, data, t_final=T_DLN, rtol=1e-12, atol=1e-12)
    etas = np.array([0.04, 0.02, 0.01, 0.005, 0.0025])
    errors = []
    for eta in etas:
        n = int(round(T_DLN / eta))
        gd = train.run(dln.loss_pm, DLN_P0, data, variant=variant, num_steps=n, learning_rate=eta,
                       record_steps=np.array([n]))
        errors.append(_dist(gd.params, ref.final_params))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    # Measured: 1.015 (ERM), 1.035 (1-SAM, ρ = 0.1).
    assert 0.9 <= slope <= 1.1, (slope, errors)


def test_euler_solver_is_gd():
    data = DLN_PROBLEM.train
    variant = SAM(0.1, m=1, normalize=False)
    euler = flows.solve_flow(variant, dln.loss_pm, DLN_P0, data, t_final=1.0, solver="euler", dt0=0.01)
    gd = train.run(dln.loss_pm, DLN_P0, data, variant=variant, num_steps=100, learning_rate=0.01,
                   record_steps=np.array([100]))
    assert int(euler.stats.num_steps) == 100
    assert _dist(euler.final_params, gd.params) < 1e-13
    assert int(euler.stats.num_gradient_evaluations) == 2 * 100  # ascent + descent per step


# --------------------------------------------------------------------------
# Events.
# --------------------------------------------------------------------------


@settings(max_examples=5)
@given(st.integers(0, 2**31 - 1), st.floats(1e-6, 1e-2))
def test_loss_event_stops_at_the_first_crossing(seed, tol):
    a, w0 = _random_quadratic(seed)
    lam, q = np.linalg.eigh(a)
    c = q.T @ w0
    loss_at = lambda t: 0.5 * np.sum(lam * c**2 * np.exp(-2 * t * lam))  # accurate for large t
    if loss_at(0.0) <= tol:
        return
    t_hi = 1.0
    while loss_at(t_hi) > tol:
        t_hi *= 2
    t_cross = scipy.optimize.brentq(lambda t: np.log(loss_at(t) / tol), 0.0, t_hi, xtol=1e-14)
    res = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a), t_final=200.0,
                           rtol=1e-10, atol=1e-12, stop=flows.Stop(loss_below=tol))
    assert int(res.reason) == Termination.LOSS_BELOW
    assert float(res.final_time) < 200.0
    assert abs(float(res.final_metrics["loss"]) / tol - 1) < 1e-7
    assert abs(float(res.final_time) - t_cross) < 1e-6 * max(1.0, t_cross)
    # Save times after the stop were never computed, and are marked so.
    reached = np.asarray(res.reached)
    np.testing.assert_array_equal(reached, np.asarray(res.times) <= float(res.final_time))
    assert np.all(np.isnan(np.asarray(res.metrics["loss"])[~reached]))
    assert np.all(np.asarray(res.metrics["loss"])[reached] >= tol * (1 - 1e-9))
    assert len(res.reached_only().times) == reached.sum()


def test_loss_event_already_satisfied_stops_at_zero():
    a, w0 = _random_quadratic(0)
    res = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a), t_final=5.0,
                           rtol=1e-10, atol=1e-12, stop=flows.Stop(loss_below=1e3))
    assert int(res.reason) == Termination.LOSS_BELOW and float(res.final_time) == 0.0
    np.testing.assert_array_equal(res.final_params["w"], w0)


def test_steady_state_event():
    a, w0 = _random_quadratic(3)
    tol = 1e-3
    lam, q = np.linalg.eigh(a)
    c = q.T @ w0
    speed_at = lambda t: np.linalg.norm(lam * c * np.exp(-t * lam))
    t_first = scipy.optimize.brentq(lambda t: speed_at(t) - tol, 0.0, 500.0)
    res = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a), t_final=500.0,
                           rtol=1e-10, atol=1e-12, stop=flows.Stop(steady_state=tol))
    assert int(res.reason) == Termination.STEADY_STATE
    assert np.linalg.norm(a @ np.asarray(res.final_params["w"])) < tol
    # Checked at step ends: never before the first time ‖ẇ‖ < tol, and within a step of it.
    t_stop = float(res.final_time)
    assert t_first <= t_stop < t_first + 0.1 * t_first + 1.0
    steps = int(res.stats.num_steps)
    assert int(res.stats.num_vf_evaluations) == 6 * steps + 1 + 2 + steps + 1  # the event costs one D per step


# --------------------------------------------------------------------------
# Log coordinates and auxiliary integrals.
# --------------------------------------------------------------------------


def test_log_coordinates_follow_the_same_trajectory_and_stay_positive():
    data = DLN_PROBLEM.train
    variant = SAM(0.1, m=1, normalize=False)
    p0 = dln.init_pm(6, 0.01)  # small α: w± span many orders of magnitude
    kw = dict(t_final=200.0, rtol=1e-10, atol=1e-12)
    plain = flows.solve_flow(variant, dln.loss_pm, p0, data, **kw)
    logc = flows.solve_flow(variant, dln.loss_pm, p0, data, log_coordinates=True, **kw)
    for x, y in zip(jax.tree.leaves(plain.params), jax.tree.leaves(logc.params)):
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-10)
        assert np.all(np.asarray(y) > 0)
    np.testing.assert_allclose(
        dln.beta_pm(logc.final_params), dln.beta_pm(plain.final_params), rtol=1e-7, atol=1e-9
    )
    with pytest.raises(ValueError, match="params0"):
        flows.solve_flow(variant, dln.loss_pm, {"w_plus": -p0["w_plus"], "w_minus": p0["w_minus"]},
                         data, t_final=1.0, log_coordinates=True)


ENERGY_A, _ = _random_quadratic(5)
ENERGY_DATA = quad_data(ENERGY_A)


def squared_gradient_norm(t, params):
    """The auxiliary integrand ‖∇L(w)‖² (a module-level function: compiled once)."""
    return {"energy": jnp.sum(jax.grad(quad_loss)(params, ENERGY_DATA)["w"] ** 2)}


@settings(max_examples=5)
@given(vectors)
def test_auxiliary_integral_energy_identity(w0):
    # Along the ERM flow dL/dt = −‖∇L‖², so ∫₀ᵗ ‖∇L‖² = L(w₀) − L(w(t)) at every t.
    res = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, ENERGY_DATA, t_final=T_QUAD,
                           rtol=1e-12, atol=1e-12, auxiliary=squared_gradient_norm)
    loss0 = 0.5 * w0 @ ENERGY_A @ w0
    dissipated = loss0 - np.asarray(res.metrics["loss"])
    # Measured: |error| ≤ 2e-11 · L(w₀) over the whole trajectory.
    np.testing.assert_allclose(res.integral["energy"], dissipated, rtol=0, atol=1e-10 * loss0)
    assert abs(float(res.final_integral["energy"]) - (loss0 - float(res.final_metrics["loss"]))) < 1e-10 * loss0
    assert float(res.final_integral["energy"]) > 0.1 * loss0  # a non-trivial amount was dissipated


# --------------------------------------------------------------------------
# Divergence: reported, never silent.
# --------------------------------------------------------------------------


def cubic_loss(params, batch):
    """L = −Σw³/3: ẇ = w², which blows up at t = 1/w₀."""
    return -jnp.sum(params["w"] ** 3) / 3 + 0.0 * jnp.sum(batch["A"])


def test_finite_time_blow_up_is_reported_per_run():
    data = quad_data(np.eye(DIM))
    solve = jax.jit(jax.vmap(lambda s: flows.solve_flow(
        ERM(), cubic_loss, {"w": s * jnp.array([1.0, 0.5, 0.25])}, data, t_final=2.0)))
    res = solve(jnp.array([0.25, 1.0]))  # w₁ blows up at t = 4 (after t_final) and at t = 1
    np.testing.assert_array_equal(res.reason, [Termination.T_FINAL, Termination.STALLED])
    assert abs(float(res.final_time[1]) - 1.0) < 1e-6  # stopped right at the blow-up time
    assert np.all(np.isfinite(res.final_params["w"]))  # stopped before producing inf
    with pytest.raises(train.DivergenceError, match="scale=1.*stalled"):
        flows.check_finite(res, names=("scale",))
    flows.check_finite(jax.tree.map(lambda x: x[0], res))  # the run that did not diverge passes

    # A fixed step accepts the inf/NaN: the non-finite event stops the solve there.
    euler = flows.solve_flow(ERM(), cubic_loss, {"w": jnp.array([1.0, 0.5, 0.25])}, data, t_final=2.0,
                             solver="euler", dt0=0.05)
    assert int(euler.reason) == Termination.NON_FINITE
    assert 1.0 < float(euler.final_time) < 2.0
    with pytest.raises(train.DivergenceError, match="non-finite"):
        flows.check_finite(euler)


# --------------------------------------------------------------------------
# Transformations, RandomSAM, cost accounting, argument checks.
# --------------------------------------------------------------------------


def test_jit_and_vmap_over_rho_match_single_solves():
    a, w0 = _random_quadratic(1)
    data = quad_data(a)
    rhos = jnp.array([0.0, 0.1, 0.3])
    solve = lambda rho: flows.solve_flow(SAM(rho, normalize=False), quad_loss, {"w": jnp.asarray(w0)},
                                         data, t_final=T_QUAD, rtol=1e-10, atol=1e-12)
    batched = jax.jit(jax.vmap(solve))(rhos)
    assert batched.final_params["w"].shape == (3, DIM)
    for i, rho in enumerate(np.asarray(rhos)):
        exact = scipy.linalg.expm(-T_QUAD * (a + rho * a @ a)) @ w0
        assert _rel(batched.final_params["w"][i], exact) < 1e-8
        assert int(batched.stats.num_gradient_evaluations[i]) == 2 * int(batched.stats.num_vf_evaluations[i])


def test_random_sam_flow_uses_fixed_directions():
    # On a quadratic, D_K(w) = A(w + ρū) with ū the mean of the K frozen
    # directions, so the flow is exactly w(t) = e^{−tA}(w₀ + ρū) − ρū.
    a, w0 = _random_quadratic(2)
    data = quad_data(a)
    key = jax.random.PRNGKey(7)
    variant = RandomSAM(0.2)
    d0 = flows.flow_direction(variant, quad_loss, {"w": jnp.asarray(w0)}, data, key, num_random_directions=4)
    shift = np.linalg.solve(a, np.asarray(d0["w"]) - a @ w0)  # ρū
    assert np.linalg.norm(shift) > 1e-3
    res = flows.solve_flow(variant, quad_loss, {"w": jnp.asarray(w0)}, data, t_final=T_QUAD, key=key,
                           rtol=1e-11, atol=1e-12, num_random_directions=4)
    exact = scipy.linalg.expm(-T_QUAD * a) @ (w0 + shift) - shift
    assert _rel(res.final_params["w"], exact) < 1e-8
    assert int(res.stats.num_gradient_evaluations) == 4 * int(res.stats.num_vf_evaluations)
    with pytest.raises(ValueError, match="key"):
        flows.solve_flow(variant, quad_loss, {"w": jnp.asarray(w0)}, data, t_final=1.0)


def test_vector_field_evaluations_are_counted_exactly():
    # Count the gradient passes on the host: each D of ERM runs the loss forward once.
    a, w0 = _random_quadratic(4)
    data = quad_data(a)
    calls = []

    def counted_loss(params, batch):
        jax.debug.callback(lambda: calls.append(1))
        return quad_loss(params, batch)

    # dt0 given: diffrax's automatic initial step runs outside the host callback's view.
    res = flows.solve_flow(ERM(), counted_loss, {"w": jnp.asarray(w0)}, data, t_final=T_QUAD,
                           rtol=1e-9, atol=1e-9, dt0=1e-3, metrics_fn=lambda p: {})
    jax.block_until_ready(res)
    steps = int(res.stats.num_steps)
    assert steps > 5
    assert int(res.stats.num_vf_evaluations) == len(calls) == 6 * steps + 1  # Tsit5: 7 stages, FSAL
    counted = flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, data, t_final=T_QUAD,
                               rtol=1e-9, atol=1e-9, dt0=1e-3, count_evaluations=True)
    assert int(counted.stats.num_vf_evaluations) == len(calls)
    with pytest.raises(ValueError, match="count_evaluations"):
        jax.jit(lambda w: flows.solve_flow(ERM(), quad_loss, {"w": w}, data, t_final=1.0,
                                           count_evaluations=True))(jnp.asarray(w0))


def test_stiff_solver_on_a_sam_flow():
    # The oracle stops gradients through w + ε, so autodiff would miss A·(∂ε/∂w)
    # and Newton would crawl; the finite-difference Jacobian keeps Kvaerno5 efficient.
    a = np.diag([1000.0, 1.0, 0.1])  # stiff: an explicit solver needs ≥ 10⁴ steps here
    w0 = np.array([1.0, 1.0, 1.0])
    rho = 1e-4
    res = flows.solve_flow(SAM(rho, normalize=False), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a),
                           t_final=10.0, solver="kvaerno5", rtol=1e-8, atol=1e-10, count_evaluations=True)
    assert int(res.reason) == Termination.T_FINAL
    assert int(res.stats.num_steps) < 200
    exact = scipy.linalg.expm(-10.0 * (a + rho * a @ a)) @ w0
    np.testing.assert_allclose(res.final_params["w"], exact, rtol=1e-6, atol=1e-10)
    # Counted on the host: at least one central-difference Jacobian (2·dim evaluations of D)
    # and one Newton iteration per implicit stage per step; 2 gradients per D.
    evaluations = int(res.stats.num_vf_evaluations)
    assert evaluations >= int(res.stats.num_steps) * (2 * DIM + 1)
    assert int(res.stats.num_gradient_evaluations) == 2 * evaluations


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(t_final=-1.0), "t_final"),
        (dict(t_final=float("inf")), "t_final"),
        (dict(t_final=1.0, rtol=0.0), "rtol"),
        (dict(t_final=1.0, solver="rk4000"), "solver"),
        (dict(t_final=1.0, solver="euler"), "dt0"),
        (dict(t_final=1.0, save_at=np.array([0.0, 2.0])), "save_at"),
        (dict(t_final=1.0, stop=1e-3), "stop"),
        (dict(t_final=1.0, stepsize_controller="pid"), "stepsize_controller"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    a, w0 = _random_quadratic(0)
    with pytest.raises(ValueError, match=name):
        flows.solve_flow(ERM(), quad_loss, {"w": jnp.asarray(w0)}, quad_data(a), **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(max_steps=0), "max_steps"), (dict(steady_state=-1.0), "steady_state"),
     (dict(loss_below=float("nan")), "loss_below")],
)
def test_bad_stopping_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        flows.Stop(**kwargs)


def test_bad_variant_is_named():
    with pytest.raises(ValueError, match="variant"):
        flows.solve_flow("sam", quad_loss, {"w": jnp.zeros(DIM)}, quad_data(np.eye(DIM)), t_final=1.0)
