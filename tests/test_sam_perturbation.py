"""The perturbation maps: dual-norm optimality, radii, zero-gradient safety, ASAM, random sphere."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samtheory.sam import perturbation as pert

P_VALUES = [1, 1.5, 2, 3, 7.5, math.inf]
finite = dict(allow_nan=False, allow_infinity=False)
# A gradient pytree with two leaves, so "norm over the whole pytree" is exercised.
gradients = st.tuples(
    hnp.arrays(np.float64, (5,), elements=st.floats(-10, 10, **finite)),
    hnp.arrays(np.float64, (2, 3), elements=st.floats(-10, 10, **finite)),
).filter(lambda g: max(np.abs(g[0]).max(), np.abs(g[1]).max()) > 1e-3)


def dual_exponent(p):
    if p == math.inf:
        return 1.0
    if p == 1:
        return math.inf
    return p / (p - 1)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def lp_norm(v, p):
    return np.max(np.abs(v)) if p == math.inf else np.sum(np.abs(v) ** p) ** (1 / p)


@pytest.mark.parametrize("p", P_VALUES)
@given(g=gradients, rho=st.floats(1e-3, 10.0))
def test_dual_norm_perturbation_solves_the_linearized_inner_problem(p, g, rho):
    """‖ε̂‖_p = ρ and ⟨ε̂, g⟩ = ρ‖g‖_q: by Hölder, no feasible ε does better (Foret eq. 2)."""
    g = {"a": jnp.asarray(g[0]), "b": jnp.asarray(g[1])}
    eps = flat(pert.dual_norm_perturbation(g, rho, p))
    gv = flat(g)
    np.testing.assert_allclose(lp_norm(eps, p), rho, rtol=1e-10)
    np.testing.assert_allclose(eps @ gv, rho * lp_norm(gv, dual_exponent(p)), rtol=1e-10)
    # And an independent check of optimality: random feasible points never beat it.
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(256, gv.size))
    candidates *= rho / np.array([lp_norm(c, p) for c in candidates])[:, None]
    assert np.all(candidates @ gv <= eps @ gv + 1e-9 * rho * np.abs(gv).sum())


@pytest.mark.parametrize("p", P_VALUES)
def test_pytree_norm_matches_numpy(p):
    tree = {"a": jnp.array([3.0, -4.0]), "b": jnp.array([[1.0, -2.0]])}
    np.testing.assert_allclose(pert.pytree_norm(tree, p), lp_norm(flat(tree), p), rtol=1e-14)


def test_known_closed_forms():
    g = {"a": jnp.array([3.0, -4.0])}
    np.testing.assert_allclose(pert.dual_norm_perturbation(g, 2.0, 2)["a"], [1.2, -1.6], rtol=1e-14)
    np.testing.assert_allclose(pert.dual_norm_perturbation(g, 2.0, math.inf)["a"], [2.0, -2.0])
    np.testing.assert_allclose(pert.dual_norm_perturbation(g, 2.0, 1)["a"], [0.0, -2.0])
    # Exact ties under p=1 share the mass (any split is optimal; equal is the convention).
    tie = {"a": jnp.array([1.0, -1.0, 0.5])}
    np.testing.assert_allclose(pert.dual_norm_perturbation(tie, 1.0, 1)["a"], [0.5, -0.5, 0.0])


@pytest.mark.parametrize("p", P_VALUES)
def test_zero_gradient_gives_zero_perturbation_and_finite_derivatives(p):
    zero = {"a": jnp.zeros(3), "b": jnp.zeros((2,))}
    eps = pert.dual_norm_perturbation(zero, 0.5, p)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(eps))
    # The second-order SAM gradient differentiates through eps(g): must stay finite at g = 0.
    jac = jax.jacobian(lambda g: flat_jnp(pert.dual_norm_perturbation(g, 0.5, p)))(zero)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(jac))


def flat_jnp(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_dual_norm_perturbation_is_scale_invariant_for_extreme_magnitudes():
    """The max-rescaling keeps |g|^{q−1} representable for large q (p close to 1)."""
    base = np.array([1.0, -0.3, 0.2])
    for scale in (1e-150, 1.0, 1e150):
        eps = pert.dual_norm_perturbation({"a": jnp.asarray(scale * base)}, 1.0, 1.01)["a"]
        ref = pert.dual_norm_perturbation({"a": jnp.asarray(base)}, 1.0, 1.01)["a"]
        np.testing.assert_allclose(eps, ref, rtol=1e-12)


@given(g=gradients, w=gradients, rho=st.floats(1e-3, 5.0), eta=st.floats(1e-3, 1.0))
def test_asam_perturbation_maximizes_over_the_rescaled_ball(g, w, rho, eta):
    """ε = ρT²g/‖Tg‖ has ‖T⁻¹ε‖₂ = ρ and ⟨ε, g⟩ = ρ‖Tg‖₂ (Cauchy–Schwarz in the T-metric)."""
    g = {"a": jnp.asarray(g[0]), "b": jnp.asarray(g[1])}
    w = {"a": jnp.asarray(w[0]), "b": jnp.asarray(w[1])}
    eps = flat(pert.asam_perturbation(g, w, rho, eta))
    t = np.abs(flat(w)) + eta
    np.testing.assert_allclose(np.linalg.norm(eps / t), rho, rtol=1e-10)
    np.testing.assert_allclose(eps @ flat(g), rho * np.linalg.norm(t * flat(g)), rtol=1e-10)


def test_random_sphere_perturbation_radius_and_isotropy():
    like = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    eps = jax.vmap(lambda k: flat_jnp(pert.random_sphere_perturbation(k, like, 0.7)))(keys)
    np.testing.assert_allclose(np.linalg.norm(eps, axis=1), 0.7, rtol=1e-12)
    # Uniform on the sphere: E[ε εᵀ] = ρ²/D · I. Standard error of each entry ≈ ρ²/(D√N).
    second_moment = np.asarray(eps.T @ eps) / len(keys)
    dim = eps.shape[1]
    np.testing.assert_allclose(second_moment, 0.49 / dim * np.eye(dim), atol=6 * 0.49 / dim / np.sqrt(len(keys)))


# Jitted (p static): called eagerly, optax's ℓ1 projection traces and compiles a fresh `cond` on every call.
_jit_project = jax.jit(pert.project_to_ball, static_argnums=2)


@pytest.mark.parametrize("p", [1, 2, math.inf])
@given(v=gradients, rho=st.floats(1e-2, 5.0))
def test_projection_lands_in_the_ball_and_is_idempotent(p, v, rho):
    tree = {"a": jnp.asarray(v[0]), "b": jnp.asarray(v[1])}
    proj = _jit_project(tree, rho, p)
    assert lp_norm(flat(proj), p) <= rho * (1 + 1e-10)
    again = _jit_project(proj, rho, p)
    np.testing.assert_allclose(flat(again), flat(proj), atol=1e-10 * rho)


def test_projection_refuses_other_p():
    with pytest.raises(ValueError, match="p must be 1, 2 or inf"):
        pert.project_to_ball({"a": jnp.ones(2)}, 1.0, 3)
