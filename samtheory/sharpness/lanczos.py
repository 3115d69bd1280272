"""Lanczos tridiagonalization and the extreme eigenvalues of the Hessian.

For a symmetric ``A`` (here the Hessian, see
:func:`samtheory.sharpness.hessian.flat_hessian_operator`) and a start vector
``q₁``, ``k`` Lanczos steps build an orthonormal basis ``Q_k = [q₁ … q_k]`` of
the Krylov space ``span{q₁, A q₁, …, A^{k−1} q₁}`` and the symmetric
tridiagonal ``T_k = Q_kᵀ A Q_k`` (diagonal ``α``, off-diagonal ``β``) with

    A Q_k = Q_k T_k + β_k q_{k+1} e_kᵀ.

If ``T_k = S Θ Sᵀ``, the Ritz pairs ``(θ_i, y_i = Q_k s_i)`` have residual
``‖A y_i − θ_i y_i‖₂ = β_k |S_{k,i}|``; for symmetric ``A`` some eigenvalue
lies within that residual of ``θ_i`` (Kahan's bound), and within
``residual² / gap`` if the rest of the spectrum is ``gap`` away (Kato–Temple);
see Parlett (1998), *The Symmetric Eigenvalue Problem*. The extreme
Ritz values converge first, from the inside (Cauchy interlacing:
``λ_min ≤ θ_min`` and ``θ_max ≤ λ_max``), and both ends come out of the same
run. Power iteration, as in PyHessian (Yao et al. 2020), only finds the
eigenvalue of largest modulus, which at a saddle may be the most negative one
and is never ``λ_min`` of a positive-definite Hessian.

Two numerical points decide whether this works in floating point:

* **Reorthogonalization.** Without it the ``q_j`` lose orthogonality as soon as
  a Ritz value converges and converged eigenvalues reappear as spurious
  copies ("ghosts", Paige 1971). ``reorthogonalize=True`` projects every new
  vector against the whole stored basis, twice (classical Gram–Schmidt twice
  is enough: Giraud, Langou & Rozložník 2005). It stores the ``k × D`` basis;
  ``False`` keeps three vectors (``O(D)`` memory) for models where that matters
  and accepts ghosts.
* **Breakdown.** If ``β_j`` vanishes the Krylov space is invariant (the start
  vector only sees ``j`` distinct eigenvalues — e.g. ``A = c I`` breaks down
  after one step) and ``q_{j+1} = r / β_j`` is ``0/0``. We then set ``β_j = 0``
  and continue from a fresh random vector orthogonal to the basis, so ``T`` is
  block-diagonal and its further blocks find the eigenvalues (and
  multiplicities) the first start vector cannot see. The threshold is
  ``64 ε ‖T‖`` (running estimate): zeroing a ``β`` below it perturbs ``T``, hence
  every Ritz value, by less than the threshold, so nothing of accuracy is lost;
  a larger threshold such as ``√ε`` would cut legitimate small couplings.

Without a breakdown restart, a single start vector sees each distinct
eigenvalue once: **multiplicities are invisible**, so the top-``k`` Ritz values
of a Hessian whose ``λ_max`` is double are ``λ₁, λ₃, …`` until the Krylov
space is exhausted. Run to ``num_iter = D`` (small problems) to recover them.

Why not ``matfree``: its ``decomp.tridiag_sym`` (0.6.3) is clean and
reorthogonalizes, but divides by ``β`` unguarded (``A = c I`` gives NaN on the
second step, as does any start vector inside a small invariant subspace) and
allocates the ``k × D`` basis even without reorthogonalization, so the
``O(D)``-memory mode is unavailable. The recurrence is short; it is written
here with the guard.

Conventions: [loss-mean], [rng], [float].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from samtheory._validation import check_positive_int
from samtheory.sharpness.hessian import flat_hessian_operator

__all__ = [
    "LanczosDecomposition",
    "RitzValues",
    "HessianEigenvalues",
    "lanczos_tridiagonal",
    "ritz_values",
    "hessian_eigenvalues",
]

# Breakdown threshold in units of ε ‖T‖ (see the module docstring).
_BREAKDOWN_FACTOR = 64.0


class LanczosDecomposition(NamedTuple):
    """``A Q_k = Q_k T_k + β_k q_{k+1} e_kᵀ`` in compact form.

    Attributes:
      diagonal: ``(k,)`` the ``α_j`` of ``T_k``.
      off_diagonal: ``(k−1,)`` the ``β_j`` of ``T_k``; exactly 0 at a breakdown.
      residual_norm: ``β_k = ‖A Q_k − Q_k T_k‖₂``, scalar.
      basis: ``(k, D)``, rows ``q_j``, with ``reorthogonalize=True``; else ``None``.
    """

    diagonal: jax.Array
    off_diagonal: jax.Array
    residual_norm: jax.Array
    basis: jax.Array | None


class RitzValues(NamedTuple):
    """Eigen-information of ``T_k``, ascending.

    Attributes:
      values: ``(k,)`` Ritz values ``θ_i``, ascending.
      residuals: ``(k,)`` ``β_k |S_{k,i}| = ‖A y_i − θ_i y_i‖₂``.
      weights: ``(k,)`` ``S_{1,i}²``, the Gauss quadrature weights of the
        spectral measure seen from ``q₁`` (they sum to 1).
    """

    values: jax.Array
    residuals: jax.Array
    weights: jax.Array


class HessianEigenvalues(NamedTuple):
    """Extreme Ritz values of the Hessian with residual error bounds.

    Attributes:
      largest: ``(num_eigenvalues,)`` the largest Ritz values, descending.
      largest_error: their residual norms (an eigenvalue of ``H`` lies within).
      smallest: ``(num_eigenvalues,)`` the smallest Ritz values, ascending.
      smallest_error: their residual norms.
      ritz: every Ritz value, residual and quadrature weight (:class:`RitzValues`).
    """

    largest: jax.Array
    largest_error: jax.Array
    smallest: jax.Array
    smallest_error: jax.Array
    ritz: RitzValues


def _norm(w: jax.Array) -> jax.Array:
    """‖w‖₂ computed as ``s ‖w/s‖₂`` with ``s = max|w|``.

    The plain ``√Σw²`` underflows to 0 once the entries are below ``√(tiny)``
    (about 1e-154 in float64 but only 1e-19 in float32, a realistic Hessian
    scale near an interpolating minimum), which would be misread as a
    breakdown. Scaling first makes Lanczos invariant to the scale of ``A``.
    """
    s = jnp.max(jnp.abs(w))
    positive = s > 0
    safe = jnp.where(positive, s, 1.0)
    return jnp.where(positive, s * jnp.sqrt(jnp.sum(jnp.square(w / safe))), 0.0).astype(w.dtype)


def _unit(w: jax.Array, length: jax.Array, is_zero: jax.Array) -> jax.Array:
    """``w / length``, or 0 where ``is_zero`` (double-where: no 0/0 even in derivatives)."""
    return jnp.where(is_zero, 0.0, w / jnp.where(is_zero, 1.0, length)).astype(w.dtype)


def lanczos_tridiagonal(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    num_iter: int,
    *,
    key: jax.Array,
    reorthogonalize: bool = True,
) -> LanczosDecomposition:
    """``num_iter`` steps of Lanczos for a symmetric operator on flat vectors.

    Args:
      matvec: ``u ↦ A u`` for ``u`` of shape ``(D,)``; ``A`` must be symmetric.
      v0: start vector ``(D,)``; normalized here. A zero ``v0`` is replaced by
        ``(1, …, 1)/√D``.
      num_iter: Krylov dimension ``k ≥ 1``; at most ``D`` with reorthogonalization.
      key: PRNG key for the fresh vectors drawn at a breakdown (step ``j``
        uses ``fold_in(key, j)``); unused if no breakdown occurs.
      reorthogonalize: full reorthogonalization against the stored basis.

    Computed in the dtype of ``v0``. Pure and ``jit``/``vmap``-compatible
    (``num_iter`` and ``reorthogonalize`` are static).
    Conventions: [rng], [float].
    """
    num_iter = check_positive_int("num_iter", num_iter)
    v0 = jnp.asarray(v0)
    if v0.ndim != 1:
        raise ValueError(f"v0 must be a flat vector, got shape {v0.shape}")
    if not jnp.issubdtype(v0.dtype, jnp.floating):
        raise ValueError(f"v0 must be real floating point, got dtype {v0.dtype}")
    dim = v0.shape[0]
    if reorthogonalize and num_iter > dim:
        raise ValueError(
            f"num_iter={num_iter} exceeds the dimension D={dim}: an orthonormal basis has at most D vectors"
        )
    dtype = v0.dtype
    tiny = _BREAKDOWN_FACTOR * jnp.finfo(dtype).eps

    def orthogonalize(w, basis, q, q_prev):
        if reorthogonalize:
            # Classical Gram–Schmidt twice against every stored vector. Rows of
            # `basis` not yet filled are zero, so they project out nothing.
            for _ in range(2):
                w = w - basis.T @ (basis @ w)
            return w
        return w - q * jnp.vdot(q, w) - q_prev * jnp.vdot(q_prev, w)

    def fresh_direction(step, basis, q, q_prev):
        z = jax.random.normal(jax.random.fold_in(key, step), (dim,), dtype)
        z = orthogonalize(z, basis, q, q_prev)
        length = _norm(z)
        return _unit(z, length, length == 0)

    basis0 = jnp.zeros((num_iter, dim), dtype) if reorthogonalize else None
    zeros = jnp.zeros(dim, dtype)
    length0 = _norm(v0)
    start_is_zero = length0 == 0
    # A zero start has no direction; (1, …, 1)/√D is as good as any and needs
    # no second random draw (each draw site costs compile time).
    q1 = jnp.where(start_is_zero, jnp.full(dim, 1.0 / dim**0.5, dtype), _unit(v0, length0, start_is_zero))

    def step(j, carry):
        basis, q, q_prev, beta_prev, alphas, betas, broke, scale = carry
        if reorthogonalize:
            basis = basis.at[j].set(q)
        w = matvec(q)
        alpha = jnp.vdot(q, w)
        w = w - alpha * q - beta_prev * q_prev
        w = orthogonalize(w, basis, q, q_prev)
        beta = _norm(w)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(alpha), beta))
        # `<=` so that a zero operator (scale 0, beta 0) counts as broken down.
        broken = beta <= tiny * scale
        q_next = jnp.where(broken, fresh_direction(j, basis, q, q_prev), _unit(w, beta, broken))
        beta_kept = jnp.where(broken, jnp.zeros_like(beta), beta)
        return (
            basis, q_next, q, beta_kept,
            alphas.at[j].set(alpha), betas.at[j].set(beta), broke.at[j].set(broken), scale,
        )

    init = (
        basis0, q1, zeros, jnp.zeros((), dtype),
        jnp.zeros(num_iter, dtype), jnp.zeros(num_iter, dtype),
        jnp.zeros(num_iter, bool), jnp.zeros((), dtype),
    )
    basis, _, _, _, alphas, betas, broke, _ = jax.lax.fori_loop(0, num_iter, step, init)
    off_diagonal = jnp.where(broke[:-1], jnp.zeros_like(betas[:-1]), betas[:-1])
    # The last β is the true residual norm even if tiny: it is not a coupling
    # inside T, so it is reported as computed.
    return LanczosDecomposition(alphas, off_diagonal, betas[-1], basis)


def ritz_values(decomposition: LanczosDecomposition) -> RitzValues:
    """Ritz values, residual norms and quadrature weights of a Lanczos run.

    Eigen-decomposes the ``k × k`` tridiagonal ``T_k`` densely (``k`` is small).
    Residual norms ignore the breakdown couplings set to zero (each below
    ``64 ε ‖T‖``) and, without reorthogonalization, the loss of orthogonality.
    Conventions: [float].
    """
    t = (
        jnp.diag(decomposition.diagonal)
        + jnp.diag(decomposition.off_diagonal, 1)
        + jnp.diag(decomposition.off_diagonal, -1)
    )
    values, vectors = jnp.linalg.eigh(t)
    residuals = jnp.abs(decomposition.residual_norm * vectors[-1, :])
    return RitzValues(values, residuals, vectors[0, :] ** 2)


def hessian_eigenvalues(
    loss_fn: Callable,
    params,
    batch,
    *,
    key: jax.Array,
    num_iter: int,
    num_eigenvalues: int = 1,
    reorthogonalize: bool = True,
) -> HessianEigenvalues:
    """The ``num_eigenvalues`` largest and smallest Hessian eigenvalues by Lanczos.

    One Lanczos run of ``num_iter`` Hessian-vector products from a Gaussian
    start vector; both ends of the spectrum come from the same run, so
    ``λ_min`` (negative at a saddle, the flattest curvature at a minimum) costs
    nothing extra. ``largest_error``/``smallest_error`` are the residual
    bounds of the module docstring: ``|θ − λ| ≤ error`` for some eigenvalue
    ``λ`` of ``H``. With ``num_iter = D`` and reorthogonalization the result is
    the whole spectrum to rounding error. Multiplicities: see the module
    docstring.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean loss.
      params: parameter pytree; ``D`` is its total size.
      batch: data pytree.
      key: PRNG key for the start vector (and breakdown restarts).
      num_iter: Lanczos steps ``k`` (``num_eigenvalues ≤ k``, and ``k ≤ D`` with
        reorthogonalization).
      num_eigenvalues: how many from each end.
      reorthogonalize: see :func:`lanczos_tridiagonal`.

    Conventions: [loss-mean], [rng], [float].
    """
    num_iter = check_positive_int("num_iter", num_iter)
    num_eigenvalues = check_positive_int("num_eigenvalues", num_eigenvalues)
    if num_eigenvalues > num_iter:
        raise ValueError(f"num_eigenvalues={num_eigenvalues} exceeds num_iter={num_iter}")
    matvec, x0, _ = flat_hessian_operator(loss_fn, params, batch)
    start_key, restart_key = jax.random.split(key)
    v0 = jax.random.normal(start_key, x0.shape, x0.dtype)
    decomposition = lanczos_tridiagonal(
        matvec, v0, num_iter, key=restart_key, reorthogonalize=reorthogonalize
    )
    ritz = ritz_values(decomposition)
    return HessianEigenvalues(
        largest=ritz.values[::-1][:num_eigenvalues],
        largest_error=ritz.residuals[::-1][:num_eigenvalues],
        smallest=ritz.values[:num_eigenvalues],
        smallest_error=ritz.residuals[:num_eigenvalues],
        ritz=ritz,
    )
