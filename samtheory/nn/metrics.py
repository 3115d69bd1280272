"""Evaluation of a network on a whole split, and the per-epoch metrics file.

Evaluation runs the network in inference mode (BatchNorm with its running
statistics) over fixed-size batches with ``lax.map``, in one compiled call.
The split is padded to a whole number of batches once, on the host; padded
examples carry weight 0, so the mean loss and accuracy are exact over the
real examples ([loss-mean]: the loss is the mean per-example cross-entropy).

Metrics of a run are one JSON object per epoch in ``metrics.jsonl``. The
trainer rewrites the whole file atomically after each epoch from the list it
also stores in the checkpoint, so the file and the checkpoint always agree,
also after a kill.

Conventions: [loss-mean], [float-nn].
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from samtheory.nn.augment import normalize_images
from samtheory.nn.parallel import DATA_AXIS
from samtheory.nn.resnet import ResNet18, apply_model
from samtheory.results import atomic_write_bytes

__all__ = ["EvalSet", "make_eval_set", "make_evaluator", "write_jsonl", "read_jsonl"]


class EvalSet(NamedTuple):
    """A split as ``(num_batches, batch, ...)`` device arrays with a 0/1 weight per example."""

    images: jax.Array
    labels: jax.Array
    weights: jax.Array
    count: int


def make_eval_set(images: np.ndarray, labels: np.ndarray, batch_size: int, mesh: Mesh) -> EvalSet:
    """Pad ``images`` (uint8 NHWC) and ``labels`` to whole batches and place them on ``mesh``.

    ``batch_size`` is rounded up to a multiple of the number of devices;
    each batch is split over the ``"data"`` axis.
    """
    n = len(labels)
    if n == 0:
        raise ValueError("images must hold at least one example")
    batch_size = -(-batch_size // mesh.size) * mesh.size
    batch_size = min(batch_size, -(-n // mesh.size) * mesh.size)
    num_batches = -(-n // batch_size)
    pad = num_batches * batch_size - n
    weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
    labels = np.concatenate([labels, np.zeros(pad, labels.dtype)]).astype(np.int32)
    reshape = lambda a: a.reshape(num_batches, batch_size, *a.shape[1:])  # noqa: E731
    sharding = NamedSharding(mesh, P(None, DATA_AXIS))

    def put(a):
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return EvalSet(put(reshape(images)), put(reshape(labels)), put(reshape(weights)), n)


def make_evaluator(
    model: ResNet18, mean: np.ndarray, std: np.ndarray
) -> Callable[[Any, Any, EvalSet], tuple[jax.Array, jax.Array]]:
    """``evaluate(params, batch_stats, eval_set) -> (mean loss, accuracy)``, jitted.

    Conventions: [loss-mean], [float-nn].
    """

    @jax.jit
    def totals(params, batch_stats, images, labels, weights):
        def one_batch(batch):
            x, y, w = batch
            logits, _ = apply_model(model, params, batch_stats, normalize_images(x, mean, std), train=False)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
            return jnp.sum(losses * w), jnp.sum(correct * w)

        losses, correct = jax.lax.map(one_batch, (images, labels, weights))
        return jnp.sum(losses), jnp.sum(correct)

    def evaluate(params, batch_stats, eval_set: EvalSet) -> tuple[jax.Array, jax.Array]:
        loss_sum, correct = totals(params, batch_stats, eval_set.images, eval_set.labels, eval_set.weights)
        return loss_sum / eval_set.count, correct / eval_set.count

    return evaluate


def write_jsonl(path: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with one compact JSON object per line (NaN refused)."""
    lines = [json.dumps(r, sort_keys=True, allow_nan=False) for r in records]
    atomic_write_bytes(path, ("".join(line + "\n" for line in lines)).encode("utf-8"))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSONL file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
