"""Sharpness-aware losses of Wen, Ma & Li (2023) on quadratics, where they have closed forms.

At a minimizer of L = ½ (x − x*)ᵀ H (x − x*):
* L^Max(x*) − L(x*) = ρ² λ₁(H)/2 exactly (the top eigenvector direction);
* L^Avg(x*) − L(x*) = ρ² E[uᵀHu]/2 = ρ² Tr(H)/(2D) exactly, u uniform on the sphere;
* L^Asc(x) = L(x + ρ ∇L/‖∇L‖) by definition, and L^Asc(x*) = L(x*).
"""

import jax
import jax.numpy as jnp
import numpy as np
from _problems import make_quadratic_loss, spd_matrices
from hypothesis import given
from hypothesis import strategies as st

from samtheory import sam

DIM = 5


def _at_minimizer(a_matrix, center):
    loss = make_quadratic_loss(a_matrix)
    return loss, {"x": jnp.asarray(center)}, {"c": jnp.asarray(center)[None, :]}


_worst = jax.jit(
    lambda a, c, rho, key: sam.worst_direction_perturbation(
        make_quadratic_loss(a), {"x": c}, {"c": c[None, :]}, rho, key=key, steps=60, restarts=4
    )
)


@given(spd=spd_matrices(DIM, gap=0.5), rho=st.floats(1e-2, 2.0), seed=st.integers(0, 1000))
def test_worst_direction_at_a_minimizer_is_half_rho_squared_lambda_max(spd, rho, seed):
    a_matrix, eigs = spd
    center = np.random.default_rng(seed).normal(size=DIM)
    eps, value = _worst(jnp.asarray(a_matrix), jnp.asarray(center), rho, jax.random.PRNGKey(seed))
    np.testing.assert_allclose(value, rho**2 * eigs[0] / 2, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(eps["x"]), rho, rtol=1e-12)


@jax.jit
def _three_losses(a, params, batch, rho, key):
    """(L^Max, L^Asc, L) of the quadratic with matrix ``a``: one compile for every drawn instance."""
    loss = make_quadratic_loss(a)
    worst = sam.worst_direction_loss(loss, params, batch, rho, key=key, steps=30, restarts=2)
    return worst, sam.ascent_direction_loss(loss, params, batch, rho), loss(params, batch)


@given(spd=spd_matrices(DIM), rho=st.floats(1e-2, 2.0), seed=st.integers(0, 1000))
def test_worst_direction_loss_is_never_below_the_ascent_direction_or_the_loss(spd, rho, seed):
    a_matrix, _ = spd
    rng = np.random.default_rng(seed)
    params, batch = {"x": jnp.asarray(rng.normal(size=DIM))}, {"c": jnp.asarray(rng.normal(size=(3, DIM)))}
    worst, ascent, plain = _three_losses(jnp.asarray(a_matrix), params, batch, rho, jax.random.PRNGKey(seed))
    assert worst >= ascent - 1e-12
    assert worst >= plain - 1e-12


