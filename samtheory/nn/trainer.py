"""Training a ResNet-18 with a SAM variant, with switching, checkpoints, resume and metrics.

:func:`train` runs one configuration (:class:`TrainConfig`) end to end:

* **Steps on device.** Each compiled call advances the state over a
  *segment* of steps with ``lax.while_loop``: the batch of step ``t`` is
  gathered from the training set held on the device (the epoch's
  permutation), augmented on device, and fed to the step of
  :mod:`samtheory.nn.sam_step`. The loop bounds are traced, so there is one
  compiled program per variant whatever the segment lengths; segments only
  set how often the host looks (progress bar, NaN check, switch points).
* **Switching.** ``variant`` is used for the updates ``t < switch_step`` and
  ``switch_to`` from then on, ``switch_step = round(switch_epoch ·
  steps_per_epoch)``; segments are cut at the switch, so each uses one
  variant. ``finetune_from`` starts from the parameters and BatchNorm
  statistics of another run's checkpoint with a fresh optimizer and
  schedule (the ERM → SAM finetuning of Andriushchenko & Flammarion).
* **Randomness** ([rng]) is a function of ``seed`` and the step index only:
  ``PRNGKey(seed)`` is split by ``fold_in`` into initialization (tag 0),
  epoch permutations (tag 1, then the epoch), augmentation (tag 2, then the
  step) and perturbations (tag 3, then the step). So runs are reproducible,
  and a run resumed from a checkpoint ends with bitwise the same parameters
  as one that never stopped.
* **Checkpoints** after every epoch (atomic; :mod:`samtheory.nn.checkpoint`)
  and ``metrics.jsonl`` (one line per epoch); ``result.json`` at the end.
* **Divergence.** A non-finite training loss stops the run at the end of
  the segment with :class:`samtheory.errors.DivergenceError` naming the epoch
  and the step; so does a non-finite test loss.
* **Data parallel** over all devices (:mod:`samtheory.nn.parallel`).

It keeps its own loop rather than :func:`samtheory.train.run`: a step
carries BatchNorm state and a running loss/accuracy sum, the batches are
gathered and augmented on the device inside a ``lax.while_loop`` whose
bounds are traced (one compiled program per variant, donated buffers,
sharded data), and the host checkpoints between segments; it switches
variants with the same :class:`samtheory.train.VariantSchedule`.

Batches are drawn without replacement; the last ``n mod batch_size``
examples of each epoch's permutation are skipped, so every step has the same
batch size (m-SAM needs ``m | batch_size``).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [label-noise],
[float-nn].
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from samtheory.data import ArrayDataset, channel_stats, with_label_noise
from samtheory.nn import checkpoint as ckpt
from samtheory.nn.augment import normalize_images, random_crop_flip
from samtheory.nn.datasets import DATASETS, load_dataset
from samtheory.nn.metrics import EvalSet, make_eval_set, make_evaluator, write_jsonl
from samtheory.nn.parallel import (
    batch_constraint,
    check_batch_layout,
    chunk_constraint,
    data_mesh,
    replicate,
    replicated_sharding,
    to_host,
)
from samtheory.nn.resnet import (
    NORMS,
    ResNetConfig,
    build_model,
    count_params,
    init_variables,
)
from samtheory.nn.sam_step import (
    TrainState,
    init_train_state,
    make_optimizer,
    make_train_step,
)
from samtheory.nn.schedules import SCHEDULES, make_schedule
from samtheory.results import atomic_write_json, config_to_dict, provenance
from samtheory.errors import DivergenceError
from samtheory.sam import ERM, SAM, RandomSAM, Variant
from samtheory.train import VariantSchedule

__all__ = [
    "VARIANTS",
    "TrainConfig",
    "RunResult",
    "make_variant",
    "steps_per_epoch",
    "switch_step",
    "variant_at_step",
    "variant_schedule",
    "train",
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "RESULT_NAME",
]

VARIANTS = ("erm", "sam", "usam", "random_sam")
CHECKPOINT_NAME = "checkpoint.msgpack"
METRICS_NAME = "metrics.jsonl"
RESULT_NAME = "result.json"

# fold_in tags of the run key ([rng]); never reorder.
_INIT, _PERMUTATION, _AUGMENT, _PERTURB = 0, 1, 2, 3
# Fields that may differ between a checkpoint and the run resuming it.
_RESUMABLE_DIFFERENCES = ("data_dir",)
# Fields that may differ between a run and the one it branches from (see train()).
_BRANCHABLE_DIFFERENCES = ("data_dir", "variant", "switch_to", "switch_epoch")


def make_variant(name: str, rho: float, m: int | None) -> Variant:
    """``erm`` → ERM(); ``sam`` → SAM(rho, m); ``usam`` → SAM(rho, m, normalize=False); ``random_sam`` → RandomSAM(rho, m).

    Conventions: [rho-sam], [m], [normalize].
    """
    if name == "erm":
        return ERM()
    if name == "sam":
        return SAM(rho, m=m)
    if name == "usam":
        return SAM(rho, m=m, normalize=False)
    if name == "random_sam":
        return RandomSAM(rho, m=m)
    raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Plain JSON values, so it is stored with every checkpoint and result.

    Data: ``dataset`` (one of :data:`samtheory.nn.datasets.DATASETS`),
    ``data_dir``, ``label_noise`` (fraction of training labels flipped,
    [label-noise]), ``synthetic_train`` / ``synthetic_test`` (sizes of the
    synthetic set only).

    Method: ``variant`` (``erm``, ``sam``, ``usam``, ``random_sam``), ``rho``,
    ``m`` (``None`` = n-SAM), and optionally ``switch_to`` (another variant
    name) with ``switch_epoch`` (a float; the switch happens at update
    ``round(switch_epoch · steps_per_epoch)``). ``finetune_from``: a
    checkpoint whose parameters and BatchNorm statistics initialize the run.

    Optimization: ``epochs``, ``batch_size`` (global), ``lr``, ``schedule``
    (``piecewise``: ×0.1 at 50% and 75% of training; ``cosine``;
    ``constant``), ``warmup_epochs``, ``momentum``, ``weight_decay`` (L2 in
    the gradient, never perturbed).

    Model: ``width``, ``norm`` (``batch`` / ``group``), ``preact``, ``bf16``.
    Augmentation: ``augment`` (random ``crop_pad``-pixel crops), ``flip``.
    ``seed`` ([rng]); ``eval_batch_size``.
    """

    dataset: str = "synthetic"
    data_dir: str | None = None
    label_noise: float = 0.0
    synthetic_train: int = 512
    synthetic_test: int = 256
    variant: str = "sam"
    rho: float = 0.05
    m: int | None = None
    switch_to: str | None = None
    switch_epoch: float | None = None
    finetune_from: str | None = None
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    schedule: str = "piecewise"
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    width: float = 1.0
    norm: str = "batch"
    preact: bool = False
    bf16: bool = True
    augment: bool = True
    flip: bool = True
    crop_pad: int = 4
    seed: int = 0
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not _is_number(self.label_noise) or not 0 <= self.label_noise < 1:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise!r}")
        for name in ("synthetic_train", "synthetic_test", "epochs", "batch_size", "eval_batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not _is_number(self.rho) or self.rho < 0:
            raise ValueError(f"rho must be a finite number >= 0, got {self.rho!r}")
        if self.m is not None and (not _is_int(self.m) or self.m < 1 or self.batch_size % self.m):
            raise ValueError(f"m must be None or a positive divisor of batch_size={self.batch_size}, got {self.m!r}")
        if (self.switch_to is None) != (self.switch_epoch is None):
            raise ValueError("switch_to and switch_epoch must be given together")
        if self.switch_to is not None:
            if self.switch_to not in VARIANTS:
                raise ValueError(f"switch_to must be one of {VARIANTS}, got {self.switch_to!r}")
            if not _is_number(self.switch_epoch) or not 0 <= self.switch_epoch <= self.epochs:
                raise ValueError(f"switch_epoch must be in [0, epochs={self.epochs}], got {self.switch_epoch!r}")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not _is_number(self.warmup_epochs) or not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs!r}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not _is_int(self.crop_pad) or self.crop_pad < 0:
            raise ValueError(f"crop_pad must be an integer >= 0, got {self.crop_pad!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("preact", "bf16", "augment", "flip"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        # width is checked by ResNetConfig with the real number of classes.
        ResNetConfig(width=self.width, norm=self.norm, preact=self.preact, bf16=self.bf16)

    def model_config(self, num_classes: int) -> ResNetConfig:
        """The architecture, given the data set's number of classes."""
        return ResNetConfig(num_classes=num_classes, width=self.width, norm=self.norm, preact=self.preact, bf16=self.bf16)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"values has unknown config fields {unknown}")
        return cls(**dict(values))


