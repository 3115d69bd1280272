"""PAC-Bayes generalization bounds: Foret et al.'s Theorem 2 and Dziugaite & Roy's optimized bound.

* :mod:`.kl` — :func:`binary_kl`, :func:`kl_inverse`, :func:`kl_inverse_lower`
  (bisection on the floats: ``jit``/``vmap``-able, exact to an ulp,
  differentiable by the implicit function theorem).
* :mod:`.gaussian_kl` — :func:`isotropic_gaussian_kl` (Foret eq. 6),
  :func:`diagonal_gaussian_kl` over parameter pytrees.
* :mod:`.losses` — :func:`zero_one_loss`, :func:`clipped_cross_entropy`,
  losses in ``[0, 1]``.
* :mod:`.monte_carlo` — :func:`gaussian_perturbed_losses`,
  :func:`mean_upper_bound` (Langford & Caruana's ``kl⁻¹(X̄, ln(2/δ')/N)``),
  :func:`monte_carlo_upper_bound` and :func:`gaussian_loss_bound` (a
  :class:`~samtheory.monte_carlo.MonteCarloEstimate` with ``certified_upper``).
* :mod:`.pac_bayes` — :func:`pac_bayes_kl_bound` (Maurer's kl form),
  :func:`mcallester_bound` (Foret eq. 5), :func:`grid_union_cost`.
* :mod:`.foret` — Foret et al. (2021) Theorem 2 (eq. 4), eq. 13, their prior
  grid with the exact KL, and the Monte Carlo form for a trained network.
* :mod:`.dziugaite_roy` — Dziugaite & Roy (2017): optimize the surrogate,
  certify with both confidence terms.

docs/bounds.md has the derivations, the constants and what we found in the
paper's appendix. Conventions: docs/conventions.md, [bounds], [loss-mean],
[rho-sam], [rng], [float].
"""

from samtheory.bounds.dziugaite_roy import (
    DziugaiteRoyBound,
    DziugaiteRoyPosterior,
    dziugaite_roy_bound,
    dziugaite_roy_certify,
    dziugaite_roy_grid_bound,
    dziugaite_roy_optimize,
)
from samtheory.bounds.foret import (
    ForetBound,
    ForetGridPrior,
    ForetKlBound,
    ForetMonteCarloBound,
    foret_eq13_bound,
    foret_grid_prior,
    foret_kl_bound,
    foret_monte_carlo_bound,
    foret_posterior_std,
    foret_theorem2_bound,
)
from samtheory.bounds.gaussian_kl import diagonal_gaussian_kl, isotropic_gaussian_kl
from samtheory.bounds.kl import binary_kl, kl_inverse, kl_inverse_lower
from samtheory.bounds.losses import clipped_cross_entropy, misclassified, zero_one_loss
from samtheory.bounds.monte_carlo import (
    gaussian_loss_bound,
    gaussian_perturbed_losses,
    mean_upper_bound,
    monte_carlo_upper_bound,
)
from samtheory.bounds.pac_bayes import (
    grid_union_cost,
    mcallester_bound,
    pac_bayes_kl_bound,
    pac_bayes_kl_budget,
)

__all__ = [
    "binary_kl", "kl_inverse", "kl_inverse_lower",
    "isotropic_gaussian_kl", "diagonal_gaussian_kl",
    "misclassified", "zero_one_loss", "clipped_cross_entropy",
    "gaussian_perturbed_losses", "mean_upper_bound", "monte_carlo_upper_bound", "gaussian_loss_bound",
    "grid_union_cost", "pac_bayes_kl_budget", "pac_bayes_kl_bound", "mcallester_bound",
    "foret_posterior_std", "foret_theorem2_bound", "foret_eq13_bound", "foret_grid_prior",
    "foret_kl_bound", "foret_monte_carlo_bound",
    "ForetBound", "ForetGridPrior", "ForetKlBound", "ForetMonteCarloBound",
    "dziugaite_roy_optimize", "dziugaite_roy_certify", "dziugaite_roy_grid_bound", "dziugaite_roy_bound",
    "DziugaiteRoyPosterior", "DziugaiteRoyBound",
]