def test_average_direction_at_a_minimizer_is_the_normalized_trace():
    """Antithetic pairs make each sample exactly ½ρ²uᵀHu here, so the check is a pure MC one."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    a_matrix = (q * np.array([4.0, 2.0, 1.0, 0.5, 0.1])) @ q.T
    center = rng.normal(size=DIM)
    loss, params, batch = _at_minimizer(a_matrix, center)
    rho = 0.3
    samples = sam.average_direction_samples(loss, params, batch, rho, key=jax.random.PRNGKey(1), num_samples=4000)
    pairs = np.asarray(samples).reshape(-1, 2)
    np.testing.assert_allclose(pairs[:, 0], pairs[:, 1], rtol=1e-12)  # even function: exact cancellation
    mean, stderr = pairs.mean(), pairs[:, 0].std(ddof=1) / np.sqrt(len(pairs))
    expected = rho**2 * np.trace(a_matrix) / (2 * DIM)
    assert abs(mean - expected) < 4 * stderr
    np.testing.assert_allclose(
        sam.average_direction_loss(loss, params, batch, rho, key=jax.random.PRNGKey(1), num_samples=4000), mean,
        rtol=1e-12,
    )


def test_ascent_direction_loss_definition_and_zero_gradient():
    rng = np.random.default_rng(3)
    a_matrix = np.diag([3.0, 1.0, 0.5, 0.2, 0.1])
    loss = make_quadratic_loss(a_matrix)
    params, batch = {"x": jnp.asarray(rng.normal(size=DIM))}, {"c": jnp.zeros((1, DIM))}
    g = a_matrix @ np.asarray(params["x"])
    moved = {"x": params["x"] + 0.4 * g / np.linalg.norm(g)}
    np.testing.assert_allclose(sam.ascent_direction_loss(loss, params, batch, 0.4), loss(moved, batch), rtol=1e-13)
    at_min = {"x": jnp.zeros(DIM)}
    assert float(sam.ascent_direction_loss(loss, at_min, batch, 0.4)) == 0.0


def test_worst_direction_gradient_is_danskin():
    """∇L^Max = ∇L(x + ε*) with ε* held fixed."""
    rng = np.random.default_rng(4)
    a_matrix = np.diag([3.0, 1.0, 0.5, 0.2, 0.1])
    loss = make_quadratic_loss(a_matrix)
    params, batch = {"x": jnp.asarray(rng.normal(size=DIM))}, {"c": jnp.zeros((1, DIM))}
    key = jax.random.PRNGKey(0)
    # The best iterate is selected by its loss value, and near a maximum the value is flat to
    # second order: ε* is identified only to ~√(machine ε) ≈ 1e-8, and two separate runs
    # (one under jax.grad) may select iterates that far apart. Hence rtol 1e-7, not 1e-12.
    kwargs = dict(key=key, steps=300, restarts=2)
    grad = jax.grad(lambda p: sam.worst_direction_loss(loss, p, batch, 0.2, **kwargs))(params)
    eps, _ = sam.worst_direction_perturbation(loss, params, batch, 0.2, **kwargs)
    np.testing.assert_allclose(grad["x"], a_matrix @ np.asarray(params["x"] + eps["x"]), rtol=1e-7)
    # And it is not the gradient at x (the perturbation matters at this precision).
    assert not np.allclose(grad["x"], a_matrix @ np.asarray(params["x"]), rtol=1e-3)


def test_rho_zero_gives_the_loss_itself():
    """The ρ = 0 ball is {0}: every sharpness-aware loss equals L (no 0/0 in the projection)."""
    rng = np.random.default_rng(5)
    loss = make_quadratic_loss(np.diag([3.0, 1.0, 0.5, 0.2, 0.1]))
    params, batch = {"x": jnp.asarray(rng.normal(size=DIM))}, {"c": jnp.zeros((1, DIM))}
    base = float(loss(params, batch))
    key = jax.random.PRNGKey(0)
    assert float(sam.worst_direction_loss(loss, params, batch, 0.0, key=key, steps=5, restarts=1)) == base
    assert float(sam.ascent_direction_loss(loss, params, batch, 0.0)) == base
    np.testing.assert_allclose(sam.average_direction_loss(loss, params, batch, 0.0, key=key, num_samples=8), base)


def _cubic_loss(h_matrix, b_vector):
    """L(x) = ½xᵀHx + (bᵀx)³/6 + (bᵀx)⁴/24: a minimizer at 0 with Hessian H, cubic and quartic terms."""

    def loss(params, batch):
        x = params["x"]
        bx = b_vector @ x
        return 0.5 * x @ h_matrix @ x + bx**3 / 6 + bx**4 / 24 + 0.0 * jnp.sum(batch["dummy"])

    return loss


def test_worst_direction_expansion_has_a_cubic_remainder():
    """L^Max − L = ρ²λ₁/2 + O(ρ³) at a minimizer of a non-quadratic loss: fitted slope 3."""
    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    h_matrix = (q * np.array([3.0, 1.0, 0.7, 0.4, 0.2])) @ q.T
    loss = _cubic_loss(jnp.asarray(h_matrix), jnp.asarray(rng.normal(size=DIM)))
    params, batch = {"x": jnp.zeros(DIM)}, {"dummy": jnp.zeros(1)}
    rhos = np.geomspace(1e-3, 1e-2, 5)
    worst = jax.jit(lambda r: sam.worst_direction_perturbation(
        loss, params, batch, r, key=jax.random.PRNGKey(0), steps=200, restarts=4)[1])
    remainders = np.array([abs(float(worst(r)) - r**2 * 3.0 / 2) for r in rhos])
    slope = np.polyfit(np.log(rhos), np.log(remainders), 1)[0]
    assert 2.85 < slope < 3.15, (slope, remainders)


def test_average_direction_expansion_has_a_quartic_remainder_with_antithetic_pairs():
    """Each antithetic pair equals ½ρ²uᵀHu + O(ρ⁴) (the cubic term cancels): fitted slope 4.

    The same directions u are regenerated from the same keys, so the check is free of
    Monte Carlo error; averaged over u it is L^Avg − L = ρ²Tr(H)/(2D) + O(ρ⁴).
    """
    rng = np.random.default_rng(12)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    h_matrix = (q * np.array([3.0, 1.0, 0.7, 0.4, 0.2])) @ q.T
    loss = _cubic_loss(jnp.asarray(h_matrix), jnp.asarray(rng.normal(size=DIM)) * 3)
    params, batch = {"x": jnp.zeros(DIM)}, {"dummy": jnp.zeros(1)}
    key, num = jax.random.PRNGKey(3), 64
    units = np.stack([np.asarray(sam.random_sphere_perturbation(k, params, 1.0)["x"])
                      for k in jax.random.split(key, num // 2)])
    quadratic_forms = np.einsum("ki,ij,kj->k", units, h_matrix, units)
    rhos = np.geomspace(1e-2, 1e-1, 5)
    remainders = []
    for rho in rhos:
        pairs = np.asarray(sam.average_direction_samples(loss, params, batch, rho, key=key, num_samples=num))
        pair_means = pairs.reshape(-1, 2).mean(axis=1)
        remainders.append(np.max(np.abs(pair_means - 0.5 * rho**2 * quadratic_forms)))
    slope = np.polyfit(np.log(rhos), np.log(remainders), 1)[0]
    assert 3.85 < slope < 4.15, (slope, remainders)