class RunResult(NamedTuple):
    """What :func:`train` returns: the final state (host NumPy arrays), per-epoch metrics and the summary."""

    state: TrainState
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | None


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """``n_train // batch_size`` (the remainder of each permutation is skipped); ValueError if 0."""
    if n_train < batch_size:
        raise ValueError(f"batch_size must be <= the number of training examples {n_train}, got {batch_size}")
    return n_train // batch_size


def switch_step(config: TrainConfig, spe: int) -> int | None:
    """The first update that uses ``switch_to``, or ``None`` without a switch."""
    if config.switch_epoch is None:
        return None
    return int(round(config.switch_epoch * spe))


def _variant_names(config: TrainConfig) -> tuple[str, ...]:
    return (config.variant,) if config.switch_epoch is None else (config.variant, config.switch_to)


def variant_schedule(config: TrainConfig, spe: int) -> VariantSchedule:
    """The run's variants as a :class:`samtheory.train.VariantSchedule` (update steps, 0-based).

    Conventions: [rho-sam], [m], [record].
    """
    variants = tuple(make_variant(name, config.rho, config.m) for name in _variant_names(config))
    at = switch_step(config, spe)
    return VariantSchedule(variants, () if at is None else (at,))


def variant_at_step(config: TrainConfig, step: int, spe: int) -> str:
    """Name of the variant of update ``step`` (0-based), as :func:`variant_schedule` picks it. Conventions: [rho-sam]."""
    return _variant_names(config)[variant_schedule(config, spe).index_at(step)]


