"""``scaled_gradient_perturbation``: USAM's ``ε = ρ g`` ([rho-sam], [normalize]), tested directly.

Issue 14, §5: a USAM that used ``2ρ`` was caught only one level up. Here the
function is compared with the definition leaf by leaf, exactly (one
multiplication per entry, so the same float), on pytrees of mixed shapes and
dtypes, including a traced ρ under ``vmap``; ``‖ε‖₂ = ρ‖g‖₂`` (USAM's ρ is a
step, not a radius); and the SAM oracle evaluates its gradient at ``w + ρ∇L(w)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samtheory import sam
from samtheory.sam.perturbation import pytree_norm, scaled_gradient_perturbation

entries = st.floats(-1e3, 1e3, allow_subnormal=False)


@given(
    a=hnp.arrays(np.float64, (3,), elements=entries),
    b=hnp.arrays(np.float64, (2, 2), elements=entries),
    c=hnp.arrays(np.float32, (4,), elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False)),
    # A radius below 1e-6 would make ρ·g underflow in float32 (ρ·1 < 1.2e-38 at ρ ~ 1e-307), where
    # neither identity below holds for any implementation; no SAM radius is that small.
    rho=st.just(0.0) | st.floats(1e-6, 10.0),
)
def test_is_rho_times_the_gradient_leaf_by_leaf(a, b, c, rho):
    g = {"a": jnp.asarray(a), "nested": (jnp.asarray(b), jnp.asarray(c))}
    eps = scaled_gradient_perturbation(g, rho)
    assert jax.tree.structure(eps) == jax.tree.structure(g)
    for got, leaf in zip(jax.tree.leaves(eps), jax.tree.leaves(g)):
        assert got.dtype == leaf.dtype and got.shape == leaf.shape
        want = np.asarray(leaf) * leaf.dtype.type(rho)
        # XLA on CPU flushes subnormal results to zero; NumPy keeps them.
        want = np.where(np.abs(want) < np.finfo(want.dtype).tiny, 0.0, want).astype(want.dtype)
        np.testing.assert_array_equal(np.asarray(got), want)
    # A step, not a radius: the length is ρ‖g‖, not ρ.
    np.testing.assert_allclose(pytree_norm(eps), rho * pytree_norm(g), rtol=1e-6)


def test_under_vmap_over_rho_and_at_zero_gradient():
    g = {"w": jnp.array([3.0, -4.0])}
    rhos = jnp.array([0.0, 0.05, 1.0, 2.0])
    eps = jax.vmap(lambda r: scaled_gradient_perturbation(g, r))(rhos)
    np.testing.assert_array_equal(eps["w"], rhos[:, None] * g["w"][None, :])
    zero = scaled_gradient_perturbation({"w": jnp.zeros(2)}, 0.3)
    np.testing.assert_array_equal(zero["w"], jnp.zeros(2))


def test_usam_oracle_evaluates_at_w_plus_rho_gradient():
    # L(w) = ½ Σ_i (x_i·w − y_i)²/n; USAM: ∇L(w + ρ∇L(w)) = A(w + ρ(Aw − r)) − r, A = XᵀX/n, r = Xᵀy/n.
    x = jnp.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    y = jnp.array([1.0, -2.0, 0.5])
    batch = {"x": x, "y": y}
    loss = lambda w, b: 0.5 * jnp.mean((b["x"] @ w - b["y"]) ** 2)  # noqa: E731
    w = jnp.array([0.3, -0.7])
    a, r = x.T @ x / 3, x.T @ y / 3
    rho = 0.25
    expected = a @ (w + rho * (a @ w - r)) - r
    got = sam.gradient(sam.SAM(rho, normalize=False), loss, w, batch)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
