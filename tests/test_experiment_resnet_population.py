"""The CPU-sized population study (experiments/resnet_population_cpu) at its quick config, and its ResNet-10.

One run of the quick config (the full config's ResNet-10 of width 1/16 on
64 Fashion-MNIST images at 9×9, 2 epochs, switch at epoch 1, one seed, 0 %
and 60 % label noise; unoptimized XLA).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")

import jax  # noqa: E402

from samtheory import legibility  # noqa: E402
from samtheory.data import FASHION_MNIST_DEFAULT_DIR  # noqa: E402
from samtheory.nn.resnet import ResNetConfig, init_variables  # noqa: E402

if not any(Path(FASHION_MNIST_DEFAULT_DIR).glob("train-images*")):
    pytest.skip("Debian's dataset-fashion-mnist is not installed", allow_module_level=True)

from experiments import resnet_population_cpu as study  # noqa: E402

# The quick study: three ResNet-10 programs compiled unoptimized and run, about a minute on 2 shared cores.
slow = pytest.mark.slow


def _blocks(params: dict) -> list[str]:
    return sorted(k for k in params if k.startswith("stage"))


def test_stage_blocks_default_to_resnet18_and_the_study_uses_resnet10():
    """ResNet-18 keeps two blocks per stage; stage_blocks=(1, 1, 1, 1) (the study's net) has one."""
    key = jax.random.PRNGKey(0)
    deep, _ = init_variables(ResNetConfig(width=1 / 16), key, (9, 9, 1))
    shallow, _ = init_variables(ResNetConfig(width=1 / 16, stage_blocks=(1, 1, 1, 1)), key, (9, 9, 1))
    assert _blocks(deep) == [f"stage{s}_block{b}" for s in range(1, 5) for b in (1, 2)]
    assert _blocks(shallow) == [f"stage{s}_block1" for s in range(1, 5)]
    assert study.config(False).stage_blocks == study.config(True).stage_blocks == (1, 1, 1, 1)


@pytest.mark.parametrize("blocks", [(1, 1, 1), (1, 0, 1, 1), [1, 1, 1, 1], (1, True, 1, 1)])
def test_bad_stage_blocks_are_refused_by_name(blocks):
    with pytest.raises(ValueError, match="stage_blocks"):
        ResNetConfig(stage_blocks=blocks)


@pytest.fixture(scope="module")
def quick():
    config = study.config(True)
    return config, study.run(config, None)


@slow
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


@slow
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


@slow
def test_the_figure_reads_on_a_slide(quick):
    config, result = quick
    assert legibility.figure_module_problems(study, dict(result), config) == {"": []}
