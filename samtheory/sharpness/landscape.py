"""Loss-landscape slices: filter-normalized directions, 1-D/2-D grids, interpolation.

Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the loss landscape of
neural nets", plot ``α ↦ L(w + α d)`` and ``(α, β) ↦ L(w + α d₁ + β d₂)`` for
random directions ``d`` rescaled *filter by filter* to the norm of the
weights: ``d_{i,j} ← d_{i,j} ‖w_{i,j}‖ / ‖d_{i,j}‖`` for filter ``j`` of layer
``i``. This removes the scale symmetry of ReLU-type networks (rescaling a
filter's incoming weights and its outgoing weights inversely leaves the
function unchanged but changes raw-direction plots), so slices of different
networks become comparable.

**What a "filter" is for a pytree.** A leaf with ``ndim ≥ 2`` is a stack of
filters along its **last axis**: filter ``j`` is ``leaf[..., j]``. This is
the output-unit axis of Flax/Haiku/Equinox-style ``Dense`` kernels
``(in, out)`` (filter = the incoming weights of one unit) and of
``(h, w, in, out)`` convolution kernels (filter = one output channel, Li et
al.'s definition). PyTorch stores ``(out, in, …)``; transpose such a leaf, or
pass a different layout, before using this function. Leaves with
``ndim ≤ 1`` (biases, norm-layer scales, scalars) are, by ``one_dim``:
``"normalize"`` — rescaled as a whole to the leaf's norm, or ``"zero"`` —
set to zero, so the slice does not move them. A filter whose weights are all
zero gets a zero direction.

Grids evaluate the loss with ``jax.vmap`` over grid points; for large models
``chunk_size`` bounds memory by mapping over chunks of that many points
(``jax.lax.map(..., batch_size=chunk_size)``), with identical results.

Conventions: [loss-mean], [rng], [float].
"""

from __future__ import annotations

from typing import Callable, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = [
    "filter_normalized_direction",
    "loss_slice_1d",
    "loss_slice_2d",
    "linear_interpolation",
]


def _rescale(d: jax.Array, target_norm: jax.Array, norm: jax.Array) -> jax.Array:
    """``d · target/norm``, 0 where ``target = 0`` or ``norm = 0`` (no 0/0)."""
    ok = (norm > 0) & (target_norm > 0)
    return jnp.where(ok, d * (target_norm / jnp.where(ok, norm, 1.0)), 0.0).astype(d.dtype)


def _norms(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Euclidean norms over ``axes`` (kept), scaled by the max first so tiny weights do not underflow."""
    s = jnp.max(jnp.abs(x), axis=axes, keepdims=True)
    safe = jnp.where(s > 0, s, 1.0)
    return s * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=axes, keepdims=True))


def _normalize_leaf(d: jax.Array, w: jax.Array, one_dim: str) -> jax.Array:
    if jnp.ndim(w) <= 1:
        if one_dim == "zero":
            return jnp.zeros_like(d)
        axes = tuple(range(jnp.ndim(w)))
    else:
        # Norms over every axis but the last: one per filter.
        axes = tuple(range(jnp.ndim(w) - 1))
    return _rescale(d, _norms(w, axes), _norms(d, axes))


def filter_normalized_direction(
    key: jax.Array, params, *, one_dim: Literal["normalize", "zero"] = "normalize"
):
    """A Gaussian direction rescaled filter by filter to the norms of ``params``.

    Returns a pytree like ``params`` whose filter ``leaf[..., j]`` has exactly
    the Euclidean norm of the same filter of ``params`` (see the module
    docstring for the filter convention and ``one_dim``). Li et al. (2018).
    Conventions: [rng], [float].
    """
    if one_dim not in ("normalize", "zero"):
        raise ValueError(f"one_dim must be 'normalize' or 'zero', got {one_dim!r}")
    # One draw for the whole raveled pytree, not one per leaf: each random call
    # compiles its own copy of the threefry hash, so per-leaf draws make
    # compile time grow with the number of leaves (4× slower already at 4).
    flat, unravel = ravel_pytree(params)
    raw = unravel(jax.random.normal(key, flat.shape, flat.dtype))
    return jax.tree.map(lambda d, w: _normalize_leaf(d, w, one_dim), raw, params)


def _map(fn: Callable, xs, chunk_size: int | None):
    if chunk_size is None:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def _axpy(params, coefficient, direction):
    # The coefficient takes each leaf's dtype, so float32 params stay float32 ([float]).
    return jax.tree.map(lambda w, d: w + coefficient.astype(w.dtype) * d, params, direction)


def loss_slice_1d(
    loss_fn: Callable, params, batch, direction, alphas: jax.Array, *, chunk_size: int | None = None
) -> jax.Array:
    """``[L(params + α d) for α in alphas]``, shape ``alphas.shape`` (1-D).

    Conventions: [loss-mean], [float].
    """
    alphas = jnp.asarray(alphas)
    return _map(lambda a: loss_fn(_axpy(params, a, direction), batch), alphas, chunk_size)


def loss_slice_2d(
    loss_fn: Callable,
    params,
    batch,
    directions: tuple,
    alphas: jax.Array,
    betas: jax.Array,
    *,
    chunk_size: int | None = None,
) -> jax.Array:
    """``L(params + α d₁ + β d₂)`` on the grid ``alphas × betas``.

    ``directions = (d₁, d₂)``. Returns shape ``(len(alphas), len(betas))``,
    entry ``[i, j]`` at ``(alphas[i], betas[j])`` (``indexing="ij"``; use
    ``.T`` for ``matplotlib.contour(alphas, betas, ·)``). The grid is
    flattened and evaluated by one ``vmap`` (or ``chunk_size`` chunks).
    Conventions: [loss-mean], [float].
    """
    d1, d2 = directions
    alphas, betas = jnp.asarray(alphas), jnp.asarray(betas)
    a_grid, b_grid = jnp.meshgrid(alphas, betas, indexing="ij")

    def at(ab):
        return loss_fn(_axpy(_axpy(params, ab[0], d1), ab[1], d2), batch)

    points = jnp.stack([a_grid.reshape(-1), b_grid.reshape(-1)], axis=-1)
    return _map(at, points, chunk_size).reshape(a_grid.shape)


def linear_interpolation(
    loss_fn: Callable, params_a, params_b, batch, ts: jax.Array, *, chunk_size: int | None = None
) -> jax.Array:
    """``[L((1 − t) w_a + t w_b) for t in ts]`` (Goodfellow, Vinyals & Saxe 2015).

    Written as ``(1 − t) w_a + t w_b`` rather than ``w_a + t (w_b − w_a)`` so
    that ``t = 0`` and ``t = 1`` give exactly ``w_a`` and ``w_b`` in floating
    point. ``t`` outside ``[0, 1]`` extrapolates. Conventions: [loss-mean], [float].
    """
    ts = jnp.asarray(ts)

    def at(t):
        def mix(a, b):
            s = t.astype(a.dtype)
            return (1 - s) * a + s * b

        return loss_fn(jax.tree.map(mix, params_a, params_b), batch)

    return _map(at, ts, chunk_size)