# --------------------------------------------------------------------------
# Compiled programs, shared between runs with the same shapes and hyperparameters
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """The learning-rate schedule and SGD of a run, in steps; hashable, so it keys the compiled programs.

    The one translation of a :class:`TrainConfig`'s epochs into steps for
    the optimizer, shared by :func:`train` and the populations of
    :mod:`samtheory.nn.population`.
    """

    schedule: str
    lr: float
    total_steps: int
    warmup_steps: int
    momentum: float
    weight_decay: float

    @classmethod
    def of(cls, config: TrainConfig, spe: int) -> OptimizerSpec:
        """The optimizer of ``config`` at ``spe`` steps per epoch."""
        return cls(
            schedule=config.schedule, lr=float(config.lr), total_steps=config.epochs * spe,
            warmup_steps=int(round(config.warmup_epochs * spe)), momentum=float(config.momentum),
            weight_decay=float(config.weight_decay),
        )

    def build(self):
        """``(schedule, optimizer)``: :func:`make_schedule` and :func:`make_optimizer` of these settings."""
        schedule = make_schedule(self.schedule, self.lr, self.total_steps, warmup_steps=self.warmup_steps)
        return schedule, make_optimizer(schedule, momentum=self.momentum, weight_decay=self.weight_decay)


@dataclasses.dataclass(frozen=True)
class _ProgramSpec:
    model: ResNetConfig
    variant: Variant
    optimizer: OptimizerSpec
    batch_size: int
    spe: int
    n_train: int
    image_shape: tuple[int, ...]
    augment: bool
    flip: bool
    crop_pad: int
    mesh: Mesh
    compiler_options: tuple[tuple[str, Any], ...]


