"""Quadratic problem families with exact constants, for testing convergence theorems.

Convergence results for SGD and (U)SAM are stated in terms of a few constants
of the objective ``L(w) = (1/n) Σ_i ℓ_i(w)`` (e.g. Andriushchenko & Flammarion
2022, §5):

* **smoothness** β: ``‖∇L(w) − ∇L(v)‖ ≤ β‖w − v‖`` for all ``w, v``; for a
  quadratic, β is the largest eigenvalue of the (constant) Hessian, and the
  bound is attained along its top eigenvector;
* **individual smoothness**: ``max_i`` of the smoothness of ``ℓ_i``
  (needed by theorems on m-SAM/1-SAM, which perturb per example);
* **PL constant** μ: ``½‖∇L(w)‖² ≥ μ (L(w) − L*)`` for all ``w``;
* **gradient-noise variance**: ``σ²(w) = E_i ‖∇ℓ_i(w) − ∇L(w)‖²`` with
  ``i`` uniform on ``{1, …, n}`` (the variance of the one-example stochastic
  gradient; a size-b minibatch drawn with replacement has ``σ²/b``).

The two families here have them in closed form:

* :class:`QuadraticFamily`: ``ℓ_i(w) = ½ (w − c_i)ᵀ A (w − c_i)``, a shared
  curvature and scattered centers; σ² does not depend on ``w``.
* :class:`LeastSquares`: ``ℓ_i(w) = ½ (x_iᵀw − y_i)²``; σ²(w) is unbounded.

Constants are computed once with NumPy in float64 (``eigvalsh``, ``svd``,
``lstsq``) from the stored arrays, so they are exact for the problem as
stored, up to float64 rounding.

References:
    M. Andriushchenko, N. Flammarion. *Towards Understanding
    Sharpness-Aware Minimization.* ICML 2022.

    H. Karimi, J. Nutini, M. Schmidt. *Linear Convergence of Gradient and
    Proximal-Gradient Methods Under the Polyak-Łojasiewicz Condition.*
    ECML-PKDD 2016.

Conventions: [loss-mean], [loss-sq], [rng], [float].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from samtheory._validation import check_nonnegative, check_positive_int

Batch = dict[str, jax.Array]

__all__ = ["LeastSquares", "QuadraticFamily", "least_squares_loss"]

_EPS = np.finfo(np.float64).eps


def _zero_eigenvalue_tol(lam: np.ndarray) -> float:
    """Eigenvalues of a symmetric matrix with ``|λ|`` below this are zero up to rounding.

    ``eigvalsh`` is backward stable, so an exact zero comes out as
    ``O(eps · ‖A‖)``; ``10 · d · eps · max|λ|`` leaves a wide margin (measured
    zeros of rank-deficient ``BᵀB`` stay below ``d · eps · λ_max``).
    """
    return 10 * lam.size * _EPS * float(np.max(np.abs(lam)))


def _is_traced(*values) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in values)


def _frozen_float_array(value: ArrayLike) -> np.ndarray:
    """A read-only NumPy copy, promoted to float64 unless already a float type."""
    arr = np.array(value)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    arr.setflags(write=False)
    return arr


def _check_vector(name: str, w, d: int) -> None:
    if jnp.shape(w) != (d,):
        raise ValueError(f"{name} must have shape ({d},), got shape {jnp.shape(w)}")


def _variance_of_rows(g: jax.Array) -> jax.Array:
    """``(1/n) Σ_i ‖g_i − ḡ‖²`` for the rows of ``g``; no cancellation, never negative."""
    return jnp.mean(jnp.sum((g - jnp.mean(g, axis=0)) ** 2, axis=-1))


# --------------------------------------------------------------------------
# Shared curvature, scattered centers.
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QuadraticFamily:
    """``ℓ_i(w) = ½ (w − c_i)ᵀ A (w − c_i)``, ``i = 1..n``, with a shared PSD ``A``.

    With ``c̄ = (1/n) Σ_i c_i``:

    * ``∇ℓ_i(w) = A(w − c_i)``, ``∇L(w) = A(w − c̄)``, ``∇²ℓ_i = ∇²L = A``;
    * ``L(w) = ½ (w − c̄)ᵀ A (w − c̄) + L*`` with
      ``L* = (1/n) Σ_i ½ (c_i − c̄)ᵀ A (c_i − c̄)``, attained at ``c̄`` (and
      on ``c̄ + ker A``);
    * ``∇ℓ_i(w) − ∇L(w) = A(c̄ − c_i)``, so the noise variance
      ``σ² = E_i ‖∇ℓ_i(w) − ∇L(w)‖² = (1/n) Σ_i ‖A(c_i − c̄)‖²`` is the same
      at every ``w``: the "bounded variance" assumption holds exactly.

    The batch is ``{"c": centers}`` with ``centers`` of shape ``(n, d)``.

    ``A`` must be symmetric (up to a relative ``1e-10``; the stored ``A`` is
    its exact symmetrization ``(A + Aᵀ)/2``) and positive semidefinite.
    Arrays are stored as read-only NumPy arrays. The class also accepts traced
    arrays (it can be built inside ``jit``, e.g. to compile a test once for
    many matrices); then the value checks are skipped and the constants are
    unavailable.

    Conventions: [loss-mean], [float].
    """

    A: np.ndarray
    centers: np.ndarray

    def __post_init__(self) -> None:
        A, centers = self.A, self.centers
        shape_a = jnp.shape(A)
        if len(shape_a) != 2 or shape_a[0] != shape_a[1] or shape_a[0] < 1:
            raise ValueError(f"A must be a square (d, d) matrix with d >= 1, got shape {shape_a}")
        d = shape_a[0]
        shape_c = jnp.shape(centers)
        if len(shape_c) != 2 or shape_c[1] != d or shape_c[0] < 1:
            raise ValueError(f"centers must have shape (n, {d}) with n >= 1, got shape {shape_c}")
        if _is_traced(A, centers):
            # Values unknown: no checks, but the same symmetrization as below.
            object.__setattr__(self, "A", (jnp.asarray(A) + jnp.asarray(A).T) / 2)
            return

        A = _frozen_float_array(A)
        centers = _frozen_float_array(centers)
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(centers))):
            raise ValueError("A and centers must be finite")
        scale = max(float(np.max(np.abs(A))), np.finfo(np.float64).tiny)
        if np.max(np.abs(A - A.T)) > 1e-10 * scale:
            raise ValueError(
                f"A must be symmetric; max |A − Aᵀ| = {np.max(np.abs(A - A.T)):.3e} "
                f"exceeds 1e-10 · max|A| = {1e-10 * scale:.3e}"
            )
        A = _frozen_float_array((A + A.T) / 2)
        lam = np.linalg.eigvalsh(A.astype(np.float64))
        if lam[0] < -_zero_eigenvalue_tol(lam):
            raise ValueError(f"A must be positive semidefinite, its smallest eigenvalue is {lam[0]:.3e}")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "centers", centers)

    @classmethod
    def from_spectrum(
        cls,
        spectrum: ArrayLike,
        n: int,
        seed: int | jax.Array,
        *,
        center_scale: float = 1.0,
    ) -> QuadraticFamily:
        """A family with ``A = Q diag(spectrum) Qᵀ``, ``Q`` Haar-random, and Gaussian centers.

        ``Q`` is the orthogonal factor of the QR decomposition of a standard
        Gaussian ``d × d`` matrix, with the signs of the columns fixed by the
        diagonal of ``R`` (which makes ``Q`` Haar-distributed); the QR and the
        product are computed in float64 with NumPy. ``centers = center_scale · Z``
        with ``Z`` an ``n × d`` standard Gaussian matrix. The random draws use
        ``jax.random`` (one key for ``Q``, one for ``Z``).

        Args:
            spectrum: Eigenvalues of ``A``, shape ``(d,)``, all ``≥ 0``.
            n: Number of examples (centers) ``≥ 1``.
            seed: An integer seed or a ``jax.random`` key.
            center_scale: ``≥ 0``; the spread of the centers, hence of σ².

        Conventions: [rng].
        """
        spectrum = np.asarray(spectrum, dtype=np.float64)
        if spectrum.ndim != 1 or spectrum.size < 1:
            raise ValueError(f"spectrum must be a non-empty 1-D array, got shape {spectrum.shape}")
        check_nonnegative("spectrum", spectrum)
        n = check_positive_int("n", n)
        check_nonnegative("center_scale", center_scale)
        key = jax.random.key(seed) if isinstance(seed, int) else seed
        k_q, k_c = jax.random.split(key)
        d = spectrum.size
        gauss = np.asarray(jax.random.normal(k_q, (d, d)), dtype=np.float64)
        q, r = np.linalg.qr(gauss)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        A = (q * spectrum) @ q.T
        centers = center_scale * np.asarray(jax.random.normal(k_c, (n, d)), dtype=np.float64)
        return cls(A=(A + A.T) / 2, centers=centers)

    # ---- problem -----------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return int(jnp.shape(self.A)[0])

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(jnp.shape(self.centers)[0])

    @property
    def batch(self) -> Batch:
        """The full data set ``{"c": centers}`` as a JAX batch.

        Conventions: [loss-mean].
        """
        return {"c": jnp.asarray(self.centers)}

    def loss_fn(self, w: jax.Array, batch: Batch) -> jax.Array:
        """``(1/m) Σ_{i∈batch} ½ (w − c_i)ᵀ A (w − c_i)`` for a batch ``{"c": (m, d)}``.

        ``A`` is cast to the dtype of ``w`` and the centers, so a float32
        ``w`` with float32 centers is computed in float32.

        Conventions: [loss-mean], [float].
        """
        c = batch["c"]
        d = self.dim
        _check_vector("w", w, d)
        if jnp.ndim(c) != 2 or jnp.shape(c)[1] != d:
            raise ValueError(f"batch['c'] must have shape (m, {d}), got shape {jnp.shape(c)}")
        e = w - c
        A = jnp.asarray(self.A).astype(jnp.result_type(w, c))
        return 0.5 * jnp.mean(jnp.sum((e @ A) * e, axis=-1))

    # ---- constants ---------------------------------------------------------

    @cached_property
    def hessian(self) -> np.ndarray:
        """``∇²L = ∇²ℓ_i = A`` (float64).

        Conventions: [loss-mean].
        """
        return np.asarray(self.A, dtype=np.float64)

    @cached_property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``A`` in ascending order (``numpy.linalg.eigvalsh``)."""
        return np.linalg.eigvalsh(self.hessian)

    @cached_property
    def smoothness(self) -> float:
        """β = λ_max(A): the Lipschitz constant of ∇L, attained along the top eigenvector.

        Conventions: [loss-mean].
        """
        return float(max(self.eigenvalues[-1], 0.0))

    @cached_property
    def individual_smoothness(self) -> float:
        """``max_i`` smoothness of ``ℓ_i``; every ``ℓ_i`` has Hessian ``A``, so it is λ_max(A).

        Conventions: [loss-mean].
        """
        return self.smoothness

    @cached_property
    def pl_constant(self) -> float:
        """μ = λ_min(A) if ``A ≻ 0``, else 0.

        PL: with ``e = w − c̄``, ``½‖∇L‖² = ½ eᵀA²e ≥ λ_min ½ eᵀAe = λ_min (L − L*)``
        because ``A² − λ_min A = A^{1/2}(A − λ_min I)A^{1/2} ⪰ 0``; equality
        along the bottom eigenvector. ``A`` counts as singular when
        ``λ_min ≤ 10 · d · eps · λ_max``.

        For a singular PSD ``A`` the same argument restricted to
        ``range(A)`` shows that PL in fact holds with the smallest *nonzero*
        eigenvalue (as for :class:`LeastSquares`); this property reports the
        strongly-convex constant and gives 0 there.

        Conventions: [loss-mean].
        """
        lam = self.eigenvalues
        return float(lam[0]) if lam[0] > _zero_eigenvalue_tol(lam) else 0.0

    @cached_property
    def minimizer(self) -> np.ndarray:
        """``c̄ = (1/n) Σ_i c_i``, a minimizer of ``L`` (the unique one iff ``A ≻ 0``).

        Conventions: [loss-mean].
        """
        return np.mean(np.asarray(self.centers, dtype=np.float64), axis=0)

    @cached_property
    def min_loss(self) -> float:
        """``L* = (1/n) Σ_i ½ (c_i − c̄)ᵀ A (c_i − c̄)``.

        Conventions: [loss-mean].
        """
        e = np.asarray(self.centers, dtype=np.float64) - self.minimizer
        return float(0.5 * np.mean(np.einsum("id,de,ie->i", e, self.hessian, e)))

    @cached_property
    def noise_variance(self) -> float:
        """``σ² = E_i‖∇ℓ_i(w) − ∇L(w)‖² = (1/n) Σ_i ‖A(c_i − c̄)‖²``, the same for every ``w``.

        Conventions: [loss-mean].
        """
        e = np.asarray(self.centers, dtype=np.float64) - self.minimizer
        return float(np.mean(np.sum((e @ self.hessian) ** 2, axis=-1)))

    def noise_variance_at(self, w: jax.Array) -> jax.Array:
        """``E_i‖∇ℓ_i(w) − ∇L(w)‖²`` evaluated at ``w`` (equals :attr:`noise_variance`).

        Jittable; in the dtype of ``w`` and the centers. Same signature as
        :meth:`LeastSquares.noise_variance_at`.

        Conventions: [loss-mean], [float].
        """
        _check_vector("w", w, self.dim)
        c = jnp.asarray(self.centers)
        A = jnp.asarray(self.A).astype(jnp.result_type(w, c))
        return _variance_of_rows((w - c) @ A)


