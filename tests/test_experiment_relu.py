"""The ReLU-kinks figure: kink counting on hand-built networks, and the module through the pipeline."""

import numpy as np
import pytest

from experiments import relu_kinks as exp
from samtheory import figures, legibility, sam
from samtheory.models import relu1d

X = np.asarray(relu1d.maennel_points()["x"])  # data range [−1.305, 1.445], spacing Δ = 0.25
DEFAULT = dict(merge_frac=exp.Config().merge_frac, jump_frac=exp.Config().jump_frac)


def _network(units):
    """Parameters from (w, b, a) triples; the kink of a unit is at −b/w with slope jump a|w|."""
    w, b, a = (np.array(col, dtype=np.float64) for col in zip(*units))
    return {"w": w, "b": b, "a": a, "c": np.float64(0.3)}


# Three real kinks: −0.5 (jump 2, plus an exact duplicate: 4), 0.1 (jump 4), 1.0 (jump −3, plus a
# copy 0.002 to the right, well inside the merge tolerance 0.05·Δ = 0.0125: −4.5 in all).
THREE_KINKS = [
    (1.0, 0.5, 2.0),
    (1.0, 0.5, 2.0),     # exact duplicate of the first unit
    (-2.0, 0.2, 2.0),
    (1.0, -1.0, -3.0),
    (1.0, -1.002, -1.5),  # near-duplicate of the previous unit
    (1.0, -0.5, 0.0),     # dead: a = 0, kink at 0.5 inside the data range
    (1.0, -0.7, 1e-3),    # negligible: jump 1e-3 at 0.7, far below 5% of the largest jump
    (1.0, -3.0, 5.0),     # inactive on the data: kink at 3.0, affine-or-off on [x_min, x_max]
    (1.0, -1.445, -6.0),  # kink exactly on the last data point: bends only the extrapolation
    (0.0, 1.0, 1.0),      # w = 0: a constant, no kink at all
]


def test_hand_built_network_has_three_kinks_by_the_modules_count():
    params = _network(THREE_KINKS)
    assert exp.count_kinks(params, X, **DEFAULT) == 3
    ek = exp.kinks_on_data(params, X, **DEFAULT)
    np.testing.assert_allclose(ek.position, [-0.5, 0.1, 1.0 + 0.002 * 1.5 / 4.5], atol=1e-12)
    np.testing.assert_allclose(ek.jump, [4.0, 4.0, -4.5], atol=1e-12)


def test_without_tolerances_the_same_network_has_more_kinks():
    # Guards against a count of 3 for the wrong reason: without merging, the near-duplicate at
    # 1.002 is a kink; without a relative jump threshold, the negligible unit at 0.7 is one too.
    params = _network(THREE_KINKS)
    # merge_frac = 0: the near-duplicate at 1.002 and (range not shrunk) the kink on x_max count too.
    assert exp.count_kinks(params, X, merge_frac=0.0, jump_frac=DEFAULT["jump_frac"]) == 5
    assert exp.count_kinks(params, X, merge_frac=DEFAULT["merge_frac"], jump_frac=0.0) == 4
    # The dead unit (jump exactly 0) never counts, nor does the one outside the data range. With
    # merge_frac = 0 the range is not shrunk, so the kink on the last data point is counted.
    positions = exp.kinks_on_data(params, X, merge_frac=0.0, jump_frac=0.0).position
    np.testing.assert_allclose(positions, [-0.5, 0.1, 0.7, 1.0, 1.002, X.max()], atol=1e-12)


@pytest.mark.parametrize(("position", "expected"), [(-1.305, 1), (-1.300, 1), (-1.29, 2), (1.44, 1), (1.40, 2)])
def test_kinks_at_the_ends_of_the_data_range_do_not_count(position, expected):
    # One interior kink at 0, and one at `position`: on an end point (−1.305 or 1.445) or within
    # merge_tol = 0.0125 of it, it is not a kink of f on the data range; farther inside, it is.
    params = _network([(1.0, 0.0, 2.0), (1.0, -position, 3.0)])
    assert exp.count_kinks(params, X, **DEFAULT) == expected


@pytest.mark.parametrize(("gap", "expected"), [(0.05, 2), (0.01, 1)])
def test_merge_tolerance_is_relative_to_the_data_spacing(gap, expected):
    # 0.05 = 0.2Δ stays two kinks; 0.01 < 0.05Δ = 0.0125 merges into one.
    params = _network([(1.0, 0.0, 1.0), (1.0, -gap, 1.0)])
    assert exp.data_spacing(X) == pytest.approx(0.25)
    assert exp.count_kinks(params, X, **DEFAULT) == expected


def test_jump_tolerance_is_relative_to_the_largest_jump():
    # Jumps 10 and 0.4: 4% of the largest, dropped at 5%. Scaling the whole network changes nothing.
    for scale in (1.0, 1e-3):
        params = _network([(1.0, 0.0, 10.0 * scale), (1.0, -0.6, 0.4 * scale)])
        assert exp.count_kinks(params, X, **DEFAULT) == 1
        assert exp.count_kinks(params, X, merge_frac=DEFAULT["merge_frac"], jump_frac=0.03) == 2


