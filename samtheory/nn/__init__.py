"""ResNet-18 training with SAM variants: switching, finetuning, interpolation, at GPU scale.

The deep-network part of Andriushchenko & Flammarion (2022): does SAM help in
the first or in the second half of training (switch ERM → SAM and SAM → ERM
at epoch k), does SAM finetuning of an ERM solution help, and are the two
solutions linearly connected. Built on the variants of :mod:`samtheory.sam`.

Modules (one concept each):

* :mod:`~samtheory.nn.resnet` — CIFAR-style (PreAct) ResNet-18, BatchNorm or GroupNorm, bf16;
* :mod:`~samtheory.nn.augment` — on-device random crops and flips;
* :mod:`~samtheory.nn.schedules` — per-step learning rates;
* :mod:`~samtheory.nn.sam_step` — one SGD step of any variant (n-SAM, m-SAM, USAM, RandomSAM);
* :mod:`~samtheory.nn.parallel` — data parallelism over a device mesh;
* :mod:`~samtheory.nn.checkpoint` — atomic msgpack checkpoints;
* :mod:`~samtheory.nn.metrics` — evaluation and the per-epoch JSONL;
* :mod:`~samtheory.nn.datasets` — the data sets by name;
* :mod:`~samtheory.nn.trainer` — :func:`train`: a whole run, resumable;
* :mod:`~samtheory.nn.interpolation` — losses along the segment between two checkpoints;
* :mod:`~samtheory.nn.study` — the switching study (ERM, SAM, ERM→SAM and SAM→ERM at k);
* :mod:`~samtheory.nn.population` — N runs (seeds, ρ, switch points, label noise) vmapped into one program;
* :mod:`~samtheory.nn.population_study` — the whole study (switching, finetuning, paths, label noise) as populations;
* :mod:`~samtheory.nn.study_config` — the study's sizes (:data:`~samtheory.nn.study_config.CPU`, ``GPU``), flax-free;
* :mod:`~samtheory.nn.cli` — ``samtheory resnet train | switching-study | population-study | interpolate``.

Needs ``flax`` (``pip install -e ".[nn]"``), except :mod:`~samtheory.nn.study_config`. docs/resnet.md has the design
decisions and the GPU recipes.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [label-noise],
[float-nn].
"""

import importlib

# The exports load on first use (PEP 562), so that flax-free submodules such as
# samtheory.nn.study_config import without flax.
_EXPORTS = {
    "ResNetConfig": "samtheory.nn.resnet", "build_model": "samtheory.nn.resnet", "init_variables": "samtheory.nn.resnet",
    "TrainConfig": "samtheory.nn.trainer", "RunResult": "samtheory.nn.trainer", "make_variant": "samtheory.nn.trainer",
    "train": "samtheory.nn.trainer",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'samtheory.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
