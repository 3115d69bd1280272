"""Theorem 1 of Andriushchenko & Flammarion (2022), exact and first-order forms, on SAM flows.

Exact form: the limit of the unnormalized SAM flow on the w± diagonal network
is argmin Q_{α_eff} s.t. Xβ = y with α_eff = α exp(−ρΔ), Δ from
samtheory.theory.sam_implicit_bias.delta_rate integrated along the flow.
First-order form: Δ computed with r̃ → r along the ERM flow predicts log α_eff
with an O(ρ²) error (fitted slope).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from samtheory import flows, sam, train
from samtheory.theory import sam_implicit_bias as sib
from samtheory.theory.implicit_bias import min_entropy_interpolator
from samtheory.models import dln

N, D = 5, 12
LOSS_EVENT = int(flows.Termination.LOSS_BELOW)


def _sam_flow(kind, x, y, alpha, rho, *, rtol=1e-10, stop=1e-18, max_steps=30_000):
    # stop: the loss floor set by rtol is ~1e-20 (relative error 1e-10 in β); stopping at
    # 1e-18 leaves β within ~1e-9 of its limit.
    data = {"x": x, "y": y}
    variant = sam.SAM(rho, m=None if kind == "n_sam" else 1, normalize=False)
    return flows.solve_flow(
        variant, dln.loss_pm, dln.init_pm(x.shape[1], alpha), data, t_final=1e5, rtol=rtol, atol=rtol * 1e-2,
        log_coordinates=True, stop=flows.Stop(loss_below=stop, max_steps=max_steps), save_params=False,
        auxiliary=lambda t, w: sib.delta_rate(kind, w, data, rho),
    )


_jit_flow = jax.jit(_sam_flow, static_argnums=(0,))


def _instance(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    beta_star = np.zeros(D)
    beta_star[rng.choice(D, 2, replace=False)] = rng.uniform(0.3, 1.5, 2) * rng.choice([-1, 1], 2)
    return jnp.asarray(x), jnp.asarray(x @ beta_star)


@pytest.mark.parametrize("kind", ["n_sam", "one_sam"])
@given(seed=st.integers(0, 10**6), alpha=st.floats(0.1, 1.0), rho=st.floats(0.01, 0.2))
def test_theorem_1_exact_form(kind, seed, alpha, rho):
    x, y = _instance(seed)
    result = _jit_flow(kind, x, y, alpha, rho)
    assume(int(result.reason) == LOSS_EVENT)  # the theorem assumes convergence to an interpolator
    delta = result.final_integral
    # The identity behind it, ½(log w₊ + log w₋) = log α − ρΔ, along the engine's flow:
    np.testing.assert_allclose(sib.log_alpha_product(result.final_params), np.log(alpha) - rho * delta,
                               rtol=0, atol=1e-9)
    predicted = min_entropy_interpolator(x, y, sib.effective_alpha(alpha, rho, delta)).beta
    np.testing.assert_allclose(dln.beta_pm(result.final_params), predicted, rtol=0, atol=1e-8)
    assert np.all(np.asarray(delta) > 0)  # SAM lowers α on every coordinate here


def test_first_order_delta_has_error_of_order_rho_squared():
    """ρ‖Δ(ρ) − Δ⁽¹⁾_ERM‖∞ (the error in log α_eff) against ρ: fitted slope 2, both variants."""
    x, y = _instance(1)
    alpha = 0.3
    data = {"x": x, "y": y}
    rhos = np.geomspace(2e-3, 3e-2, 5)
    for kind in ("n_sam", "one_sam"):
        erm = flows.solve_flow(
            sam.ERM(), dln.loss_pm, dln.init_pm(D, alpha), data, t_final=1e5, rtol=1e-10, atol=1e-12,
            log_coordinates=True, stop=flows.Stop(loss_below=1e-18), save_params=False,
            auxiliary=lambda t, w: sib.delta_rate(kind, w, data, 0.0, first_order=True),
        )
        first_order = np.asarray(erm.final_integral)
        # One compiled solve per ρ (ρ is traced): under vmap the lockstep while-loop would
        # spend every run's step budget on the slowest one.
        runs = [_jit_flow(kind, x, y, alpha, r) for r in rhos]
        assert all(int(run.reason) == LOSS_EVENT for run in runs)
        errors = rhos * np.array([np.max(np.abs(np.asarray(run.final_integral) - first_order)) for run in runs])
        slope = np.polyfit(np.log(rhos), np.log(errors), 1)[0]
        assert 1.85 < slope < 2.15, (kind, slope, errors)


def test_one_sam_moves_alpha_about_n_times_more_than_n_sam():
    """‖Δ⁽¹⁾_1SAM‖₁ / ‖Δ⁽¹⁾_nSAM‖₁ grows like n on Gaussian data (d ≫ n): slope ≈ 1 in n."""
    d = 400
    ratios = []
    for n in (8, 32):
        rng = np.random.default_rng(n)
        x = rng.normal(size=(n, d))
        beta_star = np.zeros(d)
        beta_star[:3] = 1 / np.sqrt(3)
        data = {"x": jnp.asarray(x), "y": jnp.asarray(x @ beta_star)}
        both = lambda t, w: {k: sib.delta_rate(k, w, data, 0.0, first_order=True) for k in ("n_sam", "one_sam")}
        erm = flows.solve_flow(sam.ERM(), dln.loss_pm, dln.init_pm(d, 0.1), data, t_final=1e4, rtol=1e-8,
                               atol=1e-10, log_coordinates=True, stop=flows.Stop(loss_below=1e-14), save_params=False,
                               auxiliary=both)
        delta = erm.final_integral
        ratios.append(float(jnp.sum(delta["one_sam"]) / jnp.sum(delta["n_sam"])))
    slope = np.log(ratios[1] / ratios[0]) / np.log(4)
    assert 0.85 < slope < 1.15, (ratios, slope)
    assert 0.5 < ratios[0] / 8 < 2 and 0.5 < ratios[1] / 32 < 2


def test_uv_initialization_is_q_of_half_c():
    """ERM flow on β = u⊙v from (c·1, 0) converges to argmin Q_{c/2} ([alpha])."""
    x, y = _instance(3)
    c = 0.4
    result = flows.solve_flow(sam.ERM(), dln.loss_uv, dln.init_uv(D, c), {"x": x, "y": y}, t_final=1e5,
                              rtol=1e-11, atol=1e-13, stop=flows.Stop(loss_below=1e-22), save_params=False)
    assert int(result.reason) == LOSS_EVENT
    expected = min_entropy_interpolator(x, y, c / 2).beta
    np.testing.assert_allclose(dln.beta_uv(result.final_params), expected, rtol=0, atol=1e-8)
    wrong = min_entropy_interpolator(x, y, c).beta  # the tempting but wrong α = c
    assert np.max(np.abs(dln.beta_uv(result.final_params) - wrong)) > 1e-4


def test_delta_rate_matches_the_engine_flow():
    """−(ẇ₊/w₊ + ẇ₋/w₋)/(2ρ) computed from the engine's SAM direction equals delta_rate."""
    x, y = _instance(5)
    data = {"x": x, "y": y}
    rng = np.random.default_rng(0)
    params = {"w_plus": jnp.asarray(rng.uniform(0.1, 1, D)), "w_minus": jnp.asarray(rng.uniform(0.1, 1, D))}
    rho = 0.07
    for kind, m in (("n_sam", None), ("one_sam", 1)):
        direction = sam.gradient(sam.SAM(rho, m=m, normalize=False), dln.loss_pm, params, data)
        common = (direction["w_plus"] / params["w_plus"] + direction["w_minus"] / params["w_minus"]) / (2 * rho)
        np.testing.assert_allclose(sib.delta_rate(kind, params, data, rho), common, rtol=1e-11)


