"""SAM dynamics on quadratics, where they are linear or piecewise linear and can be solved.

For ``L(x) = ½ xᵀAx`` with ``A`` symmetric PSD, eigenpairs ``(λ_j, e_j)``:

* **USAM** ``x⁺ = x − η∇L(x + ρ∇L(x)) = (I − ηA − ηρA²) x``. The map has
  eigenvalues ``1 − ηλ_j(1 + ρλ_j)``, so the iteration is stable (does not
  blow up; converges on range(A)) iff ``η λ_j (1 + ρ λ_j) < 2`` for every
  eigenvalue: SAM shrinks GD's stability threshold ``ηλ < 2``.
* **Full-batch normalized SAM** ``x⁺ = x − ηA(x + ρ Ax/‖Ax‖)`` does not
  converge when ``ηλ₁ < 1``: along the top eigenvector it settles into the
  2-cycle ``s ↦ −s`` with ``|s| = ηρλ₁ / (2 − ηλ₁)`` (Bartlett, Long &
  Bousquet 2023, "The dynamics of sharpness-aware minimization"). Derivation:
  on ``x = s e₁``, ``x⁺ = s(1 − ηλ₁) − ηρλ₁ sign(s)``; ``x⁺ = −s`` gives the
  radius.

Conventions: [loss-mean] (a single-example quadratic), [rho-sam], [normalize].
"""

from __future__ import annotations

import numpy as np

from samtheory._validation import check_nonnegative, check_positive

__all__ = [
    "usam_transition_matrix",
    "usam_stability_margin",
    "usam_is_stable",
    "usam_critical_rho",
    "normalized_sam_cycle_radius",
]


def usam_transition_matrix(a_matrix, eta: float, rho: float) -> np.ndarray:
    """``I − ηA − ηρA²``: one USAM step on ``½xᵀAx``. Conventions: [rho-sam], [normalize]."""
    a_matrix = np.asarray(a_matrix, dtype=float)
    if a_matrix.ndim != 2 or a_matrix.shape[0] != a_matrix.shape[1]:
        raise ValueError(f"a_matrix must be square, got shape {a_matrix.shape}")
    check_positive("eta", eta)
    check_nonnegative("rho", rho)
    return np.eye(len(a_matrix)) - eta * a_matrix - eta * rho * a_matrix @ a_matrix


def usam_stability_margin(eigenvalues, eta: float, rho: float) -> float:
    """``max_j η λ_j (1 + ρ λ_j) / 2``: below 1 the USAM iteration is stable.

    ``eigenvalues`` of a PSD ``A`` (all ≥ 0). Conventions: [rho-sam], [normalize].
    """
    lam = np.asarray(eigenvalues, dtype=float)
    check_nonnegative("eigenvalues", lam)
    check_positive("eta", eta)
    check_nonnegative("rho", rho)
    return float(np.max(eta * lam * (1.0 + rho * lam)) / 2.0)


def usam_is_stable(eigenvalues, eta: float, rho: float) -> bool:
    """``η λ (1 + ρ λ) < 2`` for every eigenvalue λ. Conventions: [rho-sam], [normalize]."""
    return usam_stability_margin(eigenvalues, eta, rho) < 1.0


def usam_critical_rho(lam: float, eta: float) -> float:
    """The largest stable ρ for curvature ``λ`` and step ``η``: ``(2/(ηλ) − 1)/λ`` (≤ 0: none).

    The boundary curve of the stability diagram. Conventions: [rho-sam], [normalize].
    """
    check_positive("lam", lam)
    check_positive("eta", eta)
    return (2.0 / (eta * lam) - 1.0) / lam


def normalized_sam_cycle_radius(eta: float, rho: float, lam_max: float) -> float:
    """``ηρλ₁ / (2 − ηλ₁)``: the amplitude of normalized SAM's 2-cycle along the top eigenvector.

    Valid for ``ηλ₁ < 1`` (Bartlett, Long & Bousquet 2023). Conventions: [rho-sam], [normalize].
    """
    check_positive("eta", eta)
    check_nonnegative("rho", rho)
    check_positive("lam_max", lam_max)
    if eta * lam_max >= 1.0:
        raise ValueError(f"eta * lam_max must be < 1 for the 2-cycle, got {eta * lam_max}")
    return eta * rho * lam_max / (2.0 - eta * lam_max)
