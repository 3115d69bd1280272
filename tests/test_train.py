"""Compiled training loops: equivalence with explicit loops, switching, sweeps, divergence, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _problems import make_quadratic_loss, tanh_net_loss

from samtheory import sam, train


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "a": rng.normal(size=4)}
    data = {"x": rng.normal(size=(8, 3)), "y": rng.normal(size=8)}
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, data)


def _explicit_loop(variant_at, params, data, lr, num_steps):
    for t in range(num_steps):
        g = sam.gradient(variant_at(t), tanh_net_loss, params, data)
        params = jax.tree.map(lambda w, gi: w - lr * gi, params, g)
    return params


def _close(a, b, rtol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)


def test_full_batch_run_equals_an_explicit_loop():
    params, data = _problem()
    variant = sam.SAM(0.05, m=2)
    result = train.run(tanh_net_loss, params, data, variant=variant, num_steps=12, learning_rate=0.1)
    _close(result.params, _explicit_loop(lambda t: variant, params, data, 0.1, 12))
    assert int(result.diverged_step) == -1


def test_recorded_metrics_are_the_loss_at_those_steps():
    params, data = _problem()
    steps = np.array([0, 1, 3, 10])
    result = train.run(
        tanh_net_loss, params, data, variant=sam.SAM(0.05), num_steps=10, learning_rate=0.1, record_steps=steps
    )
    np.testing.assert_array_equal(result.steps, steps)
    for i, t in enumerate(steps):
        at_t = _explicit_loop(lambda _: sam.SAM(0.05), params, data, 0.1, int(t))
        np.testing.assert_allclose(result.metrics["loss"][i], tanh_net_loss(at_t, data), rtol=1e-12)


def test_switch_uses_the_first_variant_before_the_step_and_the_second_after():
    params, data = _problem()
    schedule = train.switch(sam.ERM(), sam.SAM(0.1, m=1), at_step=4)
    result = train.run(tanh_net_loss, params, data, variant=schedule, num_steps=9, learning_rate=0.1)
    expected = _explicit_loop(lambda t: sam.ERM() if t < 4 else sam.SAM(0.1, m=1), params, data, 0.1, 9)
    _close(result.params, expected)


def test_sweep_over_seeds_and_rhos_equals_individual_runs():
    _, data = _problem()

    def init(key):
        return {"W": jax.random.normal(key, (3, 4)), "b": jnp.zeros(4), "a": jnp.ones(4) / 4}

    def run_one(rho, key):
        return train.run(
            tanh_net_loss, init(key), data, variant=sam.SAM(rho, m=4), num_steps=20,
            learning_rate=0.1, record_steps=np.array([0, 5, 20]),
        )

    rhos, seeds = [0.0, 0.05, 0.2], [0, 1]
    grid = jax.jit(lambda: train.sweep(run_one, rhos, seeds))()
    assert grid.metrics["loss"].shape == (2, 3, 3)
    for i, s in enumerate(seeds):
        for j, r in enumerate(rhos):
            single = run_one(r, jax.random.PRNGKey(s))
            np.testing.assert_allclose(grid.metrics["loss"][i, j], single.metrics["loss"], rtol=1e-12)


def test_runs_are_deterministic_given_the_key():
    params, data = _problem()
    kwargs = dict(variant=sam.RandomSAM(0.1, m=2), num_steps=15, learning_rate=0.1, batch_size_per_step=4)
    a = train.run(tanh_net_loss, params, data, key=jax.random.PRNGKey(5), **kwargs)
    b = train.run(tanh_net_loss, params, data, key=jax.random.PRNGKey(5), **kwargs)
    c = train.run(tanh_net_loss, params, data, key=jax.random.PRNGKey(6), **kwargs)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a.params["W"], c.params["W"])


def test_recording_does_not_change_the_trajectory():
    """Step t uses fold_in(key, t): grouping of steps between records cannot matter."""
    params, data = _problem()
    kwargs = dict(variant=sam.RandomSAM(0.1), num_steps=16, learning_rate=0.1, key=jax.random.PRNGKey(0),
                  batch_size_per_step=4)
    coarse = train.run(tanh_net_loss, params, data, record_steps=np.array([16]), **kwargs)
    fine = train.run(tanh_net_loss, params, data, record_steps=np.arange(17), **kwargs)
    _close(coarse.params, fine.params, rtol=1e-14)


def test_minibatches_of_the_full_size_are_full_batch_gd():
    params, data = _problem()
    full = train.run(tanh_net_loss, params, data, variant=sam.ERM(), num_steps=10, learning_rate=0.1)
    mini = train.run(
        tanh_net_loss, params, data, variant=sam.ERM(), num_steps=10, learning_rate=0.1,
        batch_size_per_step=8, key=jax.random.PRNGKey(0),
    )
    _close(full.params, mini.params, rtol=1e-11)


def test_optimizer_argument_is_used():
    params, data = _problem()
    opt = optax.sgd(0.1, momentum=0.9)
    result = train.run(tanh_net_loss, params, data, variant=sam.SAM(0.05), num_steps=6, optimizer=opt)
    state, p = opt.init(params), params
    for _ in range(6):
        g = sam.gradient(sam.SAM(0.05), tanh_net_loss, p, data)
        u, state = opt.update(g, state, p)
        p = optax.apply_updates(p, u)
    _close(result.params, p)


def test_divergence_is_detected_at_the_first_non_finite_step():
    """GD on ½λx² with ηλ = 3 multiplies x by −2 each step: overflow at a step we can compute."""
    loss = make_quadratic_loss(np.array([[1.0]]))
    data = {"c": jnp.zeros((1, 1))}
    x0 = 1.0
    result = train.run(
        loss, {"x": jnp.array([x0])}, data, variant=sam.ERM(), num_steps=2000, learning_rate=3.0,
        record_steps=np.array([0, 2000]),
    )
    x, expected = x0, None
    for t in range(1, 2001):
        x = np.float64(x) * -2.0
        if not np.isfinite(x):
            expected = t
            break
    assert int(result.diverged_step) == expected
    with pytest.raises(train.DivergenceError, match=f"at step {expected}"):
        train.check_finite(result)


def test_check_finite_names_the_run_in_a_grid():
    result = train.TrainResult(None, None, {}, jnp.array([[-1, -1], [-1, 17]]))
    with pytest.raises(train.DivergenceError, match="seed=1, rho=1, at step 17"):
        train.check_finite(result, names=("seed", "rho"))
    ok = train.TrainResult(None, None, {}, jnp.array([-1, -1]))
    assert train.check_finite(ok) is ok


def test_log_steps():
    steps = train.log_steps(10_000, 50)
    assert steps[0] == 0 and steps[-1] == 10_000
    assert np.all(np.diff(steps) > 0)
    # Geometric where rounding to integers no longer matters.
    large = steps[steps >= 50]
    ratios = large[1:] / large[:-1]
    np.testing.assert_allclose(ratios, 10_000 ** (1 / 49), rtol=0.02)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_steps=0, learning_rate=0.1), "num_steps"),
        (dict(num_steps=5), "exactly one of learning_rate and optimizer"),
        (dict(num_steps=5, learning_rate=0.1, optimizer=optax.sgd(0.1)), "exactly one"),
        (dict(num_steps=5, learning_rate=0.1, record_steps=[0, 3, 2]), "record_steps"),
        (dict(num_steps=5, learning_rate=0.1, record_steps=[0, 6]), "record_steps"),
        (dict(num_steps=5, learning_rate=0.1, batch_size_per_step=9, key=jax.random.PRNGKey(0)), "batch_size_per_step"),
        (dict(num_steps=5, learning_rate=0.1, batch_size_per_step=4), "key is required"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    params, data = _problem()
    with pytest.raises(ValueError, match=match):
        train.run(tanh_net_loss, params, data, variant=sam.ERM(), **kwargs)


def test_bad_schedules_raise():
    with pytest.raises(ValueError, match="at_step"):
        train.switch(sam.ERM(), sam.SAM(0.1), -1)
    with pytest.raises(ValueError, match="one more entry"):
        train.VariantSchedule((sam.ERM(),), (3,))
