"""The switching study of Andriushchenko & Flammarion (2022) as population programs, at any scale.

The protocol of the talk's deep-network experiments (ResNet-18, label
noise), with every phase one program of :mod:`samtheory.nn.population`.
For each label-noise rate ([label-noise]) and seed:

* ERM, SAM (n-SAM, ρ = ``rho``), and ERM → SAM and SAM → ERM switched at
  each of ``switch_epochs`` (the talk: SAM matters most late in training) —
  all in one vmapped program;
* ERM → SAM **fine-tuning** from each converged ERM run (fresh momentum,
  constant learning rate ``finetune_lr`` for ``finetune_epochs``), against
  continuing ERM with the same budget — a second program;
* the **linear path** between each ERM solution and its SAM fine-tuning,
  BatchNorm statistics recomputed at every α (the talk: the two minima are
  linearly connected) — a third program, vmapped over pairs and α;
* per epoch, the clean test error and the fraction of wrong labels fitted
  (noisy training examples predicted as their noisy label: the talk says
  SAM resists label noise but memorizes it eventually).

Data: a fixed random subset of Fashion-MNIST (``n_train``, ``n_test``;
0 = all), optionally averaged over ``downsample × downsample`` pixels.
:data:`CPU` is the CPU-sized setting (the figure
``resnet_population_cpu``: a ResNet-10, a few minutes on 2 cores); :data:`GPU` the ResNet-18 setting sized for 15
minutes of one H200 (``samtheory resnet population-study --preset gpu``).

Conventions: [loss-mean], [rho-sam], [rng], [label-noise], [float-nn].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from samtheory.data import ArrayDataset, load_fashion_mnist
from samtheory.nn.population import interpolation_population, population_data, train_population
from samtheory.nn.study_config import CPU, GPU, StudyConfig
from samtheory.nn.trainer import TrainConfig

__all__ = ["StudyConfig", "CPU", "GPU", "study_runs", "run_study"]


def study_dataset(config: StudyConfig, data_dir: str | None = None) -> ArrayDataset:
    """The fixed Fashion-MNIST subset of ``config`` (clean labels; each run adds its own noise).

    ``data_dir``: the folder of the IDX files (default: Debian's package).
    """
    full = load_fashion_mnist(data_dir) if data_dir else load_fashion_mnist()
    rng = np.random.default_rng(config.data_seed)
    train = rng.permutation(full.n_train)[: config.n_train or None]
    test = rng.permutation(full.n_test)[: config.n_test or None]

    def shrink(x):
        d = config.downsample
        if d == 1:
            return x
        n, h, w, c = x.shape
        x = x[:, : h - h % d, : w - w % d].astype(np.float32)
        return np.round(x.reshape(n, h // d, d, w // d, d, c).mean(axis=(2, 4))).astype(np.uint8)

    return ArrayDataset(shrink(full.x_train[train]), full.y_train[train], shrink(full.x_test[test]), full.y_test[test],
                        full.num_classes, f"{full.name}-subset{config.n_train}-down{config.downsample}")


def study_runs(config: StudyConfig) -> list[tuple[float, int, str, int | None]]:
    """(noise rate, seed, kind, switch epoch) of every training run, in the order of the result arrays."""
    kinds = [("erm", None), ("sam", None)]
    kinds += [(kind, k) for kind in ("erm_to_sam", "sam_to_erm") for k in config.switch_epochs]
    return [(noise, seed, kind, k) for noise in config.noise_rates for seed in config.seeds for kind, k in kinds]


def _train_config(config: StudyConfig, noise: float, seed: int, kind: str, switch: int | None, **changes) -> TrainConfig:
    first, *rest = kind.split("_to_")
    fields = dict(
        dataset="fashion_mnist", label_noise=float(noise), variant=first, rho=config.rho, epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr, schedule="cosine", weight_decay=config.weight_decay,
        width=config.width, bf16=config.bf16, augment=config.augment, flip=config.augment, seed=seed, eval_batch_size=config.eval_batch_size,
    )
    if rest:
        fields.update(switch_to=rest[0], switch_epoch=float(switch))
    fields.update(changes)
    return TrainConfig(**fields)


def run_study(
    config: StudyConfig,
    progress: Callable[[float], None] | None = None,
    *,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run the study; a flat dict of arrays (see the keys) and scalars, with no NaN.

    ``test_error``, ``train_loss``, ``clean_train_error``: (noise, seed, run,
    epoch), runs in the order of ``run_kinds``; ``noisy_fit``: the same for
    the noisy rates only; ``finetune_test_error`` (and ``finetune_noisy_fit``):
    ([SAM, ERM], noise, seed, epoch); ``path_test_error``,
    ``path_train_error``: (noise, seed, α). ``config.batching``: see
    :func:`samtheory.nn.population.train_population` (``"map"`` runs the
    runs one after another inside each program). Conventions: [rho-sam], [label-noise].
    """
    from samtheory.nn.cli import FAST_COMPILE

    options = FAST_COMPILE if config.fast_compile else None
    dataset = study_dataset(config, data_dir)
    runs = study_runs(config)
    shape = (len(config.noise_rates), len(config.seeds), len(runs) // (len(config.noise_rates) * len(config.seeds)))
    configs = [_train_config(config, *r) for r in runs]
    names = [f"{kind}{'' if k is None else f'@{k}'} noise={noise} seed={seed}" for noise, seed, kind, k in runs]
    blocks = tuple(config.stage_blocks)
    main = train_population(configs, dataset, names=names, compiler_options=options, batching=config.batching,
                            stage_blocks=blocks)
    if progress is not None:
        progress(0.6)

    # Fine-tuning from each converged ERM run: SAM, and ERM with the same budget as the control.
    erm = [i for i, (_, _, kind, _) in enumerate(runs) if kind == "erm"]
    take = lambda tree, idx: jax.tree.map(lambda x: np.asarray(x)[idx], tree)  # noqa: E731
    starts = [(take(main.state.params, i), take(main.state.batch_stats, i)) for i in erm]
    tune = dict(epochs=config.finetune_epochs, lr=config.finetune_lr, schedule="constant")
    tune_configs = [_train_config(config, runs[i][0], runs[i][1], variant, None, **tune)
                    for variant in ("sam", "erm") for i in erm]
    finetune = train_population(tune_configs, dataset, initial=starts + starts, compiler_options=options,
                                batching=config.batching, stage_blocks=blocks,
                                names=[f"finetune {c.variant} noise={c.label_noise} seed={c.seed}" for c in tune_configs])
    if progress is not None:
        progress(0.85)

    # The straight line from each ERM solution to its SAM fine-tuning.
    pairs = len(erm)
    alphas = np.linspace(0.0, 1.0, config.alphas)
    data = population_data(tune_configs[:pairs], dataset)
    path = interpolation_population(
        dataclasses.replace(configs[0].model_config(dataset.num_classes), stage_blocks=blocks),
        take(main.state.params, np.asarray(erm)),
        take(finetune.state.params, np.arange(pairs)), take(main.state.batch_stats, np.asarray(erm)), alphas, data,
        batch_size=min(config.eval_batch_size, config.n_train),
    )
    if progress is not None:
        progress(1.0)

    noisy = [i for i, rate in enumerate(config.noise_rates) if rate > 0]
    per_run = lambda a: np.moveaxis(a, 0, -1).reshape(*shape, a.shape[0])  # noqa: E731  (epochs, N) -> (noise, seed, run, epoch)
    tune_shape = (2, len(config.noise_rates), len(config.seeds))
    return {
        "test_error": per_run(main.curves["test_error"]),
        "train_loss": per_run(main.curves["train_loss"]),
        "clean_train_error": per_run(main.curves["clean_train_error"]),
        "noisy_fit": per_run(main.curves["noisy_fit"])[noisy],
        "finetune_test_error": np.moveaxis(finetune.curves["test_error"], 0, -1).reshape(*tune_shape, -1),
        "finetune_noisy_fit": np.moveaxis(finetune.curves["noisy_fit"], 0, -1).reshape(*tune_shape, -1)[:, noisy],
        "alphas": alphas,
        "path_test_error": path["test_error"].reshape(len(config.noise_rates), len(config.seeds), -1),
        "path_train_error": path["train_error"].reshape(len(config.noise_rates), len(config.seeds), -1),
        "run_kinds": ",".join(f"{kind}@{k}" if k is not None else kind for _, _, kind, k in runs[: shape[2]]),
        "train_images_per_s": float(main.summary["images_per_s"]),
        "train_run_s": float(main.summary["run_s"]),
        "compile_s": float(main.summary["compile_s"] + finetune.summary["compile_s"]),
        "finetune_run_s": float(finetune.summary["run_s"]),
    }