# --------------------------------------------------------------------------
# Least squares.
# --------------------------------------------------------------------------


def least_squares_loss(w: jax.Array, batch: Batch) -> jax.Array:
    """``(1/2m) ‖Xw − y‖²`` for a batch ``{"x": (m, d), "y": (m,)}``.

    Conventions: [loss-mean], [loss-sq], [float].
    """
    x, y = batch["x"], batch["y"]
    if jnp.ndim(x) != 2:
        raise ValueError(f"batch['x'] must have shape (m, d), got shape {jnp.shape(x)}")
    if jnp.shape(y) != jnp.shape(x)[:1]:
        raise ValueError(f"batch['y'] must have shape {jnp.shape(x)[:1]}, got shape {jnp.shape(y)}")
    _check_vector("w", w, jnp.shape(x)[1])
    r = x @ w - y
    return 0.5 * jnp.mean(r**2)


@dataclass(frozen=True, eq=False)
class LeastSquares:
    """``L(w) = (1/2n) ‖Xw − y‖² = (1/n) Σ_i ½ (x_iᵀw − y_i)²``.

    With ``H = XᵀX/n`` and ``r = Xw − y``: ``∇L = Xᵀr/n``, ``∇²L = H``,
    ``∇ℓ_i = r_i x_i``, ``∇²ℓ_i = x_i x_iᵀ``.

    The batch is ``{"x": X, "y": y}``; :attr:`loss_fn` is the module-level
    :func:`least_squares_loss` (one function object, so ``jit`` compiles it
    once for all instances of the same shapes). Arrays are stored as
    read-only NumPy arrays.

    Conventions: [loss-mean], [loss-sq], [float].
    """

    X: np.ndarray
    y: np.ndarray

    loss_fn = staticmethod(least_squares_loss)

    def __post_init__(self) -> None:
        shape_x = np.shape(self.X)
        if len(shape_x) != 2 or shape_x[0] < 1 or shape_x[1] < 1:
            raise ValueError(f"X must have shape (n, d) with n, d >= 1, got shape {shape_x}")
        if np.shape(self.y) != shape_x[:1]:
            raise ValueError(f"y must have shape ({shape_x[0]},) to match X, got shape {np.shape(self.y)}")
        X, y = _frozen_float_array(self.X), _frozen_float_array(self.y)
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("X and y must be finite")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    # ---- problem -----------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.X.shape[1]

    @property
    def n(self) -> int:
        """Number of examples."""
        return self.X.shape[0]

    @property
    def batch(self) -> Batch:
        """The full data set ``{"x": X, "y": y}`` as a JAX batch.

        Conventions: [loss-mean].
        """
        return {"x": jnp.asarray(self.X), "y": jnp.asarray(self.y)}

    # ---- constants ---------------------------------------------------------

    @cached_property
    def _x64(self) -> np.ndarray:
        return np.asarray(self.X, dtype=np.float64)

    @cached_property
    def hessian(self) -> np.ndarray:
        """``H = XᵀX/n`` (float64).

        Conventions: [loss-mean].
        """
        return self._x64.T @ self._x64 / self.n

    @cached_property
    def singular_values(self) -> np.ndarray:
        """Singular values of ``X/√n``, descending; their squares are the top ``min(n, d)`` eigenvalues of ``H``.

        Conventions: [loss-mean].
        """
        return np.linalg.svd(self._x64 / np.sqrt(self.n), compute_uv=False)

    @cached_property
    def rank(self) -> int:
        """Numerical rank of ``X``: singular values ``> s_max · max(n, d) · eps`` (NumPy's rule)."""
        s = self.singular_values
        if s.size == 0 or s[0] == 0:
            return 0
        return int(np.sum(s > s[0] * max(self.n, self.dim) * _EPS))

    @cached_property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``H`` in ascending order, as squared singular values (exact zeros past the rank).

        Conventions: [loss-mean].
        """
        lam = np.zeros(self.dim)
        r = self.rank
        lam[self.dim - r :] = np.sort(self.singular_values[:r] ** 2)
        return lam

    @cached_property
    def smoothness(self) -> float:
        """β = λ_max(XᵀX/n), attained along the top right singular vector of ``X``.

        Conventions: [loss-mean], [loss-sq].
        """
        return float(self.eigenvalues[-1])

    @cached_property
    def individual_smoothness(self) -> float:
        """``max_i ‖x_i‖²``: ``∇²ℓ_i = x_i x_iᵀ`` has the single nonzero eigenvalue ``‖x_i‖²``.

        Conventions: [loss-sq].
        """
        return float(np.max(np.sum(self._x64**2, axis=1)))

    @cached_property
    def pl_constant(self) -> float:
        """μ = λ_min⁺(H), the smallest *nonzero* eigenvalue of ``H = XᵀX/n`` (0 if ``X = 0``).

        Proof that ``½‖∇L(w)‖² ≥ μ (L(w) − L*)`` for every ``w``. Split
        ``y = y_∥ + y_⊥`` with ``y_∥ ∈ range(X)`` and ``y_⊥ ⊥ range(X)``, and
        pick ``w*`` with ``Xw* = y_∥`` (a minimizer). For ``e = w − w*``:
        ``Xw − y = Xe − y_⊥`` with ``Xe ⊥ y_⊥``, so
        ``L(w) = ‖Xe‖²/2n + ‖y_⊥‖²/2n``, hence ``L* = ‖y_⊥‖²/2n`` and
        ``L(w) − L* = ½ eᵀHe``; and since ``Xᵀy_⊥ = 0``, ``∇L(w) = He``.
        In an orthonormal eigenbasis of ``H`` (eigenvalues ``λ_k``,
        coordinates ``e_k``):

            ½‖∇L‖² = ½ Σ_k λ_k² e_k² = ½ Σ_{λ_k > 0} λ_k · λ_k e_k²
                   ≥ λ_min⁺ · ½ Σ_{λ_k > 0} λ_k e_k² = λ_min⁺ (L − L*).

        The null directions (``λ_k = 0``) contribute to neither side, which is
        why the smallest nonzero eigenvalue, not λ_min(H) (= 0 when
        ``n < d``), is the constant. Equality holds when ``e`` is an
        eigenvector for λ_min⁺, so the constant is tight. Eigenvalues count as
        zero below the rank threshold of :attr:`rank`.

        Conventions: [loss-mean], [loss-sq].
        """
        r = self.rank
        return float(self.singular_values[r - 1] ** 2) if r > 0 else 0.0

    @cached_property
    def minimizer(self) -> np.ndarray:
        """The minimum-norm minimizer ``w† = X⁺y`` (``numpy.linalg.lstsq``).

        Every minimizer is ``w† + k`` with ``Xk = 0``; ``w†`` is the one in
        ``range(Xᵀ)``, the limit of GD from 0.

        Conventions: [loss-sq].
        """
        return np.linalg.lstsq(self._x64, np.asarray(self.y, dtype=np.float64), rcond=None)[0]

    @cached_property
    def min_loss(self) -> float:
        """``L* = L(w†) = ‖(I − XX⁺) y‖² / 2n``.

        Conventions: [loss-mean], [loss-sq].
        """
        r = self._x64 @ self.minimizer - np.asarray(self.y, dtype=np.float64)
        return float(0.5 * np.mean(r**2))

    def noise_variance_at(self, w: jax.Array) -> jax.Array:
        """``σ²(w) = E_i‖∇ℓ_i(w) − ∇L(w)‖² = (1/n) Σ_i ‖r_i x_i − Xᵀr/n‖²``, ``r = Xw − y``.

        Equivalently ``(1/n) Σ_i r_i² ‖x_i‖² − ‖Xᵀr/n‖²``; computed in the
        first (centered) form, which cannot come out negative. Jittable, in the
        dtype of ``w`` and the data.

        **Unbounded in w** in general: along ``w = w₀ + t v`` it is a
        quadratic in ``t`` whose leading coefficient is
        ``(1/n) Σ_i ‖x_i x_iᵀ v − Hv‖²``, the variance of the per-example
        Hessians applied to ``v``. It is positive unless all ``x_i x_iᵀ``
        agree on ``v``, so no uniform bound on σ² exists (unlike
        :class:`QuadraticFamily`); theorems that assume one can only be
        checked on bounded sets of ``w`` or at the minimizer.

        Conventions: [loss-mean], [loss-sq], [float].
        """
        _check_vector("w", w, self.dim)
        x, y = jnp.asarray(self.X), jnp.asarray(self.y)
        r = x @ w - y
        return _variance_of_rows(r[:, None] * x)

    @cached_property
    def noise_variance_at_minimizer(self) -> float:
        """``σ²(w*)``; the same at every minimizer, since they all have the same residual ``−y_⊥``.

        Conventions: [loss-mean], [loss-sq].
        """
        x = self._x64
        r = x @ self.minimizer - np.asarray(self.y, dtype=np.float64)
        g = r[:, None] * x
        return float(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=-1)))
