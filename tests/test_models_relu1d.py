"""1-D ReLU networks: predictions, kinks against finite differences, effective kinks, data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import no_tiny
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from samtheory.models import relu1d

H = 6  # fixed width: every jitted function below compiles once
MIN_GAP = 1e-3  # distinct kinks closer than this make finite differences meaningless


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


# First-layer weights include exact zeros (units without a kink) and both signs.
_w = st.one_of(st.just(0.0), _floats(0.2, 3.0), _floats(-3.0, -0.2))


@st.composite
def relu_params(draw):
    return {
        "w": draw(arrays(np.float64, (H,), elements=_w)),
        "b": draw(arrays(np.float64, (H,), elements=_floats(-2, 2))),
        "a": draw(arrays(np.float64, (H,), elements=_floats(-2, 2))),
        "c": np.float64(draw(_floats(-2, 2))),
    }


_predict = jax.jit(relu1d.predict)
_kinks = jax.jit(relu1d.kinks)


def _grouped_kinks(params):
    """Distinct kink positions (sorted) and the summed jump at each; assumes they are well separated."""
    kk = relu1d.kinks(params)
    valid = np.asarray(kk.valid)
    pos, jump = np.asarray(kk.position)[valid], np.asarray(kk.jump)[valid]
    distinct = np.unique(pos)
    assume(distinct.size == 0 or np.all(np.diff(distinct) >= MIN_GAP))
    total = np.array([jump[pos == p].sum() for p in distinct])
    return distinct, total


def _scale(params):
    # Size of f and of its slope on the probed range; rounding errors are relative to it.
    a, w, b = (np.abs(params[k]) for k in "awb")
    return 1.0 + np.sum(a * (10 * w + b)) + abs(params["c"])


@given(params=relu_params())
def test_slope_jumps_match_finite_differences(params):
    # Probe each kink p at p ± δ/3 and p ± 2δ/3, where δ ≤ 1 is the distance
    # to the nearest other kink: the probes on each side lie in one linear
    # piece, so the one-sided difference quotients are the exact slopes.
    pos, jump = _grouped_kinks(params)
    assume(pos.size > 0)
    gaps = np.diff(np.concatenate([[-np.inf], pos, [np.inf]]))
    delta = np.minimum(np.minimum(gaps[:-1], gaps[1:]), 1.0)
    probes = np.zeros((H, 4))
    probes[: pos.size] = pos[:, None] + delta[:, None] * np.array([-2, -1, 1, 2]) / 3
    f = np.asarray(_predict(params, probes))[: pos.size]
    left = (f[:, 1] - f[:, 0]) / (delta / 3)
    right = (f[:, 3] - f[:, 2]) / (delta / 3)
    # Each quotient divides an O(eps·|f|) rounding error by δ/3.
    tol = 1e-13 * _scale(params) / (delta / 3)
    assert np.all(np.abs((right - left) - jump) <= tol)


@given(params=relu_params(), t=_floats(0.05, 0.95))
def test_function_is_linear_between_kinks(params, t):
    # On each piece [p_i, p_{i+1}] (and two outer pieces), f at an interior
    # point equals the linear interpolation of its endpoint values.
    pos, _ = _grouped_kinks(params)
    ends = np.concatenate([[pos.min() - 3 if pos.size else -3.0], pos, [pos.max() + 3 if pos.size else 3.0]])
    ends = np.pad(ends, (0, H + 2 - ends.size), mode="edge")  # fixed shape; padded pieces are points
    lo, hi = ends[:-1], ends[1:]
    inner = lo + t * (hi - lo)
    f_lo, f_hi, f_in = (np.asarray(_predict(params, z)) for z in (lo, hi, inner))
    tol = 1e-12 * _scale(params)
    np.testing.assert_allclose(f_in, (1 - t) * f_lo + t * f_hi, rtol=0, atol=tol)


@given(params=relu_params(), x=arrays(np.float64, (32,), elements=_floats(-12, 12)))
def test_predict_is_its_kink_expansion(params, x):
    # f(x) = f(x₀) + s₀ (x − x₀) + Σ_j jump_j relu(x − p_j), with x₀ left of
    # every kink and s₀ the slope there: the kinks and jumps determine f.
    kk = relu1d.kinks(params)
    x0 = -20.0  # kinks lie in [−10, 10] for these parameters
    f0, f_left = np.asarray(_predict(params, np.array([x0, x0 - 1.0])))
    s0 = f0 - f_left
    expansion = f0 + s0 * (x - x0) + np.maximum(x[:, None] - np.asarray(kk.position), 0) @ np.asarray(kk.jump)
    np.testing.assert_allclose(_predict(params, x), expansion, rtol=0, atol=1e-12 * _scale(params) * 10)


@given(
    params=relu_params(),
    x=arrays(np.float64, (7,), elements=_floats(-3, 3)),
    y=arrays(np.float64, (7,), elements=_floats(-3, 3)),
)
def test_predict_and_loss_match_the_formula(params, x, y):
    f = np.maximum(np.outer(x, params["w"]) + params["b"], 0) @ params["a"] + params["c"]
    np.testing.assert_allclose(_predict(params, x), f, rtol=1e-14, atol=1e-14)
    expected = 0.5 * np.mean((f - y) ** 2)
    assert abs(relu1d.loss_relu1d(params, {"x": x, "y": y}) - expected) <= 1e-13 * (1 + expected)


def test_kinks_mask_dead_units_without_nan_and_are_jittable():
    params = {
        "w": jnp.asarray([0.0, 2.0, -0.5, 0.0]),
        "b": jnp.asarray([1.0, -1.0, 0.25, 0.0]),
        "a": jnp.asarray([3.0, -1.5, 2.0, 1.0]),
        "c": jnp.asarray(0.1),
    }
    kk = relu1d.kinks(params)
    np.testing.assert_array_equal(kk.valid, params["w"] != 0)
    assert np.all(np.isfinite(kk.position)) and np.all(np.isfinite(kk.jump))
    assert np.all(np.asarray(kk.jump)[~np.asarray(kk.valid)] == 0)
    w, b, a = (np.asarray(params[k])[1:3] for k in "wba")
    np.testing.assert_allclose(np.asarray(kk.position)[1:3], -b / w, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(kk.jump)[1:3], a * np.abs(w), rtol=1e-15)
    # Jitted == eager, and the gradient through the masked division is finite.
    for eager, jitted in zip(kk, jax.jit(relu1d.kinks)(params), strict=True):
        np.testing.assert_array_equal(eager, jitted)
    grads = jax.grad(lambda p: jnp.sum(relu1d.kinks(p).position) + jnp.sum(relu1d.kinks(p).jump))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    # vmap over a stack of networks.
    stack = jax.tree.map(lambda z: jnp.stack([z, 2 * z]), params)
    batched = jax.vmap(relu1d.kinks)(stack)
    np.testing.assert_array_equal(batched.valid[1], kk.valid)
    np.testing.assert_allclose(batched.jump[1], 4 * np.asarray(kk.jump), rtol=1e-15)


# ---------------------------------------------------------------------------
# Effective kinks.
# ---------------------------------------------------------------------------


def _plant(positions, jumps, signs, magnitudes):
    """A network whose unit j has its kink at positions[j] with slope jump jumps[j]."""
    w = np.asarray(signs) * np.asarray(magnitudes)
    return {"w": w, "b": -w * np.asarray(positions), "a": np.asarray(jumps) / np.abs(w), "c": np.float64(0.3)}


M = 4


@given(
    offsets=arrays(np.float64, (M,), elements=_floats(0.1, 0.9)),
    order=st.permutations(range(M)),
    jumps=arrays(np.float64, (M,), elements=st.one_of(_floats(0.1, 2), _floats(-2, -0.1))),
    signs=arrays(np.float64, (M,), elements=st.sampled_from([-1.0, 1.0])),
    magnitudes=arrays(np.float64, (M,), elements=_floats(0.5, 2)),
)
def test_effective_kinks_recover_planted_kinks(offsets, order, jumps, signs, magnitudes):
    # One kink per cell of [−0.9, 0.9] (so at least 0.09 apart), units in random order.
    positions = (-0.9 + 1.8 * (np.arange(M) + offsets) / M)[np.asarray(order)]
    params = _plant(positions, jumps, signs, magnitudes)
    # Decoys: kinks outside the interval, a cancelling pair, and a dead unit.
    decoy = _plant([1.5, -1.5, 0.95, 0.95], [1.0, 1.0, 0.7, -0.7], [1, -1, 1, -1], [1, 1, 1, 1])
    params = {k: np.concatenate([params[k], decoy[k], [x]]) for k, x in (("w", 0.0), ("b", 0.4), ("a", 5.0))}
    params["c"] = np.float64(0.3)

    eff = relu1d.effective_kinks(params, interval=(-1.0, 1.0), jump_tol=1e-9, merge_tol=1e-6)
    order = np.argsort(positions)
    np.testing.assert_allclose(eff.position, positions[order], rtol=0, atol=1e-14)
    np.testing.assert_allclose(eff.jump, jumps[order], rtol=1e-13)


# j2 is 0 or at least 1e-6 in size: a jump near 1e-308 plants an output weight a = j/|w| that is subnormal,
# and XLA flushes subnormals to zero, so the network would have no kink there (found by hypothesis).
@given(
    p=_floats(-0.5, 0.5),
    j1=_floats(0.1, 2),
    j2=_floats(-2, 2).map(no_tiny),
    split=_floats(0.0, 1.0),
)
def test_effective_kinks_merge_chains_and_threshold(p, j1, j2, split):
    tol = 1e-3
    # Three kinks at gaps 0.6·tol: one chain (its span 1.2·tol exceeds tol).
    params = _plant([p, p + 0.6 * tol, p + 1.2 * tol], [j1, j2, 0.5], [1, -1, 1], [1, 2, 1])
    eff = relu1d.effective_kinks(params, interval=(-1, 1), jump_tol=0.0, merge_tol=tol)
    total = j1 + j2 + 0.5
    if total != 0:
        assert eff.position.size == 1
        np.testing.assert_allclose(eff.jump, [total], rtol=1e-13, atol=1e-15)
        weights = np.abs([j1, j2, 0.5])
        expected = np.sum(weights * [p, p + 0.6 * tol, p + 1.2 * tol]) / weights.sum()
        np.testing.assert_allclose(eff.position, [expected], rtol=0, atol=1e-14)
    merged = float(eff.jump[0]) if eff.jump.size else 0.0
    # With a smaller merge_tol they stay apart (a zero jump is dropped).
    apart = relu1d.effective_kinks(params, interval=(-1, 1), jump_tol=0.0, merge_tol=0.5 * tol)
    assert apart.position.size == 3 - int(j2 == 0)
    # jump_tol: a merged kink is kept iff |jump| > jump_tol.
    threshold = split * abs(merged) * 2
    kept = relu1d.effective_kinks(params, interval=(-1, 1), jump_tol=threshold, merge_tol=tol)
    assert kept.position.size == int(abs(merged) > threshold)


def test_effective_kinks_edge_cases():
    params = _plant([0.2, 0.2, -3.0], [1.0, -1.0, 1.0], [1, -1, 1], [1, 1, 1])
    # Coincident kinks merge even with merge_tol = 0, and cancel.
    eff = relu1d.effective_kinks(params, interval=(-1, 1), jump_tol=0.0, merge_tol=0.0)
    assert eff.position.size == 0 and eff.jump.size == 0
    # The interval is closed.
    eff = relu1d.effective_kinks(params, interval=(-3, 0), jump_tol=0.0, merge_tol=0.0)
    np.testing.assert_allclose(eff.position, [-3.0])
    # Nothing inside.
    eff = relu1d.effective_kinks(params, interval=(0.5, 0.6), jump_tol=0.0, merge_tol=0.1)
    assert eff.position.size == 0


# ---------------------------------------------------------------------------
# Initialization and data.
# ---------------------------------------------------------------------------


def test_init_follows_its_documented_distribution():
    key = jax.random.key(3)
    width = 4000
    small, large = relu1d.init_relu1d(key, width, 0.01), relu1d.init_relu1d(key, width, 2.0)
    for p, scale in ((small, 0.01), (large, 2.0)):
        assert {k: v.shape for k, v in p.items()} == {"w": (width,), "b": (width,), "a": (width,), "c": ()}
        np.testing.assert_array_equal(np.abs(p["w"]), scale)
        assert p["c"] == 0
        se = 5 / np.sqrt(width)  # 5 standard errors
        assert abs(np.std(p["a"]) * np.sqrt(width) / scale - 1) < 5 / np.sqrt(2 * width)
        assert abs(np.mean(p["w"] > 0) - 0.5) < se / 2
    # Kinks are N(0, 1) and do not depend on the scale.
    pos_small, pos_large = (np.asarray(relu1d.kinks(p).position) for p in (small, large))
    np.testing.assert_allclose(pos_small, pos_large, rtol=1e-15, atol=0)
    assert abs(pos_small.mean()) < 5 / np.sqrt(width) and abs(pos_small.std() - 1) < 5 / np.sqrt(2 * width)
    # Seeded.
    again = relu1d.init_relu1d(key, width, 0.01)
    assert all(np.array_equal(small[k], again[k]) for k in small)
    f32 = relu1d.init_relu1d(key, 3, 1.0, dtype=jnp.float32)
    assert all(v.dtype == jnp.float32 for v in f32.values())
    batch32 = {"x": jnp.zeros(2, jnp.float32), "y": jnp.ones(2, jnp.float32)}
    assert relu1d.loss_relu1d(f32, batch32).dtype == jnp.float32


def test_regression_data_is_stratified_and_seeded():
    n = 8
    data = relu1d.relu_regression_1d(jax.random.key(0), n)
    x = np.asarray(data["x"])
    cells = -1 + 2 * np.arange(n) / n
    assert np.all(x >= cells + 0.5 / n) and np.all(x <= cells + 1.5 / n)
    assert np.all(np.diff(x) >= 1 / n - 1e-15)
    np.testing.assert_allclose(data["y"], np.sin(np.pi * x), rtol=0, atol=1e-15)
    again = relu1d.relu_regression_1d(jax.random.key(0), n)
    np.testing.assert_array_equal(again["x"], x)
    noisy = relu1d.relu_regression_1d(jax.random.key(0), n, noise_std=0.5)
    noisier = relu1d.relu_regression_1d(jax.random.key(0), n, noise_std=1.0)
    np.testing.assert_array_equal(noisy["x"], x)
    noise = np.asarray(noisier["y"] - data["y"])
    assert np.all(noise != 0)
    np.testing.assert_allclose(noisy["y"] - data["y"], 0.5 * noise, rtol=1e-12, atol=1e-15)
    other = relu1d.relu_regression_1d(jax.random.key(1), n, target=jnp.abs)
    np.testing.assert_array_equal(other["y"], np.abs(other["x"]))
    assert np.any(other["x"] != x)


def test_maennel_points():
    data = relu1d.maennel_points()
    assert data["x"].shape == data["y"].shape == (12,)
    np.testing.assert_allclose(np.diff(data["x"]), 0.25, rtol=1e-14)
    np.testing.assert_allclose(np.mean(data["x"]), 0.07, rtol=1e-14)
    # Labels: 0.345 plus half-integers.
    offsets = 2 * (np.asarray(data["y"]) - 0.345)
    np.testing.assert_allclose(offsets, np.round(offsets), atol=1e-12)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------

_good = {"w": np.ones(3), "b": np.zeros(3), "a": np.ones(3), "c": np.float64(0.0)}


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: relu1d.init_relu1d(jax.random.key(0), 0, 1.0), "width"),
        (lambda: relu1d.init_relu1d(jax.random.key(0), 2.5, 1.0), "width"),
        (lambda: relu1d.init_relu1d(jax.random.key(0), 4, -1.0), "scale"),
        (lambda: relu1d.predict(_good | {"b": np.zeros(4)}, np.zeros(2)), "params"),
        (lambda: relu1d.predict(_good | {"c": np.zeros(1)}, np.zeros(2)), "params"),
        (lambda: relu1d.predict({"w": np.ones(3)}, np.zeros(2)), "params"),
        (lambda: relu1d.loss_relu1d(_good, {"x": np.zeros(3), "y": np.zeros(4)}), "batch"),
        (lambda: relu1d.loss_relu1d(_good, {"x": np.zeros((3, 1)), "y": np.zeros(3)}), "batch"),
        (lambda: relu1d.effective_kinks(_good, interval=(1, -1), jump_tol=0, merge_tol=0), "interval"),
        (lambda: relu1d.effective_kinks(_good, interval=(-1, 1), jump_tol=-1, merge_tol=0), "jump_tol"),
        (lambda: relu1d.effective_kinks(_good, interval=(-1, 1), jump_tol=0, merge_tol=-1), "merge_tol"),
        (lambda: relu1d.relu_regression_1d(jax.random.key(0), 0), "n"),
        (lambda: relu1d.relu_regression_1d(jax.random.key(0), 4, noise_std=-0.1), "noise_std"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