@functools.lru_cache(maxsize=32)
def _segment_program(spec: _ProgramSpec):
    """jit of ``run(state, sums, x, y, perm, stop, keys, mean, std) -> (state, sums, bad_step)``."""
    model = build_model(spec.model)
    _, optimizer = spec.optimizer.build()
    m = spec.variant.m
    step_fn = make_train_step(
        model, spec.variant, optimizer,
        constrain_chunks=chunk_constraint(spec.mesh, spec.batch_size // m) if m else None,
    )
    constrain = batch_constraint(spec.mesh)
    batch_size, spe = spec.batch_size, spec.spe

    def run(state, sums, x, y, perm, stop, keys, mean, std):
        augment_key, perturb_key = keys

        def cond(carry):
            state, _, bad = carry
            return (state.step < stop) & (bad < 0)

        def body(carry):
            state, (loss_sum, correct, count), _ = carry
            t = state.step
            index = jax.lax.dynamic_slice(perm, ((t % spe) * batch_size,), (batch_size,))
            images, labels = constrain((x[index], y[index]))
            if spec.augment:
                images = random_crop_flip(
                    jax.random.fold_in(augment_key, t), images, pad=spec.crop_pad, flip=spec.flip
                )
            images = normalize_images(images, mean, std)
            new_state, report = step_fn(state, (images, labels), jax.random.fold_in(perturb_key, t))
            bad = jnp.where(jnp.isfinite(report.loss), -1, t).astype(jnp.int32)
            sums = (loss_sum + report.loss, correct + report.correct, count + 1)
            return new_state, sums, bad

        return jax.lax.while_loop(cond, body, (state, sums, jnp.int32(-1)))

    replicated = replicated_sharding(spec.mesh)
    return jax.jit(
        run,
        donate_argnums=(0, 1),
        out_shardings=replicated,
        compiler_options=dict(spec.compiler_options) or None,
    )


@functools.lru_cache(maxsize=8)
def _evaluator(model_config: ResNetConfig, mean: tuple[float, ...], std: tuple[float, ...]):
    return make_evaluator(build_model(model_config), np.asarray(mean, np.float32), np.asarray(std, np.float32))


@functools.lru_cache(maxsize=8)
def _permutation_program(n: int, mesh: Mesh):
    """jit of ``(key, epoch) -> the epoch's permutation of range(n)``, replicated on ``mesh``."""
    return jax.jit(
        lambda key, epoch: jax.random.permutation(jax.random.fold_in(key, epoch), n).astype(jnp.int32),
        out_shardings=replicated_sharding(mesh),
    )


def _run_keys(seed: int) -> dict[str, jax.Array]:
    base = jax.random.PRNGKey(seed)
    tags = {"init": _INIT, "permutation": _PERMUTATION, "augment": _AUGMENT, "perturb": _PERTURB}
    return {name: jax.random.fold_in(base, tag) for name, tag in tags.items()}


# --------------------------------------------------------------------------
# Helpers of train()
# --------------------------------------------------------------------------


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Sequence[str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def _initial_params(config: TrainConfig, model_config: ResNetConfig, image_shape, init_key) -> tuple[Any, Any]:
    params, batch_stats = init_variables(model_config, init_key, image_shape)
    if config.finetune_from is None:
        return params, batch_stats
    source = ckpt.load_checkpoint(config.finetune_from)
    template = {"params": params, "batch_stats": batch_stats}
    loaded = {"params": source.state["params"], "batch_stats": source.state.get("batch_stats", {}) or {}}
    try:
        ckpt.check_fits(template, loaded, config.finetune_from)
    except ckpt.CheckpointError as err:
        raise ValueError(f"finetune_from does not fit this model: {err}") from err
    restored = jax.tree.unflatten(jax.tree.structure(template), jax.tree.leaves(loaded))
    return restored["params"], restored["batch_stats"]


def _same_variants_before(source: TrainConfig, target: TrainConfig, steps: int, spe: int) -> bool:
    # Each schedule changes variant at most once, so comparing around the
    # change points and at both ends compares every step before `steps`.
    points = {0, steps - 1}
    for cfg in (source, target):
        at = switch_step(cfg, spe)
        if at is not None:
            points |= {at - 1, at}
    return all(
        variant_at_step(source, t, spe) == variant_at_step(target, t, spe) for t in points if 0 <= t < steps
    )


def _training_data(config: TrainConfig, dataset: ArrayDataset | None) -> ArrayDataset:
    if dataset is None:
        dataset = load_dataset(
            config.dataset, config.data_dir, label_noise=config.label_noise, seed=config.seed,
            synthetic_train=config.synthetic_train, synthetic_test=config.synthetic_test,
        )
    elif config.label_noise:
        dataset = with_label_noise(dataset, config.label_noise, config.seed)
    if dataset.x_train.dtype != np.uint8 or dataset.x_train.ndim != 4:
        raise ValueError(f"dataset must hold uint8 NHWC images, got {dataset.x_train.dtype} {dataset.x_train.shape}")
    if dataset.n_test == 0:
        raise ValueError("dataset must have a test split")
    return dataset


def _starting_point(
    fresh: TrainState, config: TrainConfig, checkpoint_path: Path | None, branch_from, spe: int
) -> tuple[TrainState, list[dict[str, Any]], int, Any]:
    """``(state, metrics, completed epochs, branched_from)``: resumed, branched or fresh."""
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), fresh)
    config_dict = config.to_dict()
    if checkpoint_path is not None and checkpoint_path.exists():
        saved = ckpt.load_checkpoint(checkpoint_path, template)
        differ = _differences(saved.config, config_dict, _RESUMABLE_DIFFERENCES)
        if differ:
            raise ValueError(f"the checkpoint in out_dir {checkpoint_path.parent} is of another config (fields {differ})")
        return saved.state, list(saved.metrics), saved.epoch, saved.meta.get("branched_from")
    if branch_from is not None:
        saved = ckpt.load_checkpoint(branch_from, template)
        differ = _differences(saved.config, config_dict, _BRANCHABLE_DIFFERENCES)
        if differ:
            raise ValueError(f"branch_from {branch_from} is of a run with other fields {differ}")
        if not _same_variants_before(TrainConfig.from_dict(saved.config), config, saved.epoch * spe, spe):
            raise ValueError(f"branch_from {branch_from} used other variants before epoch {saved.epoch}")
        return saved.state, list(saved.metrics), saved.epoch, {"checkpoint": str(branch_from), "epoch": saved.epoch}
    return fresh, [], 0, None


