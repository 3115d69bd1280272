"""Small fixed-shape test problems shared by the engine tests.

Shapes never change, so each jitted function compiles once per test module
and hypothesis only varies values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

N_EXAMPLES = 8
N_FEATURES = 3
N_HIDDEN = 4


def tanh_net_loss(params, batch):
    """Mean of ½ r² for a one-hidden-layer tanh network: smooth and not quadratic."""
    hidden = jnp.tanh(batch["x"] @ params["W"] + params["b"])
    residual = hidden @ params["a"] - batch["y"]
    return 0.5 * jnp.mean(residual**2)


def make_quadratic_loss(a_matrix):
    """``loss(params, batch)`` = mean over centres ``c`` of ½ (x − c)ᵀ A (x − c)."""
    a_matrix = jnp.asarray(a_matrix)

    def loss(params, batch):
        diff = params["x"][None, :] - batch["c"]
        return 0.5 * jnp.mean(jnp.einsum("ni,ij,nj->n", diff, a_matrix, diff))

    return loss


finite = dict(allow_nan=False, allow_infinity=False)


def no_tiny(value: float) -> float:
    return 0.0 if abs(value) < 1e-6 else value


@st.composite
def tanh_problems(draw):
    """Random parameters and data for :func:`tanh_net_loss` (fixed shapes)."""
    # Entries below 1e-6 in size are drawn as 0: products of entries near 1e-270 underflow, and
    # XLA (flushing subnormals) and NumPy then disagree on sums that are exactly 0 in real numbers.
    elems = st.floats(-1.5, 1.5, **finite).map(no_tiny)
    params = {
        "W": draw(hnp.arrays(np.float64, (N_FEATURES, N_HIDDEN), elements=elems)),
        "b": draw(hnp.arrays(np.float64, (N_HIDDEN,), elements=elems)),
        "a": draw(hnp.arrays(np.float64, (N_HIDDEN,), elements=elems)),
    }
    batch = {
        "x": draw(hnp.arrays(np.float64, (N_EXAMPLES, N_FEATURES), elements=st.floats(-2, 2, **finite).map(no_tiny))),
        "y": draw(hnp.arrays(np.float64, (N_EXAMPLES,), elements=st.floats(-2, 2, **finite).map(no_tiny))),
    }
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, batch)


@st.composite
def spd_matrices(draw, dim: int, min_eig: float = 0.1, max_eig: float = 5.0, gap: float | None = None):
    """A symmetric positive-definite matrix with a random orthogonal eigenbasis.

    ``gap`` (if given) forces λ₂ ≤ gap · λ₁, for power-iteration-type checks.
    """
    eigs = np.sort(
        np.array(draw(st.lists(st.floats(min_eig, max_eig, **finite), min_size=dim, max_size=dim)))
    )[::-1].copy()
    if gap is not None:
        eigs[1:] = np.minimum(eigs[1:], gap * eigs[0])
    seed = draw(st.integers(0, 2**31 - 1))
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return (q * eigs) @ q.T, eigs
