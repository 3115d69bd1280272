"""The label-noise figure (ERM vs SAM trained until ERM memorizes): its quick config, its headline claims, invariants.

The quick run (MNIST-1D with 1 000 signals, one hidden layer of 128, 60 %
noise, 3 seeds) is shared by the tests through a module fixture: one
training call per variant family. Headline claims, each of which could
fail: ERM fits ≥ 95 % of the wrong labels in every seed; the chosen n-SAM
and m-SAM fit them later than ERM, seed by seed, yet they too fit most of
them; early stopped, n-SAM's clean test accuracy beats ERM's, and
memorization costs ERM clean accuracy. The committed full figure is checked
for the same claims and for a chosen ρ strictly inside each grid.
Invariants: the memorization counts and the independently computed train
accuracies agree exactly; every variant starts from the same weights; the
realized noise is the configured one; a ρ = 0 lane is ERM.
"""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from matplotlib.figure import Figure

from samtheory import mlp_training as mt
from experiments import label_noise as ln
from samtheory import sam, train
from samtheory.data import ArrayDataset, num_noisy_labels
from samtheory.models import mlp

MANIFEST = Path(__file__).resolve().parents[1] / "paper_figs" / "manifest.json"


@pytest.fixture(scope="module")
def quick():
    cfg = ln.config(quick=True)
    fractions = []
    result = ln.run(cfg, fractions.append)
    return cfg, result, fractions


def test_quick_config_runs_end_to_end(quick):
    cfg, result, fractions = quick
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    for key, value in result.items():
        assert np.all(np.isfinite(value)), key
    num_seeds, num_records = len(cfg.seeds), len(ln.record_steps(cfg))
    assert result["erm_test_accuracy"].shape == (num_seeds, num_records)
    assert result["n_sam_test_accuracy"].shape == (len(cfg.nsam_rhos), num_seeds, num_records)
    if cfg.msam_rhos:
        assert result["m_sam_test_accuracy"].shape == (len(cfg.msam_rhos), num_seeds, num_records)
    else:
        assert "m_sam_test_accuracy" not in result
    assert isinstance(ln.plot(result, cfg), Figure)
    summary = ln.summary(result, cfg)
    for name in ln.variants(cfg):
        assert 0 <= summary[f"{name}_final_test_acc_mean"] <= summary[f"{name}_best_test_acc_mean"] <= 1
    assert all(np.isfinite(v) for v in summary.values())


def test_erm_memorizes_and_sam_memorizes_later(quick):
    """The talk's claim: ERM fits the wrong labels; SAM fits them too, but later (paired by seed)."""
    cfg, result, _ = quick
    epochs = ln.epochs_of(result, cfg)
    erm = ln.memorized_fraction(result, "erm")
    erm_first = ln.first_memorized_epoch(erm, epochs, cfg.memorized_threshold)
    assert np.all(np.isfinite(erm_first)), erm[:, -1]
    at_erm = np.searchsorted(epochs, erm_first)  # record index at which each seed's ERM reached the criterion
    for name in ln.variants(cfg)[1:]:
        fraction = ln.memorized_fraction(result, name)
        seeds = np.arange(len(cfg.seeds))
        # When ERM has memorized, SAM has fitted fewer wrong labels, in every seed ...
        assert np.all(fraction[seeds, at_erm] < erm[seeds, at_erm]), (name, fraction[seeds, at_erm])
        # ... yet trained on, it fits most of them too.
        assert np.all(fraction[:, -1] > 0.75), (name, fraction[:, -1])


def test_early_stopped_sam_beats_erm_and_memorization_costs_erm(quick):
    cfg, result, _ = quick
    erm = ln.chosen(result, "erm", "test_accuracy")
    nsam = ln.chosen(result, "n_sam", "test_accuracy")
    assert nsam.max(axis=-1).mean() > erm.max(axis=-1).mean()
    assert np.all(erm.max(axis=-1) - erm[:, -1] > 0.02), erm


def test_committed_figure_states_its_claims():
    """The committed full figure: ERM memorized in every seed, and each chosen ρ lies strictly inside its grid."""
    if not MANIFEST.exists():
        pytest.skip("no committed manifest")
    entry = json.loads(MANIFEST.read_text()).get(ln.NAME)
    if entry is None or entry["quick"] or entry["code_version"] != ln.CODE_VERSION:
        pytest.skip("the committed label_noise figure is not of this code version")
    full = ln.config(quick=False)
    assert entry["config"] == json.loads(json.dumps(dataclasses.asdict(full)))
    summary = entry["summary"]
    assert summary["erm_seeds_reaching_criterion"] == len(full.seeds)
    for name in ln.variants(full)[1:]:
        assert 0 < summary[f"{name}_chosen_rho_grid_index"] < summary[f"{name}_grid_size"] - 1, name
        assert summary[f"{name}_criterion_epoch_mean"] > summary["erm_criterion_epoch_mean"], name


