"""Diagonal linear networks (DLNs) for sparse regression.

A diagonal linear network is the linear predictor ``f(x) = ⟨x, β⟩`` whose
coefficients are a *product* of parameters. Two parametrizations are used:

* **u⊙v**: ``β = u ⊙ v``, started at ``u(0) = c``, ``v(0) = 0``;
* **w±**: ``β = w₊² − w₋²``, started at ``w₊(0) = w₋(0) = α``.

They are the same network up to the orthogonal-times-``1/√2`` change of
variables ``w± = (u ± v)/2`` (see :func:`alpha_of_uv_init` for the exact
correspondence of GD and SAM trajectories). Gradient flow on the w± network
from scale ``α`` interpolates the data and converges to
``argmin Q_α(β) s.t. Xβ = y`` (Woodworth et al. 2020), where the hyperbolic
entropy ``Q_α`` goes from ℓ₂-like (large α, "kernel regime") to ℓ₁-like
(small α, "rich regime"). Andriushchenko & Flammarion (2022, §3) show that
on this model SAM acts like a smaller effective α, and 1-SAM more so than
n-SAM, which biases it toward sparser, better-generalizing interpolators.

The loss is the squared loss ``L = (1/2n)‖Xβ − y‖²`` of a batch
``{"x": (n, d), "y": (n,)}``.

References:
    B. Woodworth, S. Gunasekar, J. Lee, E. Moroshko, P. Savarese, I. Golan,
    D. Soudry, N. Srebro. *Kernel and Rich Regimes in Overparametrized
    Models.* COLT 2020.

    M. Andriushchenko, N. Flammarion. *Towards Understanding
    Sharpness-Aware Minimization.* ICML 2022.

Conventions: [loss-mean], [loss-sq], [alpha], [rng], [float].
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from samtheory._validation import check_nonnegative, check_positive_int

Params = dict[str, jax.Array]
Batch = dict[str, jax.Array]

__all__ = [
    "SparseRegressionData",
    "alpha_of_uv_init",
    "beta_pm",
    "beta_uv",
    "init_pm",
    "init_uv",
    "loss_beta",
    "loss_pm",
    "loss_uv",
    "pm_to_uv",
    "predict_pm",
    "predict_uv",
    "sparse_regression",
    "uv_to_pm",
]


# --------------------------------------------------------------------------
# Argument checks (shapes are static, so these are safe under jit and vmap).
# --------------------------------------------------------------------------


def _check_batch(batch: Batch) -> None:
    x, y = batch["x"], batch["y"]
    if jnp.ndim(x) != 2:
        raise ValueError(f"batch['x'] must have shape (n, d), got shape {jnp.shape(x)}")
    if jnp.shape(y) != jnp.shape(x)[:1]:
        raise ValueError(
            f"batch['y'] must have shape (n,) = {jnp.shape(x)[:1]} to match batch['x'], "
            f"got shape {jnp.shape(y)}"
        )


def _check_same_shape(name: str, first: str, second: str, params: Params) -> None:
    if not isinstance(params, Mapping) or first not in params or second not in params:
        got = f"keys {sorted(map(str, params))}" if isinstance(params, Mapping) else type(params).__name__
        raise TypeError(f"{name} must be a dict with keys {first!r} and {second!r}, got {got}")
    if jnp.shape(params[first]) != jnp.shape(params[second]):
        raise ValueError(
            f"{name}: {first!r} and {second!r} must have the same shape, got "
            f"{jnp.shape(params[first])} and {jnp.shape(params[second])}"
        )


def _check_inputs(x: jax.Array, beta: jax.Array) -> None:
    if jnp.ndim(beta) != 1:
        raise ValueError(f"params must hold vectors of shape (d,), got shape {jnp.shape(beta)}")
    d = jnp.shape(beta)[0]
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != d:
        raise ValueError(
            f"x must have shape (n, {d}) to match the {d} coordinates of params, got shape {jnp.shape(x)}"
        )


def _scale_vector(name: str, value: ArrayLike, d: int, dtype: DTypeLike | None) -> jax.Array:
    """Broadcast a scalar or ``(d,)`` scale to ``(d,)``, refusing other shapes and negatives."""
    check_nonnegative(name, value)
    shape = jnp.shape(value)
    if shape not in ((), (d,)):
        raise ValueError(f"{name} must be a scalar or have shape ({d},), got shape {shape}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), (d,))


# --------------------------------------------------------------------------
# u⊙v parametrization.
# --------------------------------------------------------------------------


def init_uv(d: int, scale_c: ArrayLike, dtype: DTypeLike | None = None) -> Params:
    """Initialization ``u(0) = c·1``, ``v(0) = 0`` of the u⊙v network.

    Args:
        d: Dimension (number of coordinates of β).
        scale_c: ``c ≥ 0``, a scalar or a ``(d,)`` vector.
        dtype: Float dtype of the parameters; ``None`` is JAX's default float
            (float64 once float64 is enabled).

    Returns:
        ``{"u": c·1, "v": 0}``, both of shape ``(d,)``. It corresponds to
        ``α = c/2`` in the w± parametrization (:func:`alpha_of_uv_init`).

    Conventions: [alpha], [float].
    """
    d = check_positive_int("d", d)
    u = _scale_vector("scale_c", scale_c, d, dtype)
    return {"u": u, "v": jnp.zeros_like(u)}


def beta_uv(params: Params) -> jax.Array:
    """Linear coefficients ``β = u ⊙ v``. Conventions: [alpha]."""
    _check_same_shape("params", "u", "v", params)
    return params["u"] * params["v"]


def predict_uv(params: Params, x: jax.Array) -> jax.Array:
    """Predictions ``X(u ⊙ v)`` for inputs ``x`` of shape ``(n, d)``. Conventions: [alpha]."""
    beta = beta_uv(params)
    _check_inputs(x, beta)
    return x @ beta


def loss_uv(params: Params, batch: Batch) -> jax.Array:
    """Mean squared loss ``(1/2n)‖X(u ⊙ v) − y‖²`` of the u⊙v network.

    Its gradient is ``∇_u L = g ⊙ v``, ``∇_v L = g ⊙ u`` with
    ``g = ∇_β L = Xᵀr/n``.

    Conventions: [loss-mean], [loss-sq], [alpha].
    """
    return loss_beta(beta_uv(params), batch)


# --------------------------------------------------------------------------
# w± parametrization.
# --------------------------------------------------------------------------


def init_pm(d: int, alpha: ArrayLike, dtype: DTypeLike | None = None) -> Params:
    """Initialization ``w₊(0) = w₋(0) = α`` of the w± network (so ``β(0) = 0``).

    Args:
        d: Dimension.
        alpha: ``α ≥ 0``, a scalar or a per-coordinate ``(d,)`` vector.
        dtype: Float dtype; ``None`` is JAX's default float.

    Returns:
        ``{"w_plus": α, "w_minus": α}``, both of shape ``(d,)``.

    Conventions: [alpha], [float].
    """
    d = check_positive_int("d", d)
    w = _scale_vector("alpha", alpha, d, dtype)
    return {"w_plus": w, "w_minus": w}


def beta_pm(params: Params) -> jax.Array:
    """Linear coefficients ``β = w₊² − w₋²``. Conventions: [alpha]."""
    _check_same_shape("params", "w_plus", "w_minus", params)
    return params["w_plus"] ** 2 - params["w_minus"] ** 2


def predict_pm(params: Params, x: jax.Array) -> jax.Array:
    """Predictions ``X(w₊² − w₋²)`` for inputs ``x`` of shape ``(n, d)``. Conventions: [alpha]."""
    beta = beta_pm(params)
    _check_inputs(x, beta)
    return x @ beta


def loss_pm(params: Params, batch: Batch) -> jax.Array:
    """Mean squared loss ``(1/2n)‖X(w₊² − w₋²) − y‖²`` of the w± network.

    Its gradient is ``∇_{w₊} L = 2 g ⊙ w₊``, ``∇_{w₋} L = −2 g ⊙ w₋`` with
    ``g = ∇_β L = Xᵀr/n``.

    Conventions: [loss-mean], [loss-sq], [alpha].
    """
    return loss_beta(beta_pm(params), batch)


# --------------------------------------------------------------------------
# The linear model itself, and the change of variables.
# --------------------------------------------------------------------------


def loss_beta(beta: jax.Array, batch: Batch) -> jax.Array:
    """Mean squared loss ``(1/2n)‖Xβ − y‖²`` of the linear predictor β.

    Use it for the test loss of a trained network (``loss_beta(beta_uv(p), test)``)
    and as the loss both parametrizations compose with. ``∇_β L = Xᵀr/n``.

    Conventions: [loss-mean], [loss-sq].
    """
    _check_batch(batch)
    if jnp.shape(beta) != jnp.shape(batch["x"])[1:]:
        raise ValueError(
            f"beta must have shape (d,) = {jnp.shape(batch['x'])[1:]} to match batch['x'], "
            f"got shape {jnp.shape(beta)}"
        )
    r = batch["x"] @ beta - batch["y"]
    return 0.5 * jnp.mean(r**2)


def uv_to_pm(params: Params) -> Params:
    """Map ``(u, v)`` to ``(w₊, w₋) = ((u + v)/2, (u − v)/2)``; preserves β exactly.

    ``w₊² − w₋² = ((u+v)² − (u−v)²)/4 = u v``.

    Conventions: [alpha].
    """
    _check_same_shape("params", "u", "v", params)
    u, v = params["u"], params["v"]
    return {"w_plus": 0.5 * (u + v), "w_minus": 0.5 * (u - v)}


def pm_to_uv(params: Params) -> Params:
    """Inverse of :func:`uv_to_pm`: ``(u, v) = (w₊ + w₋, w₊ − w₋)``. Conventions: [alpha]."""
    _check_same_shape("params", "w_plus", "w_minus", params)
    wp, wm = params["w_plus"], params["w_minus"]
    return {"u": wp + wm, "v": wp - wm}


def alpha_of_uv_init(c: ArrayLike) -> ArrayLike:
    """The w± scale ``α = c/2`` equivalent to the u⊙v initialization ``u(0) = c, v(0) = 0``.

    Derivation. Per coordinate, ``w = (w₊, w₋) = M z`` with ``z = (u, v)``
    and ``M = ½[[1, 1], [1, −1]]``. ``M`` is symmetric and ``M² = ½ I``
    (``M = Q/√2`` with ``Q`` orthogonal). The map preserves the predictor,
    ``w₊² − w₋² = u v``, so ``L_z(z) = L_w(Mz)`` and by the chain rule
    ``∇_z L = Mᵀ ∇_w L = M ∇_w L``. Hence

    * **GD**: ``z⁺ = z − η ∇_z L`` gives
      ``w⁺ = M z⁺ = w − η M² ∇_w L = w − (η/2) ∇_w L``: GD with step ``η`` on
      (u, v) *is* GD with step ``η/2`` on (w₊, w₋), iterate by iterate.
    * **USAM** (``ε = ρ∇L``, then the gradient at the perturbed point): the
      ascent ``z + ρ∇_z L`` maps to ``w + (ρ/2)∇_w L``, the perturbed points
      correspond, and the descent maps as for GD. So ``(η, ρ)`` on (u, v) is
      ``(η/2, ρ/2)`` on (w±). The same holds chunk by chunk for m-SAM, since
      the map is linear and the same for every chunk.
    * **Normalized SAM** (not in the [alpha] table): ``‖∇_z L‖ = ‖M∇_w L‖ =
      ‖∇_w L‖/√2``, so ``ε_z = ρ∇_z L/‖∇_z L‖`` maps to
      ``(ρ/√2) ∇_w L/‖∇_w L‖``: radius ``ρ`` on (u, v) is ``ρ/√2`` on (w±).
    * **Gradient flow**: ``ż = −∇_z L`` is ``ẇ = −½∇_w L``, the w± flow run
      at half speed. A time change does not move the limit, so the u⊙v flow
      from ``(c, 0)`` converges to the limit of the w± flow from
      ``w±(0) = M(c, 0) = (c/2, c/2)``, i.e. to ``argmin Q_{c/2}`` subject to
      ``Xβ = y`` (Woodworth et al. 2020). Therefore ``α = c/2``.

    Works elementwise on scalars and arrays (per-coordinate scales).

    Conventions: [alpha].
    """
    check_nonnegative("c", c)
    return c / 2


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------


class SparseRegressionData(NamedTuple):
    """Train and test batches of a sparse regression problem and its ground truth.

    Conventions: [loss-mean].
    """

    train: Batch
    test: Batch
    beta_star: jax.Array


def sparse_regression(
    key: jax.Array,
    n: int,
    d: int,
    k: int,
    n_test: int,
    noise_std: float = 0.0,
    dtype: DTypeLike | None = None,
) -> SparseRegressionData:
    """Noisy linear measurements of a k-sparse, non-negative, unit-norm vector.

    The reference experiment of Andriushchenko & Flammarion (2022; their
    diagonal-network notebook) is ``n=20, d=30, k=3, n_test=1000``, noiseless.

    How it is drawn (``key`` is split into six independent keys, one per array):

    1. **support**: a uniformly random k-subset ``S`` of ``{0, …, d−1}``
       (the first k entries of a uniform random permutation);
    2. **values**: ``β*_S = |g| / ‖g‖₂`` with ``g ~ N(0, I_k)``, and
       ``β*_j = 0`` off ``S``; so ``β* ≥ 0``, ``‖β*‖₂ = 1``, and exactly k
       entries are nonzero (with probability one). The direction of ``β*_S``
       is uniform on the positive orthant of the sphere;
    3. **inputs**: ``X`` (n × d) and ``X_test`` (n_test × d) with i.i.d.
       standard normal entries;
    4. **labels**: ``y = Xβ* + σ ξ``, ``y_test = X_test β* + σ ξ_test`` with
       ``ξ, ξ_test`` standard normal and ``σ = noise_std``; train and test are
       i.i.d. from the same model, so with noise the test loss of ``β*`` is
       ``≈ σ²/2``, not 0.

    ``X``, ``β*`` and ``ξ`` do not depend on ``noise_std`` (the same key with
    two noise levels gives the same problem with rescaled noise), and the
    training set does not depend on ``n_test``.

    The reference notebook draws the values the same way but puts the support
    on the first k coordinates; since the columns of ``X`` are exchangeable, the two give the
    same distribution of problems up to a relabeling of the coordinates.

    Args:
        key: A ``jax.random`` key.
        n, d, k, n_test: Train size, dimension, sparsity (``1 ≤ k ≤ d``), test size.
        noise_std: ``σ ≥ 0``.
        dtype: Float dtype; ``None`` is JAX's default float.

    Returns:
        ``SparseRegressionData(train={"x", "y"}, test={"x", "y"}, beta_star)``.

    Conventions: [loss-mean], [loss-sq], [rng].
    """
    n = check_positive_int("n", n)
    d = check_positive_int("d", d)
    k = check_positive_int("k", k)
    n_test = check_positive_int("n_test", n_test)
    if k > d:
        raise ValueError(f"k must be <= d = {d}, got {k}")
    check_nonnegative("noise_std", noise_std)
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    return _sparse_regression(key, noise_std, n=n, d=d, k=k, n_test=n_test, dtype=dtype)


@partial(jax.jit, static_argnames=("n", "d", "k", "n_test", "dtype"))
def _sparse_regression(key, noise_std, *, n, d, k, n_test, dtype) -> SparseRegressionData:
    # Compiled once per shape: eager dispatch of these few ops costs more than the work.
    k_support, k_values, k_x, k_x_test, k_noise, k_noise_test = jax.random.split(key, 6)
    support = jax.random.permutation(k_support, d)[:k]
    g = jnp.abs(jax.random.normal(k_values, (k,), dtype=dtype))
    beta_star = jnp.zeros((d,), dtype=dtype).at[support].set(g / jnp.linalg.norm(g))

    # Separate keys per array, so that the training set does not change when
    # only n_test (or only noise_std) changes.
    x = jax.random.normal(k_x, (n, d), dtype=dtype)
    x_test = jax.random.normal(k_x_test, (n_test, d), dtype=dtype)
    xi = jax.random.normal(k_noise, (n,), dtype=dtype)
    xi_test = jax.random.normal(k_noise_test, (n_test,), dtype=dtype)
    noise_std = jnp.asarray(noise_std, dtype=dtype)
    return SparseRegressionData(
        train={"x": x, "y": x @ beta_star + noise_std * xi},
        test={"x": x_test, "y": x_test @ beta_star + noise_std * xi_test},
        beta_star=beta_star,
    )
