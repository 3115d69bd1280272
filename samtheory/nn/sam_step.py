"""One SGD step of a SAM variant on a network with (optional) BatchNorm state.

The update direction is the oracle's, :func:`samtheory.sam.step`, on the
raveled parameter vector ([rho-sam], [m], [normalize]); this module adds the
loss of a network with BatchNorm state, the optimizer and the step:

* **One clean pass gives everything the step reports.** The first
  forward-backward pass at ``w`` yields the loss and accuracy of the step,
  the new BatchNorm running statistics and the ascent gradient. The second
  pass, at ``w + ε``, yields only the descent gradient; its statistics are
  discarded (XLA removes their computation). So BatchNorm running
  statistics never see perturbed weights, and a SAM step costs two
  forward-backward passes, an ERM step one. RandomSAM needs no ascent
  gradient, so its clean pass is forward-only.
* **m-SAM** ([m]): the oracle reshapes the batch into ``n/m`` contiguous
  chunks and vmaps the clean pass, the perturbation and the perturbed pass
  over them, so each chunk has its own ``ε_C`` and its own BatchNorm batch
  statistics (in training mode BatchNorm normalizes each chunk by its own
  mean and variance, as on the per-accelerator batches of Foret et al.; the
  running statistics move towards the mean over chunks of the chunk
  statistics). The direction is the mean of the chunk gradients. ``m=n``
  is n-SAM (one chunk).
* **Weight decay** is L2 in the gradient (as PyTorch's ``SGD(weight_decay)``
  and the SAM paper): ``wd · w`` at the *unperturbed* ``w`` is added to the
  SAM direction before momentum. The perturbation is computed from the data
  loss alone, so weight decay is never perturbed.

The loss is the mean cross-entropy in float32 ([loss-mean]).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng], [float-nn].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from samtheory.nn.resnet import ResNet18, apply_model
from samtheory import sam
from samtheory.sam import Variant

__all__ = [
    "TrainState",
    "StepOutput",
    "cross_entropy",
    "make_optimizer",
    "check_variant",
    "sam_direction",
    "chunk_perturbations",
    "init_train_state",
    "make_train_step",
]

Batch = tuple[jax.Array, jax.Array]  # (images float NHWC, labels int32)
Constrain = Callable[[Any], Any]


class TrainState(NamedTuple):
    """Everything a step changes. ``step`` counts updates from 0 (int32)."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array


class StepOutput(NamedTuple):
    """What a step reports, from the clean pass at ``w``: mean loss and number of correct predictions."""

    loss: jax.Array
    correct: jax.Array


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy in float32 ([loss-mean], [float-nn])."""
    logits = logits.astype(jnp.float32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def make_optimizer(
    schedule: Callable[[jax.Array], jax.Array], *, momentum: float = 0.9, weight_decay: float = 5e-4
) -> optax.GradientTransformation:
    """SGD with heavy-ball momentum and L2 weight decay added to the gradient (PyTorch semantics).

    ``direction + wd · w`` is fed to the momentum buffer ``b ← μ b + d``,
    and ``w ← w − lr(t) · b``.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    sgd = optax.sgd(schedule, momentum=momentum if momentum else None)
    if weight_decay == 0:
        return sgd
    return optax.chain(optax.add_decayed_weights(weight_decay), sgd)


def check_variant(variant: Variant) -> Variant:
    """Refuse what the network step does not implement (second-order SAM); return ``variant``."""
    if variant.second_order:
        raise ValueError("variant.second_order=True is not supported by the network step")
    return variant


def _flat_loss_with_aux(model: ResNet18, batch_stats: Any, unravel: Callable[[jax.Array], Any]):
    def loss_fn(theta: jax.Array, batch: Batch):
        images, labels = batch
        logits, new_stats = apply_model(model, unravel(theta), batch_stats, images, train=True)
        correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels).astype(jnp.int32)
        return cross_entropy(logits, labels), (new_stats, correct)

    return loss_fn


