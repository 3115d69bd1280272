"""The reference notebook's diagonal-network problem, drawn exactly as the notebook draws it.

Andriushchenko & Flammarion's code for the diagonal-network experiments
(``tml-epfl/understanding-sam``, ``diagonal_linear_nets/diag_nets_sam.ipynb``)
runs every experiment on one instance, drawn in its first cell with the
legacy NumPy generator after ``np.random.seed(0)``:

1. ``X = multivariate_normal(0, I_d, n)``, then
   ``X_test = multivariate_normal(0, I_d, n_test)``;
2. ``β* = randn(d)``, zeroed beyond the first ``k`` coordinates, then
   ``β* = |β*| / ‖β*‖₂``;
3. noiseless labels ``y = Xβ*``, ``y_test = X_test β*``.

The order of the draws matters (``X_test`` is drawn before ``β*``), so
:func:`notebook_problem` replays it with ``numpy.random.RandomState``.
:func:`samtheory.models.dln.sparse_regression` draws the same distribution
of problems from a JAX key, with a random support; it does not give this
instance.

The notebook's runs use ``β = u ⊙ v``, ``u₀ = c·1``, ``v₀ = 0``
(:func:`samtheory.models.dln.init_uv`), ``L = (1/2n)‖Xβ − y‖²`` and
``NOTEBOOK_STEPS = 10⁴ + 1`` updates per phase (its loop is
``range(int(10**4) + 1)`` and it prints the loss after the last update).
Its 1-SAM ascent is on ``r_k²`` rather than ``½ r_k²``, so a notebook
1-SAM ρ is our ρ/2 (:func:`rho_from_notebook`). The full mapping is in
``docs/conventions.md`` under [rho-notebook].

Conventions: [loss-mean], [loss-sq], [alpha], [rho-notebook], [rng].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.models.dln import SparseRegressionData

__all__ = ["NOTEBOOK_SEED", "NOTEBOOK_STEPS", "NOTEBOOK_SIZES", "notebook_problem", "rho_from_notebook"]

NOTEBOOK_SEED = 0
NOTEBOOK_STEPS = 10_001
NOTEBOOK_SIZES = {"n": 20, "d": 30, "k": 3, "n_test": 1000}


def notebook_problem(n: int = 20, d: int = 30, k: int = 3, n_test: int = 1000) -> SparseRegressionData:
    """The notebook's instance: legacy NumPy ``seed(0)``, drawn in the notebook's order.

    The defaults are the notebook's sizes (``NOTEBOOK_SIZES``); other sizes
    replay the same recipe (and then share no numbers with the notebook).
    Arrays are JAX arrays in JAX's default float (float64 once
    :func:`samtheory.enable_float64` was called; the notebook computes in
    float64).

    Returns:
        ``SparseRegressionData(train={"x", "y"}, test={"x", "y"}, beta_star)``.

    Conventions: [loss-mean], [loss-sq], [rng].
    """
    n, d, k, n_test = (check_positive_int(name, value) for name, value in
                       (("n", n), ("d", d), ("k", k), ("n_test", n_test)))
    if k > d:
        raise ValueError(f"k must be <= d = {d}, got {k}")
    rng = np.random.RandomState(NOTEBOOK_SEED)
    x = rng.multivariate_normal(np.zeros(d), np.eye(d), n)
    x_test = rng.multivariate_normal(np.zeros(d), np.eye(d), n_test)
    beta_star = rng.randn(d)
    beta_star[k:] = 0.0
    beta_star = np.abs(beta_star) / np.linalg.norm(beta_star)
    as_jax = lambda a: jnp.asarray(a, dtype=jnp.result_type(float))
    return SparseRegressionData(
        train={"x": as_jax(x), "y": as_jax(x @ beta_star)},
        test={"x": as_jax(x_test), "y": as_jax(x_test @ beta_star)},
        beta_star=as_jax(beta_star),
    )


def rho_from_notebook(variant: str, rho_notebook):
    """Our ρ for a ρ the notebook passes to ``n_SAM_GD`` or ``one_SAM_GD``.

    ``variant`` is ``"n_sam"`` (the same number: the notebook's n-SAM ascent
    is ``ρ∇L`` of the mean ½-squared loss, as ours) or ``"one_sam"`` (twice
    the number: the notebook perturbs example k by ``ρ∇(r_k²) = 2ρ∇(½r_k²)``).
    Works elementwise on NumPy and JAX arrays.

    Conventions: [rho-sam], [rho-notebook].
    """
    check_nonnegative("rho_notebook", rho_notebook)
    if variant == "n_sam":
        return rho_notebook
    if variant == "one_sam":
        return 2 * rho_notebook
    raise ValueError(f"variant must be 'n_sam' or 'one_sam', got {variant!r}")
