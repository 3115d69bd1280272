"""Data parallelism: m-SAM training steps on two (forced host) devices give the single-device result.

Runs in a subprocess, because the number of CPU devices is fixed when JAX
starts (``XLA_FLAGS=--xla_force_host_platform_device_count=2``).
Conventions: [m].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("flax")

_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np
    from samtheory.data import synthetic_images
    from samtheory.nn.cli import FAST_COMPILE
    from samtheory.nn.parallel import check_batch_layout, data_mesh
    from samtheory.nn.resnet import init_variables
    from samtheory.nn.trainer import TrainConfig, train

    assert len(jax.devices()) == 2, jax.devices()
    # m = 4 with a batch of 16: four chunks, two per device, BatchNorm per chunk; two steps.
    # 16x16 images keep 2x2 pixels in the last stage: BatchNorm over 4 examples x 1 pixel
    # would amplify rounding differences far beyond float32 precision.
    data = synthetic_images(0, n_train=32, n_test=32, image_shape=(16, 16, 3))
    config = TrainConfig(variant="sam", m=4, rho=0.05, epochs=1, batch_size=16, lr=0.05, schedule="constant",
                         width=1 / 16, bf16=False, augment=True, crop_pad=2, eval_batch_size=32)
    initial, _ = init_variables(config.model_config(4), jax.random.fold_in(jax.random.PRNGKey(0), 0), (16, 16, 3))
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
    runs = {}
    for n in (1, 2):
        runs[n] = train(config, None, dataset=data, mesh=data_mesh(jax.devices()[:n]), progress=False,
                        compiler_options=FAST_COMPILE)
    update = {n: flat(r.state.params) - flat(initial) for n, r in runs.items()}
    try:
        check_batch_layout(15, 5, 2)
        layout_error = ""
    except ValueError as err:
        layout_error = str(err)
    print("RESULT", json.dumps({
        "devices": [runs[1].summary["devices"], runs[2].summary["devices"]],
        "update_norm": float(np.linalg.norm(update[1])),
        "relative_difference": float(np.linalg.norm(update[1] - update[2]) / np.linalg.norm(update[1])),
        "test_loss": [runs[1].metrics[-1]["test_loss"], runs[2].metrics[-1]["test_loss"]],
        "train_loss": [runs[1].metrics[-1]["train_loss"], runs[2].metrics[-1]["train_loss"]],
        "layout_error": layout_error,
    }))
    """
)


@pytest.mark.slow  # its own JAX process: ~20 s, mostly compiling the m-SAM program twice
def test_msam_on_two_devices_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, cwd=root, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["devices"] == [1, 2]
    assert out["update_norm"] > 0.01  # the two steps moved the parameters
    assert out["relative_difference"] < 1e-4  # ... in the same way on one and on two devices
    assert out["test_loss"][0] == pytest.approx(out["test_loss"][1], rel=1e-4)
    assert out["train_loss"][0] == pytest.approx(out["train_loss"][1], rel=1e-4)
    assert "divisible by the number of devices" in out["layout_error"]
