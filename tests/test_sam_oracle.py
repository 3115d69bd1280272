"""The gradient oracle: identities between variants, closed forms, rates, errors, determinism."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import N_EXAMPLES, make_quadratic_loss, spd_matrices, tanh_net_loss, tanh_problems
from hypothesis import given
from hypothesis import strategies as st

from samtheory import sam
from samtheory.sam import perturbation as pert

RHO = st.floats(1e-3, 0.5)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


# The variant is a pytree argument: rho is traced, so new rho values do not recompile.
jit_gradient = jax.jit(sam.gradient, static_argnums=(1,))


def grad_of(variant, params, batch, key=None):
    return flat(jit_gradient(variant, tanh_net_loss, params, batch, key))

# Variant families at rho = 0; all must reduce to ERM.
RHO_ZERO_FAMILIES = [
    lambda r: sam.SAM(r),
    lambda r: sam.SAM(r, m=1),
    lambda r: sam.SAM(r, m=4, normalize=False),
    lambda r: sam.SAM(r, p=math.inf, ascent_steps=3),
    lambda r: sam.SAM(r, p=3.0),
    lambda r: sam.SAM(r, m=2, second_order=True),
    lambda r: sam.RandomSAM(r, m=2),
    lambda r: sam.ASAM(r, m=1),
]


@pytest.mark.parametrize("family", range(len(RHO_ZERO_FAMILIES)))
@given(problem=tanh_problems())
def test_rho_zero_is_erm(family, problem):
    params, batch = problem
    variant = RHO_ZERO_FAMILIES[family](0.0)
    expected = grad_of(sam.ERM(), params, batch)
    got = grad_of(variant, params, batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("normalize", [True, False])
@given(problem=tanh_problems(), rho=RHO)
def test_m_equal_to_batch_size_is_n_sam(normalize, problem, rho):
    params, batch = problem
    np.testing.assert_array_equal(
        grad_of(sam.SAM(rho, m=N_EXAMPLES, normalize=normalize), params, batch),
        grad_of(sam.SAM(rho, normalize=normalize), params, batch),
    )


@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("normalize", [True, False])
@given(problem=tanh_problems(), rho=RHO)
def test_vmapped_chunks_equal_an_explicit_loop(m, normalize, problem, rho):
    """(m/n) Σ_C ∇L_C(w + ε_C), computed chunk by chunk with the n-SAM path on each chunk."""
    params, batch = problem
    chunks = [jax.tree.map(lambda x: x[i : i + m], batch) for i in range(0, N_EXAMPLES, m)]
    looped = np.mean([grad_of(sam.SAM(rho, normalize=normalize), params, c) for c in chunks], axis=0)
    np.testing.assert_allclose(
        grad_of(sam.SAM(rho, m=m, normalize=normalize), params, batch), looped, rtol=1e-12, atol=1e-14
    )


@given(problem=tanh_problems(), rho=RHO)
def test_one_sam_equals_per_example_formula(problem, rho):
    """1-SAM, unnormalized: (1/n) Σ_i ∇ℓ_i(w + ρ∇ℓ_i(w)) written out with per-example losses."""
    params, batch = problem

    def example_loss(w, x, y):
        return tanh_net_loss(w, {"x": x[None], "y": y[None]})

    def per_example(x, y):
        g = jax.grad(example_loss)(params, x, y)
        w_adv = jax.tree.map(lambda w, gi: w + rho * gi, params, g)
        return jax.grad(example_loss)(w_adv, x, y)

    expected = jax.tree.map(lambda g: jnp.mean(g, 0), jax.vmap(per_example)(batch["x"], batch["y"]))
    np.testing.assert_allclose(
        grad_of(sam.SAM(rho, m=1, normalize=False), params, batch), flat(expected), rtol=1e-12, atol=1e-14
    )


@given(spd=spd_matrices(4), rho=st.floats(0.0, 2.0), eta=st.floats(1e-3, 0.2), seed=st.integers(0, 10**6))
def test_usam_on_a_quadratic_is_the_closed_form(spd, rho, eta, seed):
    """x⁺ = (I − ηA − ηρA²) x for L = ½xᵀAx (the USAM linear map)."""
    a_matrix, _ = spd
    loss = make_quadratic_loss(a_matrix)
    x = np.random.default_rng(seed).normal(size=4)
    batch = {"c": jnp.zeros((1, 4))}
    step = sam.gradient(sam.SAM(rho, normalize=False), loss, {"x": jnp.asarray(x)}, batch)
    x_next = x - eta * np.asarray(step["x"])
    closed = (np.eye(4) - eta * a_matrix - eta * rho * a_matrix @ a_matrix) @ x
    np.testing.assert_allclose(x_next, closed, rtol=1e-12, atol=1e-13)


@given(spd=spd_matrices(4), rho=st.floats(0.0, 2.0), seed=st.integers(0, 10**6))
def test_second_order_usam_on_a_quadratic_is_the_closed_form(spd, rho, seed):
    """d/dw L(w + ρ∇L(w)) = (I + ρA) A (I + ρA) w, against the first-order A (I + ρA) w."""
    a_matrix, _ = spd
    loss = make_quadratic_loss(a_matrix)
    x = np.random.default_rng(seed).normal(size=4)
    batch = {"c": jnp.zeros((1, 4))}
    full = sam.gradient(sam.SAM(rho, normalize=False, second_order=True), loss, {"x": jnp.asarray(x)}, batch)
    first = sam.gradient(sam.SAM(rho, normalize=False), loss, {"x": jnp.asarray(x)}, batch)
    i_plus = np.eye(4) + rho * a_matrix
    np.testing.assert_allclose(full["x"], i_plus @ a_matrix @ i_plus @ x, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(first["x"], a_matrix @ i_plus @ x, rtol=1e-11, atol=1e-12)


@jax.jit
def _perturbed_loss(flat_w, like, batch, rho):
    """L(w + ε̂(w)) for normalized SAM at the flat point ``flat_w`` (``like`` gives the pytree): one compile."""
    w = jax.flatten_util.ravel_pytree(like)[1](flat_w)
    eps = sam.chunk_perturbation(sam.SAM(rho, second_order=True), tanh_net_loss, w, batch)
    return tanh_net_loss(jax.tree.map(jnp.add, w, eps), batch)


@given(problem=tanh_problems(), rho=RHO)
def test_second_order_gradient_matches_finite_differences(problem, rho):
    """The second-order option is the true derivative of w ↦ L(w + ε̂(w)), normalized SAM."""
    params, batch = problem
    variant = sam.SAM(rho, second_order=True)
    objective = lambda flat_w: _perturbed_loss(flat_w, params, batch, rho)
    flat_w, _ = jax.flatten_util.ravel_pytree(params)
    g0 = flat(jax.grad(tanh_net_loss)(params, batch))
    if np.linalg.norm(g0) < 1e-4:  # ε̂ is not differentiable at ∇L = 0
        return
    h = 1e-6
    basis = np.eye(flat_w.size)
    fd = np.array([(objective(flat_w + h * e) - objective(flat_w - h * e)) / (2 * h) for e in basis[:6]])
    np.testing.assert_allclose(grad_of(variant, params, batch)[:6], fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("p", [1, 1.5, 2, 4, math.inf])
def test_first_order_sharpness_has_rate_two(p):
    """L(w + ε̂) − L(w) = ρ‖g‖_q + O(ρ²): the fitted log-log slope of the remainder is 2."""
    params, batch = _fixed_tanh_problem()
    g = jax.grad(tanh_net_loss)(params, batch)
    q = {1: math.inf, math.inf: 1}.get(p) or p / (p - 1)
    g_dual = float(pert.pytree_norm(g, q))
    rhos = np.geomspace(1e-4, 1e-2, 7)

    def remainder(rho):
        eps = pert.dual_norm_perturbation(g, rho, p)
        moved = tanh_net_loss(jax.tree.map(jnp.add, params, eps), batch)
        return abs(float(moved - tanh_net_loss(params, batch)) - rho * g_dual)

    errors = np.array([remainder(r) for r in rhos])
    slope = np.polyfit(np.log(rhos), np.log(errors), 1)[0]
    assert 1.9 < slope < 2.1, (slope, errors)


def _fixed_tanh_problem():
    rng = np.random.default_rng(42)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "a": rng.normal(size=4)}
    batch = {"x": rng.normal(size=(N_EXAMPLES, 3)), "y": rng.normal(size=N_EXAMPLES)}
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, batch)


def test_zero_gradient_gives_no_nan_for_any_variant():
    params = {"W": jnp.zeros((3, 4)), "b": jnp.zeros(4), "a": jnp.zeros(4)}
    batch = {"x": jnp.ones((N_EXAMPLES, 3)), "y": jnp.zeros(N_EXAMPLES)}  # at a minimizer: ∇L = 0
    for family in RHO_ZERO_FAMILIES:
        got = grad_of(family(0.3), params, batch, jax.random.PRNGKey(0))
        assert np.all(np.isfinite(got))
    for variant in [sam.SAM(0.3, second_order=True, p=3.0), sam.SAM(0.3, p=1, second_order=True)]:
        np.testing.assert_array_equal(grad_of(variant, params, batch), 0.0)


def test_vmap_over_rho_equals_a_loop_and_jit():
    params, batch = _fixed_tanh_problem()
    rhos = jnp.array([0.0, 0.05, 0.2])
    for make in [lambda r: sam.SAM(r, m=2), lambda r: sam.SAM(r, normalize=False, ascent_steps=2)]:
        mapped = jax.jit(jax.vmap(lambda r: flat_jnp(sam.gradient(make(r), tanh_net_loss, params, batch))))(rhos)
        looped = np.stack([grad_of(make(float(r)), params, batch) for r in rhos])
        np.testing.assert_allclose(mapped, looped, rtol=1e-13, atol=1e-15)
    # Mapping over a variant whose rho is an array works too (the variant is a pytree).
    batched = jax.vmap(lambda v: flat_jnp(sam.gradient(v, tanh_net_loss, params, batch)))(sam.SAM(rhos))
    np.testing.assert_allclose(batched, np.stack([grad_of(sam.SAM(float(r)), params, batch) for r in rhos]), rtol=1e-13)


def flat_jnp(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_random_sam_is_deterministic_per_key_and_vmappable_over_seeds():
    params, batch = _fixed_tanh_problem()
    variant = sam.RandomSAM(0.1, m=2)
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    mapped = jax.vmap(lambda k: flat_jnp(sam.gradient(variant, tanh_net_loss, params, batch, k)))(keys)
    again = np.stack([grad_of(variant, params, batch, k) for k in keys])
    np.testing.assert_allclose(mapped, again, rtol=1e-13)
    assert not np.allclose(mapped[0], mapped[1])  # different seeds, different perturbations


def test_random_sam_chunks_get_independent_directions():
    """With m=1 each example is perturbed by its own draw: the result differs from one shared draw."""
    params, batch = _fixed_tanh_problem()
    key = jax.random.PRNGKey(0)
    per_chunk = grad_of(sam.RandomSAM(0.3, m=1), params, batch, key)
    shared = grad_of(sam.RandomSAM(0.3), params, batch, key)
    assert not np.allclose(per_chunk, shared)


def test_multi_step_ascent_with_linear_loss_is_a_fixed_point():
    """For a linear loss every ascent step points the same way, so K steps equal one (p = 2, ∞)."""
    batch = {"x": jnp.ones((2, 3))}
    loss = lambda w, b: jnp.mean(b["x"] @ w["v"])
    params = {"v": jnp.array([0.3, -1.0, 2.0])}
    for p in (2, math.inf):
        one = sam.chunk_perturbation(sam.SAM(0.5, p=p), loss, params, batch)
        many = sam.chunk_perturbation(sam.SAM(0.5, p=p, ascent_steps=4), loss, params, batch)
        np.testing.assert_allclose(many["v"], one["v"], rtol=1e-13)


@pytest.mark.parametrize("p", [1, 2, math.inf])
@given(problem=tanh_problems(), rho=RHO)
def test_multi_step_ascent_stays_in_the_ball(p, problem, rho):
    params, batch = problem
    eps = _jit_perturbation(sam.SAM(rho, p=p, ascent_steps=3), params, batch)
    assert float(pert.pytree_norm(eps, p)) <= rho * (1 + 1e-10)


@jax.jit
def _jit_perturbation(variant, params, batch):
    return sam.chunk_perturbation(variant, tanh_net_loss, params, batch)


def test_usam_multi_step_is_repeated_gradient_ascent():
    params, batch = _fixed_tanh_problem()
    rho = 0.05
    eps = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        g = jax.grad(tanh_net_loss)(jax.tree.map(jnp.add, params, eps), batch)
        eps = jax.tree.map(lambda e, gi: e + rho * gi, eps, g)
    got = sam.chunk_perturbation(sam.SAM(rho, normalize=False, ascent_steps=3), tanh_net_loss, params, batch)
    np.testing.assert_allclose(flat(got), flat(eps), rtol=1e-13)


def test_clean_grad_shortcut_is_exact():
    params, batch = _fixed_tanh_problem()
    clean = jax.grad(tanh_net_loss)(params, batch)
    for variant in [sam.SAM(0.1), sam.SAM(0.1, normalize=False), sam.ASAM(0.1)]:
        np.testing.assert_allclose(
            flat(sam.gradient(variant, tanh_net_loss, params, batch, clean_grad=clean)),
            flat(sam.gradient(variant, tanh_net_loss, params, batch)),
            rtol=1e-14,
        )


def test_deterministic_across_calls_and_under_jit():
    params, batch = _fixed_tanh_problem()
    key = jax.random.PRNGKey(7)
    for variant in [sam.SAM(0.1, m=2), sam.RandomSAM(0.1, m=4), sam.ASAM(0.2)]:
        a = grad_of(variant, params, batch, key)
        b = grad_of(variant, params, batch, key)
        c = flat(sam.gradient(variant, tanh_net_loss, params, batch, key))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-13)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: sam.SAM(-0.1), "rho"),
        (lambda: sam.SAM(float("nan")), "rho"),
        (lambda: sam.SAM(np.array([0.1, -0.2])), "rho"),
        (lambda: sam.SAM(0.1, m=0), "m must"),
        (lambda: sam.SAM(0.1, m=2.5), "m must"),
        (lambda: sam.SAM(0.1, p=0.5), "p must"),
        (lambda: sam.SAM(0.1, p=3.0, ascent_steps=2), "p must"),
        (lambda: sam.SAM(0.1, ascent_steps=0), "ascent_steps"),
        (lambda: sam.RandomSAM(-1.0), "rho"),
        (lambda: sam.ASAM(0.1, eta=-1.0), "eta"),
    ],
)
def test_bad_configuration_raises_naming_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_calls_raise_naming_the_parameter():
    params, batch = _fixed_tanh_problem()
    with pytest.raises(ValueError, match="m must divide"):
        sam.gradient(sam.SAM(0.1, m=3), tanh_net_loss, params, batch)
    with pytest.raises(ValueError, match="key is required"):
        sam.gradient(sam.RandomSAM(0.1), tanh_net_loss, params, batch)
    with pytest.raises(ValueError, match="disagree"):
        sam.gradient(sam.SAM(0.1), tanh_net_loss, params, {"x": batch["x"], "y": batch["y"][:3]})
