"""Fully connected classifiers (multilayer perceptrons) with a softmax cross-entropy loss.

The network with layer sizes ``(d₀, d₁, …, d_L)`` is

    h₀ = x,   h_l = σ(h_{l−1} W_l + b_l)  (l < L),   f(x) = h_{L−1} W_L + b_L,

with ``W_l`` of shape ``(d_{l−1}, d_l)``: inputs are rows, so a batch
``x`` of shape ``(n, d₀)`` maps to logits of shape ``(n, d_L)`` and
``d_L`` is the number of classes. The last layer has no activation.

Parameters are a plain pytree: a tuple of :class:`Dense` layers, each a
``NamedTuple`` ``(w, b)``. Flattened (``jax.flatten_util.ravel_pytree``),
the order is ``W₁, b₁, W₂, b₂, …``. The activation is not part of the
parameters (it is not a number to differentiate); functions that evaluate
the network take it as the keyword ``activation``, and a two-argument loss
for :mod:`samtheory.train` or :mod:`samtheory.sharpness` is
``functools.partial(cross_entropy_loss, activation="tanh")``.

A batch is a pair ``(x, y)``: ``x`` of shape ``(n, d₀)`` (any float dtype;
it is cast to the parameters' dtype, [float]) and integer labels ``y`` of
shape ``(n,)`` in ``[0, d_L)``. Labels are checked when they are concrete;
under ``jit`` (minibatches drawn inside a compiled loop) they cannot be: an
out-of-range label then gives a NaN loss (JAX fills out-of-bounds gathers
with NaN; :mod:`samtheory.train` reports it as a divergence) and counts as
misclassified by :func:`accuracy`. Evaluate :func:`cross_entropy_loss` on
the full data set once, eagerly, before training to have it checked.

Curvature note: with ``activation="relu"`` the network is piecewise linear
in ``x`` and piecewise polynomial in the parameters, so its loss Hessian is
piecewise smooth and jumps where a unit's pre-activation crosses zero on
some example. Hessians, Hessian-vector products and Lanczos spectra are the
ones of the current linear region (JAX takes ``relu'(0) = 0``).
``"softplus"``, ``"tanh"`` and ``"gelu"`` give smooth losses.

Conventions: [loss-mean], [rng], [float].
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from samtheory._validation import check_positive, check_positive_int, concrete_values
from samtheory.bounds.losses import misclassified

__all__ = [
    "gaussian_network_logits",
    "perturbed_error_count",
    "ACTIVATIONS",
    "INITIALIZATIONS",
    "Dense",
    "MLPParams",
    "accuracy",
    "cross_entropy_loss",
    "cross_entropy_per_example",
    "init_mlp",
    "layer_sizes",
    "param_count",
    "predict",
    "zero_one_error",
]


class Dense(NamedTuple):
    """One affine layer ``h ↦ h w + b``: ``w`` of shape ``(fan_in, fan_out)``, ``b`` of shape ``(fan_out,)``."""

    w: jax.Array
    b: jax.Array


MLPParams = tuple[Dense, ...]
Batch = tuple[jax.Array, jax.Array]

#: Hidden-layer nonlinearities by name.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}

#: Weight variance times ``fan_in`` for each initialization scheme: He et
#: al. (2015) keep the second moment of ReLU pre-activations constant with
#: depth (gain 2); LeCun et al. (1998) keep the variance of linear/tanh ones
#: (gain 1).
INITIALIZATIONS: dict[str, float] = {"he": 2.0, "lecun": 1.0}


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def layer_sizes(params: MLPParams) -> tuple[int, ...]:
    """``(d₀, d₁, …, d_L)`` of ``params``; raises ``ValueError`` naming ``params`` if the layers do not chain.

    Works on arrays and on ``jax.ShapeDtypeStruct`` leaves (``jax.eval_shape``).
    """
    if not isinstance(params, (tuple, list)) or len(params) == 0:
        raise ValueError(f"params must be a non-empty tuple of Dense layers, got {type(params).__name__}")
    sizes: list[int] = []
    for i, layer in enumerate(params):
        if not isinstance(layer, (tuple, list)) or len(layer) != 2:
            raise ValueError(f"params[{i}] must be a Dense(w, b) pair, got {type(layer).__name__}")
        w_shape, b_shape = tuple(jnp.shape(layer[0])), tuple(jnp.shape(layer[1]))
        if len(w_shape) != 2:
            raise ValueError(f"params[{i}].w must be a matrix (fan_in, fan_out), got shape {w_shape}")
        if b_shape != (w_shape[1],):
            raise ValueError(f"params[{i}].b must have shape ({w_shape[1]},) to match params[{i}].w, got {b_shape}")
        if sizes and w_shape[0] != sizes[-1]:
            raise ValueError(
                f"params[{i}].w has fan_in {w_shape[0]} but the previous layer has {sizes[-1]} outputs"
            )
        if not sizes:
            sizes.append(w_shape[0])
        sizes.append(w_shape[1])
    return tuple(sizes)


def param_count(params: MLPParams) -> int:
    """Number of scalar parameters ``Σ_l (d_{l−1} + 1) d_l`` (the dimension ``D`` of the Hessian)."""
    sizes = layer_sizes(params)
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))


def init_mlp(
    key: jax.Array,
    sizes: Sequence[int] | np.ndarray,
    *,
    init: str = "he",
    scale: float = 1.0,
    dtype: DTypeLike | None = None,
) -> MLPParams:
    """Random weights ``W_l ~ N(0, scale² · gain / d_{l−1})`` entrywise and zero biases.

    Args:
      key: a ``jax.random`` key; layer ``l`` uses the ``l``-th of ``split(key, L)``.
      sizes: ``(d₀, d₁, …, d_L)``: input dimension, hidden widths, number of
        classes; at least two entries, each ≥ 1.
      init: ``"he"`` (gain 2, for ReLU-like activations) or ``"lecun"``
        (gain 1, for tanh); see :data:`INITIALIZATIONS`.
      scale: multiplies every weight's standard deviation (> 0); ``1`` is the
        scheme itself, small values a smaller output scale at initialization.
      dtype: float dtype; ``None`` is JAX's default float (float64 once
        ``samtheory.enable_float64()`` ran).

    Returns:
      A tuple of ``L`` :class:`Dense` layers.

    Conventions: [rng], [float].
    """
    if isinstance(sizes, np.ndarray):
        sizes = sizes.tolist()
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(f"sizes must be a sequence of at least two layer sizes, got {sizes!r}")
    sizes = tuple(check_positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes))
    if init not in INITIALIZATIONS:
        raise ValueError(f"init must be one of {sorted(INITIALIZATIONS)}, got {init!r}")
    check_positive("scale", scale)
    if jnp.shape(scale) != ():
        raise ValueError(f"scale must be a scalar, got shape {jnp.shape(scale)}")
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a float dtype, got {dtype}")
    gain = INITIALIZATIONS[init]
    layers = []
    for k, fan_in, fan_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        std = scale * math.sqrt(gain / fan_in)
        layers.append(Dense(std * jax.random.normal(k, (fan_in, fan_out), dtype), jnp.zeros(fan_out, dtype)))
    return tuple(layers)


def predict(params: MLPParams, x: ArrayLike, *, activation: str = "relu") -> jax.Array:
    """Logits ``f(x)`` of shape ``(..., d_L)`` for inputs ``x`` of shape ``(..., d₀)``.

    ``x`` is cast to the dtype of the first weight matrix ([float]).
    """
    sizes = layer_sizes(params)
    sigma = _activation(activation)
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != sizes[0]:
        raise ValueError(f"x must have shape (..., {sizes[0]}), got shape {x.shape}")
    h = x.astype(jnp.result_type(params[0][0]))
    for w, b in params[:-1]:
        h = sigma(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def _checked_batch(params: MLPParams, batch: Batch) -> Batch:
    """``(x, y)`` after checking shapes, label dtype and (when concrete) the label range."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"batch must be a pair (x, y), got {type(batch).__name__}")
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])
    if x.ndim != 2:
        raise ValueError(f"batch x must have shape (n, d0), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"batch y must have shape ({x.shape[0]},) to match x, got shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"batch y must hold integer class labels, got dtype {y.dtype}")
    num_classes = layer_sizes(params)[-1]
    labels = concrete_values(batch[1])
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"batch y must lie in [0, {num_classes}) (the network has {num_classes} outputs), "
            f"got labels in [{labels.min()}, {labels.max()}]"
        )
    return x, y


