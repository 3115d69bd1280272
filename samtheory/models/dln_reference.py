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

The notebook's ``SGD`` (cell 3) draws one example per update with
``np.random.randint(n)`` from the same global generator, which the kernel
had advanced by earlier runs before cell 3 was executed (execution count
18). :func:`notebook_sgd_indices` replays that stream: after the problem's
draws, ``SGD_RUNS_BEFORE_CELL_3 = 5`` runs' worth of ``randint(20)`` draws
(5 × 10 001), then cell 3's two runs.
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

__all__ = [
    "NOTEBOOK_SEED",
    "NOTEBOOK_STEPS",
    "NOTEBOOK_SIZES",
    "SGD_RUNS_BEFORE_CELL_3",
    "notebook_problem",
    "notebook_sgd_indices",
    "rho_from_notebook",
]

NOTEBOOK_SEED = 0
NOTEBOOK_STEPS = 10_001
NOTEBOOK_SIZES = {"n": 20, "d": 30, "k": 3, "n_test": 1000}
#: Whole ``SGD`` runs (``NOTEBOOK_STEPS`` draws of ``randint(n)`` each) that the
#: kernel's global generator had made after cell 0 and before cell 3's first
#: ``SGD`` run. The notebook does not record them (its execution counts 2–5,
#: 7–12 and 14–17 are not in the saved file): the number was found by replaying
#: 0, 1, …, 599 such runs; 5 gives cell 3's first printed SGD loss to 4e-15
#: (relative; the next best is 6e-5 off), and the second run, which follows
#: it in the stream and was not searched, then matches too.
SGD_RUNS_BEFORE_CELL_3 = 5


def _after_cell_0(n: int, d: int, k: int, n_test: int):
    """The notebook's global generator after cell 0, and the arrays cell 0 drew from it."""
    rng = np.random.RandomState(NOTEBOOK_SEED)
    x = rng.multivariate_normal(np.zeros(d), np.eye(d), n)
    x_test = rng.multivariate_normal(np.zeros(d), np.eye(d), n_test)
    beta_star = rng.randn(d)
    beta_star[k:] = 0.0
    beta_star = np.abs(beta_star) / np.linalg.norm(beta_star)
    return rng, x, x_test, beta_star


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
    _, x, x_test, beta_star = _after_cell_0(n, d, k, n_test)
    as_jax = lambda a: jnp.asarray(a, dtype=jnp.result_type(float))
    return SparseRegressionData(
        train={"x": as_jax(x), "y": as_jax(x @ beta_star)},
        test={"x": as_jax(x_test), "y": as_jax(x_test @ beta_star)},
        beta_star=as_jax(beta_star),
    )


def notebook_sgd_indices(runs: int = 2, skip_runs: int = SGD_RUNS_BEFORE_CELL_3) -> np.ndarray:
    """Example indices of the notebook's ``SGD`` runs, as ``train.run(batch_indices=...)`` takes them.

    Replays the kernel's global NumPy generator ([rho-notebook] in
    ``docs/conventions.md``): seeded with ``NOTEBOOK_SEED``, advanced by
    cell 0's draws (:func:`notebook_problem`), then by ``skip_runs`` whole
    runs of ``NOTEBOOK_STEPS`` draws of ``randint(n)``; the next ``runs``
    runs are returned. The defaults give cell 3's two runs, in the order it
    makes them (γ = 10/(3d), then 10/d). Only the notebook's sizes
    (``NOTEBOOK_SIZES``) give its stream.

    Returns:
        int64 array of shape ``(runs, NOTEBOOK_STEPS, 1)``: run ``r``'s update
        ``t`` trains on example ``[r, t, 0]`` (a batch of one).

    Conventions: [rho-notebook], [loss-mean].
    """
    runs = check_positive_int("runs", runs)
    if isinstance(skip_runs, bool) or not isinstance(skip_runs, (int, np.integer)) or skip_runs < 0:
        raise ValueError(f"skip_runs must be an integer >= 0, got {skip_runs!r}")
    sizes = NOTEBOOK_SIZES
    rng = _after_cell_0(sizes["n"], sizes["d"], sizes["k"], sizes["n_test"])[0]
    # randint draws one 32-bit word per try (masked rejection), so a vector
    # draw is the same stream as the notebook's scalar calls.
    stream = rng.randint(sizes["n"], size=(skip_runs + runs) * NOTEBOOK_STEPS)
    return stream[skip_runs * NOTEBOOK_STEPS:].reshape(runs, NOTEBOOK_STEPS, 1)


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
