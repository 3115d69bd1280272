"""The m-sharpness correlation figure (Foret et al. Fig. 3 right, small scale): quick run, rank statistics, sharpness.

Kendall's τ is checked against scipy and against the inversion count of
hand-made permutations; the granulated τ against grids where the answer is
known; the m-sharpness of trained models for non-negativity and growth with
the radius (the ρ-balls are nested).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure

from experiments import m_sharpness_correlation as msc
from samtheory import legibility
from samtheory.results import normalize_result
from samtheory.models import mlp


@pytest.fixture(scope="module")
def quick():
    cfg = msc.config(quick=True)
    return cfg, msc.run(cfg, None)


def test_quick_config_runs_end_to_end(quick):
    cfg, result = quick
    for key, value in result.items():
        assert np.all(np.isfinite(value)), key
    shape = msc.grid_shape(cfg)
    assert shape == (len(cfg.widths), len(cfg.train_rhos), len(cfg.learning_rates), len(cfg.noise_rates))
    assert result["sharpness"].shape == shape + (len(cfg.ms), len(cfg.rho_evals))
    for name in ("train_error", "test_error", "error_gap", "loss_gap", "stop_step", "reached"):
        assert result[name].shape == shape
    # Every model is taken at a recorded step, and those that reached the target are at or below it there.
    assert np.all(result["stop_step"] % cfg.record_every == 0) and np.all(result["stop_step"] <= cfg.num_steps)
    reached = result["reached"]
    assert reached.sum() >= 3
    assert np.all(result["train_loss"][reached] <= cfg.target_loss)
    assert np.all(result["stop_step"][~reached] == cfg.num_steps)
    np.testing.assert_allclose(result["error_gap"], result["test_error"] - result["train_error"])
    assert np.all((result["train_error"] >= 0) & (result["train_error"] <= 1))
    assert result["tau_error_gap"].shape == (len(cfg.ms), len(cfg.rho_evals))
    assert isinstance(msc.plot(result, cfg), Figure)
    summary = msc.summary(result, cfg)
    for m in cfg.ms:
        assert -1 <= summary[f"tau_error_gap_m{m}"] <= 1
        assert 0 <= summary[f"pvalue_error_gap_m{m}"] <= 1
        assert -1 <= summary[f"granulated_Psi_error_gap_m{m}"] <= 1
    assert all(np.isfinite(v) for v in summary.values())


def test_quick_sharpness_is_nonnegative_and_the_models_differ(quick):
    _, result = quick
    assert np.all(result["sharpness"] >= 0)
    # A grid of identical models would make every correlation meaningless.
    assert np.ptp(result["sharpness"][..., 0, 0]) > 0 and np.ptp(result["loss_gap"]) > 0


def _with_inversions(n: int, k: int) -> np.ndarray:
    """A permutation of range(n) with exactly k inversions (Lehmer code filled greedily)."""
    code, left = [], k
    for i in range(n):
        c = min(left, n - 1 - i)
        code.append(c)
        left -= c
    available, perm = list(range(n)), []
    for c in code:
        perm.append(available.pop(c))
    return np.array(perm)


@pytest.mark.parametrize("n, k", [(2, 1), (5, 0), (5, 10), (6, 4), (10, 17)])
def test_kendall_tau_of_a_permutation_counts_inversions(n, k):
    y = _with_inversions(n, k)
    assert sum(y[i] > y[j] for i in range(n) for j in range(i + 1, n)) == k
    expected = 1 - 4 * k / (n * (n - 1))
    assert msc.kendall_tau(np.arange(n), y) == pytest.approx(expected, abs=1e-15)
    assert msc.kendall_tau(np.arange(n), y, variant="a") == pytest.approx(expected, abs=1e-15)
    assert scipy.stats.kendalltau(np.arange(n), y).statistic == pytest.approx(expected, abs=1e-12)


@given(
    x=st.lists(st.integers(0, 4), min_size=8, max_size=8),
    y=st.lists(st.integers(0, 4), min_size=8, max_size=8),
)
def test_kendall_tau_b_matches_scipy_with_ties(x, y):
    ours = msc.kendall_tau(np.array(x), np.array(y))
    theirs = scipy.stats.kendalltau(x, y).statistic
    if np.isnan(theirs):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_granulated_tau_on_known_grids():
    rng = np.random.default_rng(0)
    gap = rng.normal(size=(3, 2, 2, 2))
    np.testing.assert_allclose(msc.granulated_tau(np.exp(gap), gap), 1.0)
    np.testing.assert_allclose(msc.granulated_tau(-gap, gap), -1.0)
    # A measure that follows the gap along axis 0 only and is constant (all tied) along the others.
    measure = np.broadcast_to(np.arange(3.0)[:, None, None, None], gap.shape)
    ordered_gap = measure + 0.01 * rng.normal(size=gap.shape)
    np.testing.assert_allclose(msc.granulated_tau(measure, ordered_gap), [1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="axis"):
        msc.granulated_tau(np.zeros((3, 1)), np.zeros((3, 1)))


def test_granulated_tau_leaves_out_settings_with_an_invalid_model():
    gap = np.array([[0.0, 1.0], [2.0, 3.0]])
    measure = np.array([[0.0, 1.0], [3.0, 2.0]])  # row 1 is ranked backwards along axis 1
    np.testing.assert_allclose(msc.granulated_tau(measure, gap), [1.0, 0.0])
    valid = np.array([[True, True], [True, False]])
    # Axis 0: only column 0 is complete (τ = 1). Axis 1: only row 0 is complete (τ = 1).
    np.testing.assert_allclose(msc.granulated_tau(measure, gap, valid), [1.0, 1.0])
    psi = msc.granulated_tau(measure, gap, np.array([[True, False], [False, True]]))
    assert np.isnan(psi).all()


def test_stopping_index_takes_the_first_record_at_or_below_the_target():
    losses = np.array([[2.0, 0.5, 0.04, 0.01, 0.06], [2.0, 1.0, 0.5, 0.2, 0.1], [0.05, 0.01, 0.0, 0.0, 0.0]])
    index, reached = msc.stopping_index(losses, 0.05)
    np.testing.assert_array_equal(index, [2, 4, 0])
    np.testing.assert_array_equal(reached, [True, False, True])


def test_m_sharpness_is_nonnegative_and_grows_with_the_radius():
    """Nested ℓ₂ balls: the worst-case increase cannot shrink as ρ_eval grows (up to the ascent's accuracy)."""
    cfg = dataclasses.replace(msc.config(quick=True), rho_evals=(0.01, 0.03, 0.1, 0.3), primary_rho_eval=0.03,
                              ascent_steps=10, dtype="float64")
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (32, 6))
    y = (jnp.arange(32) % 3).astype(jnp.int32)
    params = [mlp.init_mlp(k, (6, 8, 3), dtype=jnp.float64) for k in jax.random.split(key, 3)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    for m in (1, 4, 32):
        values = msc.m_sharpness_of_models(cfg, stacked, x, jnp.stack([y] * 3), m)
        assert values.shape == (3, 4)
        assert np.all(values >= 0)
        assert np.all(np.diff(values, axis=1) >= 0), (m, values)
        assert np.all(values[:, -1] > 0)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(ms=(1, 3)), "ms"),
        (dict(primary_rho_eval=0.2), "primary_rho_eval"),
        (dict(widths=(16,)), "widths"),
        (dict(train_rhos=(0.0, 0.0)), "train_rhos"),
        (dict(record_every=30), "record_every"),
        (dict(target_loss=0.0), "target_loss"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        msc._check_config(dataclasses.replace(msc.config(quick=True), **change))


def test_quick_figure_reads_on_a_slide(quick):
    cfg, result = quick
    problems = legibility.figure_module_problems(msc, normalize_result(result), cfg)
    assert problems == {"": []}, problems