def _flat_direction(
    variant: Variant, model: ResNet18, theta: jax.Array, unravel, batch_stats: Any, batch: Batch, key,
    constrain_chunks: Constrain | None,
) -> tuple[jax.Array, Any, StepOutput]:
    out = sam.step(
        variant, _flat_loss_with_aux(model, batch_stats, unravel), theta, batch, key,
        has_aux=True, constrain_chunks=constrain_chunks,
    )
    stats, correct = out.aux
    new_stats = jax.tree.map(lambda x: jnp.mean(x, axis=0), stats)
    return out.direction, new_stats, StepOutput(jnp.mean(out.loss), jnp.sum(correct, dtype=correct.dtype))


def sam_direction(
    variant: Variant,
    model: ResNet18,
    params: Any,
    batch_stats: Any,
    batch: Batch,
    key: jax.Array | None,
    *,
    constrain_chunks: Constrain | None = None,
) -> tuple[Any, Any, StepOutput]:
    """The data-loss update direction of ``variant``, the new BatchNorm statistics and the step's report.

    :func:`samtheory.sam.step` on the parameters raveled into one vector
    (norms over the whole pytree are norms of that vector, [rho-sam]): one
    fused operation instead of several per layer, which matters for compile
    time and for small kernels on a GPU. ERM: ``∇L_B(w)``. Others:
    ``(m/n) Σ_C ∇L_C(w + ε_C)`` ([m]). ``key`` is split per chunk by the
    oracle (needed by RandomSAM only). The statistics and the report come
    from the clean pass at ``w``, averaged (loss, statistics) or summed
    (correct predictions) over chunks. ``constrain_chunks`` lets a
    data-parallel caller pin the chunk axis to devices.
    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    check_variant(variant)
    theta, unravel = ravel_pytree(params)
    grad, new_stats, report = _flat_direction(
        variant, model, theta, unravel, batch_stats, batch, key, constrain_chunks
    )
    return unravel(grad), new_stats, report


def chunk_perturbations(
    variant: Variant, model: ResNet18, params: Any, batch_stats: Any, batch: Batch, key: jax.Array | None
) -> Any:
    """The perturbations ``ε_C`` of the step, stacked over chunks (leading axis ``n/m``; 1 for n-SAM).

    For inspection and tests: :func:`samtheory.sam.perturbations` on the
    raveled parameters, with the oracle's chunks and keys. Conventions: [rho-sam], [m], [rng].
    """
    check_variant(variant)
    theta, unravel = ravel_pytree(params)
    loss_aux = _flat_loss_with_aux(model, batch_stats, unravel)
    eps = sam.perturbations(variant, lambda t, c: loss_aux(t, c)[0], theta, batch, key)
    return jax.vmap(unravel)(eps)


def init_train_state(params: Any, batch_stats: Any, optimizer: optax.GradientTransformation) -> TrainState:
    """Step 0: the optimizer state lives on the raveled parameter vector (see :func:`make_train_step`)."""
    return TrainState(params, batch_stats, optimizer.init(ravel_pytree(params)[0]), jnp.int32(0))


def make_train_step(
    model: ResNet18,
    variant: Variant,
    optimizer: optax.GradientTransformation,
    *,
    constrain_chunks: Constrain | None = None,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, StepOutput]]:
    """``step(state, (images, labels), key) -> (state, StepOutput)``: one update with ``variant``.

    Pure and jittable; ``images`` are normalized float arrays. The optimizer
    runs on the raveled parameter vector (its state comes from
    :func:`init_train_state`): one fused update instead of several small
    operations per layer. Conventions:
    [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    check_variant(variant)

    def step(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, StepOutput]:
        theta, unravel = ravel_pytree(state.params)
        direction, new_stats, report = _flat_direction(
            variant, model, theta, unravel, state.batch_stats, batch, key, constrain_chunks
        )
        updates, opt_state = optimizer.update(direction, state.opt_state, theta)
        return TrainState(unravel(theta + updates), new_stats, opt_state, state.step + 1), report

    return step
