"""Sizes and hyperparameters of the population switching study, as plain data.

:class:`StudyConfig` and the two settings :data:`CPU` and :data:`GPU` of
:mod:`samtheory.nn.population_study`, in a module of their own so that they
load without flax or JAX: the figure ``resnet_population_cpu`` uses
:class:`StudyConfig` as its ``Config``, and the figure registry loads every
figure module (``samtheory figures --list`` imports no JAX).

Conventions: [label-noise] (``noise_rates``), [float-nn] (``bf16``).
"""

from __future__ import annotations

import dataclasses

__all__ = ["StudyConfig", "CPU", "GPU"]


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Sizes and hyperparameters of the study (plain JSON values)."""

    n_train: int
    n_test: int
    downsample: int
    width: float
    batch_size: int
    epochs: int
    lr: float
    weight_decay: float
    rho: float
    switch_epochs: tuple[int, ...]
    noise_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    finetune_epochs: int
    finetune_lr: float
    alphas: int
    data_seed: int
    eval_batch_size: int
    bf16: bool = False
    augment: bool = False
    fast_compile: bool = False
    stage_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)  # ResNetConfig.stage_blocks: (2, 2, 2, 2) is ResNet-18
    batching: str = "vmap"  # see train_population: "map" is bitwise the runs alone and compiles like one run

    def __post_init__(self) -> None:
        for k in self.switch_epochs:
            if not 0 < k < self.epochs:
                raise ValueError(f"switch_epochs must lie strictly between 0 and epochs={self.epochs}, got {k}")
        if not self.seeds or not self.noise_rates:
            raise ValueError("seeds and noise_rates must not be empty")
        if self.batching not in ("vmap", "map"):
            raise ValueError(f"batching must be 'vmap' or 'map', got {self.batching!r}")
        if self.alphas < 2:
            raise ValueError(f"alphas must be >= 2, got {self.alphas}")


#: CPU-sized: ResNet-10 (one block per stage, ``stage_blocks=(1, 1, 1, 1)``) of width 1/16 (4–32 channels),
#: BatchNorm, float32; 512 training and 500 test images averaged 3×3 to 9×9; 12 epochs, switches at 4 and 8.
#: The runs go one after another inside each program (batching "map"): the optimizing compile of the
#: vmapped program took over 8 minutes on 2 shared cores, and unoptimized code runs about 10× slower.
#: Measured at load ≈ 3 on 2 cores (one seed, 2 epochs): ResNet-18 compiles in 34 + 36 + ~10 s and runs
#: 0.91 s per run-epoch; ResNet-10 in 24 + 25 + ~8 s and 0.48 s. The full CPU study (figure
#: resnet_population_cpu) at load 4.0–4.7: compile 46 s (both training programs), training 191 s (0.44 s
#: per run-epoch), fine-tuning 22 s, the rest (data, initialization, linear paths) 27 s: 285 s in all.
CPU = StudyConfig(n_train=512, n_test=500, downsample=3, width=1 / 16, batch_size=32, epochs=12, lr=0.05,
                  weight_decay=5e-4, rho=0.1, switch_epochs=(4, 8), noise_rates=(0.0, 0.6), seeds=(0, 1, 2),
                  finetune_epochs=4, finetune_lr=0.005, alphas=7, data_seed=0, eval_batch_size=500,
                  stage_blocks=(1, 1, 1, 1), batching="map")
#: ResNet-18 (width 1) on 8,000 Fashion-MNIST images at 28×28, bf16, crops and flips, 16 epochs, 36 + 12
#: runs: sized (from H100 step times, unmeasured on an H200) for about 6 minutes of one H200.
GPU = StudyConfig(n_train=8000, n_test=5000, downsample=1, width=1.0, batch_size=128, epochs=16, lr=0.1,
                  weight_decay=5e-4, rho=0.1, switch_epochs=(4, 12), noise_rates=(0.0, 0.6), seeds=(0, 1, 2),
                  finetune_epochs=4, finetune_lr=0.01, alphas=11, data_seed=0, eval_batch_size=1000, bf16=True,
                  augment=True)
