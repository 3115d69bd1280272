"""SAM variants as small immutable configuration objects.

A variant answers one question: given a chunk of examples and the current
parameters, which perturbation ``eps`` does it evaluate the chunk's gradient
at? The oracle (:mod:`samtheory.sam.oracle`) does the chunking, the
averaging and the differentiation; the variants only describe the ascent.

Every variant is a frozen dataclass registered as a JAX pytree whose only
array field is ``rho``: ``jax.vmap`` over a batch of radii works either by
building the variant inside the mapped function or by mapping over a variant
whose ``rho`` is an array. Static fields (``m``, ``p``, ...) select code paths
and must be Python values.

Concrete values are validated eagerly (``ValueError`` naming the field);
traced values are let through, so validation never breaks ``vmap`` or ``jit``.

Conventions: [rho-sam], [m], [normalize].
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Callable

import jax
import jax.numpy as jnp

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.sam import perturbation as pert

LossFn = Callable[[object, object], jax.Array]

__all__ = ["ERM", "SAM", "RandomSAM", "ASAM", "Variant"]


def _check_m(m) -> None:
    if m is not None:
        check_positive_int("m", m)


def _check_p(p) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p) or p < 1:
        raise ValueError(f"p must be a real number >= 1 (or math.inf), got {p!r}")


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ERM:
    """Plain empirical risk minimization: no perturbation. Conventions: [loss-mean]."""

    m = None
    second_order = False
    needs_key = False


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SAM:
    """Worst-case SAM: n-SAM, m-SAM, 1-SAM, USAM, ℓ_p dual ascent, multi-step ascent.

    Args:
      rho: radius (normalized) or ascent step (``normalize=False``), ≥ 0.
      m: chunk size; ``None`` is n-SAM, ``1`` is 1-SAM. Must divide the batch.
      normalize: ``True`` for SAM (dual-norm step), ``False`` for USAM
        (``eps = rho ∇L_C``).
      p: the norm of the ball, ``1 ≤ p ≤ ∞`` (Foret et al. eq. 2). Ignored by
        USAM.
      ascent_steps: number of inner ascent steps (Foret et al. App. C.6). With
        ``K > 1`` and ``normalize=True`` only p ∈ {1, 2, ∞} are supported,
        since the iteration needs an exact projection onto the ball.
      second_order: differentiate through ``eps(w)`` instead of dropping the
        Hessian term (Foret et al. §2 and App. C.4).

    Conventions: [rho-sam], [m], [normalize].
    """

    rho: jax.Array | float
    m: int | None = dataclasses.field(default=None, metadata=dict(static=True))
    normalize: bool = dataclasses.field(default=True, metadata=dict(static=True))
    p: float = dataclasses.field(default=2.0, metadata=dict(static=True))
    ascent_steps: int = dataclasses.field(default=1, metadata=dict(static=True))
    second_order: bool = dataclasses.field(default=False, metadata=dict(static=True))

    needs_key = False

    def __post_init__(self):
        check_nonnegative("rho", self.rho)
        _check_m(self.m)
        _check_p(self.p)
        check_positive_int("ascent_steps", self.ascent_steps)
        if self.normalize and self.ascent_steps > 1 and self.p not in (1, 2, math.inf):
            raise ValueError(
                f"p must be 1, 2 or inf when ascent_steps > 1 (projected ascent), got p={self.p!r}"
            )

    def _step(self, g):
        if self.normalize:
            return pert.dual_norm_perturbation(g, self.rho, self.p)
        return pert.scaled_gradient_perturbation(g, self.rho)

    def perturbation(self, loss_fn: LossFn, params, chunk, key=None, clean_grad=None):
        """``eps`` for one chunk; ``clean_grad`` (∇L_C at ``params``) saves one pass if known.

        Conventions: [loss-mean], [rho-sam], [normalize].
        """
        del key
        grad_fn = jax.grad(loss_fn)
        g = grad_fn(params, chunk) if clean_grad is None else clean_grad
        eps = self._step(g)
        if self.ascent_steps == 1:
            return eps

        def ascend(_, eps):
            eps = _tree_add(eps, self._step(grad_fn(_tree_add(params, eps), chunk)))
            if self.normalize:
                eps = pert.project_to_ball(eps, self.rho, self.p)
            return eps

        return jax.lax.fori_loop(0, self.ascent_steps - 1, ascend, eps)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RandomSAM:
    """Random perturbations on the ℓ₂ sphere of radius ``rho`` (Foret et al. App. C.5).

    Each chunk draws its own direction; a key is required.
    Conventions: [rho-sam], [m], [rng].
    """

    rho: jax.Array | float
    m: int | None = dataclasses.field(default=None, metadata=dict(static=True))

    second_order = False
    needs_key = True

    def __post_init__(self):
        check_nonnegative("rho", self.rho)
        _check_m(self.m)

    def perturbation(self, loss_fn: LossFn, params, chunk, key=None, clean_grad=None):
        """``rho · z/‖z‖`` drawn with ``key``; independent of the loss. Conventions: [rho-sam], [rng]."""
        del loss_fn, chunk, clean_grad
        return pert.random_sphere_perturbation(key, params, self.rho)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ASAM:
    """Adaptive SAM (Kwon et al. 2021): ``eps = rho T² g / ‖T g‖``, ``T = |w| + eta``.

    Conventions: [rho-sam], [m].
    """

    rho: jax.Array | float
    eta: float = dataclasses.field(default=0.01, metadata=dict(static=True))
    m: int | None = dataclasses.field(default=None, metadata=dict(static=True))
    second_order: bool = dataclasses.field(default=False, metadata=dict(static=True))

    needs_key = False

    def __post_init__(self):
        check_nonnegative("rho", self.rho)
        check_nonnegative("eta", self.eta)
        _check_m(self.m)

    def perturbation(self, loss_fn: LossFn, params, chunk, key=None, clean_grad=None):
        """ASAM's ``eps`` for one chunk. Conventions: [loss-mean], [rho-sam]."""
        del key
        g = jax.grad(loss_fn)(params, chunk) if clean_grad is None else clean_grad
        return pert.asam_perturbation(g, params, self.rho, self.eta)


Variant = ERM | SAM | RandomSAM | ASAM
