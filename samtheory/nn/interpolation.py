"""Train and test loss along the straight line between two trained networks.

For ``α`` in a grid on ``[0, 1]`` the parameters are ``(1 − α) w_A + α w_B``
(every parameter, norm scales and biases included) and the network is
evaluated on a fixed subset of the training set and on the test set
([loss-mean]). A barrier-free path (the losses stay near those of the end
points) means the two solutions are linearly connected, as Andriushchenko &
Flammarion report for an ERM solution and its SAM finetuning.

**BatchNorm statistics are recomputed at every α** from training data
(inference-mode forward passes need them, and the average of the two end
points' running statistics is not the statistics of the averaged network:
using it shows a spurious barrier). They are the mean over the full batches
of the training subset, without augmentation, of each batch's mean and
(biased) variance, computed with a copy of the model whose BatchNorm
momentum is 0. GroupNorm networks have no statistics; nothing is recomputed.

Conventions: [loss-mean], [float-nn].
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from samtheory.data import ArrayDataset, channel_stats
from samtheory.nn import checkpoint as ckpt
from samtheory.nn.augment import normalize_images
from samtheory.nn.datasets import load_dataset
from samtheory.nn.metrics import EvalSet, make_eval_set
from samtheory.nn.parallel import data_mesh, replicate
from samtheory.nn.resnet import ResNetConfig, apply_model, build_model
from samtheory.nn.trainer import TrainConfig, _evaluator

__all__ = ["interpolate_params", "batch_stats_on", "recompute_batch_stats", "interpolate_checkpoints"]


def interpolate_params(a: Any, b: Any, alpha: float | jax.Array) -> Any:
    """``(1 − α) a + α b`` leafwise, in the dtype of ``a``."""
    return jax.tree.map(lambda x, y: ((1 - alpha) * x + alpha * y).astype(jnp.result_type(x)), a, b)


_interpolate = jax.jit(interpolate_params)


def batch_stats_on(model_config: ResNetConfig, params: Any, batch_stats: Any, images: jax.Array, mean: Any, std: Any) -> Any:
    """BatchNorm statistics of ``params``: the mean over the batches ``images`` (k, b, H, W, C) of each batch's.

    Pure and vmappable (the population's interpolation vmaps it over α and
    over pairs of runs); ``batch_stats`` gives the structure only. Uses a
    copy of the model with BatchNorm momentum 0, so a training-mode pass
    returns the batch's own mean and biased variance.
    """
    model = build_model(dataclasses.replace(model_config, bn_momentum=0.0))

    def add_batch(total, x):
        _, stats = apply_model(model, params, batch_stats, normalize_images(x, mean, std), train=True)
        return jax.tree.map(jnp.add, total, stats), None

    zeros = jax.tree.map(jnp.zeros_like, batch_stats)
    total, _ = jax.lax.scan(add_batch, zeros, images)
    return jax.tree.map(lambda s: s / images.shape[0], total)


@functools.lru_cache(maxsize=8)
def _recompute_program(model_config: ResNetConfig):
    return jax.jit(functools.partial(batch_stats_on, model_config))


def recompute_batch_stats(
    model_config: ResNetConfig, params: Any, batch_stats: Any, batches: EvalSet, mean: Any, std: Any
) -> Any:
    """BatchNorm statistics of ``params`` on ``batches`` (full batches only); ``{}`` stays ``{}``.

    ``batch_stats`` gives the structure (its values are not used).
    Raises ``ValueError`` naming ``batches`` if any batch is padded.
    """
    if not batch_stats:
        return batch_stats
    if batches.count != batches.labels.shape[0] * batches.labels.shape[1]:
        raise ValueError("batches must consist of full batches (a padded batch would bias the statistics)")
    return _recompute_program(model_config)(params, batch_stats, batches.images, mean, std)


def _load_end_point(path: str | os.PathLike[str]) -> tuple[TrainConfig, dict, dict]:
    loaded = ckpt.load_checkpoint(path)
    config = TrainConfig.from_dict(loaded.config)
    return config, loaded.state["params"], loaded.state.get("batch_stats", {}) or {}


def interpolate_checkpoints(
    checkpoint_a: str | os.PathLike[str],
    checkpoint_b: str | os.PathLike[str],
    *,
    alphas: Sequence[float] = tuple(np.linspace(0.0, 1.0, 11)),
    dataset: ArrayDataset | None = None,
    data_dir: str | None = None,
    train_examples: int = 10_000,
    batch_size: int = 500,
    mesh: Mesh | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Losses and accuracies along the segment from checkpoint A (α = 0) to B (α = 1).

    The data set is A's (``dataset`` overrides it, ``data_dir`` overrides
    where it is read from); the training subset is the first
    ``train_examples`` (rounded down to whole batches) of a fixed
    permutation, labelled as in training (label noise included).

    Returns a dict of lists: ``alpha``, ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, and ``bn_recomputed`` (bool), ``checkpoints``.
    Raises ``ValueError`` if the two checkpoints have different
    architectures or data sets. Conventions: [loss-mean].
    """
    config_a, params_a, stats_a = _load_end_point(checkpoint_a)
    config_b, params_b, stats_b = _load_end_point(checkpoint_b)
    for field in ("dataset", "width", "norm", "preact", "label_noise"):
        if getattr(config_a, field) != getattr(config_b, field):
            raise ValueError(
                f"checkpoint_b differs from checkpoint_a in {field}: "
                f"{getattr(config_b, field)!r} vs {getattr(config_a, field)!r}"
            )
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("alphas must not be empty")
    if dataset is None:
        dataset = load_dataset(
            config_a.dataset, data_dir or config_a.data_dir, label_noise=config_a.label_noise, seed=config_a.seed,
            synthetic_train=config_a.synthetic_train, synthetic_test=config_a.synthetic_test,
        )
    mesh = data_mesh() if mesh is None else mesh
    batch_size = -(-batch_size // mesh.size) * mesh.size
    usable = min(train_examples, dataset.n_train) // batch_size * batch_size
    if usable == 0:
        raise ValueError(f"train_examples must allow one full batch of {batch_size}, got {train_examples}")
    subset = np.random.default_rng(0).permutation(dataset.n_train)[:usable]
    train_set = make_eval_set(dataset.x_train[subset], dataset.y_train[subset], batch_size, mesh)
    test_set = make_eval_set(dataset.x_test, dataset.y_test, batch_size, mesh)
    model_config = config_a.model_config(dataset.num_classes)
    mean, std = channel_stats(dataset.x_train)
    evaluate = _evaluator(model_config, tuple(map(float, mean)), tuple(map(float, std)))
    mean_d, std_d = replicate((mean, std), mesh)
    params_a, params_b, stats_a = replicate((params_a, params_b, stats_a), mesh)
    del stats_b  # recomputed at every alpha, end points included
    out: dict[str, Any] = {k: [] for k in ("alpha", "train_loss", "train_acc", "test_loss", "test_acc")}
    iterator = alphas
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(alphas, desc="interpolate", unit="alpha")
    for alpha in iterator:
        params = _interpolate(params_a, params_b, jnp.float32(alpha))
        stats = recompute_batch_stats(model_config, params, stats_a, train_set, mean_d, std_d)
        train_loss, train_acc = evaluate(params, stats, train_set)
        test_loss, test_acc = evaluate(params, stats, test_set)
        for key, value in (("alpha", alpha), ("train_loss", train_loss), ("train_acc", train_acc),
                           ("test_loss", test_loss), ("test_acc", test_acc)):
            out[key].append(float(value))
    out["bn_recomputed"] = bool(jax.tree.leaves(stats_a))
    out["checkpoints"] = [str(checkpoint_a), str(checkpoint_b)]
    return out
