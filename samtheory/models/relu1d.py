"""Two-layer ReLU networks on one-dimensional inputs, and their kinks.

The network, with biases in both layers, is

    f(x) = Σ_j a_j relu(w_j x + b_j) + c,        j = 1, …, h,

a continuous piecewise-linear function of the scalar ``x``. Unit ``j`` with
``w_j ≠ 0`` contributes one breakpoint ("kink") at ``p_j = −b_j/w_j`` where
the slope of ``f`` jumps by ``a_j |w_j|`` (left to right, whatever the sign of
``w_j``); a unit with ``w_j = 0`` is the constant ``a_j relu(b_j)``. Counting
the kinks that survive training measures the simplicity of the learned
interpolant: Andriushchenko & Flammarion (2022) illustrate on a few 1-D
points (the data of Maennel et al. 2018, :func:`maennel_points`) that SAM
fits them with fewer kinks than GD from the same initialization.

Batches are ``{"x": (n,), "y": (n,)}`` and the loss is the mean squared loss.

References:
    M. Andriushchenko, N. Flammarion. *Towards Understanding
    Sharpness-Aware Minimization.* ICML 2022.

    H. Maennel, O. Bousquet, S. Gelly. *Gradient Descent Quantizes ReLU
    Network Features.* arXiv:1803.08367, 2018.

Conventions: [loss-mean], [loss-sq], [rng], [float].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from samtheory._validation import check_nonnegative, check_positive_int

Params = dict[str, jax.Array]
Batch = dict[str, jax.Array]

__all__ = [
    "EffectiveKinks",
    "Kinks",
    "effective_kinks",
    "init_relu1d",
    "kinks",
    "loss_relu1d",
    "maennel_points",
    "predict",
    "relu_regression_1d",
]


def _check_params(params: Params) -> int:
    """Check the shapes ``w, b, a: (h,)``, ``c: ()``; return ``h``."""
    missing = {"w", "b", "a", "c"} - set(params)
    if missing:
        raise ValueError(f"params is missing the keys {sorted(missing)}")
    shape = jnp.shape(params["w"])
    if len(shape) != 1:
        raise ValueError(f"params['w'] must have shape (h,), got shape {shape}")
    for name in ("b", "a"):
        if jnp.shape(params[name]) != shape:
            raise ValueError(
                f"params[{name!r}] must have the shape {shape} of params['w'], "
                f"got shape {jnp.shape(params[name])}"
            )
    if jnp.shape(params["c"]) != ():
        raise ValueError(f"params['c'] must be a scalar, got shape {jnp.shape(params['c'])}")
    return shape[0]


def init_relu1d(
    key: jax.Array, width: int, scale: ArrayLike, dtype: DTypeLike | None = None
) -> Params:
    """Random initialization of a width-``h`` network, all weights ∝ ``scale``.

    With independent ``s_j`` uniform on ``{−1, +1}`` and ``g_j, g'_j ~ N(0, 1)``:

    * ``w_j = scale · s_j``        (first-layer weights of equal magnitude),
    * ``b_j = scale · g_j``,
    * ``a_j = scale · g'_j / √h``  (so ``f`` at initialization is O(scale²)
      whatever the width),
    * ``c = 0``.

    Consequently the initial kinks ``p_j = −b_j/w_j = −s_j g_j`` are i.i.d.
    standard normal *independently of* ``scale`` (about 68% lie in
    ``[−1, 1]``), and ``scale`` alone sets the initialization regime: small
    scale is the feature-learning ("rich") regime, large scale the lazy one.
    Equal-magnitude first-layer weights follow the initialization of the
    reference notebook of Andriushchenko & Flammarion (2022), whose own
    constants differ.

    Args:
        key: A ``jax.random`` key.
        width: Number of hidden units ``h ≥ 1``.
        scale: ``scale ≥ 0``.
        dtype: Float dtype; ``None`` is JAX's default float.

    Returns:
        ``{"w": (h,), "b": (h,), "a": (h,), "c": ()}``.

    Conventions: [rng], [float].
    """
    h = check_positive_int("width", width)
    check_nonnegative("scale", scale)
    if jnp.shape(scale) != ():
        raise ValueError(f"scale must be a scalar, got shape {jnp.shape(scale)}")
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    return _init_relu1d(key, scale, h=h, dtype=dtype)


@partial(jax.jit, static_argnames=("h", "dtype"))
def _init_relu1d(key, scale, *, h, dtype) -> Params:
    k_sign, k_b, k_a = jax.random.split(key, 3)
    scale = jnp.asarray(scale, dtype=dtype)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (h,)), 1.0, -1.0).astype(dtype)
    return {
        "w": scale * sign,
        "b": scale * jax.random.normal(k_b, (h,), dtype=dtype),
        "a": scale * jax.random.normal(k_a, (h,), dtype=dtype) / jnp.sqrt(jnp.asarray(h, dtype)),
        "c": jnp.zeros((), dtype=dtype),
    }


def predict(params: Params, x: jax.Array) -> jax.Array:
    """``f(x) = Σ_j a_j relu(w_j x + b_j) + c``, applied elementwise.

    ``x`` is usually ``(n,)``; any shape works and the output has the same shape.

    Conventions: [float].
    """
    _check_params(params)
    pre = jnp.asarray(x)[..., None] * params["w"] + params["b"]
    return jax.nn.relu(pre) @ params["a"] + params["c"]


def loss_relu1d(params: Params, batch: Batch) -> jax.Array:
    """Mean squared loss ``(1/2n) Σ_i (f(x_i) − y_i)²`` of a batch ``{"x": (n,), "y": (n,)}``.

    Conventions: [loss-mean], [loss-sq].
    """
    x, y = batch["x"], batch["y"]
    if jnp.ndim(x) != 1:
        raise ValueError(f"batch['x'] must have shape (n,), got shape {jnp.shape(x)}")
    if jnp.shape(y) != jnp.shape(x):
        raise ValueError(
            f"batch['y'] must have the shape {jnp.shape(x)} of batch['x'], got shape {jnp.shape(y)}"
        )
    r = predict(params, x) - y
    return 0.5 * jnp.mean(r**2)


# --------------------------------------------------------------------------
# Kinks.
# --------------------------------------------------------------------------


class Kinks(NamedTuple):
    """Per-unit breakpoints of a 1-D ReLU network (arrays of shape ``(h,)``).

    Attributes:
        position: ``−b_j/w_j`` where ``valid``, else 0.
        jump: the slope jump ``f'(p_j⁺) − f'(p_j⁻) = a_j |w_j|`` where
            ``valid``, else 0.
        valid: ``w_j ≠ 0``; a unit with ``w_j = 0`` is constant and has no kink.
    """

    position: jax.Array
    jump: jax.Array
    valid: jax.Array


def kinks(params: Params) -> Kinks:
    """Breakpoint and slope jump of every unit; jittable, vmappable, differentiable.

    For ``w_j > 0`` the unit is off left of ``p_j = −b_j/w_j`` and has slope
    ``a_j w_j`` right of it; for ``w_j < 0`` it has slope ``a_j w_j`` left of
    ``p_j`` and is off right of it. Either way the slope of ``f`` increases by
    ``a_j |w_j|`` when ``x`` crosses ``p_j`` from left to right. Coincident
    breakpoints of several units add their jumps.

    Units with ``w_j = 0`` get ``valid = False`` and position and jump 0.
    The division uses a safe denominator, so no NaN or inf appears in the
    outputs or in their gradients.

    Conventions: [float].
    """
    _check_params(params)
    w, b, a = params["w"], params["b"], params["a"]
    valid = w != 0
    safe_w = jnp.where(valid, w, jnp.ones_like(w))
    position = jnp.where(valid, -b / safe_w, jnp.zeros_like(b))
    jump = jnp.where(valid, a * jnp.abs(w), jnp.zeros_like(a))
    return Kinks(position=position, jump=jump, valid=valid)


class EffectiveKinks(NamedTuple):
    """Sorted breakpoints of ``f`` after merging and thresholding (NumPy arrays)."""

    position: np.ndarray
    jump: np.ndarray


def effective_kinks(
    params: Params,
    *,
    interval: tuple[float, float],
    jump_tol: float,
    merge_tol: float,
) -> EffectiveKinks:
    """The breakpoints of ``f`` that matter on ``interval``, for counting and plotting.

    Not jittable (the output length depends on the values). Steps:

    1. keep the valid kinks (:func:`kinks`) whose position lies in the closed
       ``interval = [lo, hi]``;
    2. sort them by position and merge *chains*: consecutive kinks at distance
       ``≤ merge_tol`` are one cluster (so a cluster can be wider than
       ``merge_tol``; coincident kinks always merge). A cluster becomes one
       kink whose jump is the **sum** of the jumps (the slope change of ``f``
       across the cluster) and whose position is the ``|jump|``-weighted mean
       of the positions (the plain mean if all jumps are 0);
    3. drop the merged kinks with ``|jump| ≤ jump_tol`` (absolute), e.g. units
       that cancel each other or died with ``a_j ≈ 0``.

    Args:
        params: Network parameters.
        interval: ``(lo, hi)`` with ``lo ≤ hi``, typically the data range.
        jump_tol: ``≥ 0``, absolute threshold on the slope jump.
        merge_tol: ``≥ 0``, distance under which consecutive kinks merge.

    Returns:
        ``EffectiveKinks(position, jump)``, float64 arrays sorted by position.
        ``len(position)`` is the number of effective kinks.

    Conventions: [float].
    """
    lo, hi = (float(t) for t in interval)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"interval must be finite with lo <= hi, got {interval!r}")
    check_nonnegative("jump_tol", jump_tol)
    check_nonnegative("merge_tol", merge_tol)

    kk = kinks(params)
    position = np.asarray(kk.position, dtype=np.float64)
    jump = np.asarray(kk.jump, dtype=np.float64)
    keep = np.asarray(kk.valid) & (position >= lo) & (position <= hi)
    position, jump = position[keep], jump[keep]
    order = np.argsort(position, kind="stable")
    position, jump = position[order], jump[order]
    if position.size == 0:
        return EffectiveKinks(position=position, jump=jump)

    # A new cluster starts wherever the gap to the previous kink exceeds merge_tol.
    cluster = np.concatenate([[0], np.cumsum(np.diff(position) > merge_tol)])
    n_clusters = cluster[-1] + 1
    merged_jump = np.bincount(cluster, weights=jump, minlength=n_clusters)
    weight = np.abs(jump)
    weight_sum = np.bincount(cluster, weights=weight, minlength=n_clusters)
    count = np.bincount(cluster, minlength=n_clusters)
    weighted = np.bincount(cluster, weights=weight * position, minlength=n_clusters)
    plain = np.bincount(cluster, weights=position, minlength=n_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged_position = np.where(weight_sum > 0, weighted / weight_sum, plain / count)
    # The weighted mean of points in [lo, hi] is in [lo, hi] up to rounding; clip the rounding.
    merged_position = np.clip(merged_position, lo, hi)

    keep = np.abs(merged_jump) > jump_tol
    return EffectiveKinks(position=merged_position[keep], jump=merged_jump[keep])


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------


def _default_target(x: jax.Array) -> jax.Array:
    return jnp.sin(jnp.pi * x)


def relu_regression_1d(
    key: jax.Array,
    n: int = 8,
    *,
    target: Callable[[jax.Array], jax.Array] | None = None,
    noise_std: float = 0.0,
    dtype: DTypeLike | None = None,
) -> Batch:
    """A few 1-D regression points on ``[−1, 1]``: ``y_i = f*(x_i) + σ ξ_i``.

    Inputs are *stratified*: ``[−1, 1]`` is cut into ``n`` cells of width
    ``2/n`` and ``x_i = −1 + (2/n)(i + u_i)`` with ``u_i ~ U[¼, ¾]``
    i.i.d. So the ``x_i`` are sorted, cover the interval evenly, and any two
    are at least ``1/n`` apart (no near-duplicate inputs that would force a
    steep interpolant). ``ξ_i ~ N(0, 1)`` and ``σ = noise_std``. The default
    target is ``f*(x) = sin(πx)``: one period, whose slope changes sign
    twice, so a good interpolant needs only a few kinks.

    Args:
        key: A ``jax.random`` key (split into one key for ``u`` and one for ``ξ``).
        n: Number of points ``≥ 1``.
        target: A jnp-traceable function ``f*`` (hashable: it is a static
            argument of the compiled generator); ``None`` is ``sin(πx)``.
        noise_std: ``σ ≥ 0``.
        dtype: Float dtype; ``None`` is JAX's default float.

    Returns:
        ``{"x": (n,), "y": (n,)}``.

    Conventions: [rng], [float].
    """
    n = check_positive_int("n", n)
    check_nonnegative("noise_std", noise_std)
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    target = _default_target if target is None else target
    return _relu_regression_1d(key, noise_std, n=n, target=target, dtype=dtype)


@partial(jax.jit, static_argnames=("n", "target", "dtype"))
def _relu_regression_1d(key, noise_std, *, n, target, dtype) -> Batch:
    k_u, k_noise = jax.random.split(key)
    u = jax.random.uniform(k_u, (n,), dtype=dtype, minval=0.25, maxval=0.75)
    x = -1.0 + (2.0 / n) * (jnp.arange(n, dtype=dtype) + u)
    xi = jax.random.normal(k_noise, (n,), dtype=dtype)
    y = jnp.asarray(target(x), dtype=dtype) + jnp.asarray(noise_std, dtype=dtype) * xi
    return {"x": x, "y": y}


def maennel_points(dtype: DTypeLike | None = None) -> Batch:
    """The 12-point data set of the 1-D ReLU experiment of Andriushchenko & Flammarion (2022).

    Their notebook takes it from Maennel et al. (2018): inputs
    ``x = (−5.5, −4.5, …, 5.5)/4 + 0.07`` (equispaced on about
    ``[−1.31, 1.45]``) and labels ``y = 0.345 + (−2, 1.5, 0, 0, 2, 1, 0, −1,
    0, 1, 2, −1)``: a zig-zag no simple function fits, so the number of kinks
    of the interpolant reflects the implicit bias of the training method.

    Returns:
        ``{"x": (12,), "y": (12,)}``.

    Conventions: [float].
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    x = (jnp.arange(12, dtype=dtype) - 5.5) / 4 + 0.07
    y = 0.345 + jnp.asarray([-2, 1.5, 0, 0, 2, 1, 0, -1, 0, 1, 2, -1], dtype=dtype)
    return {"x": x, "y": y}
