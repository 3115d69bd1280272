"""The vector field of a flow: ``ẇ = −D(w)``, in ``w`` or ``log w``, with integrals along it.

``D`` is the variant's full-batch direction (:func:`flow_direction`). The
term, the save function and the arguments are ``eqx.Module`` s whose
callables are static fields: diffrax's ``filter_jit`` then reuses its
compilation across calls with the same ``loss_fn``/``metrics_fn``/``auxiliary``
objects, while data, variant (ρ), key and all tolerances travel as traced ``args``.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [rng].
"""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from samtheory.sam.oracle import gradient
from samtheory.sam.perturbation import pytree_norm

__all__ = ["flow_direction"]


def flow_direction(
    variant,
    loss_fn: Callable,
    params,
    data,
    key: jax.Array | None = None,
    *,
    num_random_directions: int = 16,
):
    """The direction ``D(w)`` whose negative is the velocity of the flow.

    ``samtheory.sam.gradient`` for deterministic variants; for RandomSAM the
    mean over ``num_random_directions`` fixed keys split from ``key`` (the
    frozen-sample mean field of the module docstring).
    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """
    if not variant.needs_key:
        return gradient(variant, loss_fn, params, data, key)
    if key is None:
        raise ValueError(f"key is required by {type(variant).__name__} (it fixes the random directions)")
    keys = jax.random.split(key, num_random_directions)
    per_key = jax.vmap(lambda k: gradient(variant, loss_fn, params, data, k))(keys)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_key)


class _FlowArgs(eqx.Module):
    variant: Any
    data: Any
    key: Any
    loss_tol: Any  # None when there is no loss event
    speed_tol: Any  # None when there is no steady-state event


def _finite_difference_jvp(fn: Callable) -> Callable:
    """``fn(w, args)`` with its JVP replaced by a central difference.

    ``(fn(x + h ẋ) − fn(x − h ẋ)) / 2h`` for ``x = (w, args)``, with
    ``h = ε_mach^{1/3} · max(1, ‖w‖₂)`` (the step that balances truncation
    and rounding for central differences; a forward difference, ``O(√ε)``
    accurate, left Newton unable to converge at ``rtol = 1e-12``). Tangents of
    non-float leaves (keys) are ignored. The arguments are explicit (not
    closed over) so that the rule stays valid under jit, vmap and the solvers'
    own tracing.
    """

    @jax.custom_jvp
    def wrapped(w, args):
        return fn(w, args)

    @wrapped.defjvp
    def wrapped_jvp(primals, tangents):
        out = fn(*primals)
        w = primals[0]
        dtype = jnp.result_type(*jax.tree.leaves(w))
        h = jnp.cbrt(jnp.finfo(dtype).eps) * jnp.maximum(1.0, pytree_norm(w, 2.0))

        def shift(sign):
            def one(x, t):
                if jnp.result_type(t) == jax.dtypes.float0:
                    return x
                return x + (sign * h * t).astype(jnp.result_type(x))
            return fn(*jax.tree.map(one, primals, tangents))

        plus, minus = shift(1.0), shift(-1.0)
        return out, jax.tree.map(lambda a, b: (a - b) / (2 * h), plus, minus)

    return wrapped


class _Flow(eqx.Module):
    """The state is ``(z, I)``: ``z = w`` or ``log w``, and ``I = ∫ aux`` (or ``None``)."""

    loss_fn: Callable = eqx.field(static=True)
    log_coordinates: bool = eqx.field(static=True)
    auxiliary: Callable | None = eqx.field(static=True)
    num_random_directions: int = eqx.field(static=True)
    # The oracle evaluates a perturbing variant's gradient at
    # stop_gradient(w + ε), so autodiff would give ∂D/∂w without the
    # curvature at w + ε. Implicit solvers need ∂D/∂w (Newton iterations) and
    # get it by finite differences, for every variant, so that a Jacobian
    # costs the same 2·dim evaluations of D whatever the variant.
    finite_difference_jacobian: bool = eqx.field(static=True)
    # A per-solve EvaluationCount (count_evaluations=True), or None.
    counter: Callable | None = eqx.field(static=True)

    def params(self, z):
        return jax.tree.map(jnp.exp, z) if self.log_coordinates else z

    def velocity(self, w, args: _FlowArgs):
        """``ẇ = −D(w)``."""

        def minus_direction(p, a: _FlowArgs):
            if self.counter is not None:
                # Batched under vmap (finite-difference Jacobian columns),
                # so every evaluation of D is counted once.
                jax.debug.callback(self.counter, p)
            d = flow_direction(
                a.variant, self.loss_fn, p, a.data, a.key,
                num_random_directions=self.num_random_directions,
            )
            return jax.tree.map(jnp.negative, d)

        if self.finite_difference_jacobian:
            return _finite_difference_jvp(minus_direction)(w, args)
        return minus_direction(w, args)

    def __call__(self, t, y, args: _FlowArgs):
        z, _ = y
        w = self.params(z)
        w_dot = self.velocity(w, args)
        # Chain rule for s = log w: ṡ = ẇ / w (elementwise).
        z_dot = jax.tree.map(jnp.divide, w_dot, w) if self.log_coordinates else w_dot
        integrand = None if self.auxiliary is None else self.auxiliary(t, w)
        return z_dot, integrand


class _Save(eqx.Module):
    flow: _Flow
    metrics_fn: Callable | None = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)

    def metrics(self, w, args: _FlowArgs) -> dict:
        if self.metrics_fn is None:
            return {"loss": self.flow.loss_fn(w, args.data)}
        return dict(self.metrics_fn(w))

    def __call__(self, t, y, args: _FlowArgs):
        z, integral = y
        w = self.flow.params(z)
        return (w if self.save_params else None), self.metrics(w, args), integral
