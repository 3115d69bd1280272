"""A Monte Carlo estimate: the one result type of every sampled mean in the package.

Average sharpness (:func:`samtheory.sharpness.average_sharpness`),
Hutchinson's trace (:func:`samtheory.sharpness.hutchinson_trace`) and the
means over seeds of the convergence checks (:func:`estimate_mean`) all return
a :class:`MonteCarloEstimate`. A certified upper bound on a mean of
``[0, 1]`` samples is a bound, not an estimate: :class:`samtheory.bounds.MonteCarloBound`.

Conventions: [rng].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

__all__ = ["MonteCarloEstimate", "estimate_mean"]


class MonteCarloEstimate(NamedTuple):
    """A sample mean with its standard error.

    Attributes:
      estimate: the sample mean.
      standard_error: ``std(samples, ddof=1) / √num_samples`` (or the
        estimator's own formula, e.g. antithetic pairs).
      num_samples: the number of samples (evaluations, probes, seeds); a
        Python int, or a 0-d array when computed under ``jit``.
    """

    estimate: jax.Array | float
    standard_error: jax.Array | float
    num_samples: jax.Array | int

    def upper(self, z: float = 3.0):
        """``estimate + z · standard_error``: a one-sided upper limit (normal approximation)."""
        return self.estimate + z * self.standard_error


def estimate_mean(samples) -> MonteCarloEstimate:
    """Mean and standard error of i.i.d. samples (host side, float64). Conventions: [rng]."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 1 or samples.size < 2:
        raise ValueError(f"samples must be 1-D with at least 2 entries, got shape {samples.shape}")
    mean = float(samples.mean())
    stderr = float(samples.std(ddof=1) / np.sqrt(samples.size))
    return MonteCarloEstimate(mean, stderr, int(samples.size))
