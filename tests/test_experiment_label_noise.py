"""The label-noise figure (small-scale Foret et al. Table 4): its quick config end to end, and invariants that can fail.

The quick run is shared by the tests through a module fixture (one training
call per variant group). Invariants: training beats chance on clean labels;
the memorization counts and the independently computed train accuracies
agree exactly; every variant starts from the same weights; the realized
noise is the configured one; a ρ = 0 lane is ERM.
"""

import dataclasses

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
    num_noise, num_seeds, num_records = len(cfg.noise_rates), len(cfg.seeds), len(ln.record_steps(cfg))
    assert result["erm_test_accuracy"].shape == (num_noise, num_seeds, num_records)
    assert result["nsam_test_accuracy"].shape == (len(cfg.nsam_rhos), num_noise, num_seeds, num_records)
    assert result["msam_test_accuracy"].shape == (len(cfg.msam_rhos), num_noise, num_seeds, num_records)
    assert isinstance(ln.plot(result, cfg), Figure)
    summary = ln.summary(result, cfg)
    for name in ("erm", "nsam", "msam"):
        for rate in cfg.noise_rates:
            tag = f"{name}_noise{round(100 * rate)}"
            final, best = summary[f"{tag}_final_test_acc_mean"], summary[f"{tag}_best_over_training_test_acc_mean"]
            assert 0 <= final <= best <= 1
            if name != "erm":
                assert summary[f"{tag}_chosen_rho"] in ln.rhos_of(name, cfg)
    assert all(np.isfinite(v) for v in summary.values())


def test_clean_labels_are_learned_well_above_chance(quick):
    cfg, result, _ = quick
    clean = cfg.noise_rates.index(0.0)
    chance = 0.1
    for name in ("erm", "nsam", "msam"):
        final = ln.chosen(result, name, "test_accuracy")[clean, :, -1]
        assert np.all(final > 2.5 * chance), (name, final)


def test_memorization_counts_agree_with_the_train_accuracies(quick):
    """acc(noisy labels) = (uncorrupted fitted + corrupted fitted to the noisy label)/n, computed two ways."""
    cfg, result, _ = quick
    n = result["n_train"]
    corrupted = np.rint(result["realized_noise"] * n)[..., None]
    for name in ("erm", "nsam", "msam"):
        fit_clean_subset = result[f"{name}_uncorrupted_fit"]
        fit_noisy = result[f"{name}_corrupted_fit_noisy"]
        fit_true = result[f"{name}_corrupted_fit_clean"]
        np.testing.assert_allclose(result[f"{name}_train_accuracy"], (fit_clean_subset + fit_noisy) / n, atol=1e-6)
        np.testing.assert_allclose(result[f"{name}_train_accuracy_clean"], (fit_clean_subset + fit_true) / n, atol=1e-6)
        # A corrupted example cannot be predicted as both its noisy and its clean label.
        assert np.all(fit_noisy + fit_true <= corrupted)
        assert np.all(fit_clean_subset <= n - corrupted)
    clean = cfg.noise_rates.index(0.0)
    np.testing.assert_array_equal(result["erm_train_accuracy"][clean], result["erm_train_accuracy_clean"][clean])


def test_realized_noise_is_the_configured_rate(quick):
    cfg, result, _ = quick
    n = result["n_train"]
    for i, rate in enumerate(cfg.noise_rates):
        np.testing.assert_array_equal(result["realized_noise"][i], num_noisy_labels(rate, n) / n)


def test_every_variant_starts_from_the_same_weights(quick):
    """Paired comparison: at step 0 all variants of one seed are the same network."""
    _, result, _ = quick
    start = result["erm_test_accuracy"][..., 0]
    for name in ("nsam", "msam"):
        for values in result[f"{name}_test_accuracy"][..., 0]:
            np.testing.assert_array_equal(values, start)


def test_validation_choice_follows_the_rule(quick):
    cfg, result, _ = quick
    for name in ("nsam", "msam"):
        val = result[f"{name}_val_accuracy"][..., -1].mean(axis=-1)  # (rho, noise)
        for i in range(len(cfg.noise_rates)):
            assert val[result[f"{name}_chosen"][i], i] == val[:, i].max()


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
        (dict(curve_noise_rate=0.3), "curve_noise_rate"),
        (dict(curve_noise_rate=0.0), "curve_noise_rate"),
        (dict(msam_m=7), "msam_m"),
        (dict(nsam_rhos=(0.0, 0.1)), "nsam_rhos"),
        (dict(dtype="float16"), "dtype"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change, message):
    cfg = dataclasses.replace(ln.config(quick=True), **change)
    with pytest.raises(ValueError, match=message):
        ln._check_config(cfg)
        mt.float_dtype(cfg.dtype)
