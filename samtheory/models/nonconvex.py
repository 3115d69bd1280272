"""A smooth non-convex family with zero-mean linear noise and exact constants.

``ℓ_i(w) = f(w) + ⟨a_i, w⟩`` with ``f(w) = Σ_j φ(w_j)``,
``φ(x) = x²/2 + c·cos x`` and offsets with ``Σ_i a_i = 0``. Then

* ``L = f`` (the linear terms average out) and ``∇ℓ_i − ∇L = a_i``: the
  gradient noise is **constant**, ``σ² = (1/n) Σ_i ‖a_i‖²`` exactly and for
  every ``w`` (assumption (A1) holds globally, which least squares cannot
  offer);
* ``φ'' = 1 − c cos x ∈ [1 − c, 1 + c]``: every ``ℓ_i`` is ``β = 1 + c``
  smooth (A2), and ``f`` is non-convex for ``c > 1``;
* ``L* = d · min φ``; for ``c ≤ 1`` the minimizer is 0, for ``c > 1`` it is
  ``±x*`` with ``x* = c sin x*`` (solved to machine precision).

Used to check Theorem 2 of Andriushchenko & Flammarion (2022) in its
non-convex form. Batch: ``{"a": (n, d)}``.

Conventions: [loss-mean], [rng].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from samtheory._validation import check_nonnegative, check_positive_int

__all__ = ["CosineRidgeFamily"]


def _phi(x, c):
    return 0.5 * x**2 + c * jnp.cos(x)


@dataclass(frozen=True, eq=False)
class CosineRidgeFamily:
    """``ℓ_i(w) = Σ_j (w_j²/2 + c cos w_j) + ⟨a_i, w⟩`` with centred offsets ``a_i``.

    Construct with :meth:`draw`; ``offsets`` are centred on construction.
    Conventions: [loss-mean].
    """

    curvature_amplitude: float
    offsets: np.ndarray

    def __post_init__(self):
        check_nonnegative("curvature_amplitude", self.curvature_amplitude)
        offsets = np.asarray(self.offsets, dtype=np.float64)
        if offsets.ndim != 2 or offsets.shape[0] < 1:
            raise ValueError(f"offsets must have shape (n, d), got {offsets.shape}")
        object.__setattr__(self, "offsets", offsets - offsets.mean(axis=0))

    @classmethod
    def draw(cls, curvature_amplitude: float, n: int, d: int, seed: int, noise_scale: float = 1.0):
        """Gaussian offsets ``noise_scale · N(0, I_d)``, centred. Conventions: [rng]."""
        n, d = check_positive_int("n", n), check_positive_int("d", d)
        check_nonnegative("noise_scale", noise_scale)
        offsets = noise_scale * np.random.default_rng(seed).normal(size=(n, d))
        return cls(curvature_amplitude, offsets)

    @property
    def batch(self) -> dict:
        return {"a": jnp.asarray(self.offsets)}

    def loss_fn(self, w, batch) -> jax.Array:
        """Mean over the batch of ``f(w) + ⟨a_i, w⟩``. Conventions: [loss-mean]."""
        return jnp.sum(_phi(w, self.curvature_amplitude)) + jnp.mean(batch["a"] @ w)

    @property
    def smoothness(self) -> float:
        """``1 + c``: the sup of ``|φ''|``, for ``L`` and for every ``ℓ_i``."""
        return 1.0 + self.curvature_amplitude

    @property
    def noise_variance(self) -> float:
        """``σ² = (1/n) Σ_i ‖a_i‖²``, the same at every ``w``."""
        return float(np.mean(np.sum(self.offsets**2, axis=1)))

    @cached_property
    def coordinate_minimizer(self) -> float:
        """``x* ≥ 0`` minimizing ``φ``: 0 for ``c ≤ 1``, else the root of ``x = c sin x`` in (0, π]."""
        c = self.curvature_amplitude
        if c <= 1.0:
            return 0.0
        return float(brentq(lambda x: x - c * np.sin(x), 1e-12, np.pi, xtol=1e-15, rtol=4 * np.finfo(float).eps))

    @property
    def min_loss(self) -> float:
        """``L* = d · φ(x*)``."""
        d = self.offsets.shape[1]
        x = self.coordinate_minimizer
        return float(d * (0.5 * x**2 + self.curvature_amplitude * np.cos(x)))
