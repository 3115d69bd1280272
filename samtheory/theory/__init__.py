"""The theory of SAM in closed form: what the runs are checked against.

* :mod:`.implicit_bias` — hyperbolic entropy ``Q_α`` and its minimizers
  (min-entropy, min-ℓ1, min-ℓ2 interpolators) ([alpha]);
* :mod:`.sam_implicit_bias` — Theorem 1 of Andriushchenko & Flammarion
  (2022): the Δ integrands along a flow and the effective α;
* :mod:`.quadratic_dynamics` — SAM on quadratics: USAM stability, the
  normalized-SAM 2-cycle;
* :mod:`.convergence` — Theorem 2's rate bounds and step-size schedules,
  and the stochastic USAM runs they bound.

Conventions: each module names its own.
"""