def _epoch_segments(start: int, stop: int, segment_steps: int, cut: int | None) -> list[tuple[int, int]]:
    bounds = set(range(start, stop, segment_steps)) | {stop}
    if cut is not None and start < cut < stop:
        bounds.add(cut)
    edges = sorted(bounds)
    return list(zip(edges[:-1], edges[1:]))


def _epoch_variant_label(config: TrainConfig, start: int, stop: int, spe: int) -> str:
    first, last = variant_at_step(config, start, spe), variant_at_step(config, stop - 1, spe)
    return first if first == last else f"{first}->{last}"


def _progress_bars(enabled: bool, epochs: int, start_epoch: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=start_epoch, desc=desc, unit="epoch", dynamic_ncols=True)


# --------------------------------------------------------------------------
# train()
# --------------------------------------------------------------------------


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    dataset: ArrayDataset | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    segment_steps: int = 100,
    keep_epochs: Sequence[int] = (),
    branch_from: str | os.PathLike[str] | None = None,
    stop_after_epoch: int | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    run_name: str | None = None,
) -> RunResult:
    """Train one configuration; see the module docstring.

    Args:
      config: the run.
      out_dir: where ``checkpoint.msgpack`` (every epoch), ``metrics.jsonl``
        and ``result.json`` go; ``None`` keeps nothing on disk.
      resume: continue from ``out_dir``'s checkpoint if there is one (its
        config must equal ``config`` up to ``data_dir``). Without it, an
        existing checkpoint is an error rather than silently overwritten.
      dataset: use this data set instead of loading ``config.dataset``
        (label noise is still applied).
      mesh: devices to run on (default: all, :func:`parallel.data_mesh`).
      progress: tqdm bars over epochs and steps (stderr).
      segment_steps: steps per compiled call between host checks; does not
        change the result.
      keep_epochs: also keep ``checkpoint_epochNNNN.msgpack`` after these epochs.
      branch_from: start from a checkpoint of a run that differs from
        ``config`` only in the variant schedule and agrees with it on every
        update before the checkpoint (e.g. ERM-only at epoch k for ERM → SAM
        at k). Since every key depends only on the step, the result is
        bitwise that of training from scratch; the switching study uses it
        to skip the shared prefix.
      stop_after_epoch: return after this many completed epochs, as if
        killed (for tests of resuming).
      compiler_options: XLA options for the step program, e.g.
        ``{"xla_backend_optimization_level": 0}`` for fast CPU compiles in
        smoke tests.
      run_name: label of the progress bar and the result.

    Returns:
      :class:`RunResult`.

    Raises:
      ValueError: inconsistent arguments, a checkpoint of another config.
      DivergenceError: a non-finite training or test loss (names epoch and step).

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [label-noise].
    """
    wall_start = time.perf_counter()
    if not _is_int(segment_steps) or segment_steps < 1:
        raise ValueError(f"segment_steps must be an integer >= 1, got {segment_steps!r}")
    if resume and out_dir is None:
        raise ValueError("out_dir is required to resume")
    config_dict = config.to_dict()
    out_path = Path(out_dir) if out_dir is not None else None
    checkpoint_path = out_path / CHECKPOINT_NAME if out_path is not None else None

    dataset = _training_data(config, dataset)
    mesh = data_mesh() if mesh is None else mesh
    check_batch_layout(config.batch_size, config.m, mesh.size)
    spe = steps_per_epoch(dataset.n_train, config.batch_size)
    total_steps = config.epochs * spe
    at_switch = switch_step(config, spe)
    image_shape = tuple(int(d) for d in dataset.input_shape)
    model_config = config.model_config(dataset.num_classes)
    mean, std = channel_stats(dataset.x_train)
    keys = _run_keys(config.seed)

    variants = variant_schedule(config, spe)

    def spec_for(variant: Variant) -> _ProgramSpec:
        return _ProgramSpec(
            model=model_config, variant=variant, optimizer=optimizer_spec, batch_size=config.batch_size, spe=spe, n_train=dataset.n_train, image_shape=image_shape,
            augment=config.augment, flip=config.flip, crop_pad=config.crop_pad, mesh=mesh,
            compiler_options=tuple(sorted((compiler_options or {}).items())),
        )

    optimizer_spec = OptimizerSpec.of(config, spe)
    schedule, optimizer = optimizer_spec.build()

    # ---- the starting state: fresh, finetuned, resumed or branched --------
    params, batch_stats = _initial_params(config, model_config, image_shape, keys["init"])
    state = init_train_state(params, batch_stats, optimizer)
    if checkpoint_path is not None and checkpoint_path.exists() and not resume:
        raise ValueError(f"out_dir {out_path} already holds a checkpoint; pass resume=True or another out_dir")
    state, metrics, start_epoch, branched_from = _starting_point(state, config, checkpoint_path, branch_from, spe)
    state = replicate(state, mesh)

    # ---- data and programs -------------------------------------------------
    x_train, y_train = replicate((dataset.x_train, dataset.y_train), mesh)
    test_set: EvalSet = make_eval_set(dataset.x_test, dataset.y_test, config.eval_batch_size, mesh)
    evaluate = _evaluator(model_config, tuple(map(float, mean)), tuple(map(float, std)))
    mean_d, std_d = replicate((mean, std), mesh)
    run_keys = replicate((keys["augment"], keys["perturb"]), mesh)
    sums0 = lambda: replicate((np.float32(0), np.int32(0), np.int32(0)), mesh)  # noqa: E731
    permutation = _permutation_program(dataset.n_train, mesh)
    perm0 = permutation(keys["permutation"], np.int32(0))
    names = _variant_names(config)
    used = sorted({variants.index_at(t) for t in (start_epoch * spe, total_steps - 1)}
                  if start_epoch < config.epochs else ())
    programs, compile_s = {}, {}
    for i in used:  # compile ahead of time, so epoch times exclude compilation
        started = time.perf_counter()
        programs[i] = _segment_program(spec_for(variants.variants[i])).lower(
            state, sums0(), x_train, y_train, perm0, np.int32(0), run_keys, mean_d, std_d
        ).compile()
        compile_s[names[i]] = time.perf_counter() - started

    # On several hosts every process computes the same replicated state; one writes it.
    writes = out_path is not None and jax.process_index() == 0
    if writes:
        out_path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_path / "config.json", config_dict)
    label = run_name or (out_path.name if out_path is not None else config.variant)
    bar = _progress_bars(progress, config.epochs, start_epoch, label)
    try:
        for epoch in range(start_epoch, config.epochs):
            epoch_start = time.perf_counter()
            first, stop = epoch * spe, (epoch + 1) * spe
            perm = permutation(keys["permutation"], np.int32(epoch))
            sums = sums0()
            step_bar = None
            if bar is not None:
                from tqdm.auto import tqdm

                step_bar = tqdm(total=spe, desc=f"epoch {epoch + 1}", unit="step", leave=False, dynamic_ncols=True)
            for a, b in _epoch_segments(first, stop, segment_steps, at_switch):
                which = variants.index_at(a)
                state, sums, bad = programs[which](state, sums, x_train, y_train, perm, np.int32(b), run_keys, mean_d, std_d)
                bad = int(bad)
                if bad >= 0:
                    raise DivergenceError(
                        f"non-finite training loss at epoch {epoch + 1}, step {bad - first + 1} of {spe} "
                        f"(update {bad}, variant {names[which]}); last good checkpoint: epoch {epoch}"
                    )
                if step_bar is not None:
                    step_bar.update(b - a)
            if step_bar is not None:
                step_bar.close()
            loss_sum, correct, count = (float(v) for v in to_host(sums))
            train_s = time.perf_counter() - epoch_start
            test_loss, test_acc = (float(v) for v in evaluate(state.params, state.batch_stats, test_set))
            if not math.isfinite(test_loss):
                raise DivergenceError(f"non-finite test loss after epoch {epoch + 1} (update {stop})")
            record = {
                "epoch": epoch + 1,
                "step": stop,
                "variant": _epoch_variant_label(config, first, stop, spe),
                "lr": float(schedule(jnp.int32(stop - 1))),
                "train_loss": loss_sum / count,
                "train_acc": correct / (count * config.batch_size),
                "test_loss": test_loss,
                "test_acc": test_acc,
                "test_error": 1.0 - test_acc,
                "train_s": train_s,
                "steps_per_s": spe / train_s,
                "images_per_s": spe * config.batch_size / train_s,
            }
            record["time_s"] = time.perf_counter() - epoch_start
            metrics.append(record)
            if writes:
                meta = {"seed": config.seed, "branched_from": branched_from, "steps_per_epoch": spe}
                ckpt.save_checkpoint(checkpoint_path, state, epoch=epoch + 1, config=config_dict, metrics=metrics, meta=meta)
                if epoch + 1 in keep_epochs:
                    ckpt.save_checkpoint(
                        out_path / f"checkpoint_epoch{epoch + 1:04d}.msgpack", state, epoch=epoch + 1,
                        config=config_dict, metrics=metrics, meta=meta,
                    )
            if writes:
                write_jsonl(out_path / METRICS_NAME, metrics)
            if bar is not None:
                bar.set_postfix(test_err=f"{1 - test_acc:.4f}", loss=f"{loss_sum / count:.3f}")
                bar.update(1)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < config.epochs:
                return RunResult(to_host(state), metrics, {}, out_path)
    finally:
        if bar is not None:
            bar.close()

    host_state = to_host(state)
    summary = {
        "name": label,
        "config": config_dict,
        "final": metrics[-1] if metrics else {},
        "metrics": metrics,
        "best_test_acc": max((r["test_acc"] for r in metrics), default=None),
        "steps_per_epoch": spe,
        "switch_step": at_switch,
        "num_params": count_params(host_state.params),
        "devices": mesh.size,
        "compile_s": compile_s,
        "wall_s": time.perf_counter() - wall_start,
        "branched_from": branched_from,
        "dataset_info": {"name": dataset.name, "n_train": dataset.n_train, "n_test": dataset.n_test},
        "provenance": provenance(),
    }
    if writes:
        atomic_write_json(out_path / RESULT_NAME, summary)
    return RunResult(host_state, metrics, summary, out_path)
