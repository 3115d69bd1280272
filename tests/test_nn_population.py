"""Population training (samtheory.nn.population): runs vmapped into one program stay independent runs.

Small CPU setting: 1/16-width ResNet-18 on 8×8 synthetic images, float32,
2 epochs of 2 steps, unoptimized XLA (FAST_COMPILE). Three runs that differ
in seed, variant schedule (ERM, ERM→SAM at epoch 1) and label noise.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("flax")
# Four small ResNet programs compiled unoptimized: 110 s on the shared 2-core machine (load ≈ 10).
pytestmark = pytest.mark.slow

from samtheory.data import synthetic_images  # noqa: E402
from samtheory.nn.cli import FAST_COMPILE  # noqa: E402
from samtheory.nn.population import check_population, train_population  # noqa: E402
from samtheory.nn.trainer import TrainConfig  # noqa: E402

_BASE = dict(dataset="synthetic", epochs=2, batch_size=16, lr=0.05, width=1 / 16, eval_batch_size=16,
             schedule="cosine", bf16=False)
_RUNS = (
    TrainConfig(**_BASE, variant="erm", seed=0),
    TrainConfig(**_BASE, variant="erm", switch_to="sam", switch_epoch=1.0, rho=0.2, seed=0),
    TrainConfig(**_BASE, variant="sam", rho=0.1, seed=1, label_noise=0.5),
)


@pytest.fixture(scope="module")
def data():
    return synthetic_images(0, n_train=32, n_test=16)


@pytest.fixture(scope="module")
def populations(data):
    run = lambda configs, batching: train_population(configs, data, compiler_options=FAST_COMPILE, batching=batching)  # noqa: E731
    return {
        "map": run(_RUNS, "map"),
        "alone": run(_RUNS[2:], "map"),
        "vmap": run(_RUNS, "vmap"),
        "vmap_reversed": run(_RUNS[::-1], "vmap"),
    }


def _leaves(state, i):
    return [np.asarray(x)[i] for x in jax.tree.leaves(state)]


def test_each_run_of_a_population_is_bitwise_the_run_alone(populations):
    together, alone = populations["map"], populations["alone"]
    for a, b in zip(_leaves(together.state, 2), _leaves(alone.state, 0)):
        assert np.array_equal(a, b)
    for key in ("test_error", "train_loss", "noisy_fit"):
        np.testing.assert_array_equal(together.curves[key][:, 2], alone.curves[key][:, 0])


def test_vmapped_runs_do_not_mix(populations):
    """Reversing the run axis of the vmapped program reverses its results, bitwise."""
    forward, backward = populations["vmap"], populations["vmap_reversed"]
    for i in range(3):
        for a, b in zip(_leaves(forward.state, i), _leaves(backward.state, 2 - i)):
            assert np.array_equal(a, b)


def test_vmapped_population_equals_runs_one_by_one_up_to_rounding(populations):
    """vmap batches convolutions and reductions differently from a run alone: equal up to float32 rounding.

    Compared on the first epoch's mean training loss (steps 0 and 1): later,
    this tiny network (BatchNorm over 16 values in its last stage) amplifies
    rounding differences by orders of magnitude per step (docs/resnet.md), so
    only the early steps can be compared with a tolerance.
    """
    np.testing.assert_allclose(populations["vmap"].curves["train_loss"][0],
                               populations["map"].curves["train_loss"][0], rtol=1e-5)


def test_runs_differ_and_the_switch_is_honoured(populations):
    state, curves = populations["map"].state, populations["map"].curves
    params = [_leaves(state.params, i) for i in range(3)]
    # ERM and ERM→SAM (same seed) agree bitwise up to the switch at epoch 1, then differ.
    np.testing.assert_array_equal(curves["train_loss"][0, 0], curves["train_loss"][0, 1])
    np.testing.assert_array_equal(curves["test_error"][0, 0], curves["test_error"][0, 1])
    assert curves["train_loss"][1, 0] != curves["train_loss"][1, 1]
    assert any(not np.array_equal(a, b) for a, b in zip(params[0], params[1]))
    assert any(not np.array_equal(a, b) for a, b in zip(params[0], params[2]))
    # Only the noisy run has wrong labels to fit.
    assert np.isnan(curves["noisy_fit"][:, :2]).all() and np.isfinite(curves["noisy_fit"][:, 2]).all()
    np.testing.assert_array_equal(np.asarray(state.step), [4, 4, 4])


def test_population_refuses_runs_that_cannot_share_a_program():
    with pytest.raises(ValueError, match="lr"):
        check_population([_RUNS[0], TrainConfig(**{**_BASE, "lr": 0.1})])
    with pytest.raises(ValueError, match="usam"):
        check_population([TrainConfig(**_BASE, variant="usam")])
