"""The Hessian-spectra figure (experiments/hessian_spectra.py): its quick config through the pipeline,
and the invariants its numbers must satisfy whatever SGD and SAM do."""

import dataclasses

import numpy as np
import pytest

from experiments import hessian_spectra as exp
from samtheory import figures, legibility, sam


@pytest.fixture(scope="module")
def quick_record(tmp_path_factory):
    """The quick figure, once for the module; MNIST-1D is generated into a temporary cache file."""
    root = tmp_path_factory.mktemp("spectra")
    cfg = dataclasses.replace(exp.config(quick=True), data_path=str(root / "data" / "mnist1d.npz"))
    patch = pytest.MonkeyPatch()
    patch.setattr(exp, "config", lambda quick: cfg)
    try:
        record = figures.run_figure(exp, quick=True, out_dir=root / "figs", cache_dir=root / "cache")
    finally:
        patch.undo()
    return record, cfg


def test_quick_figure_runs_through_the_pipeline(quick_record):
    record, cfg = quick_record
    assert record.png.exists() and record.png.stat().st_size > 0
    assert not record.cache_hit
    for spec in cfg.variants:
        for stat in ("lambda_max_mean", "lambda_max_std", "ratio_max_over_5_mean", "test_accuracy_mean",
                     "train_loss_mean", "lanczos_residual_max"):
            assert np.isfinite(record.summary[f"{spec.name}_final_{stat}"])
        for stat in ("lambda_max", "ratio_max_over_5"):
            assert np.isfinite(record.summary[f"{spec.name}_{stat}_at_matched_train_loss_mean"])
    steps = record.result["steps"]
    assert steps[0] == 0 and steps[-1] == cfg.num_steps and np.all(np.diff(steps) > 0)


def test_top_eigenvalues_are_ordered_positive_and_converged(quick_record):
    record, cfg = quick_record
    result = record.result
    for spec in cfg.variants:
        top = result[f"{spec.name}_lambda_top"]
        assert top.shape == (len(cfg.seeds), len(result["steps"]), exp.RATIO_INDEX)
        assert np.all(np.diff(top, axis=-1) <= 0)  # λ_max ≥ λ_2 ≥ … ≥ λ_5
        assert np.all(top[..., -1] > 0)
        assert np.all(exp.sharpness_ratio(result, spec.name) >= 1)
        # Residual bounds: an eigenvalue of H lies this close to each Ritz value.
        assert np.all(result[f"{spec.name}_lambda_top_error"][..., 0] <= 1e-6 * top[..., 0])


def test_slq_densities_are_probability_measures_and_see_the_same_lambda_max(quick_record):
    record, cfg = quick_record
    result = record.result
    grid = result["density_grid"]
    for spec in cfg.variants:
        weights = result[f"{spec.name}_slq_weights"]
        nodes = result[f"{spec.name}_slq_nodes"]
        assert weights.shape == nodes.shape == (len(cfg.seeds), cfg.slq_starts, cfg.slq_iterations)
        assert np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(axis=(1, 2)), 1.0, rtol=1e-12)
        density = result[f"{spec.name}_density"]
        assert np.all(density >= 0)
        # The grid extends 5σ past the extreme nodes: the Gaussian tails beyond hold < 3e-7 of the mass.
        np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-5)
        # The SLQ runs and the recording Lanczos run start from different vectors but both converge to
        # λ_max from below (Cauchy interlacing): their largest Ritz values agree.
        lambda_max = result[f"{spec.name}_lambda_top"][:, -1, 0]
        np.testing.assert_allclose(nodes.max(axis=(1, 2)), lambda_max, rtol=1e-6)


def test_variants_start_from_the_same_initialization(quick_record):
    record, cfg = quick_record
    result = record.result
    first = cfg.variants[0].name
    for spec in cfg.variants[1:]:
        # Same parameters at step 0; each variant is a separately compiled program, so the metrics may
        # differ by rounding only.
        for key in ("lambda_top", "train_loss", "test_accuracy"):
            np.testing.assert_allclose(result[f"{spec.name}_{key}"][:, 0], result[f"{first}_{key}"][:, 0],
                                       rtol=1e-12)
        # ... and training moves them apart (the comparison is not vacuous).
        assert not np.allclose(result[f"{spec.name}_lambda_top"][:, -1], result[f"{first}_lambda_top"][:, -1])
    for spec in cfg.variants:
        for key in ("train_accuracy", "test_accuracy"):
            assert np.all((result[f"{spec.name}_{key}"] >= 0) & (result[f"{spec.name}_{key}"] <= 1))


def test_values_at_matched_train_loss_interpolate_in_log_log():
    # λ = c · loss^a is a straight line in log-log, so interpolation between records is exact; the
    # loss rises again after the crossing (as after an SGD spike), and only the first crossing counts.
    loss = np.array([[2.0, 0.5, 0.02, 0.004, 0.05], [0.009, 0.001, 0.0005, 0.0002, 0.0001],
                     [2.0, 1.0, 0.5, 0.2, 0.1]])
    result = {"v_train_loss": loss}
    values = 3.0 * loss**0.7
    values[0, 4] = 99.0  # after the first crossing: must not be used
    matched = exp.at_train_loss(result, "v", values, 0.01)
    np.testing.assert_allclose(matched[:2], [3.0 * 0.01**0.7, values[1, 0]], rtol=1e-12)
    assert np.isnan(matched[2])  # never reaches 0.01


def test_variant_specs_map_to_the_sam_engine():
    assert isinstance(exp.variant_of(exp.VariantSpec("erm"), 0.0), sam.ERM)
    v = exp.variant_of(exp.VariantSpec("m_sam", rho=0.05, m=10), 0.05)
    assert isinstance(v, sam.SAM) and v.m == 10 and v.normalize and v.rho == 0.05
    assert exp.variant_of(exp.VariantSpec("n_sam", rho=0.05), 0.05).m is None


def test_record_steps_join_log_and_linear_spacing():
    cfg = exp.config(quick=False)
    steps = exp.record_steps(cfg)
    assert steps[0] == 0 and steps[-1] == cfg.num_steps and np.all(np.diff(steps) > 0)
    assert {1, 2, 1000, 4000, 7000} <= set(steps.tolist())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(variants=(exp.VariantSpec("a"), exp.VariantSpec("a", rho=0.1))), "distinct"),
        (dict(variants=(exp.VariantSpec("bad name"),)), "identifier"),
        (dict(variants=(exp.VariantSpec("m", rho=0.1, m=7),)), "m=7"),
        (dict(variants=(exp.VariantSpec("s", rho=-0.1),)), "rho"),
        (dict(lanczos_iterations=4), "lanczos_iterations"),
        (dict(seeds=()), "seeds"),
    ],
)
def test_bad_configs_are_refused_before_any_work(change, match):
    with pytest.raises(ValueError, match=match):
        exp.run(dataclasses.replace(exp.config(quick=True), **change))


def test_quick_figure_reads_on_a_slide(quick_record):
    record, cfg = quick_record
    problems = legibility.figure_module_problems(exp, dict(record.result), cfg)
    assert problems == {"": []}, problems
