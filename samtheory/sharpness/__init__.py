"""Sharpness: Hessian spectra, trace, m-sharpness, average sharpness, landscape slices.

Every function takes ``loss_fn(params, batch)``, the **mean** loss over the
batch ([loss-mean]), and parameter pytrees; all are pure and work under
``jit``. Randomness comes from explicit keys ([rng]); computations run in the
parameters' dtype ([float]).

* Curvature, matrix-free (:mod:`.hessian`, :mod:`.lanczos`, :mod:`.density`,
  :mod:`.trace`): :func:`hvp`; :func:`hessian_eigenvalues` (λ_max *and* λ_min
  by Lanczos with residual bounds) on top of :func:`lanczos_tridiagonal`;
  :func:`slq_spectral_density` and :func:`gaussian_smoothed_density`
  (Ghorbani et al. 2019); :func:`hutchinson_trace` with a standard-error
  stopping rule.
* Sharpness measures: :func:`m_sharpness` (Foret et al. 2021, §4.1; [m],
  [rho-sam]) and :func:`average_sharpness` (random ``δ`` on the sphere or
  Gaussian).
* Landscape (:mod:`.landscape`): :func:`filter_normalized_direction`
  (Li et al. 2018), :func:`loss_slice_1d`, :func:`loss_slice_2d`,
  :func:`linear_interpolation`.

Conventions: docs/conventions.md, [loss-mean], [rho-sam], [m], [rng], [float].
"""

from samtheory.monte_carlo import MonteCarloEstimate
from samtheory.sharpness.average import average_sharpness
from samtheory.sharpness.density import SpectralDensity, gaussian_smoothed_density, slq_spectral_density
from samtheory.sharpness.hessian import flat_hessian_operator, hvp
from samtheory.sharpness.landscape import (
    filter_normalized_direction,
    linear_interpolation,
    loss_slice_1d,
    loss_slice_2d,
)
from samtheory.sharpness.lanczos import (
    HessianEigenvalues,
    LanczosDecomposition,
    RitzValues,
    hessian_eigenvalues,
    lanczos_tridiagonal,
    ritz_values,
)
from samtheory.sharpness.m_sharpness import MSharpness, m_sharpness
from samtheory.sharpness.trace import hutchinson_trace

__all__ = [
    "hvp", "flat_hessian_operator",
    "lanczos_tridiagonal", "ritz_values", "hessian_eigenvalues",
    "LanczosDecomposition", "RitzValues", "HessianEigenvalues",
    "slq_spectral_density", "gaussian_smoothed_density", "SpectralDensity",
    "hutchinson_trace",
    "m_sharpness", "MSharpness",
    "average_sharpness", "MonteCarloEstimate",
    "filter_normalized_direction", "loss_slice_1d", "loss_slice_2d", "linear_interpolation",
]
