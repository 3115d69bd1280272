"""Diagonal linear networks: the u⊙v ↔ w± correspondence ([alpha]), gradients, data.

The GD / SAM steps are written here with ``jax.grad`` and ``lax.scan`` on
purpose, independently of ``samtheory.sam``, so that this file checks the
models and the convention, not the engine.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from jax import lax

from samtheory.models import dln

N, D, K = 5, 8, 2  # fixed shapes: every jitted function below compiles once
STEPS = 50
EXACT = 1e-12  # relative tolerance for identities that hold exactly in real arithmetic


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def regression_batches(draw):
    """``X`` rescaled so that λ_max(XᵀX/n) = 1, ``y ∈ [−1, 1]ⁿ``, and ``Xᵀy ≠ 0``."""
    x = draw(arrays(np.float64, (N, D), elements=_floats(-2, 2)))
    top = np.linalg.eigvalsh(x.T @ x / N)[-1]
    assume(top > 1e-2)
    x = x / np.sqrt(top)
    y = draw(arrays(np.float64, (N,), elements=_floats(-1, 1)))
    # From v = 0 the first gradient is ∝ Xᵀy; if it vanishes β stays 0 and the
    # trajectory test would compare two constant sequences.
    assume(np.linalg.norm(x.T @ y) > 1e-3)
    return {"x": x, "y": y}


# ---------------------------------------------------------------------------
# Reference optimizers, written from their definitions ([rho-sam]).
# ---------------------------------------------------------------------------


def _axpy(a, x, y):
    return jax.tree.map(lambda xi, yi: a * xi + yi, x, y)


def _tree_norm(t):
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(t)))


def _descent_direction(loss, variant, params, batch, rho):
    """The gradient a step subtracts: GD, USAM, normalized SAM, or 1-USAM (m = 1)."""
    g = jax.grad(loss)(params, batch)
    if variant == "gd":
        return g
    if variant == "usam":
        return jax.grad(loss)(_axpy(rho, g, params), batch)
    if variant == "sam":
        return jax.grad(loss)(_axpy(rho / _tree_norm(g), g, params), batch)
    if variant == "usam1":
        # One chunk per example, each with its own USAM perturbation; average.
        chunks = jax.tree.map(lambda a: a.reshape((a.shape[0], 1) + a.shape[1:]), batch)
        per_example = jax.vmap(lambda b: _descent_direction(loss, "usam", params, b, rho))(chunks)
        return jax.tree.map(lambda a: jnp.mean(a, axis=0), per_example)
    raise AssertionError(variant)


@partial(jax.jit, static_argnums=(0, 1))
def _step(loss, variant, params, batch, eta, rho):
    return _axpy(-eta, _descent_direction(loss, variant, params, batch, rho), params)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _trajectory(loss, beta_fn, variant, params, batch, eta, rho):
    """Parameters and β after steps 1..STEPS."""

    def body(p, _):
        p = _axpy(-eta, _descent_direction(loss, variant, p, batch, rho), p)
        return p, (beta_fn(p), p)

    return lax.scan(body, params, None, length=STEPS)[1]


# How (η, ρ) on (u, v) maps to (w₊, w₋): the step halves (M² = I/2); an
# unnormalized ascent step halves too; a normalized radius shrinks by √2
# because ‖∇_z L‖ = ‖∇_w L‖/√2. See dln.alpha_of_uv_init.
RHO_MAP = {"gd": 0.5, "usam": 0.5, "usam1": 0.5, "sam": 2**-0.5}


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(a)))


def _assert_trees_close(a, b, tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert _rel_err(x, y) <= tol


# ---------------------------------------------------------------------------
# The correspondence.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["gd", "usam", "usam1"])
@given(
    batch=regression_batches(),
    c=_floats(0.01, 1.0),
    eta=_floats(0.01, 0.5),
    rho=_floats(0.0, 0.5),
)
def test_uv_trajectory_equals_pm_trajectory_at_half_step(variant, batch, c, eta, rho):
    # (u, v) from (c, 0) with (η, ρ)  ==  (w₊, w₋) from (c/2, c/2) with (η/2, ρ/2).
    beta_uv, p_uv = _trajectory(dln.loss_uv, dln.beta_uv, variant, dln.init_uv(D, c), batch, eta, rho)
    p0_pm = dln.init_pm(D, dln.alpha_of_uv_init(c))
    beta_pm, p_pm = _trajectory(
        dln.loss_pm, dln.beta_pm, variant, p0_pm, batch, eta / 2, RHO_MAP[variant] * rho
    )
    assert np.all(np.isfinite(beta_uv))
    assert _rel_err(beta_uv, beta_pm) <= EXACT
    # Not only β: the whole state corresponds, step by step.
    _assert_trees_close(jax.vmap(dln.uv_to_pm)(p_uv), p_pm, EXACT)


@pytest.mark.parametrize("variant", ["gd", "usam", "usam1", "sam"])
@given(
    batch=regression_batches(),
    u=arrays(np.float64, (D,), elements=_floats(-1.5, 1.5)),
    v=arrays(np.float64, (D,), elements=_floats(-1.5, 1.5)),
    eta=_floats(0.01, 0.5),
    rho=_floats(0.0, 0.5),
)
def test_one_step_commutes_with_the_change_of_variables(variant, batch, u, v, eta, rho):
    # uv_to_pm ∘ step_uv(η, ρ) == step_pm(η/2, ρ') ∘ uv_to_pm, from any state.
    # Normalized SAM is checked one step at a time only: near a minimizer its
    # direction g/‖g‖ is ill-conditioned and over many steps it amplifies
    # rounding differences between the two (equivalent) computations.
    params = {"u": u, "v": v}
    if variant == "sam":
        assume(_tree_norm(jax.grad(dln.loss_uv)(params, batch)) > 1e-6)
    after_uv = _step(dln.loss_uv, variant, params, batch, eta, rho)
    after_pm = _step(dln.loss_pm, variant, dln.uv_to_pm(params), batch, eta / 2, RHO_MAP[variant] * rho)
    _assert_trees_close(dln.uv_to_pm(after_uv), after_pm, EXACT)


def test_naive_mapping_is_visibly_wrong():
    # Negative control for the tests above: with the same (η, ρ) on both
    # parametrizations, or with α = c instead of c/2, the trajectories differ
    # far beyond EXACT.
    data = _data(0)
    c, eta, rho = 0.5, 0.2, 0.1
    beta_uv, _ = _trajectory(dln.loss_uv, dln.beta_uv, "usam", dln.init_uv(D, c), data.train, eta, rho)
    right, _ = _trajectory(
        dln.loss_pm, dln.beta_pm, "usam", dln.init_pm(D, c / 2), data.train, eta / 2, rho / 2
    )
    same_steps, _ = _trajectory(
        dln.loss_pm, dln.beta_pm, "usam", dln.init_pm(D, c / 2), data.train, eta, rho
    )
    alpha_c, _ = _trajectory(
        dln.loss_pm, dln.beta_pm, "usam", dln.init_pm(D, c), data.train, eta / 2, rho / 2
    )
    assert _rel_err(beta_uv, right) <= EXACT
    assert _rel_err(beta_uv, same_steps) > 1e-3
    assert _rel_err(beta_uv, alpha_c) > 1e-3


@given(
    u=arrays(np.float64, (D,), elements=_floats(-3, 3)),
    v=arrays(np.float64, (D,), elements=_floats(-3, 3)),
    batch=regression_batches(),
)
def test_conversions_are_inverse_and_preserve_the_predictor(u, v, batch):
    uv = {"u": u, "v": v}
    pm = dln.uv_to_pm(uv)
    _assert_trees_close(dln.pm_to_uv(pm), uv, 1e-15)
    assert _rel_err(dln.beta_pm(pm), dln.beta_uv(uv)) <= EXACT
    assert _rel_err(dln.predict_pm(pm, batch["x"]), dln.predict_uv(uv, batch["x"])) <= EXACT
    assert abs(dln.loss_pm(pm, batch) - dln.loss_uv(uv, batch)) <= EXACT * max(1.0, dln.loss_uv(uv, batch))


@pytest.mark.parametrize("c", [0.1, np.linspace(0.0, 1.0, D)])
def test_init_uv_maps_to_init_pm_at_alpha_c_over_2(c):
    uv = dln.init_uv(D, c)
    np.testing.assert_array_equal(uv["u"], np.broadcast_to(c, (D,)))
    np.testing.assert_array_equal(uv["v"], np.zeros(D))
    np.testing.assert_array_equal(np.asarray(dln.alpha_of_uv_init(c)), np.asarray(c) / 2)
    pm = dln.init_pm(D, dln.alpha_of_uv_init(c))
    _assert_trees_close(dln.uv_to_pm(uv), pm, 0.0)
    assert np.all(dln.beta_pm(pm) == 0)


# ---------------------------------------------------------------------------
# Losses and gradients.
# ---------------------------------------------------------------------------


@jax.jit
def _all_grads(uv, pm, beta, batch):
    return (
        jax.grad(dln.loss_uv)(uv, batch),
        jax.grad(dln.loss_pm)(pm, batch),
        jax.grad(dln.loss_beta)(beta, batch),
    )


@given(
    u=arrays(np.float64, (D,), elements=_floats(-2, 2)),
    v=arrays(np.float64, (D,), elements=_floats(-2, 2)),
    batch=regression_batches(),
)
def test_losses_and_gradients_match_the_closed_form(u, v, batch):
    x, y = batch["x"], batch["y"]
    uv = {"u": u, "v": v}
    pm = {"w_plus": u, "w_minus": v}  # an unrelated point, to test loss_pm on its own
    for loss_fn, params, beta in ((dln.loss_uv, uv, u * v), (dln.loss_pm, pm, u**2 - v**2)):
        expected = 0.5 * np.mean((x @ beta - y) ** 2)
        assert abs(loss_fn(params, batch) - expected) <= EXACT * max(1.0, expected)

    g_uv, g_pm, g_beta = _all_grads(uv, pm, u * v, batch)
    # ∇_β L = Xᵀr/n, chained through each parametrization.
    g = x.T @ (x @ (u * v) - y) / N
    assert _rel_err(g_beta, g) <= EXACT
    assert _rel_err(g_uv["u"], g * v) <= EXACT
    assert _rel_err(g_uv["v"], g * u) <= EXACT
    g = x.T @ (x @ (u**2 - v**2) - y) / N
    assert _rel_err(g_pm["w_plus"], 2 * g * u) <= EXACT
    assert _rel_err(g_pm["w_minus"], -2 * g * v) <= EXACT


def _data(seed, noise_std=0.0, n_test=3):
    # One shape (N, D, K, 3) for all small data sets: each new shape recompiles the generator.
    return dln.sparse_regression(jax.random.key(seed), N, D, K, n_test, noise_std=noise_std)


def test_losses_are_dtype_agnostic_and_vmappable():
    train32 = jax.tree.map(lambda a: a.astype(jnp.float32), _data(1).train)
    p = dln.init_uv(D, 0.3, dtype=jnp.float32)
    assert p["u"].dtype == jnp.float32
    value, grad = jax.value_and_grad(dln.loss_uv)(p, train32)
    assert value.dtype == jnp.float32 and grad["u"].dtype == jnp.float32
    assert dln.loss_pm(dln.init_pm(D, 0.1, dtype=jnp.float32), train32).dtype == jnp.float32

    # vmap over initialization scales, then over a stack of data sets.
    train = _data(1).train
    cs = jnp.asarray([0.0, 0.1, 1.0])
    stacked = jax.vmap(lambda c: dln.init_uv(D, c))(cs)
    direct = [dln.loss_uv(dln.init_uv(D, c), train) for c in cs]
    np.testing.assert_allclose(jax.vmap(dln.loss_uv, in_axes=(0, None))(stacked, train), direct, rtol=1e-15)
    sets = [_data(s).train for s in range(3)]
    batches = jax.tree.map(lambda *a: jnp.stack(a), *sets)
    p = dln.init_uv(D, 0.5)
    np.testing.assert_allclose(
        jax.vmap(dln.loss_uv, in_axes=(None, 0))(p, batches), [dln.loss_uv(p, b) for b in sets], rtol=1e-15
    )


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_sparse_regression(seed):
    n, d, k, n_test = 20, 30, 3, 1000
    data = dln.sparse_regression(jax.random.key(seed), n, d, k, n_test)
    beta = np.asarray(data.beta_star)
    assert data.train["x"].shape == (n, d) and data.train["y"].shape == (n,)
    assert data.test["x"].shape == (n_test, d) and data.test["y"].shape == (n_test,)
    assert np.count_nonzero(beta) == k
    assert np.all(beta >= 0)
    assert abs(np.linalg.norm(beta) - 1) <= 1e-14
    np.testing.assert_array_equal(data.train["y"], data.train["x"] @ data.beta_star)
    np.testing.assert_array_equal(data.test["y"], data.test["x"] @ data.beta_star)
    # Standard normal inputs: mean and std within 5 standard errors.
    x_all = np.concatenate([data.train["x"], data.test["x"]]).ravel()
    assert abs(x_all.mean()) < 5 / np.sqrt(x_all.size)
    assert abs(x_all.std() - 1) < 5 / np.sqrt(2 * x_all.size)
    # β* is a null-loss interpolator of the train set and a zero-test-loss predictor.
    assert dln.loss_beta(data.beta_star, data.test) == 0


def test_sparse_regression_is_seeded_and_separates_its_randomness():
    a, b = _data(7, noise_std=1.0), _data(7, noise_std=1.0)
    _assert_trees_close(a, b, 0.0)
    # Noise is linear in noise_std on a fixed problem.
    half, clean = _data(7, noise_std=0.5), _data(7)
    np.testing.assert_array_equal(half.train["x"], a.train["x"])
    np.testing.assert_array_equal(half.beta_star, a.beta_star)
    noise = a.train["y"] - clean.train["y"]
    assert np.all(noise != 0)
    np.testing.assert_allclose(half.train["y"] - clean.train["y"], 0.5 * noise, rtol=1e-12, atol=1e-15)
    # The train set does not depend on n_test.
    _assert_trees_close(_data(7, noise_std=1.0, n_test=4).train, a.train, 0.0)
    # Another key, another β*.
    assert np.any(_data(8).beta_star != clean.beta_star)


def test_support_is_spread_over_all_coordinates():
    # The support is a uniform K-subset: over 200 seeds every coordinate is hit
    # (P(some coordinate is never hit) ≤ D·(1 − K/D)²⁰⁰ < 1e-24).
    hits = sum(np.asarray(_data(seed).beta_star > 0, dtype=int) for seed in range(200))
    assert np.all(hits > 0)
    assert hits.sum() == 200 * K


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: dln.init_pm(D, -0.1), "alpha"),
        (lambda: dln.init_pm(D, np.r_[-1.0, np.ones(D - 1)]), "alpha"),
        (lambda: dln.init_pm(D, np.ones(D + 1)), "alpha"),
        (lambda: dln.init_uv(D, -1.0), "scale_c"),
        (lambda: dln.init_uv(0, 1.0), "d"),
        (lambda: dln.alpha_of_uv_init(-2.0), "c"),
        (lambda: dln.sparse_regression(jax.random.key(0), 5, 4, 5, 1), "k"),
        (lambda: dln.sparse_regression(jax.random.key(0), 5, 4, 0, 1), "k"),
        (lambda: dln.sparse_regression(jax.random.key(0), 0, 4, 1, 1), "n"),
        (lambda: dln.sparse_regression(jax.random.key(0), 5, 4, 1, 1, noise_std=-1.0), "noise_std"),
        (lambda: dln.loss_uv(dln.init_uv(D, 1.0), {"x": np.ones((N, D)), "y": np.ones(N + 1)}), "batch"),
        (lambda: dln.loss_uv(dln.init_uv(D, 1.0), {"x": np.ones((N, D + 1)), "y": np.ones(N)}), "beta"),
        (lambda: dln.loss_uv(dln.init_uv(D, 1.0), {"x": np.ones(D), "y": np.ones(1)}), "batch"),
        (lambda: dln.beta_uv({"u": np.ones(D), "v": np.ones(D + 1)}), "params"),
        (lambda: dln.uv_to_pm({"u": np.ones(D), "v": np.ones(D + 1)}), "params"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
