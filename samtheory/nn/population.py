"""Population training: N independent runs vmapped into one compiled program on one device.

A switching study is many small runs that differ only in a few numbers:
the seed, ρ, the switch point, the label-noise rate. Here they are one
program: the state of every run (parameters, BatchNorm statistics,
optimizer state) gets a leading run axis, and one ``jax.vmap``-ed step
advances all of them. Each run keeps

* its own **data order and randomness** ([rng]): the keys of
  :func:`samtheory.nn.trainer.train` for its seed — initialization, the
  epoch permutation ``permutation(fold_in(key, epoch), n)``, augmentation
  and perturbation keys folded with the step;
* its own **labels**: the label noise of its ``label_noise`` and ``seed``
  ([label-noise]), and the mask of which labels are wrong;
* its own **variant schedule**: ρ of the update ``t`` is ``ρ₁`` for
  ``t < switch_step`` and ``ρ₂`` after, with ``ρ = 0`` for ERM
  (:func:`samtheory.nn.trainer.variant_schedule` gives the boundary and the
  variants). Under ``vmap`` a branch on the variant would run both
  branches, so the population runs every update as ``SAM(ρ_t)`` with a
  traced ``ρ_t``: at ``ρ_t = 0`` the perturbation is exactly 0 and the
  update is ERM's gradient evaluated at ``w + 0 = w``. A population in
  which no run ever perturbs compiles the one-pass ERM step instead.

The whole training — epochs, steps, and the per-epoch evaluation (clean
test error with running statistics; on the training set the accuracy on
the clean labels and the **fraction of wrong labels fitted**, i.e. noisy
examples predicted as their noisy label) — is one call of one compiled
program (``lax.fori_loop`` over epochs and steps). A population of one
run is the same program with a run axis of length 1, and each run of a
population ends bitwise where it ends alone (tested on CPU): no operation
mixes runs.

Runs share what the program's shapes and the optimizer depend on: the data
set, the architecture, epochs, batch size, the learning-rate schedule,
momentum, weight decay, augmentation and ``m``. :func:`check_population`
says which field differs.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [label-noise],
[float-nn].
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from samtheory.data import ArrayDataset, channel_stats, with_label_noise
from samtheory.errors import DivergenceError
from samtheory.nn.augment import normalize_images, random_crop_flip
from samtheory.nn.interpolation import batch_stats_on, interpolate_params
from samtheory.nn.resnet import ResNetConfig, apply_model, build_model, init_variables
from samtheory.nn.sam_step import TrainState, init_train_state, make_train_step
from samtheory.nn.trainer import OptimizerSpec, TrainConfig, _run_keys, steps_per_epoch, variant_schedule
from samtheory.sam import ERM, SAM

__all__ = [
    "RUN_FIELDS",
    "BATCHINGS",
    "PopulationData",
    "PopulationResult",
    "check_population",
    "population_data",
    "train_population",
    "interpolation_population",
]

#: The TrainConfig fields in which the runs of a population may differ.
RUN_FIELDS = ("seed", "rho", "variant", "switch_to", "switch_epoch", "label_noise", "finetune_from")
_POPULATION_VARIANTS = ("erm", "sam")
#: How the run axis is executed: one vmapped step, or lax.map (bitwise the runs alone).
BATCHINGS = ("vmap", "map")


def check_population(configs: Sequence[TrainConfig]) -> tuple[TrainConfig, ...]:
    """The configs as a tuple, if they can run as one population; else ``ValueError`` naming the field.

    Runs may differ only in :data:`RUN_FIELDS`; their variants must be
    ``erm`` or ``sam`` (the population's step is ``SAM(ρ_t)``).
    """
    configs = tuple(configs)
    if not configs:
        raise ValueError("configs must hold at least one run")
    for i, c in enumerate(configs):
        if not isinstance(c, TrainConfig):
            raise TypeError(f"configs[{i}] must be a TrainConfig, got {type(c).__name__}")
        for name in (c.variant, c.switch_to):
            if name is not None and name not in _POPULATION_VARIANTS:
                raise ValueError(f"configs[{i}].variant/switch_to must be one of {_POPULATION_VARIANTS}, got {name!r}")
    shared = configs[0].to_dict()
    for i, c in enumerate(configs[1:], start=1):
        differ = sorted(k for k, v in c.to_dict().items() if k not in RUN_FIELDS and shared[k] != v)
        if differ:
            raise ValueError(f"configs[{i}] differs from configs[0] in shared fields {differ}")
    return configs


class PopulationData(NamedTuple):
    """What the program reads, stacked over runs where runs differ (leading axis N)."""

    x_train: np.ndarray  # (n, H, W, C) uint8, shared
    y_train: np.ndarray  # (N, n) int32, each run's (noisy) labels
    noisy: np.ndarray  # (N, n) bool, label differs from the clean one
    clean_y_train: np.ndarray  # (n,) int32
    x_test: np.ndarray  # (n_test, H, W, C) uint8
    y_test: np.ndarray  # (n_test,) int32
    mean: np.ndarray
    std: np.ndarray
    num_classes: int


def population_data(configs: Sequence[TrainConfig], dataset: ArrayDataset) -> PopulationData:
    """Each run's labels (label noise drawn with its rate and seed, as :func:`trainer.train` does)."""
    if dataset.x_train.dtype != np.uint8 or dataset.x_train.ndim != 4:
        raise ValueError(f"dataset must hold uint8 NHWC images, got {dataset.x_train.dtype} {dataset.x_train.shape}")
    if dataset.clean_y_train is not None and not np.array_equal(dataset.clean_y_train, dataset.y_train):
        raise ValueError("dataset must carry clean labels (each run adds its own label noise)")
    clean = dataset.y_train.astype(np.int32)
    labels = []
    for c in configs:
        y = with_label_noise(dataset, c.label_noise, c.seed).y_train if c.label_noise else dataset.y_train
        labels.append(np.asarray(y, np.int32))
    y = np.stack(labels)
    mean, std = channel_stats(dataset.x_train)
    return PopulationData(
        dataset.x_train, y, y != clean[None], clean, dataset.x_test, dataset.y_test.astype(np.int32),
        mean, std, dataset.num_classes,
    )


class PopulationResult(NamedTuple):
    """Final states (host arrays, leading run axis) and per-epoch curves of shape ``(epochs, N)``.

    ``curves`` keys: ``train_loss`` (mean clean-pass loss over the epoch),
    ``test_error`` (clean test labels, running statistics),
    ``clean_train_error`` (training set against its clean labels),
    ``noisy_fit`` (fraction of the wrong labels predicted as given; NaN for
    runs without label noise). ``summary``: compile and run seconds,
    images/s summed over runs.
    """

    state: TrainState
    curves: dict[str, np.ndarray]
    summary: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Spec:
    model: ResNetConfig
    perturbs: bool
    m: int | None
    optimizer: OptimizerSpec
    batch_size: int
    spe: int
    n_train: int
    augment: bool
    flip: bool
    crop_pad: int
    eval_batch_size: int
    batching: str
    compiler_options: tuple[tuple[str, Any], ...]


def _eval_batches(n: int, size: int) -> tuple[int, int]:
    size = min(size, n)
    return -(-n // size), size


@functools.lru_cache(maxsize=16)
def _program(spec: _Spec):
    """jit of ``(states, settings, data, first_epoch, last_epoch) -> (states, curves, bad)``, vmapped over runs."""
    model = build_model(spec.model)
    _, optimizer = spec.optimizer.build()
    erm_step = None if spec.perturbs else make_train_step(model, ERM(), optimizer)
    bs, spe, n = spec.batch_size, spec.spe, spec.n_train

    def step_of(rho):
        return erm_step or make_train_step(model, SAM(rho, m=spec.m), optimizer)

    def predictions(params, stats, images, mean, std):
        """Eval-mode predictions of one run on ``images`` (k, b, H, W, C) -> (k, b)."""
        def one(x):
            logits, _ = apply_model(model, params, stats, normalize_images(x, mean, std), train=False)
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)

        return jax.lax.map(one, images)

    k_train, b_train = _eval_batches(n, spec.eval_batch_size)

    def _batched_train(x):
        pad = k_train * b_train - n
        padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        return padded.reshape(k_train, b_train, *x.shape[1:])

    def run_epoch(state, epoch, settings, y, noisy, x, x_test, y_test, mean, std, clean_y):
        """One run: one epoch of updates, then its evaluation."""
        perm_key, augment_key, perturb_key, rho_first, rho_second, switch = settings
        perm = jax.random.permutation(jax.random.fold_in(perm_key, epoch), n).astype(jnp.int32)

        def body(i, carry):
            state, loss_sum, bad = carry
            t = state.step
            index = jax.lax.dynamic_slice(perm, (i * bs,), (bs,))
            images, labels = x[index], y[index]
            if spec.augment:
                images = random_crop_flip(jax.random.fold_in(augment_key, t), images, pad=spec.crop_pad, flip=spec.flip)
            images = normalize_images(images, mean, std)
            rho = jnp.where(t < switch, rho_first, rho_second)
            state, report = step_of(rho)(state, (images, labels), jax.random.fold_in(perturb_key, t))
            bad = jnp.where((bad < 0) & ~jnp.isfinite(report.loss), t, bad)
            return state, loss_sum + report.loss, bad

        state, loss_sum, bad = jax.lax.fori_loop(0, spe, body, (state, jnp.float32(0), jnp.int32(-1)))
        pred_test = predictions(state.params, state.batch_stats, x_test, mean, std).reshape(-1)[: y_test.shape[0]]
        pred_train = predictions(state.params, state.batch_stats, _batched_train(x), mean, std).reshape(-1)[:n]
        test_error = jnp.mean(pred_test != y_test)
        clean_train_error = jnp.mean(pred_train != clean_y)
        fitted = jnp.sum(noisy & (pred_train == y))
        noisy_count = jnp.sum(noisy)
        noisy_fit = jnp.where(noisy_count > 0, fitted / jnp.maximum(noisy_count, 1), jnp.nan)
        row = jnp.stack([loss_sum / spe, test_error, clean_train_error, noisy_fit]).astype(jnp.float32)
        return state, row, bad

    if spec.batching == "vmap":
        population_epoch = jax.vmap(run_epoch, in_axes=(0, None, 0, 0, 0, None, None, None, None, None, None))
    else:  # "map": the runs one after another inside the program, each computed exactly as alone
        def population_epoch(states, e, settings, y, noisy, *shared):
            return jax.lax.map(lambda per_run: run_epoch(per_run[0], e, per_run[1], per_run[2], per_run[3], *shared),
                               (states, settings, y, noisy))

    def run(states, settings, y, noisy, x, x_test, y_test, mean, std, clean_y, first_epoch, last_epoch):
        num_runs = y.shape[0]

        def epoch_body(e, carry):
            states, table, bad = carry
            states, row, bad_e = population_epoch(states, e, settings, y, noisy, x, x_test, y_test, mean, std, clean_y)
            table = jax.lax.dynamic_update_index_in_dim(table, row, e - first_epoch, axis=0)
            bad = jnp.where(bad < 0, bad_e, bad)
            return states, table, bad

        table = jnp.full((spec.optimizer.total_steps // spe, num_runs, 4), jnp.nan, jnp.float32)
        bad = jnp.full((num_runs,), -1, jnp.int32)
        return jax.lax.fori_loop(first_epoch, last_epoch, epoch_body, (states, table, bad))

    return jax.jit(run, donate_argnums=(0,), compiler_options=dict(spec.compiler_options) or None)


@functools.lru_cache(maxsize=8)
def _compiled(spec: _Spec, treedef, avals: tuple) -> Any:
    """The executable of :func:`_program` for inputs of these shapes and dtypes (compiled once per key).

    Compiled ahead of time so that :func:`train_population` can report compiling apart from running;
    the key is the whole input signature, so a cached executable always fits its call.
    """
    return _program(spec).lower(*jax.tree.unflatten(treedef, avals)).compile()


def _settings(configs: Sequence[TrainConfig], spe: int, total_steps: int) -> tuple[np.ndarray, ...]:
    """Per run: permutation, augmentation and perturbation keys; ρ before and after the switch; the switch step."""
    perm, augment, perturb, rho1, rho2, switch = [], [], [], [], [], []
    for c in configs:
        keys = _run_keys(c.seed)
        perm.append(np.asarray(keys["permutation"]))
        augment.append(np.asarray(keys["augment"]))
        perturb.append(np.asarray(keys["perturb"]))
        schedule = variant_schedule(c, spe)
        rhos = [float(v.rho) if v.perturbs else 0.0 for v in schedule.variants]
        rho1.append(rhos[0])
        rho2.append(rhos[-1])
        switch.append(int(schedule.boundaries[0]) if schedule.boundaries else total_steps)
    return (np.stack(perm), np.stack(augment), np.stack(perturb), np.asarray(rho1, np.float32),
            np.asarray(rho2, np.float32), np.asarray(switch, np.int32))


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *trees)


def train_population(
    configs: Sequence[TrainConfig],
    dataset: ArrayDataset,
    *,
    initial: Sequence[tuple[Any, Any]] | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    batching: str = "vmap",
    stage_blocks: tuple[int, int, int, int] | None = None,
) -> PopulationResult:
    """Train every config of ``configs`` at once (see the module docstring); one compiled call.

    Args:
      configs: the runs (:func:`check_population` says what may differ).
      dataset: clean data set (each run draws its own label noise).
      initial: per run ``(params, batch_stats)`` to start from instead of
        its fresh initialization (finetuning: a fresh optimizer and schedule,
        as ``finetune_from`` in :func:`trainer.train`).
      compiler_options: XLA options (e.g. ``samtheory.nn.cli.FAST_COMPILE``).
      names: labels of the runs in errors (default ``run i``).
      batching: ``"vmap"`` (one batched step for all runs: the fast one) or
        ``"map"`` (``lax.map`` over runs inside the same program: each run
        is computed exactly as alone, bitwise, but the runs do not share
        kernels).
      stage_blocks: residual blocks per stage of the network (default: the
        configs' ResNet-18; see :class:`samtheory.nn.resnet.ResNetConfig`).

    Raises:
      ValueError: configs that cannot share a program, ``initial`` of the wrong length.
      DivergenceError: a non-finite training loss, naming the run, epoch and update.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [label-noise].
    """
    configs = check_population(configs)
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {BATCHINGS}, got {batching!r}")
    names = list(names) if names is not None else [f"run {i}" for i in range(len(configs))]
    if len(names) != len(configs):
        raise ValueError(f"names must have one entry per run ({len(configs)}), got {len(names)}")
    if initial is not None and len(initial) != len(configs):
        raise ValueError(f"initial must have one (params, batch_stats) per run ({len(configs)}), got {len(initial)}")
    base = configs[0]
    data = population_data(configs, dataset)
    spe = steps_per_epoch(len(data.x_train), base.batch_size)
    total_steps = base.epochs * spe
    if base.m is not None and base.batch_size % base.m:
        raise ValueError(f"m must divide batch_size={base.batch_size}, got {base.m}")
    settings = _settings(configs, spe, total_steps)
    model_config = base.model_config(data.num_classes)
    if stage_blocks is not None:
        model_config = dataclasses.replace(model_config, stage_blocks=tuple(stage_blocks))
    image_shape = tuple(int(d) for d in data.x_train.shape[1:])
    spec = _Spec(
        model=model_config, perturbs=bool(np.any(settings[3] > 0) or np.any(settings[4] > 0)), m=base.m,
        optimizer=OptimizerSpec.of(base, spe), batch_size=base.batch_size, spe=spe, n_train=len(data.x_train),
        augment=base.augment, flip=base.flip, crop_pad=base.crop_pad, eval_batch_size=base.eval_batch_size,
        batching=batching, compiler_options=tuple(sorted((compiler_options or {}).items())),
    )
    _, optimizer = spec.optimizer.build()
    starts = []
    for i, c in enumerate(configs):
        params, stats = init_variables(model_config, _run_keys(c.seed)["init"], image_shape)
        if initial is not None:
            params, stats = (jax.tree.map(lambda fresh, given: np.asarray(given, fresh.dtype).reshape(fresh.shape),
                                          t, g) for t, g in zip((params, stats), initial[i]))
        starts.append(init_train_state(params, stats, optimizer))
    states = _stack(starts)
    k_test, b_test = _eval_batches(len(data.y_test), spec.eval_batch_size)
    pad = k_test * b_test - len(data.y_test)
    x_test = np.concatenate([data.x_test, np.zeros((pad, *data.x_test.shape[1:]), np.uint8)]).reshape(
        k_test, b_test, *data.x_test.shape[1:])
    args = (settings, data.y_train, data.noisy, data.x_train, x_test, data.y_test, data.mean, data.std,
            data.clean_y_train)
    leaves, treedef = jax.tree.flatten((states, *args, np.int32(0), np.int32(base.epochs)))
    started = time.perf_counter()
    compiled = _compiled(spec, treedef, tuple(jax.ShapeDtypeStruct(np.shape(v), jnp.result_type(v)) for v in leaves))
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    states, table, bad = compiled(states, *args, np.int32(0), np.int32(base.epochs))
    table, bad = np.asarray(table), np.asarray(bad)
    run_s = time.perf_counter() - started
    for i in np.flatnonzero(bad >= 0):
        t = int(bad[i])
        raise DivergenceError(
            f"non-finite training loss in {names[i]} at epoch {t // spe + 1}, step {t % spe + 1} of {spe} (update {t})"
        )
    curves = {k: table[:, :, j] for j, k in enumerate(("train_loss", "test_error", "clean_train_error", "noisy_fit"))}
    images = total_steps * base.batch_size * len(configs)
    summary = {"compile_s": compile_s, "run_s": run_s, "num_runs": len(configs), "steps_per_epoch": spe,
               "images_per_s": images / run_s, "perturbs": spec.perturbs}
    return PopulationResult(jax.device_get(states), curves, summary)


@functools.lru_cache(maxsize=8)
def _interpolation_program(model_config: ResNetConfig):
    model = build_model(model_config)

    def one(params_a, params_b, stats_template, alpha, x_stats, x_train, y_train, x_test, y_test, mean, std):
        params = interpolate_params(params_a, params_b, alpha)
        stats = batch_stats_on(model_config, params, stats_template, x_stats, mean, std)

        def errors(images, labels):
            def batch(xy):
                logits, _ = apply_model(model, params, stats, normalize_images(xy[0], mean, std), train=False)
                return jnp.sum(jnp.argmax(logits, -1) != xy[1])

            return jnp.sum(jax.lax.map(batch, (images, labels))) / labels.size

        return jnp.stack([errors(x_train, y_train), errors(x_test, y_test)])

    over_alpha = jax.vmap(one, in_axes=(None, None, None, 0, None, None, None, None, None, None, None))
    over_pairs = jax.vmap(over_alpha, in_axes=(0, 0, 0, None, None, None, 0, None, None, None, None))
    return jax.jit(over_pairs)


def interpolation_population(
    model_config: ResNetConfig,
    params_a: Any,
    params_b: Any,
    batch_stats: Any,
    alphas: Sequence[float],
    data: PopulationData,
    *,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Train (given labels) and clean test error along ``(1 − α) w_A + α w_B`` for N pairs at once.

    ``params_a``, ``params_b`` and ``batch_stats`` (the structure; values
    unused) have a leading pair axis N; ``data.y_train`` gives each pair's
    training labels. BatchNorm statistics are recomputed at every α from
    the training images in full batches of ``batch_size``, without
    augmentation (:func:`samtheory.nn.interpolation.batch_stats_on`).
    Returns ``train_error`` and ``test_error`` of shape ``(N, len(alphas))``.
    Conventions: [loss-mean].
    """
    n = len(data.x_train)
    k = n // batch_size
    if k == 0:
        raise ValueError(f"batch_size must be <= the number of training examples {n}, got {batch_size}")
    x_train = data.x_train[: k * batch_size].reshape(k, batch_size, *data.x_train.shape[1:])
    y_train = data.y_train[:, : k * batch_size].reshape(len(data.y_train), k, batch_size)
    k_test = len(data.y_test) // batch_size
    if k_test == 0:
        raise ValueError(f"batch_size must be <= the number of test examples {len(data.y_test)}, got {batch_size}")
    x_test = data.x_test[: k_test * batch_size].reshape(k_test, batch_size, *data.x_test.shape[1:])
    y_test = data.y_test[: k_test * batch_size].reshape(k_test, batch_size)
    out = _interpolation_program(model_config)(
        params_a, params_b, batch_stats, jnp.asarray(alphas, jnp.float32), x_train, x_train, y_train, x_test,
        y_test, data.mean, data.std,
    )
    out = np.asarray(out)
    if not np.all(np.isfinite(out)):
        raise DivergenceError("non-finite error along the interpolation path")
    return {"train_error": out[..., 0], "test_error": out[..., 1]}
