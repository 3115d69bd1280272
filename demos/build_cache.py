"""Build the demos' caches: what is too slow to compute while a slider moves.

    python3 demos/build_cache.py            # writes demos/cache/relu_kinks.npz

* ``relu_kinks``: 2-layer ReLU nets (width 100) on the Maennel points,
  trained by full-batch GD for 1.5·10⁵ steps (step 0.01, decayed to 0 over
  the last 20 %) with 1-SAM (normalized, one perturbation per example) at
  ρ ∈ {0, 0.0125, 0.025, 0.05, 0.1}; ρ = 0 is ERM exactly (the perturbation
  ``0·g/‖g‖`` is zero). The setting of ``experiments/relu_kinks.py``
  (its ``Config``, seed 0); one vmapped call over ρ. Stored with its config
  and provenance (``samtheory.results``).

Conventions: [loss-mean], [loss-sq], [rho-sam], [m], [normalize], [rng], [float].
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import samtheory  # noqa: E402

samtheory.enable_float64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.relu_kinks import Config, step_schedule  # noqa: E402
from samtheory import results, sam, train  # noqa: E402
from samtheory.models import relu1d  # noqa: E402

RELU_RHOS = (0.0, 0.0125, 0.025, 0.05, 0.1)
RELU_SEED = 0
RELU_PATH = ROOT / "demos" / "cache" / "relu_kinks.npz"


def build_relu_kinks() -> None:
    cfg = Config()
    data = relu1d.maennel_points()
    params0 = relu1d.init_relu1d(jax.random.PRNGKey(RELU_SEED), cfg.width, cfg.init_scale)

    def one(rho):
        return train.run(relu1d.loss_relu1d, params0, data, variant=sam.SAM(rho, m=1), num_steps=cfg.num_steps,
                         learning_rate=step_schedule(cfg), record_steps=np.array([0, cfg.num_steps]))

    result = train.check_finite(jax.jit(jax.vmap(one))(jnp.asarray(RELU_RHOS)), names=("rho",))
    out = {"rhos": np.asarray(RELU_RHOS), "train_loss": np.asarray(result.metrics["loss"][:, -1])}
    out |= {f"param_{k}": np.asarray(v) for k, v in result.params.items()}
    meta = {"config": dataclasses.asdict(cfg) | {"rhos": RELU_RHOS, "seed": RELU_SEED, "variant": "SAM(rho, m=1)"},
            "provenance": results.provenance()}
    RELU_PATH.parent.mkdir(parents=True, exist_ok=True)
    results.save_result_npz(RELU_PATH, out, meta)
    print(f"wrote {RELU_PATH}: train losses {out['train_loss']}")


if __name__ == "__main__":
    build_relu_kinks()
