"""Training MLP classifiers: grids of runs in one compiled call (the engine of the MNIST-1D figures), and epoch-wise SGD.

A *lane* is one training run: its SAM radius ``rho``, its peak learning
rate, which of the stacked train-label sets it fits (clean or one noisy draw,
[label-noise]) and its seed. All lanes of one call share the network shape,
the chunk size ``m`` and the step count, so ``jax.vmap`` runs them together
and XLA compiles once per (shape, ``m``). ``rho = 0`` is ERM exactly: the
perturbation ``0·g/‖g‖`` is zero, so the gradient is taken at ``w`` itself
([rho-sam]); ERM lanes therefore ride along in the SAM call.

Every lane trains ``init_mlp(key_init, sizes)`` with SGD + momentum and a
cosine decay of the learning rate to zero over ``num_steps``, on minibatches
drawn by :func:`samtheory.train.run` with ``key_batch``; both keys come from
``PRNGKey(seed)``, so lanes with the same seed start from the same weights
and see the same minibatch sequence (paired comparisons across ``rho``,
learning rate and labels).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [record], [rng],
[float], [data-layout], [label-noise].
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from samtheory import sam, train
from samtheory.errors import DivergenceError
from samtheory.models import mlp

__all__ = ["Lanes", "float_dtype", "lane_grid", "train_lanes", "classifier_loss", "train_mlp", "check_trained"]

#: The dtypes a config may name; float32 is what the MNIST-1D figures use for speed.
FLOAT_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


class Lanes(NamedTuple):
    """Per-lane settings, each a 1-D array of the same length (the vmapped axis).

    ``label_index`` picks a row of the stacked label sets passed to
    :func:`train_lanes`. Conventions: [rho-sam], [rng].
    """

    rho: np.ndarray
    learning_rate: np.ndarray
    label_index: np.ndarray
    seed: np.ndarray


def float_dtype(name: str):
    """The JAX dtype named by a config's ``dtype`` field; ``ValueError`` naming ``dtype`` otherwise.

    Conventions: [float].
    """
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(FLOAT_DTYPES)}, got {name!r}")
    return FLOAT_DTYPES[name]


def lane_grid(**axes: tuple) -> tuple[Lanes, tuple[int, ...]]:
    """The Cartesian product of per-field values as :class:`Lanes`, in C order, and the grid shape.

    ``lane_grid(rho=(0, .1), learning_rate=(.05,), label_index=(0, 1), seed=(0,))``
    has 4 lanes; reshaping a per-lane array to the returned shape gives an
    array indexed ``[rho, learning_rate, label_index, seed]``. Every field
    of :class:`Lanes` must be given, in that order, each non-empty.
    """
    if tuple(axes) != Lanes._fields:
        raise ValueError(f"axes must be given as {Lanes._fields} in that order, got {tuple(axes)}")
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"{name} must have at least one value")
    shape = tuple(len(v) for v in axes.values())
    mesh = np.meshgrid(*[np.asarray(v) for v in axes.values()], indexing="ij")
    return Lanes(*(m.ravel() for m in mesh)), shape


def classifier_loss(activation: str) -> Callable:
    """``loss(params, (x, y))``: mean softmax cross-entropy of the MLP ([loss-mean])."""
    return functools.partial(mlp.cross_entropy_loss, activation=activation)


def train_lanes(
    *,
    x_train: np.ndarray,
    label_sets: np.ndarray,
    lanes: Lanes,
    sizes: tuple[int, ...],
    activation: str,
    init: str,
    dtype,
    m: int | None,
    num_steps: int,
    batch_size: int,
    momentum: float,
    record_steps: np.ndarray,
    metrics_fn: Callable[[mlp.MLPParams, jax.Array], dict],
    variant_fn: Callable | None = None,
) -> train.TrainResult:
    """Train every lane in one ``jit(vmap(train.run))`` call; leading axis of the result = lanes.

    Args:
      x_train: ``(n, d)`` inputs shared by all lanes.
      label_sets: ``(k, n)`` integer train labels; lane ``i`` fits
        ``label_sets[lanes.label_index[i]]``.
      lanes: per-lane ``rho`` (normalized SAM radius, 0 = ERM), peak
        learning rate, label set and seed.
      sizes, activation, init, dtype: the MLP (:func:`samtheory.models.mlp.init_mlp`).
      m: SAM chunk size ([m]); ``None`` is n-SAM over the minibatch.
      num_steps, batch_size, momentum: SGD with momentum, cosine decay
        from the lane's learning rate to 0, minibatches of ``batch_size``.
      record_steps: steps at which ``metrics_fn`` is evaluated ([record]).
      metrics_fn: ``metrics_fn(params, labels) -> dict`` of scalars, with the
        lane's train labels.
      variant_fn: ``variant_fn(rho)`` builds each lane's variant from its
        traced ``rho``; default ``SAM(rho, m=m, normalize=True)`` (e.g.
        ``lambda r: sam.RandomSAM(r)`` for random perturbations).

    Raises :class:`samtheory.errors.DivergenceError` naming the first lane
    that produced a non-finite parameter or metric.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [record], [rng], [float].
    """
    label_sets = np.asarray(label_sets)
    if label_sets.ndim != 2 or label_sets.shape[1] != len(x_train):
        raise ValueError(f"label_sets must have shape (k, {len(x_train)}), got {label_sets.shape}")
    if m is not None and batch_size % m:
        raise ValueError(f"m={m} must divide batch_size={batch_size}")
    loss_fn = classifier_loss(activation)
    x = jnp.asarray(x_train, dtype)
    labels = jnp.asarray(label_sets, jnp.int32)
    # Eager, once: labels are range-checked only when concrete ([data-layout]).
    probe = mlp.init_mlp(jax.random.PRNGKey(0), sizes, init=init, dtype=dtype)
    loss_fn(probe, (x[:1], labels[0, :1]))
    for name, values in zip(Lanes._fields, lanes):
        if np.shape(values) != (len(lanes.rho),):
            raise ValueError(f"lanes.{name} must be 1-D with one entry per lane, got shape {np.shape(values)}")
    if np.any(np.asarray(lanes.label_index) >= len(label_sets)) or np.any(np.asarray(lanes.label_index) < 0):
        raise ValueError(f"lanes.label_index must index the {len(label_sets)} label sets")

    make_variant = variant_fn if variant_fn is not None else (lambda rho: sam.SAM(rho, m=m, normalize=True))

    def one_lane(rho, learning_rate, label_index, seed):
        init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
        y = labels[label_index]
        params0 = mlp.init_mlp(init_key, sizes, init=init, dtype=dtype)
        optimizer = optax.sgd(optax.cosine_decay_schedule(learning_rate, num_steps), momentum=momentum)
        return train.run(
            loss_fn, params0, (x, y), variant=make_variant(rho), num_steps=num_steps,
            optimizer=optimizer, batch_size_per_step=batch_size, record_steps=record_steps,
            metrics_fn=lambda p: metrics_fn(p, y), key=batch_key,
        )

    result = jax.jit(jax.vmap(one_lane))(
        jnp.asarray(lanes.rho, dtype), jnp.asarray(lanes.learning_rate, dtype),
        jnp.asarray(lanes.label_index, jnp.int32), jnp.asarray(lanes.seed, jnp.uint32),
    )
    return train.check_finite(result, names=("lane",))


def train_mlp(
    variant: sam.Variant,
    params0: mlp.MLPParams,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float,
    activation: str,
) -> tuple[mlp.MLPParams, jax.Array]:
    """SGD with momentum and cosine decay on the MLP cross-entropy, with ``variant``'s update direction.

    :func:`samtheory.train.run` with ``sampling="epochs"``: each epoch draws
    one permutation of the ``n`` examples and walks through it in
    ``⌊n/batch_size⌋`` minibatches (the few left over differ from epoch to
    epoch), so every example is seen once per epoch, the usual SGD recipe.
    Pure and ``vmap``-able over ``key``, ``params0`` and a traced
    ``variant.rho``.

    Returns:
      ``(params, train_loss)``: the final weights and the full-training-set
      cross-entropy after each epoch, ``(epochs,)`` (non-finite = diverged).

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    n = x.shape[0]
    steps_per_epoch = n // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size must be <= the number of examples {n}, got {batch_size}")
    num_steps = epochs * steps_per_epoch
    optimizer = optax.sgd(optax.cosine_decay_schedule(learning_rate, num_steps), momentum=momentum)
    result = train.run(
        classifier_loss(activation), params0, (x, y), variant=variant, num_steps=num_steps, optimizer=optimizer,
        batch_size_per_step=batch_size, sampling="epochs", key=key,
        record_steps=steps_per_epoch * np.arange(1, epochs + 1),
    )
    return result.params, result.metrics["loss"]


def check_trained(train_loss: np.ndarray, names: list[str]) -> None:
    """Raise :class:`samtheory.errors.DivergenceError` naming the first run whose train loss became non-finite.

    ``train_loss`` is ``(runs, epochs)``; ``names[i]`` labels run ``i``. Conventions: [record].
    """
    bad = ~np.all(np.isfinite(train_loss), axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        epoch = int(np.argmax(~np.isfinite(train_loss[i])))
        raise DivergenceError(f"{int(bad.sum())} run(s) diverged; first: {names[i]} at epoch {epoch + 1}")
