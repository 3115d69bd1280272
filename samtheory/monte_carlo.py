"""A Monte Carlo estimate: the one result type of every sampled mean in the package.

Average sharpness (:func:`samtheory.sharpness.average_sharpness`),
Hutchinson's trace (:func:`samtheory.sharpness.hutchinson_trace`), the means
over seeds of the convergence checks (:func:`estimate_mean`) and the
certified Monte Carlo loss terms of the PAC-Bayes bounds
(:func:`samtheory.bounds.monte_carlo_upper_bound`, which fills
``certified_upper``) all return a :class:`MonteCarloEstimate`.

Conventions: [rng].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

__all__ = ["MonteCarloEstimate", "estimate_mean"]


class MonteCarloEstimate(NamedTuple):
    """A sample mean with its standard error, and for ``[0, 1]`` samples a certified upper bound.

    Attributes:
      estimate: the sample mean.
      standard_error: ``std(samples, ddof=1) / √num_samples`` (or the
        estimator's own formula, e.g. antithetic pairs).
      num_samples: the number of samples (evaluations, probes, seeds); a
        Python int, or a 0-d array when computed under ``jit``.
      certified_upper: ``kl⁻¹(estimate, ln(2/δ')/N)``, an upper bound on the
        true mean with probability ``≥ 1 − δ'`` when the samples are
        independent and in ``[0, 1]``
        (:func:`samtheory.bounds.monte_carlo_upper_bound`); ``None`` for an
        estimate nobody certified.
      delta_prime: ``δ'`` of ``certified_upper`` (``None`` with it).
    """

    estimate: jax.Array | float
    standard_error: jax.Array | float
    num_samples: jax.Array | int
    certified_upper: jax.Array | float | None = None
    delta_prime: float | None = None

    def upper(self, z: float = 3.0):
        """``estimate + z · standard_error``: a one-sided upper limit (normal approximation, not certified)."""
        return self.estimate + z * self.standard_error


def estimate_mean(samples) -> MonteCarloEstimate:
    """Mean and standard error of i.i.d. samples (host side, float64). Conventions: [rng]."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 1 or samples.size < 2:
        raise ValueError(f"samples must be 1-D with at least 2 entries, got shape {samples.shape}")
    mean = float(samples.mean())
    stderr = float(samples.std(ddof=1) / np.sqrt(samples.size))
    return MonteCarloEstimate(mean, stderr, int(samples.size))
