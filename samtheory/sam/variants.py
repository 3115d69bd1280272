"""SAM variants as small, pure descriptions: how each one ascends, and what it declares.

A variant answers one question: given the gradient ``g`` of a chunk of
examples at the current parameters ``w`` (and a key), which perturbation
``ε`` does it evaluate that chunk's gradient at? It never differentiates:
the oracle (:mod:`samtheory.sam.oracle`) owns every ``jax.grad``, the
chunking, the keys and the mean. A variant provides

* ``ascent(g, w, key) -> ε``: the first ascent step;
* ``continue_ascent(ε, g, w) -> ε``: every further step, with ``g`` the
  gradient at ``w + ε`` (only when ``ascent_steps > 1``);

and declares

* ``m``: chunk size (``None``: the whole batch, n-SAM) ([m]);
* ``needs_key``: whether ``ascent`` draws random numbers ([rng]);
* ``needs_gradient``: whether ``ascent`` reads ``g`` (RandomSAM does not);
* ``perturbs``: ``False`` for ERM only (its direction is ``∇L(w)``);
* ``ascent_steps``, ``second_order``: how the oracle iterates and differentiates;
* ``gradient_passes``: gradient evaluations per direction (the unit of cost);
* ``style_key`` and ``label``: the display name, from :mod:`samtheory.style`.

Every variant is a frozen dataclass and a JAX pytree whose only array field
is ``rho``: ``jax.vmap`` over a batch of radii works either by building the
variant inside the mapped function or by mapping over a variant whose
``rho`` is an array. The other fields are static, keyword-only, and select
code paths. Arguments are checked when a variant is built (``TypeError`` or
``ValueError`` naming the field; a traced ``rho`` is let through), never
when JAX rebuilds one from its leaves.

To add a variant: write its class here (fields, ``ascent``, the declared
properties), add it to :data:`Variant`, and test it against a reference
(``docs/architecture.md``).

Conventions: [rho-sam], [m], [normalize], [rng].
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from samtheory._validation import check_nonnegative, check_positive_int
from samtheory.sam import perturbation as pert
from samtheory.style import variant_label

__all__ = ["ERM", "SAM", "RandomSAM", "ASAM", "Variant"]


def _check_rho(rho) -> None:
    """``rho``: a real number ≥ 0, a real array (vmapped radii), or a tracer."""
    if isinstance(rho, jax.core.Tracer):
        return
    is_number = isinstance(rho, numbers.Real) and not isinstance(rho, bool)
    is_array = isinstance(rho, (np.ndarray, np.generic, jax.Array)) and (
        jnp.issubdtype(rho.dtype, jnp.floating) or jnp.issubdtype(rho.dtype, jnp.integer)
    )
    if not (is_number or is_array):
        raise TypeError(f"rho must be a real number or a real array, got {rho!r} ({type(rho).__name__})")
    check_nonnegative("rho", rho)


def _check_m(m) -> None:
    if m is not None:
        check_positive_int("m", m)


def _check_real(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def _check_p(p) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p) or p < 1:
        raise ValueError(f"p must be a real number >= 1 (or math.inf), got {p!r}")


def _chunk_prefix(m) -> str:
    return "n" if m is None else ("one" if m == 1 else "m")


def _pytree(cls):
    """Register ``cls`` (a frozen dataclass) as a pytree with ``rho`` as its only leaf.

    Unflattening bypasses ``__init__``: JAX rebuilds variants from whatever
    leaves it holds (tracers, ``None`` placeholders, axis specs), which are
    no radius and must not be validated as one.
    """
    static = tuple(f.name for f in dataclasses.fields(cls) if f.name != "rho")
    has_rho = any(f.name == "rho" for f in dataclasses.fields(cls))

    def flatten_with_keys(v):
        children = ((jax.tree_util.GetAttrKey("rho"), v.rho),) if has_rho else ()
        return children, tuple(getattr(v, name) for name in static)

    def unflatten(aux, children):
        v = object.__new__(cls)
        for name, value in zip(static, aux):
            object.__setattr__(v, name, value)
        if has_rho:
            object.__setattr__(v, "rho", children[0])
        return v

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    return cls


@_pytree
@dataclasses.dataclass(frozen=True)
class ERM:
    """Plain empirical risk minimization: no perturbation; the direction is ``∇L(w)``. Conventions: [loss-mean]."""

    m = None
    needs_key = False
    needs_gradient = False
    perturbs = False
    ascent_steps = 1
    second_order = False
    gradient_passes = 1
    style_key = "erm"

    @property
    def label(self) -> str:
        return variant_label(self.style_key)


@_pytree
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

    All but ``rho`` are keyword-only. Conventions: [rho-sam], [m], [normalize].
    """

    rho: jax.Array | float
    m: int | None = dataclasses.field(default=None, kw_only=True)
    normalize: bool = dataclasses.field(default=True, kw_only=True)
    p: float = dataclasses.field(default=2.0, kw_only=True)
    ascent_steps: int = dataclasses.field(default=1, kw_only=True)
    second_order: bool = dataclasses.field(default=False, kw_only=True)

    needs_key = False
    needs_gradient = True
    perturbs = True

    def __post_init__(self):
        _check_rho(self.rho)
        _check_m(self.m)
        _check_bool("normalize", self.normalize)
        _check_bool("second_order", self.second_order)
        check_positive_int("ascent_steps", self.ascent_steps)
        if self.normalize:  # USAM has no ball, so p means nothing to it
            _check_p(self.p)
            if self.ascent_steps > 1 and self.p not in (1, 2, math.inf):
                raise ValueError(
                    f"p must be 1, 2 or inf when ascent_steps > 1 (projected ascent), got p={self.p!r}"
                )

    @property
    def gradient_passes(self) -> int:
        return self.ascent_steps + 1

    @property
    def style_key(self) -> str:
        chunks = _chunk_prefix(self.m)
        if self.normalize:
            return f"{chunks}_sam"
        return {"n": "usam", "one": "one_usam", "m": "m_usam"}[chunks]

    @property
    def label(self) -> str:
        return variant_label(self.style_key)

    def ascent(self, g, params, key=None):
        """One ascent step from the chunk gradient ``g``. Conventions: [rho-sam], [normalize]."""
        del params, key
        if self.normalize:
            return pert.dual_norm_perturbation(g, self.rho, self.p)
        return pert.scaled_gradient_perturbation(g, self.rho)

    def continue_ascent(self, eps, g, params):
        """``Π(ε + step(g))`` with ``g = ∇L_C(w + ε)`` (no projection for USAM). Conventions: [rho-sam]."""
        eps = jax.tree.map(jnp.add, eps, self.ascent(g, params))
        if self.normalize:
            eps = pert.project_to_ball(eps, self.rho, self.p)
        return eps