def cross_entropy_per_example(params: MLPParams, batch: Batch, *, activation: str = "relu") -> jax.Array:
    """``ℓ_i = −log softmax(f(x_i))_{y_i} = logsumexp(f(x_i)) − f(x_i)_{y_i}``, shape ``(n,)``.

    Computed through ``log_softmax`` (max-shifted), so large logits neither
    overflow nor lose the small losses of confidently correct examples.
    Conventions: [float].
    """
    x, y = _checked_batch(params, batch)
    log_probs = jax.nn.log_softmax(predict(params, x, activation=activation), axis=-1)
    return -jnp.take_along_axis(log_probs, y[:, None], axis=-1)[:, 0]


def cross_entropy_loss(params: MLPParams, batch: Batch, *, activation: str = "relu") -> jax.Array:
    """Mean softmax cross-entropy ``L = (1/n) Σ_i ℓ_i`` over the batch. Conventions: [loss-mean], [float]."""
    return jnp.mean(cross_entropy_per_example(params, batch, activation=activation))


def accuracy(params: MLPParams, batch: Batch, *, activation: str = "relu") -> jax.Array:
    """Fraction of examples whose largest logit is the label (ties go to the lowest index, as ``argmax``).

    Conventions: [loss-mean] (a mean over the batch).
    """
    x, y = _checked_batch(params, batch)
    predicted = jnp.argmax(predict(params, x, activation=activation), axis=-1)
    # Cast before the mean: jnp.mean of a bool array is float32 even with x64 enabled.
    return jnp.mean((predicted == y).astype(jnp.result_type(params[0][0])))


