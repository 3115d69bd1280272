"""The MLP classifier (samtheory/models/mlp.py): shapes, initialization statistics, validation,
the loss against a direct NumPy computation, gradients against finite differences, and its Hessian
spectrum by Lanczos against a dense ``jax.hessian`` + ``eigh``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from samtheory import sharpness
from samtheory.models import mlp

SIZES = (5, 7, 6, 3)  # input 5, hidden 7 and 6, 3 classes: D = 6·7 + 8·6 + 7·3 = 111
N = 9


def _batch(key, n=N, sizes=SIZES):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, sizes[0]))
    y = jax.random.randint(ky, (n,), 0, sizes[-1])
    return x, y


def _numpy_forward(params, x, activation):
    sigma = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
             "softplus": lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0)}[activation]
    h = np.asarray(x, np.float64)
    for i, (w, b) in enumerate(params):
        h = h @ np.asarray(w) + np.asarray(b)
        if i < len(params) - 1:
            h = sigma(h)
    return h


def _numpy_cross_entropy(params, x, y, activation):
    logits = _numpy_forward(params, x, activation)
    losses = []
    for row, label in zip(logits, np.asarray(y)):
        # Plain softmax in float64 with the max subtracted: an independent formula for the same loss.
        p = np.exp(row - row.max())
        p /= p.sum()
        losses.append(-np.log(p[label]))
    return np.asarray(losses)


def test_init_shapes_sizes_and_param_count():
    params = mlp.init_mlp(jax.random.PRNGKey(0), SIZES)
    assert len(params) == 3
    assert [layer.w.shape for layer in params] == [(5, 7), (7, 6), (6, 3)]
    assert [layer.b.shape for layer in params] == [(7,), (6,), (3,)]
    assert all(layer.w.dtype == jnp.float64 and not np.any(layer.b) for layer in params)
    assert mlp.layer_sizes(params) == SIZES
    assert mlp.param_count(params) == ravel_pytree(params)[0].size == 111
    # Flattened order is W1, b1, W2, b2, ...: the first 35 entries are W1 row by row.
    np.testing.assert_array_equal(ravel_pytree(params)[0][:35], np.asarray(params[0].w).ravel())
    assert mlp.init_mlp(jax.random.PRNGKey(0), SIZES, dtype=jnp.float32)[0].w.dtype == jnp.float32
    from_array = mlp.init_mlp(jax.random.PRNGKey(0), np.asarray(SIZES))
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(from_array), jax.tree.leaves(params)))


@pytest.mark.parametrize(("init", "gain"), [("he", 2.0), ("lecun", 1.0)])
def test_init_variance_is_gain_over_fan_in(init, gain):
    # 400 × 300 = 120 000 weights per layer: the sample variance is within 1.5% (≈ 4 standard errors).
    params = mlp.init_mlp(jax.random.PRNGKey(1), (400, 300, 500), init=init, scale=0.5)
    for layer, fan_in in zip(params, (400, 300)):
        var = float(jnp.var(layer.w))
        assert abs(var / (0.25 * gain / fan_in) - 1) < 0.015
        assert abs(float(jnp.mean(layer.w))) < 4 * np.sqrt(0.25 * gain / fan_in / layer.w.size)


def test_init_is_a_pure_function_of_the_key():
    a = mlp.init_mlp(jax.random.PRNGKey(3), SIZES)
    b = mlp.init_mlp(jax.random.PRNGKey(3), SIZES)
    c = mlp.init_mlp(jax.random.PRNGKey(4), SIZES)
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not np.array_equal(a[0].w, c[0].w)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_loss_equals_a_direct_numpy_computation(activation):
    params = mlp.init_mlp(jax.random.PRNGKey(5), SIZES, scale=2.0)  # scale 2: logits of order 1–10
    x, y = _batch(jax.random.PRNGKey(6))
    expected = _numpy_cross_entropy(params, x, y, activation)
    per_example = mlp.cross_entropy_per_example(params, (x, y), activation=activation)
    np.testing.assert_allclose(per_example, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mlp.cross_entropy_loss(params, (x, y), activation=activation), expected.mean(),
                               rtol=1e-12)
    logits = _numpy_forward(params, x, activation)
    np.testing.assert_allclose(mlp.predict(params, x, activation=activation), logits, rtol=1e-12, atol=1e-14)
    accuracy = np.mean(logits.argmax(1) == np.asarray(y))
    assert float(mlp.accuracy(params, (x, y), activation=activation)) == pytest.approx(accuracy, abs=0)
    assert float(mlp.zero_one_error(params, (x, y), activation=activation)) == pytest.approx(1 - accuracy, abs=1e-15)


def test_loss_is_the_mean_over_examples_and_chunks_average():
    # [loss-mean]: the mean of the losses of equal chunks is the loss of the whole batch.
    params = mlp.init_mlp(jax.random.PRNGKey(7), SIZES)
    x, y = _batch(jax.random.PRNGKey(8), n=12)
    whole = mlp.cross_entropy_loss(params, (x, y))
    chunks = [mlp.cross_entropy_loss(params, (x[i:i + 4], y[i:i + 4])) for i in range(0, 12, 4)]
    np.testing.assert_allclose(whole, np.mean(chunks), rtol=1e-14)


def test_loss_is_stable_for_huge_logits():
    # Logits of order 1e4: a naive softmax overflows; log_softmax gives the exact margins.
    params = (mlp.Dense(jnp.asarray([[1e4, 0.0, -1e4]]), jnp.zeros(3)),)
    x, y = jnp.ones((2, 1)), jnp.asarray([0, 2])
    np.testing.assert_allclose(mlp.cross_entropy_per_example(params, (x, y)), [0.0, 2e4], rtol=1e-15)


# Every parameter vector of SIZES unravels the same way; one jitted loss and gradient serve all examples.
_UNRAVEL = ravel_pytree(mlp.init_mlp(jax.random.PRNGKey(0), SIZES))[1]


@jax.jit
def _tanh_loss_and_grad(flat, x, y):
    return jax.value_and_grad(lambda v: mlp.cross_entropy_loss(_UNRAVEL(v), (x, y), activation="tanh"))(flat)


@given(seed=st.integers(0, 2**31 - 1))
def test_gradient_matches_central_finite_differences(seed):
    # Smooth activation and unit directions d: the central difference errs by h²/6 · |∂³L/∂d³| ≈ 2e-11
    # (third derivatives are O(1) here) plus rounding ε|L|/h ≈ 2e-11, far inside the tolerance.
    key_p, key_b, key_d = jax.random.split(jax.random.PRNGKey(seed), 3)
    flat = ravel_pytree(mlp.init_mlp(key_p, SIZES))[0]
    x, y = _batch(key_b)
    grad = _tanh_loss_and_grad(flat, x, y)[1]
    directions = jax.random.normal(key_d, (4, flat.size))
    h = 1e-5
    for d in directions / jnp.linalg.norm(directions, axis=1, keepdims=True):
        fd = (_tanh_loss_and_grad(flat + h * d, x, y)[0] - _tanh_loss_and_grad(flat - h * d, x, y)[0]) / (2 * h)
        np.testing.assert_allclose(fd, grad @ d, rtol=1e-7, atol=1e-9)


def test_relu_gradient_matches_finite_differences_away_from_kinks():
    # ReLU: exact away from a kink; with random data no pre-activation is within h·|d| of zero.
    params = mlp.init_mlp(jax.random.PRNGKey(11), SIZES)
    batch = _batch(jax.random.PRNGKey(12))
    flat, unravel = ravel_pytree(params)
    f = lambda v: mlp.cross_entropy_loss(unravel(v), batch)
    grad = jax.grad(f)(flat)
    d = jax.random.normal(jax.random.PRNGKey(13), flat.shape)
    d = d / jnp.linalg.norm(d)
    h = 1e-6
    np.testing.assert_allclose((f(flat + h * d) - f(flat - h * d)) / (2 * h), grad @ d, rtol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_lanczos_matches_dense_hessian_eigenvalues(activation):
    # D = 111; 60 Lanczos steps (about half of D) from one random start.
    params = mlp.init_mlp(jax.random.PRNGKey(21), SIZES, scale=1.5)
    batch = _batch(jax.random.PRNGKey(22), n=40)
    loss = functools.partial(mlp.cross_entropy_loss, activation=activation)
    flat, unravel = ravel_pytree(params)
    dense = jax.jit(jax.hessian(lambda v: loss(unravel(v), batch)))(flat)
    np.testing.assert_allclose(dense, dense.T, atol=1e-14)
    exact = np.linalg.eigvalsh(np.asarray(dense))
    eig = jax.jit(lambda p: sharpness.hessian_eigenvalues(loss, p, batch, key=jax.random.PRNGKey(23), num_iter=60,
                                                          num_eigenvalues=5))(params)
    scale = exact[-1]
    np.testing.assert_allclose(eig.largest, exact[::-1][:5], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(eig.smallest[0], exact[0], rtol=0, atol=1e-10 * scale)
    assert np.all(np.asarray(eig.largest_error) < 1e-8 * scale)
    assert exact[0] < 0  # at a random initialization the loss is not convex: λ_min is a real test


def test_param_count_and_sizes_work_on_abstract_shapes():
    shapes = jax.eval_shape(lambda k: mlp.init_mlp(k, (40, 100, 100, 10)), jax.random.PRNGKey(0))
    assert mlp.layer_sizes(shapes) == (40, 100, 100, 10)
    assert mlp.param_count(shapes) == 15210


def test_predict_accepts_any_leading_shape_and_casts_to_the_parameter_dtype():
    params = mlp.init_mlp(jax.random.PRNGKey(0), SIZES)
    x = np.ones((2, 4, 5), np.float32)
    out = mlp.predict(params, x)
    assert out.shape == (2, 4, 3) and out.dtype == jnp.float64
    np.testing.assert_allclose(out[1, 2], mlp.predict(params, x[0, :1])[0])


def test_jit_and_vmap_over_parameters():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    stacked = jax.vmap(lambda k: mlp.init_mlp(k, SIZES))(keys)
    batch = _batch(jax.random.PRNGKey(1))
    losses = jax.jit(jax.vmap(lambda p: mlp.cross_entropy_loss(p, batch)))(stacked)
    one = mlp.cross_entropy_loss(mlp.init_mlp(keys[1], SIZES), batch)
    np.testing.assert_allclose(losses[1], one, rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(sizes=(5,)), "sizes"),
        (dict(sizes=(5, 0, 3)), r"sizes\[1\]"),
        (dict(sizes=(5, 2.5, 3)), r"sizes\[1\]"),
        (dict(sizes="53"), "sizes"),
        (dict(sizes=SIZES, init="xavier"), "init"),
        (dict(sizes=SIZES, scale=0.0), "scale"),
        (dict(sizes=SIZES, scale=-1.0), "scale"),
        (dict(sizes=SIZES, dtype=jnp.int32), "dtype"),
    ],
)
def test_init_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp.init_mlp(jax.random.PRNGKey(0), **kwargs)


def test_bad_parameters_batches_and_activations_are_refused():
    params = mlp.init_mlp(jax.random.PRNGKey(0), SIZES)
    x, y = _batch(jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="params"):
        mlp.predict((), x)
    with pytest.raises(ValueError, match=r"params\[1\]\.w has fan_in"):
        mlp.predict((params[0], params[2]), x)
    with pytest.raises(ValueError, match=r"params\[0\]\.b"):
        mlp.predict((mlp.Dense(params[0].w, jnp.zeros(3)),) + params[1:], x)
    with pytest.raises(ValueError, match="x must have shape"):
        mlp.predict(params, x[:, :4])
    with pytest.raises(ValueError, match="activation"):
        mlp.predict(params, x, activation="sigmoid")
    with pytest.raises(ValueError, match="batch must be a pair"):
        mlp.cross_entropy_loss(params, {"x": x, "y": y})
    with pytest.raises(ValueError, match="batch x"):
        mlp.cross_entropy_loss(params, (x[0], y))
    with pytest.raises(ValueError, match="batch y must have shape"):
        mlp.cross_entropy_loss(params, (x, y[:-1]))
    with pytest.raises(ValueError, match="integer"):
        mlp.cross_entropy_loss(params, (x, y.astype(jnp.float64)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        mlp.cross_entropy_loss(params, (x, y.at[0].set(3)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        mlp.accuracy(params, (x, y.at[0].set(-1)))


def test_out_of_range_labels_under_jit_give_nan_not_a_wrong_finite_loss():
    # Traced labels cannot be range-checked; the documented fallback is a NaN loss that train.run flags.
    params = mlp.init_mlp(jax.random.PRNGKey(0), SIZES)
    x, y = _batch(jax.random.PRNGKey(1))
    losses = jax.jit(mlp.cross_entropy_per_example)(params, (x, y.at[0].set(3)))
    assert np.isnan(losses[0]) and np.all(np.isfinite(losses[1:]))
