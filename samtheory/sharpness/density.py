"""Hessian spectral density by stochastic Lanczos quadrature (SLQ).

The spectral density of a symmetric ``H`` of size ``D`` is the measure
``μ = (1/D) Σ_i δ_{λ_i}``. For ``q`` uniform on the unit sphere,
``E[qᵀ f(H) q] = Tr f(H) / D = ∫ f dμ``, and ``qᵀ f(H) q`` is the integral of
``f`` against the measure ``Σ_i (qᵀu_i)² δ_{λ_i}`` seen from ``q``. ``k`` Lanczos
steps from ``q`` give its ``k``-node Gauss quadrature: nodes ``θ_j`` (the Ritz
values) and weights ``τ_j = S_{1j}²`` (squared first components of the
eigenvectors of ``T_k``), exact for polynomials ``f`` of degree ``≤ 2k − 1``
(Golub & Meurant 2010, *Matrices, Moments and Quadrature with Applications*). Averaging
over independent starts gives SLQ (Lin, Saad & Yang 2016; for neural-network
Hessians Ghorbani, Krishnan & Xiao 2019, "An investigation into neural net
optimization via Hessian eigenvalue density"):

    μ ≈ (1/n_v) Σ_{l=1}^{n_v} Σ_{j=1}^{k} τ_j^{(l)} δ_{θ_j^{(l)}}.

In particular ``Σ weights · nodes`` is an unbiased estimate of ``Tr(H)/D`` and
``Σ weights · nodes²`` of ``Tr(H²)/D``. Ghorbani et al. plot the measure
convolved with a Gaussian kernel of width ``σ``: :func:`gaussian_smoothed_density`.

A breakdown restart inside Lanczos (see :mod:`samtheory.sharpness.lanczos`)
adds nodes whose weight is exactly zero: the quadrature of the first
(invariant) block is already exact.

Conventions: [loss-mean], [rng], [float].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from samtheory._validation import check_positive, check_positive_int
from samtheory.sharpness.hessian import flat_hessian_operator
from samtheory.sharpness.lanczos import lanczos_tridiagonal, ritz_values

__all__ = ["SpectralDensity", "slq_spectral_density", "gaussian_smoothed_density"]


class SpectralDensity(NamedTuple):
    """A discrete approximation ``Σ weights · δ_nodes`` of the spectral measure.

    Attributes:
      nodes: ``(num_starts, num_iter)`` Ritz values of each start, ascending.
      weights: same shape, nonnegative, summing to 1 over all entries (each
        start's quadrature weights divided by ``num_starts``).
    """

    nodes: jax.Array
    weights: jax.Array


def slq_spectral_density(
    loss_fn: Callable,
    params,
    batch,
    *,
    key: jax.Array,
    num_iter: int,
    num_starts: int,
    reorthogonalize: bool = True,
) -> SpectralDensity:
    """SLQ approximation of the Hessian's spectral density (Ghorbani et al. 2019).

    ``num_starts`` independent Lanczos runs of ``num_iter`` steps, started from
    ``z/‖z‖`` with ``z ~ N(0, I_D)`` (uniform on the sphere), run in parallel
    with ``jax.vmap``. Cost: ``num_starts · num_iter`` Hessian-vector products.

    Conventions: [loss-mean], [rng], [float].
    """
    num_iter = check_positive_int("num_iter", num_iter)
    num_starts = check_positive_int("num_starts", num_starts)
    matvec, x0, _ = flat_hessian_operator(loss_fn, params, batch)

    def one_start(k):
        start_key, restart_key = jax.random.split(k)
        v0 = jax.random.normal(start_key, x0.shape, x0.dtype)
        ritz = ritz_values(
            lanczos_tridiagonal(matvec, v0, num_iter, key=restart_key, reorthogonalize=reorthogonalize)
        )
        return ritz.values, ritz.weights

    nodes, weights = jax.vmap(one_start)(jax.random.split(key, num_starts))
    return SpectralDensity(nodes, weights / num_starts)


def gaussian_smoothed_density(density: SpectralDensity, grid: jax.Array, sigma) -> jax.Array:
    """``φ(t) = Σ_l w_l N(t; θ_l, σ²)`` evaluated at every point of ``grid``.

    The Gaussian-kernel smoothing of Ghorbani et al. (2019); it
    integrates to 1 over the real line and has the mean of ``density``.
    ``grid`` may have any shape; the result has the same shape.
    Conventions: [float].
    """
    check_positive("sigma", sigma)
    grid = jnp.asarray(grid)
    nodes = density.nodes.reshape(-1)
    weights = density.weights.reshape(-1)
    z = (grid[..., None] - nodes) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2.0 * jnp.pi))
    return jnp.sum(weights * kernel, axis=-1)