def test_memorization_counts_agree_with_the_train_accuracies(quick):
    """acc(noisy labels) = (uncorrupted fitted + corrupted fitted to the noisy label)/n, computed two ways."""
    cfg, result, _ = quick
    n = result["n_train"]
    corrupted = np.rint(result["realized_noise"] * n)[:, None]
    for name in ln.variants(cfg):
        fit_clean_subset = result[f"{name}_uncorrupted_fit"]
        fit_noisy = result[f"{name}_corrupted_fit_noisy"]
        fit_true = result[f"{name}_corrupted_fit_clean"]
        np.testing.assert_allclose(result[f"{name}_train_accuracy"], (fit_clean_subset + fit_noisy) / n, atol=1e-6)
        np.testing.assert_allclose(result[f"{name}_train_accuracy_clean"], (fit_clean_subset + fit_true) / n, atol=1e-6)
        # A corrupted example cannot be predicted as both its noisy and its clean label.
        assert np.all(fit_noisy + fit_true <= corrupted)
        assert np.all(fit_clean_subset <= n - corrupted)


def test_realized_noise_is_the_configured_rate(quick):
    cfg, result, _ = quick
    n = result["n_train"]
    np.testing.assert_array_equal(result["realized_noise"], num_noisy_labels(cfg.noise_rate, n) / n)


def test_every_variant_starts_from_the_same_weights(quick):
    """Paired comparison: at step 0 all variants of one seed are the same network."""
    cfg, result, _ = quick
    start = result["erm_test_accuracy"][..., 0]
    for name in ln.variants(cfg)[1:]:
        for values in result[f"{name}_test_accuracy"][..., 0]:
            np.testing.assert_array_equal(values, start)


def test_validation_choice_follows_the_rule(quick):
    cfg, result, _ = quick
    for name in ln.variants(cfg)[1:]:
        val = result[f"{name}_val_accuracy"][..., -1].mean(axis=-1)  # (rho,)
        assert val[result[f"{name}_chosen"]] == val.max()


def test_first_memorized_epoch_is_the_first_crossing():
    epochs = np.array([0.0, 1.0, 2.0, 3.0])
    fraction = np.array([[0.1, 0.96, 0.5, 0.97], [0.1, 0.2, 0.3, 0.94]])
    np.testing.assert_array_equal(ln.first_memorized_epoch(fraction, epochs, 0.95), [1.0, np.nan])


def test_a_rho_zero_lane_is_erm():
    """SAM with ρ = 0 perturbs by exactly 0, so the lane reproduces an ERM run of train.run."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (40, 5))
    y = (jnp.arange(40) % 3).astype(jnp.int32)
    sizes = (5, 7, 3)
    kwargs = dict(num_steps=12, batch_size=8, momentum=0.9, record_steps=np.array([0, 6, 12]))
    lanes = mt.Lanes(rho=np.array([0.0, 0.3]), learning_rate=np.array([0.1, 0.1]),
                     label_index=np.array([0, 0]), seed=np.array([3, 3]))
    result = mt.train_lanes(x_train=np.asarray(x), label_sets=np.asarray(y)[None], lanes=lanes, sizes=sizes,
                            activation="relu", init="he", dtype=jnp.float64, m=None,
                            metrics_fn=lambda p, labels: {"loss": mlp.cross_entropy_loss(p, (x, labels))}, **kwargs)
    init_key, batch_key = jax.random.split(jax.random.PRNGKey(3))
    erm = train.run(
        mt.classifier_loss("relu"), mlp.init_mlp(init_key, sizes, dtype=jnp.float64), (x, y), variant=sam.ERM(),
        num_steps=12, optimizer=optax.sgd(optax.cosine_decay_schedule(0.1, 12), momentum=0.9), batch_size_per_step=8,
        record_steps=kwargs["record_steps"], key=batch_key,
    )
    for lane_leaf, erm_leaf in zip(jax.tree.leaves(result.params), jax.tree.leaves(erm.params)):
        np.testing.assert_allclose(lane_leaf[0], erm_leaf, rtol=1e-12, atol=1e-14)
        assert not np.allclose(lane_leaf[1], erm_leaf)  # and ρ > 0 is not


def test_hold_out_validation_keeps_clean_labels_and_refuses_bad_sizes():
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.normal(size=(20, 3)).astype(np.float32), np.arange(20) % 4,
                      rng.normal(size=(5, 3)).astype(np.float32), np.arange(5) % 4, 4, "toy")
    train_part, (x_val, y_val) = ln.hold_out_validation(ds, 6)
    assert train_part.n_train == 14 and len(x_val) == len(y_val) == 6
    np.testing.assert_array_equal(y_val, ds.y_train[14:])
    assert train_part.info["transforms"][-1] == {"transform": "hold_out_validation", "last": 6}
    for size in (0, 20, 2.5):
        with pytest.raises(ValueError, match="size"):
            ln.hold_out_validation(ds, size)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(noise_rate=0.0), "noise_rate"),
        (dict(msam_m=7), "msam_m"),
        (dict(nsam_rhos=(0.0, 0.1)), "nsam_rhos"),
        (dict(msam_rhos=(0.1, 0.05)), "msam_rhos"),
        (dict(memorized_threshold=1.5), "memorized_threshold"),
        (dict(dtype="float16"), "dtype"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change, message):
    cfg = dataclasses.replace(ln.config(quick=True), **change)
    with pytest.raises(ValueError, match=message):
        ln._check_config(cfg)
        mt.float_dtype(cfg.dtype)