def zero_one_error(params: MLPParams, batch: Batch, *, activation: str = "relu") -> jax.Array:
    """``1 − accuracy``: the mean 0-1 loss. Conventions: [loss-mean]."""
    return 1 - accuracy(params, batch, activation=activation)


def gaussian_network_logits(params: MLPParams, variances, x: jax.Array, key: jax.Array, *, activation: str) -> jax.Array:
    """Logits of ``w + ε``, ``ε ~ N(0, diag variances)``, with an independent ``ε`` for every row of ``x``.

    Layer by layer, given the previous layer's output ``h`` of one example,
    the pre-activations are independent Gaussians with mean ``h W + b`` and
    variance ``h² s_W + s_b`` (exactly, because each weight's noise enters
    one unit only); sampling them is sampling ``ε`` for that example.

    Args:
      params: the posterior mean ``w``.
      variances: a scalar ``σ²`` (isotropic) or a pytree like ``params`` of
        per-weight variances ``s``.
      x: ``(n, d₀)`` inputs.
      key: PRNG key ([rng]); layer ``l`` uses ``fold_in(key, l)``.
      activation: hidden nonlinearity.

    Returns:
      ``(n, d_L)`` logits.

    Conventions: [bounds], [rng], [float].
    """
    nonlinearity = ACTIVATIONS[activation]
    isotropic = not isinstance(variances, (tuple, list)) and jnp.ndim(variances) == 0
    h = x.astype(params[0].w.dtype)
    for index, layer in enumerate(params):
        mean = h @ layer.w + layer.b
        if isotropic:
            variance = variances * (jnp.sum(h * h, axis=-1, keepdims=True) + 1)
        else:
            variance = (h * h) @ variances[index].w + variances[index].b
        noise = jax.random.normal(jax.random.fold_in(key, index), mean.shape, mean.dtype)
        pre_activation = mean + jnp.sqrt(variance) * noise
        h = pre_activation if index == len(params) - 1 else nonlinearity(pre_activation)
    return h


def perturbed_error_count(
    params: MLPParams, variances, x: jax.Array, y: jax.Array, key: jax.Array, rounds: int, *, activation: str
) -> jax.Array:
    """Errors among ``n · rounds`` independent draws: every example, ``rounds`` times, each with its own ``ε``.

    Divided by ``n · rounds`` it is an unbiased estimate of
    ``E_{ε~N(0, diag variances)} L_S(w + ε)`` in 0-1 loss, certified by a kl inverse
    (:func:`samtheory.bounds.kl_inverse`). Round ``r`` uses
    ``fold_in(key, r)``, so a larger ``rounds`` extends the same draws.
    ``jit``/``vmap``-able; returns an ``int32`` count.

    Conventions: [bounds], [loss-mean], [rng].
    """

    def one_round(r):
        logits = gaussian_network_logits(params, variances, x, jax.random.fold_in(key, r), activation=activation)
        return jnp.sum(misclassified(logits, y), dtype=jnp.int32)

    return jnp.sum(jax.lax.map(one_round, jnp.arange(rounds)), dtype=jnp.int32)