def test_interpolant_lower_bound():
    data = relu1d.maennel_points()
    assert exp.interpolant_kink_lower_bound(data["x"], data["y"]) == 5
    x = np.linspace(0, 1, 6)
    assert exp.interpolant_kink_lower_bound(x, x**2) == 0  # monotone: no extremum needed
    assert exp.interpolant_kink_lower_bound(x, np.array([0, 1, 1, 0, 0, 1])) == 2  # zero slopes skipped
    assert exp.interpolant_kink_lower_bound(x[::-1], np.array([0, 1, 1, 0, 0, 1])[::-1]) == 2  # unsorted


def test_variant_names_map_to_the_right_sam_configuration():
    assert exp._variant("erm", 0.1) == sam.ERM()
    assert exp._variant("n_sam", 0.1) == sam.SAM(0.1, m=None, normalize=True)
    assert exp._variant("one_sam", 0.1) == sam.SAM(0.1, m=1, normalize=True)
    assert exp._variant("n_usam", 0.1) == sam.SAM(0.1, m=None, normalize=False)
    assert exp._variant("one_usam", 0.1) == sam.SAM(0.1, m=1, normalize=False)


def test_step_schedule_is_constant_then_decays_to_zero():
    cfg = exp.Config(num_steps=100, decay_fraction=0.2, learning_rate=0.01)
    schedule = exp.step_schedule(cfg)
    np.testing.assert_allclose([schedule(0), schedule(79)], [0.01, 0.01])
    np.testing.assert_allclose([schedule(90), schedule(100)], [0.005, 0.0], atol=1e-15)


def test_representative_rho_is_the_largest_at_which_every_seed_fits():
    fit, miss = exp.FIT_TRAIN_LOSS / 2, exp.FIT_TRAIN_LOSS * 2
    final = np.array([[fit, fit, fit, miss], [fit, fit, fit, fit], [fit, miss, fit, miss]])  # (seed, ρ)
    result = {"n_sam_train_loss": np.stack([np.ones_like(final), final], axis=-1)}  # (seed, ρ, record)
    assert exp.representative_index(result, "n_sam") == 2  # ρ index 1 fits for two seeds only; 3 for one
    result["n_sam_train_loss"][..., -1] = miss
    assert exp.representative_index(result, "n_sam") == 0  # nothing fits: the smallest ρ


def test_the_checked_tolerance_grid_must_contain_the_tolerances_used():
    with pytest.raises(ValueError, match="tolerance grid"):
        exp.run(exp.Config(merge_frac=0.07), None)


def test_quick_figure_runs_through_the_pipeline(tmp_path):
    record = figures.run_figure(exp, quick=True, out_dir=tmp_path / "figs", cache_dir=tmp_path / "cache")
    assert record.png.exists() and record.png.stat().st_size > 10_000 and record.pdf.exists()
    cfg = exp.config(quick=True)
    result = record.result
    for name in exp.VARIANTS:
        shape = (len(cfg.seeds), len(exp.rhos_of(cfg, name)))
        loss = result[f"{name}_train_loss"]
        assert loss.shape == shape + (len(result["steps"]),) and np.all(np.isfinite(loss))
        # Training did something: the loss went down from the initialization.
        assert np.all(loss[..., -1] < loss[..., 0])
        # The reported counts are the counting function applied to the reported parameters.
        kinks = result[f"{name}_kinks"]
        assert kinks.shape == shape
        for i, j in np.ndindex(*shape):
            params = {k: result[f"{name}_{k}"][i, j] for k in exp.PARAM_NAMES}
            assert kinks[i, j] == exp.count_kinks(params, result["x"], **DEFAULT)
        np.testing.assert_array_equal(result[f"{name}_kinks_over_steps"][..., -1], kinks)
        m = cfg.merge_fracs_checked.index(cfg.merge_frac)
        jf = cfg.jump_fracs_checked.index(cfg.jump_frac)
        np.testing.assert_array_equal(result[f"{name}_kinks_tolerances"][..., m, jf], kinks)
    # Paired comparison: every variant starts from the same network for a given seed, so at step 0
    # all kink counts agree.
    at_init = {name: result[f"{name}_kinks_over_steps"][:, :, 0] for name in exp.VARIANTS}
    for name in exp.SAM_VARIANTS:
        np.testing.assert_array_equal(at_init[name], np.broadcast_to(at_init["erm"], at_init[name].shape))
    assert record.summary["kinks_median_erm"] == np.median(result["erm_kinks"])
    assert f"kinks_median_one_sam_rho_{cfg.rhos_one_sam[0]:g}" in record.summary
    # Split for slides: the point, and the details beside it; both read on a 16:9 slide.
    assert set(record.extra_files) == {"details"} and record.extra_files["details"][0].exists()
    assert legibility.figure_module_problems(exp, dict(result), cfg) == {"": [], "details": []}
    # The probe beyond 1-USAM's grid: seed 1 diverges within a few steps, and that is what is recorded.
    assert result["probe_rho"].tolist() == [0.06] and result["probe_diverged_step"][0, 1] >= 0
    assert np.isnan(result["probe_final_train_loss"][0, 1])
