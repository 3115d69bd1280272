"""The parts of samtheory.nn that need no training: model shapes, augmentation, schedules,
checkpoints, configs, the study plan and the switching figure. Conventions: [rng], [m].
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")

from samtheory import sam  # noqa: E402
from samtheory.figures import FigureUnavailable  # noqa: E402
from samtheory.nn import checkpoint as ckpt  # noqa: E402
from samtheory.nn.augment import normalize_images, random_crop_flip  # noqa: E402
from samtheory.nn.resnet import ResNetConfig, count_params, init_variables  # noqa: E402
from samtheory.nn.sam_step import TrainState  # noqa: E402
from samtheory.nn.schedules import make_schedule  # noqa: E402
from samtheory.nn.study import plan_study  # noqa: E402
from samtheory.nn.trainer import TrainConfig, make_variant  # noqa: E402


def test_resnet18_sizes_and_validation():
    params, stats = init_variables(ResNetConfig(num_classes=10), jax.random.PRNGKey(0), (32, 32, 3))
    assert count_params(params) == 11_173_962  # the CIFAR ResNet-18 of the SAM papers
    assert len(jax.tree.leaves(stats)) == 40  # mean and var of 20 BatchNorm layers
    std = float(np.std(params["stage4_block2"]["conv2"]["kernel"]))
    assert std == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.01)  # He normal, fan-out
    pre, none = init_variables(ResNetConfig(num_classes=10, norm="group", preact=True, width=0.25),
                               jax.random.PRNGKey(0), (28, 28, 1))
    assert none == {} and pre["stem_conv"]["kernel"].shape == (3, 3, 1, 16)
    with pytest.raises(ValueError, match="image_shape"):
        init_variables(ResNetConfig(), jax.random.PRNGKey(0), (4, 4, 3))
    for bad in (dict(norm="layer"), dict(width=0.0), dict(num_classes=1), dict(bn_momentum=1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ResNetConfig(**bad)


def test_random_crop_flip_takes_windows_of_the_zero_padded_image():
    images = jax.random.randint(jax.random.PRNGKey(0), (6, 8, 8, 3), 1, 256).astype(jnp.uint8)
    out = np.asarray(random_crop_flip(jax.random.PRNGKey(1), images, pad=2, flip=True))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(6):
        windows = [padded[i, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        assert any(np.array_equal(out[i], w) or np.array_equal(out[i], w[:, ::-1]) for w in windows)
    assert not np.array_equal(out, np.asarray(images))
    again = np.asarray(random_crop_flip(jax.random.PRNGKey(1), images, pad=2, flip=True))
    assert np.array_equal(out, again)  # keyed: reproducible
    assert np.array_equal(np.asarray(random_crop_flip(jax.random.PRNGKey(1), images, pad=0, flip=False)), images)
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(jax.random.PRNGKey(1), images, pad=-1)
    normalized = normalize_images(images, np.full(3, 0.5), np.full(3, 0.25))
    assert normalized.dtype == jnp.float32
    np.testing.assert_allclose(normalized, (np.asarray(images) / 255 - 0.5) / 0.25, atol=1e-6)


def test_schedules_are_float32_per_step():
    piecewise = make_schedule("piecewise", 0.1, 100)
    values = [float(piecewise(t)) for t in (0, 49, 50, 74, 75, 99)]
    np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    cosine = make_schedule("cosine", 0.2, 10, warmup_steps=2)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(10)) == pytest.approx(0.0, abs=1e-8)
    assert cosine(3).dtype == jnp.float32  # also under x64 (the test suite runs with it on)
    for kwargs, name in ((dict(name="linear"), "name"), (dict(learning_rate=-1.0), "learning_rate"),
                         (dict(milestones=(0.7, 0.2)), "milestones")):
        args = dict(name="piecewise", learning_rate=0.1, total_steps=10) | kwargs
        with pytest.raises(ValueError, match=name):
            make_schedule(**args)


def test_checkpoint_round_trip_and_errors(tmp_path):
    state = TrainState({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"mean": np.ones(3, np.float32)},
                       (np.zeros(6, np.float32),), np.int32(7))
    path = tmp_path / "c.msgpack"
    ckpt.save_checkpoint(path, state, epoch=2, config={"a": 1}, metrics=[{"epoch": 1}], meta={"seed": 3})
    loaded = ckpt.load_checkpoint(path, state)
    assert loaded.epoch == 2 and loaded.config == {"a": 1} and loaded.meta["seed"] == 3
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded.state), jax.tree.leaves(state)))
    assert ckpt.load_checkpoint(path).state["params"]["w"].shape == (2, 3)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "missing.msgpack")
    (tmp_path / "junk.msgpack").write_bytes(b"not msgpack")
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(tmp_path / "junk.msgpack")
    other = state._replace(params={"w": np.zeros((3, 2), np.float32)})
    with pytest.raises(ckpt.CheckpointError, match="shape"):
        ckpt.load_checkpoint(path, other)
    with pytest.raises(ValueError):
        ckpt.save_checkpoint(tmp_path / "nan.msgpack", state, epoch=1, config={}, metrics=[{"loss": float("nan")}])
    assert not (tmp_path / "nan.msgpack").exists()  # a failed save writes nothing


def test_config_validation_and_variants():
    assert make_variant("usam", 0.1, 4) == sam.SAM(0.1, m=4, normalize=False)
    assert make_variant("random_sam", 0.1, None) == sam.RandomSAM(0.1)
    assert make_variant("erm", 0.1, 4) == sam.ERM()
    bad = [dict(m=5), dict(switch_to="sam"), dict(dataset="mnist"), dict(variant="asam"), dict(label_noise=1.0),
           dict(switch_epoch=500.0, switch_to="erm"), dict(norm="layer"), dict(width=-1.0)]
    for kwargs in bad:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            TrainConfig(**kwargs)
    config = TrainConfig(m=32, switch_to="erm", switch_epoch=10.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({**config.to_dict(), "extra": 1})


def test_study_plan_branches_switched_runs_from_unswitched_ones():
    runs = plan_study(TrainConfig(epochs=20), [5, 12.5], seeds=(0, 1))
    assert len(runs) == 2 * (2 + 2 * 2)
    names = [r.name for r in runs[:6]]
    assert names == ["erm_seed0", "sam_seed0", "erm_to_sam_at5_seed0", "sam_to_erm_at5_seed0",
                     "erm_to_sam_at12.5_seed0", "sam_to_erm_at12.5_seed0"]
    late = runs[4]
    assert (late.config.variant, late.config.switch_to, late.config.switch_epoch) == ("erm", "sam", 12.5)
    assert (late.branch_from, late.branch_epoch) == ("erm_seed0", 12)
    with pytest.raises(ValueError, match="switch_epochs"):
        plan_study(TrainConfig(epochs=20), [0])


def _fake_result(kind, k, seed, error, epochs=4):
    metrics = [{"epoch": e + 1, "test_error": error + 0.1 * (epochs - e - 1)} for e in range(epochs)]
    return {"kind": kind, "switch_epoch": k, "seed": seed, "config": {"epochs": epochs}, "metrics": metrics}


def test_switching_figure_reads_results_and_tracks_their_content(tmp_path, monkeypatch):
    from experiments import resnet_switching as fig

    monkeypatch.setattr(fig, "_ROOT", tmp_path)
    empty = fig.config(quick=True)
    with pytest.raises(FigureUnavailable, match="switching-study"):
        fig.run(empty, None)
    folder = tmp_path / fig.RESULTS_DIR / "fashion_mnist"
    folder.mkdir(parents=True)
    for name, record in {
        "erm_seed0": _fake_result("erm", None, 0, 0.08), "sam_seed0": _fake_result("sam", None, 0, 0.06),
        "erm_to_sam_at2_seed0": _fake_result("erm_to_sam", 2.0, 0, 0.065),
        "sam_to_erm_at2_seed0": _fake_result("sam_to_erm", 2.0, 0, 0.075),
    }.items():
        (folder / f"{name}.json").write_text(json.dumps(record))
    (folder / "interpolation.json").write_text(json.dumps({"alpha": [0.0, 1.0]}))  # not a run: ignored
    config = fig.config(quick=False)
    assert config.datasets == ("fashion_mnist",) and len(config.files) == 4
    result = fig.run(config, None)
    assert result["fashion_mnist.erm_error"] == pytest.approx(0.08)
    np.testing.assert_allclose(result["fashion_mnist.erm_to_sam_run_error"], [0.065])
    assert fig.summary(result, config) == {"fashion_mnist_erm_test_error": pytest.approx(0.08),
                                           "fashion_mnist_sam_test_error": pytest.approx(0.06),
                                           "fashion_mnist_seeds": 1.0, "fashion_mnist_missing_runs": 0.0}
    assert len(fig.plot(result, config).axes) == 2
    (folder / "sam_seed0.json").write_text(json.dumps(_fake_result("sam", None, 0, 0.05)))
    assert fig.config(quick=False).content_sha256 != config.content_sha256
    assert dataclasses.asdict(config)["results_dir"] == "results/resnet_switching"
