"""The contract of differentiating the first-order SAM direction (docs/conventions.md, [sam-derivative]).

``sam.gradient`` of a first-order variant returns ``∇L_C(w̃)`` at the
perturbed point ``w̃ = w + ε_C(w)`` held constant (``stop_gradient``), as in
Foret et al. eq. 3. Hence, by contract:

1. its derivative with respect to the parameters, and to ρ, is exactly 0;
2. its derivative with respect to the data is the explicit one,
   ``∂/∂batch ∇_w L(w̃, batch)`` at fixed ``w̃``;
3. the Jacobian of the map ``w ↦ ∇L(w + ε(w))`` (for a stability analysis of
   the SAM iteration) is obtained by differentiating that map written out,
   ``jax.jacfwd(lambda w: jax.grad(loss_fn)(w + sam.chunk_perturbation(variant, loss_fn, w, batch), batch))``;
   it equals ``∇²L(w̃)(I + ∂ε/∂w)`` (``A + ρA²`` for USAM on ``½wᵀAw``) and
   the central finite differences of ``sam.gradient``'s values.

Dropping the ``stop_gradient`` leaves every value unchanged but breaks (1):
issue 14, §5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samtheory import sam

X = jnp.array([[1.0, 2.0, 0.0], [0.5, -1.0, 1.5], [2.0, 0.0, -0.5], [-1.0, 0.3, 0.7]])
Y = jnp.array([1.0, -2.0, 0.5, 0.0])
BATCH = {"x": X, "y": Y}
W = jnp.array([0.3, -0.7, 0.4])  # no residual is zero (1-SAM's ε jumps there)
KEY = jax.random.PRNGKey(3)


def loss(w, batch):  # non-quadratic, so ε(w) and ∇²L(w̃) both vary with w
    r = batch["x"] @ w - batch["y"]
    return jnp.mean(jnp.log(jnp.cosh(r)) + 0.1 * r**4)


VARIANTS = {
    "n-SAM": lambda rho: sam.SAM(rho),
    "USAM": lambda rho: sam.SAM(rho, normalize=False),
    "1-SAM": lambda rho: sam.SAM(rho, m=1),
    "2-USAM": lambda rho: sam.SAM(rho, m=2, normalize=False),
    "ASAM": lambda rho: sam.ASAM(rho, eta=0.01),
    "RandomSAM": lambda rho: sam.RandomSAM(rho),
}


def direction(make, rho=0.1, w=W, batch=BATCH):
    return sam.gradient(make(rho), loss, w, batch, KEY)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_derivative_in_params_and_rho_is_exactly_zero(name):
    make = VARIANTS[name]
    assert float(jnp.linalg.norm(direction(make) - jax.grad(loss)(W, BATCH))) > 1e-3  # it does perturb
    derivatives = jax.jit(lambda w, r: (
        jax.jacfwd(lambda v: direction(make, w=v))(w),
        jax.jacrev(lambda v: direction(make, w=v))(w),
        jax.jacfwd(lambda q: direction(make, rho=q))(r),
    ))
    d_fwd, d_rev, d_rho = derivatives(W, 0.1)
    np.testing.assert_array_equal(d_fwd, np.zeros((3, 3)))
    np.testing.assert_array_equal(d_rev, np.zeros((3, 3)))
    np.testing.assert_array_equal(d_rho, np.zeros(3))


@pytest.mark.parametrize("name", ["n-SAM", "USAM"])
def test_derivative_in_the_data_is_the_explicit_one_at_the_frozen_point(name):
    make = VARIANTS[name]
    w_tilde = W + sam.chunk_perturbation(make(0.1), loss, W, BATCH, KEY)
    got = jax.jacfwd(lambda y: direction(make, batch={"x": X, "y": y}))(Y)
    explicit = jax.jacfwd(lambda y: jax.grad(loss)(w_tilde, {"x": X, "y": y}))(Y)
    np.testing.assert_allclose(got, explicit, rtol=1e-12, atol=1e-14)


def _update_map_jacobian(variant, loss_fn, w, batch):
    return jax.jacfwd(lambda v: jax.grad(loss_fn)(v + sam.chunk_perturbation(variant, loss_fn, v, batch), batch))(w)


def test_update_map_jacobian_of_usam_on_a_quadratic_is_a_plus_rho_a_squared():
    a = X.T @ X / 4
    quadratic = lambda w, batch: 0.5 * jnp.mean((batch["x"] @ w) ** 2)  # noqa: E731  (∇²L = A)
    rho = 0.3
    jac = _update_map_jacobian(sam.SAM(rho, normalize=False), quadratic, W, BATCH)
    np.testing.assert_allclose(jac, a + rho * a @ a, rtol=1e-12)


@pytest.mark.parametrize("name", ["n-SAM", "USAM", "1-SAM"])
def test_update_map_jacobian_matches_finite_differences_of_the_oracle(name):
    variant = VARIANTS[name](0.1)
    if variant.m is not None:  # m-SAM: the map is the mean over chunks of the chunk maps
        chunks = [{"x": X[i : i + 1], "y": Y[i : i + 1]} for i in range(4)]
        jac = sum(_update_map_jacobian(variant, loss, W, c) for c in chunks) / 4
    else:
        jac = _update_map_jacobian(variant, loss, W, BATCH)
    h = 1e-6
    columns = [
        (sam.gradient(variant, loss, W + h * e, BATCH) - sam.gradient(variant, loss, W - h * e, BATCH)) / (2 * h)
        for e in jnp.eye(3)
    ]
    np.testing.assert_allclose(jac, jnp.stack(columns, axis=1), rtol=1e-6, atol=1e-8)
    assert float(jnp.abs(jac).max()) > 0.1  # the map's Jacobian is far from the zero of the contract