def test_bad_kind():
    x, y = _instance(0)
    with pytest.raises(ValueError, match="kind"):
        sib.delta_rate("two_sam", dln.init_pm(D, 0.1), {"x": x, "y": y}, 0.1)


def test_woodworth_limit_error_shrinks_with_tolerance_and_is_first_order_in_the_gd_step():
    """ERM on the w± network → argmin Q_α (Woodworth et al. 2020): flows to solver precision, GD to O(η)."""
    x, y = _instance(4)
    alpha = 0.3
    data = {"x": x, "y": y}
    target = np.asarray(min_entropy_interpolator(x, y, alpha).beta)
    errors = []
    for rtol in (1e-5, 1e-7, 1e-9):
        result = jax.jit(lambda: flows.solve_flow(
            sam.ERM(), dln.loss_pm, dln.init_pm(D, alpha), data, t_final=1e5, rtol=rtol, atol=rtol * 1e-2,
            stop=flows.Stop(loss_below=1e-18, max_steps=100_000), save_params=False))()
        errors.append(np.max(np.abs(np.asarray(dln.beta_pm(result.final_params)) - target)))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-8, errors

    etas = np.array([0.08, 0.04, 0.02, 0.01])
    run_gd = jax.jit(lambda eta: train.run(dln.loss_pm, dln.init_pm(D, alpha), data, variant=sam.ERM(),
                                           num_steps=40_000, learning_rate=eta, record_steps=np.array([40_000])))
    gd_errors = []
    for eta in etas:
        result = train.check_finite(run_gd(eta))
        assert float(result.metrics["loss"][-1]) < 1e-20  # converged: what remains is the implicit-bias shift
        gd_errors.append(np.max(np.abs(np.asarray(dln.beta_pm(result.params)) - target)))
    slope = np.polyfit(np.log(etas), np.log(gd_errors), 1)[0]
    assert 0.9 < slope < 1.1, (slope, gd_errors)