@_pytree
@dataclasses.dataclass(frozen=True)
class RandomSAM:
    """Random perturbations on the ℓ₂ sphere of radius ``rho`` (Foret et al. App. C.5).

    Each chunk draws its own direction; a key is required. ``m`` is keyword-only.
    Conventions: [rho-sam], [m], [rng].
    """

    rho: jax.Array | float
    m: int | None = dataclasses.field(default=None, kw_only=True)

    needs_key = True
    needs_gradient = False
    perturbs = True
    ascent_steps = 1
    second_order = False
    gradient_passes = 1
    style_key = "random"

    def __post_init__(self):
        _check_rho(self.rho)
        _check_m(self.m)

    @property
    def label(self) -> str:
        return variant_label(self.style_key)

    def ascent(self, g, params, key=None):
        """``rho · z/‖z‖`` drawn with ``key``; ``g`` is not read. Conventions: [rho-sam], [rng]."""
        del g
        return pert.random_sphere_perturbation(key, params, self.rho)


@_pytree
@dataclasses.dataclass(frozen=True)
class ASAM:
    """Adaptive SAM (Kwon et al. 2021): ``eps = rho T² g / ‖T g‖``, ``T = |w| + eta``.

    All but ``rho`` are keyword-only. Conventions: [rho-sam], [m].
    """

    rho: jax.Array | float
    eta: float = dataclasses.field(default=0.01, kw_only=True)
    m: int | None = dataclasses.field(default=None, kw_only=True)
    second_order: bool = dataclasses.field(default=False, kw_only=True)

    needs_key = False
    needs_gradient = True
    perturbs = True
    ascent_steps = 1
    gradient_passes = 2
    style_key = "asam"

    def __post_init__(self):
        _check_rho(self.rho)
        _check_real("eta", self.eta)
        check_nonnegative("eta", self.eta)
        _check_m(self.m)
        _check_bool("second_order", self.second_order)

    @property
    def label(self) -> str:
        return variant_label(self.style_key)

    def ascent(self, g, params, key=None):
        """ASAM's ``eps`` for one chunk. Conventions: [rho-sam]."""
        del key
        return pert.asam_perturbation(g, params, self.rho, self.eta)


Variant = ERM | SAM | RandomSAM | ASAM
