"""Perturbation maps: the inner maximization of SAM solved (or sampled) in closed form.

Each function maps a gradient pytree ``g`` (and a radius ``rho``) to a
perturbation pytree ``eps`` of the same structure. Norms are taken over the
whole pytree, as if its leaves were one vector (conventions: [rho-sam]).

All maps are safe at ``g = 0``: they return ``eps = 0`` there, and their
derivatives are finite, so the second-order SAM gradient (which differentiates
through ``eps``) never produces a NaN. The guard is the "double where": the
unsafe branch is evaluated on a harmless placeholder so that its derivative is
finite, then discarded.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from samtheory._validation import check_nonnegative

PyTree = object

__all__ = [
    "dual_norm_perturbation",
    "scaled_gradient_perturbation",
    "project_to_ball",
    "random_sphere_perturbation",
    "asam_perturbation",
    "pytree_norm",
]


def _tree_sum(fn, tree) -> jax.Array:
    return sum(jnp.sum(fn(leaf)) for leaf in jax.tree.leaves(tree))


def _tree_max_abs(tree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)]))


def pytree_norm(tree, p: float = 2.0) -> jax.Array:
    """The ℓ_p norm of a pytree viewed as one flat vector (p ≥ 1 or ``math.inf``).

    Conventions: [rho-sam].
    """
    if p == math.inf:
        return _tree_max_abs(tree)
    if p == 1:
        return _tree_sum(jnp.abs, tree)
    if p == 2:
        return optax.tree.norm(tree)
    return _tree_sum(lambda x: jnp.abs(x) ** p, tree) ** (1.0 / p)


def _safe_ratio(numerator_tree, denominator, fallback_zero_when) -> PyTree:
    """``numerator / denominator`` leafwise, and 0 where ``fallback_zero_when`` holds."""
    safe_den = jnp.where(fallback_zero_when, jnp.ones_like(denominator), denominator)
    return jax.tree.map(
        lambda x: jnp.where(fallback_zero_when, jnp.zeros_like(x), x / safe_den), numerator_tree
    )


def _l2_unit(g) -> PyTree:
    squared = _tree_sum(jnp.square, g)
    is_zero = squared == 0
    norm = jnp.sqrt(jnp.where(is_zero, jnp.ones_like(squared), squared))
    return _safe_ratio(g, norm, is_zero)


def dual_norm_perturbation(g, rho, p: float = 2.0) -> PyTree:
    """Solution of ``max ⟨eps, g⟩ s.t. ‖eps‖_p ≤ rho`` (Foret et al. 2021, eq. 2).

    With ``1/p + 1/q = 1`` the maximizer is
    ``eps = rho · sign(g) |g|^{q-1} / ‖g‖_q^{q/p}``, it has ``‖eps‖_p = rho``
    and attains ``⟨eps, g⟩ = rho ‖g‖_q``. Special cases:

    * ``p = 2``: ``rho · g / ‖g‖₂``;
    * ``p = ∞``: ``rho · sign(g)``;
    * ``p = 1``: all mass on the largest ``|g_j|`` (split equally among exact
      ties, which are all maximizers).

    For general ``p`` the map is evaluated on ``g / max|g|``: ``eps`` is
    invariant to rescaling ``g``, and the rescaling keeps ``|g|^{q-1}`` from
    overflowing or underflowing when ``q`` is large. ``g = 0`` gives 0.

    Conventions: [rho-sam], [normalize].
    """
    if p == 2:
        return jax.tree.map(lambda u: rho * u, _l2_unit(g))
    if p == math.inf:
        return jax.tree.map(lambda x: rho * jnp.sign(x), g)
    scale = _tree_max_abs(g)
    is_zero = scale == 0
    h = _safe_ratio(g, scale, is_zero)
    if p == 1:
        # Compare against the maximum itself, not h == 1: XLA may divide as
        # x * (1/s), and then s / s is not exactly 1.
        winners = jax.tree.map(lambda x: (jnp.abs(x) == scale).astype(x.dtype), g)
        count = _tree_sum(lambda x: x, winners)
        # count ≥ 1 whenever g ≠ 0, so only the all-zero case needs the guard.
        return _safe_ratio(
            jax.tree.map(lambda x, w: rho * jnp.sign(x) * w, g, winners), count, is_zero
        )
    q = p / (p - 1.0)

    def power(x):
        # |x|^{q-1} has an infinite derivative at 0 when q < 2; evaluate the
        # power only where |x| > 0 so the second-order path stays finite.
        ax = jnp.abs(x)
        positive = ax > 0
        return jnp.where(positive, jnp.where(positive, ax, 1.0) ** (q - 1.0), 0.0)

    numerator = jax.tree.map(lambda x: jnp.sign(x) * power(x), h)
    # Σ|h|^q ≈ ≥ 1 once g ≠ 0 (the largest entry of h has modulus ≈ 1).
    denominator = _tree_sum(lambda x: power(x) * jnp.abs(x), h) ** (1.0 / p)
    return _safe_ratio(jax.tree.map(lambda x: rho * x, numerator), denominator, is_zero)


def scaled_gradient_perturbation(g, rho) -> PyTree:
    """Unnormalized SAM (USAM): ``eps = rho · g``. Conventions: [rho-sam], [normalize]."""
    return jax.tree.map(lambda x: rho * x, g)


def project_to_ball(eps, rho, p: float) -> PyTree:
    """Euclidean projection of ``eps`` onto ``{‖·‖_p ≤ rho}`` for p ∈ {1, 2, ∞}.

    Uses :mod:`optax.projections`. Other ``p`` have no cheap exact projection
    and raise ``ValueError``. Conventions: [rho-sam].
    """
    if p == 2:
        project = optax.projections.projection_l2_ball
    elif p == math.inf:
        project = optax.projections.projection_linf_ball
    elif p == 1:
        project = optax.projections.projection_l1_ball
    else:
        raise ValueError(f"p must be 1, 2 or inf for a projection onto the p-ball, got p={p!r}")
    # The optax projections divide by the radius; ρ = 0 is the point ball {0}.
    is_point = jnp.asarray(rho) == 0
    projected = project(eps, jnp.where(is_point, 1.0, rho))
    return jax.tree.map(lambda x: jnp.where(is_point, jnp.zeros_like(x), x), projected)


def random_sphere_perturbation(key: jax.Array, like, rho) -> PyTree:
    """``rho · z / ‖z‖₂`` with ``z ~ N(0, I)``: uniform on the ℓ₂ sphere of radius ``rho``.

    ``like`` gives the pytree structure, shapes and dtypes (Foret et al. 2021,
    App. C.5). Conventions: [rho-sam], [rng].
    """
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(key, len(leaves))
    z = jax.tree.unflatten(
        treedef,
        [jax.random.normal(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, leaves)],
    )
    return jax.tree.map(lambda u: rho * u, _l2_unit(z))


def asam_perturbation(g, params, rho, eta) -> PyTree:
    """Adaptive SAM (Kwon et al. 2021) with the elementwise operator ``T = |w| + eta``.

    ``eps = rho · T² g / ‖T g‖₂``: the maximizer of ``⟨eps, g⟩`` over
    ``‖T⁻¹ eps‖₂ ≤ rho``, so the radius is scale-adapted per coordinate.
    Conventions: [rho-sam].
    """
    check_nonnegative("eta", eta)
    t = jax.tree.map(lambda w: jnp.abs(w) + eta, params)
    unit = _l2_unit(jax.tree.map(lambda ti, gi: ti * gi, t, g))
    return jax.tree.map(lambda ti, ui: rho * ti * ui, t, unit)
