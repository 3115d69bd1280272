"""The CPU-sized population study (experiments/resnet_population_cpu) at its quick config.

One run of the quick config (64 Fashion-MNIST images at 14×14, 2 epochs,
switch at epoch 1, one seed, 0 % and 60 % label noise; unoptimized XLA).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
# Three ResNet programs compiled unoptimized: 532 s on the shared 2-core machine (load ≈ 15), far over a few seconds.
pytestmark = pytest.mark.slow

from samtheory.data import FASHION_MNIST_DEFAULT_DIR  # noqa: E402

if not any(Path(FASHION_MNIST_DEFAULT_DIR).glob("train-images*")):
    pytest.skip("Debian's dataset-fashion-mnist is not installed", allow_module_level=True)

from experiments import resnet_population_cpu as study  # noqa: E402


@pytest.fixture(scope="module")
def quick():
    config = study.config(True)
    return config, study.run(config, None)


def test_switched_runs_equal_the_unswitched_run_before_the_switch(quick):
    """ERM→SAM at k equals ERM up to epoch k, SAM→ERM equals SAM; after k they differ (the switch is honoured)."""
    config, result = quick
    index = study._kind_index(result)
    k = config.switch_epochs[0]
    for switched, before in (("erm_to_sam", "erm"), ("sam_to_erm", "sam")):
        for key in ("test_error", "train_loss", "clean_train_error"):
            a, b = result[key][..., index[(switched, k)], :k], result[key][..., index[(before, None)], :k]
            np.testing.assert_array_equal(a, b)
        assert np.any(result["train_loss"][..., index[(switched, k)], k:] != result["train_loss"][..., index[(before, None)], k:])


def test_shapes_and_ranges(quick):
    config, result = quick
    noise, seeds, runs = len(config.noise_rates), len(config.seeds), 2 + 2 * len(config.switch_epochs)
    assert result["test_error"].shape == (noise, seeds, runs, config.epochs)
    assert result["noisy_fit"].shape == (1, seeds, runs, config.epochs)  # only the 60 % rate has wrong labels
    assert result["finetune_test_error"].shape == (2, noise, seeds, config.finetune_epochs)
    assert result["path_test_error"].shape == (noise, seeds, config.alphas)
    for key in ("test_error", "noisy_fit", "finetune_test_error", "path_test_error", "path_train_error"):
        assert np.all((result[key] >= 0) & (result[key] <= 1)), key
    summary = study.summary(result, config)
    assert all(np.isfinite(v) for v in summary.values())
