"""Training runs of a tiny-width ResNet-18 on synthetic images: switching, resume, divergence, CLI, study.

All runs share one configuration, so the compiled ERM and SAM programs are
reused from run to run (the trainer caches them by shapes and
hyperparameters), and XLA compiles without LLVM optimization (``FAST_COMPILE``).
Conventions: [rng], [m].
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

pytest.importorskip("flax")

from samtheory.nn import checkpoint as ckpt  # noqa: E402
from samtheory.nn.cli import FAST_COMPILE, main  # noqa: E402
from samtheory.nn.metrics import read_jsonl  # noqa: E402
from samtheory.nn.trainer import (  # noqa: E402
    CHECKPOINT_NAME,
    TrainConfig,
    _epoch_segments,
    train,
    variant_at_step,
)
from samtheory.train import DivergenceError  # noqa: E402

# 128 examples / 32 = 4 steps per epoch; the switch at epoch 1.5 is update 6, inside epoch 2.
CONFIG = TrainConfig(
    dataset="synthetic", synthetic_train=128, synthetic_test=64, variant="erm", switch_to="sam",
    switch_epoch=1.5, rho=0.05, epochs=3, batch_size=32, lr=0.05, schedule="cosine", width=1 / 16,
    bf16=True, augment=False, eval_batch_size=64,
)
RUN = dict(progress=False, segment_steps=3, compiler_options=FAST_COMPILE)
CLI_CONFIG = [
    "--dataset", "synthetic", "--synthetic-train", "128", "--synthetic-test", "64", "--rho", "0.05",
    "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--schedule", "cosine", "--width", "0.0625",
    "--no-augment", "--eval-batch-size", "64", "--segment-steps", "5", "--no-progress", "--fast-compile",
]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _bitwise_equal(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return train(CONFIG, out, keep_epochs=(1,), **RUN)


def test_switching_run_learns_and_uses_each_variant_when_scheduled(straight, tmp_path):
    metrics = straight.metrics
    assert [r["variant"] for r in metrics] == ["erm", "erm->sam", "sam"]
    assert [r["epoch"] for r in metrics] == [1, 2, 3] and metrics[-1]["step"] == 12
    assert metrics[-1]["train_loss"] < 0.5 * metrics[0]["train_loss"]
    assert metrics[-1]["test_acc"] >= 0.6  # 4 balanced classes: chance is 0.25
    assert int(straight.state.step) == 12
    assert all(x.dtype == np.float32 for x in _leaves(straight.state.params))  # [float-nn]
    # ERM-only with the same seed: identical first epoch (ERM is used there), different second (SAM is).
    erm_only = train(dataclasses.replace(CONFIG, switch_to=None, switch_epoch=None), None, stop_after_epoch=2, **RUN)
    assert erm_only.metrics[0]["train_loss"] == metrics[0]["train_loss"]
    assert erm_only.metrics[0]["test_loss"] == metrics[0]["test_loss"]
    assert erm_only.metrics[1]["train_loss"] != metrics[1]["train_loss"]
    # Files: one metrics line per epoch, the checkpoint after the last epoch, the kept one.
    out = straight.out_dir
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    assert ckpt.load_checkpoint(out / CHECKPOINT_NAME).epoch == 3
    assert ckpt.load_checkpoint(out / "checkpoint_epoch0001.msgpack").epoch == 1
    summary = json.loads((out / "result.json").read_text())
    assert summary["final"]["test_error"] == pytest.approx(1 - metrics[-1]["test_acc"])
    assert summary["switch_step"] == 6 and summary["steps_per_epoch"] == 4


def test_resume_after_kill_is_bitwise_identical(straight, tmp_path):
    first = train(CONFIG, tmp_path, stop_after_epoch=1, **RUN)
    assert len(first.metrics) == 1 and int(first.state.step) == 4
    with pytest.raises(ValueError, match="resume"):
        train(CONFIG, tmp_path, **RUN)
    with pytest.raises(ValueError, match="another config"):
        train(dataclasses.replace(CONFIG, lr=0.1), tmp_path, resume=True, **RUN)
    resumed = train(CONFIG, tmp_path, resume=True, **RUN)
    assert _bitwise_equal(resumed.state, straight.state)
    assert [r["train_loss"] for r in resumed.metrics] == [r["train_loss"] for r in straight.metrics]
    assert [r["test_loss"] for r in resumed.metrics] == [r["test_loss"] for r in straight.metrics]
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 3


def test_non_finite_loss_stops_naming_epoch_and_step(straight, tmp_path):
    poisoned = straight.state._replace(params=jax.tree.map(lambda x: np.full_like(x, np.nan), straight.state.params))
    path = tmp_path / "nan.msgpack"
    ckpt.save_checkpoint(path, poisoned, epoch=3, config=CONFIG.to_dict(), metrics=[])
    config = dataclasses.replace(CONFIG, switch_to=None, switch_epoch=None, finetune_from=str(path))
    with pytest.raises(DivergenceError, match=r"epoch 1, step 1 of 4"):
        train(config, tmp_path / "run", **RUN)


def test_switch_points_cut_segments():
    config = dataclasses.replace(CONFIG, switch_epoch=1.5)
    assert [variant_at_step(config, t, 8) for t in (0, 11, 12, 23)] == ["erm", "erm", "sam", "sam"]
    assert [variant_at_step(config, t, 4) for t in (5, 6)] == ["erm", "sam"]
    assert _epoch_segments(8, 16, 3, 12) == [(8, 11), (11, 12), (12, 14), (14, 16)]
    assert _epoch_segments(0, 8, 100, None) == [(0, 8)]


def test_cli_study_branches_bitwise_and_interpolates(straight, tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    code = main(["switching-study", *CLI_CONFIG, "--switch-epochs", "1.5",
                 "--results-dir", str(results), "--work-dir", str(work)])
    assert code == 0
    names = sorted(p.stem for p in results.glob("*.json"))
    assert names == ["erm_seed0", "erm_to_sam_at1.5_seed0", "sam_seed0", "sam_to_erm_at1.5_seed0"]
    switched = json.loads((results / "erm_to_sam_at1.5_seed0.json").read_text())
    assert switched["kind"] == "erm_to_sam" and switched["switch_epoch"] == 1.5
    assert switched["branched_from"]["epoch"] == 1  # only epochs 2 and 3 were computed
    # Branching from ERM-only's epoch-1 checkpoint gives bitwise the run from scratch.
    branched = ckpt.load_checkpoint(work / "erm_to_sam_at1.5_seed0" / CHECKPOINT_NAME)
    assert _bitwise_equal(branched.state["params"], straight.state.params)
    assert [r["test_loss"] for r in switched["metrics"]] == [r["test_loss"] for r in straight.metrics]
    # A second call finds every result and computes nothing.
    assert main(["switching-study", *CLI_CONFIG, "--switch-epochs", "1.5",
                 "--results-dir", str(results), "--work-dir", str(work)]) == 0

    out = tmp_path / "interp.json"
    code = main(["interpolate", str(work / "erm_seed0" / CHECKPOINT_NAME),
                 str(work / "erm_to_sam_at1.5_seed0" / CHECKPOINT_NAME),
                 "--num", "3", "--train-examples", "64", "--batch-size", "64", "--out", str(out), "--no-progress"])
    assert code == 0
    path = json.loads(out.read_text())
    assert path["alpha"] == [0.0, 0.5, 1.0] and path["bn_recomputed"] is True
    # Both end points are trained networks (4 classes: chance is 0.25); after 12 steps the running
    # statistics lag behind, the recomputed ones do not.
    erm_final = json.loads((results / "erm_seed0.json").read_text())["final"]
    assert path["test_acc"][0] >= max(0.5, erm_final["test_acc"] - 0.05) and path["test_acc"][2] >= 0.5
    assert all(np.isfinite(path["train_loss"])) and len(path["test_loss"]) == 3


def test_cli_train_with_augmentation_and_usage_errors(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", *[a for a in CLI_CONFIG if a != "--no-augment"], "--variant", "erm", "--epochs", "1",
            "--crop-pad", "1", "--out", str(out)]
    assert main(argv) == 0
    assert len(read_jsonl(out / "metrics.jsonl")) == 1
    assert "test error" in capsys.readouterr().out
    assert main(argv) == 2  # existing checkpoint without --resume
    assert "resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0  # finished run: nothing left to do
    assert main(["train", "--variant", "nope", "--out", str(out)]) == 2
    assert main(["train", *CLI_CONFIG, "--m", "5", "--out", str(tmp_path / "x")]) == 2
    assert "m must be" in capsys.readouterr().err
