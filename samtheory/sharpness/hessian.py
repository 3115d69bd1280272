"""Hessian-vector products of the mean loss, on pytrees and on flat vectors.

The Hessian is never formed. ``H v`` costs about two gradient evaluations:
the forward-mode derivative (``jax.jvp``) of the reverse-mode gradient
(``jax.grad``), "forward-over-reverse" (Pearlmutter 1994, "Fast exact
multiplication by the Hessian"; the JAX autodiff cookbook recommends this
order as the cheapest in memory and time).

Conventions: [loss-mean], [float].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["hvp", "flat_hessian_operator"]


def hvp(loss_fn: Callable, params, batch, v):
    """``H v`` with ``H = ∇²L(params)`` of the mean loss on ``batch``.

    ``v`` is a pytree like ``params``; each leaf is cast to the dtype of the
    matching parameter leaf (``jax.jvp`` requires tangents of the primal's
    dtype), so a float64 probe on float32 parameters is computed in float32.
    Returns a pytree like ``params``. Conventions: [loss-mean], [float].
    """
    v = jax.tree.map(lambda t, p: jnp.asarray(t, jnp.result_type(p)), v, params)
    grad_fn = lambda w: jax.grad(loss_fn)(w, batch)
    return jax.jvp(grad_fn, (params,), (v,))[1]


def flat_hessian_operator(loss_fn: Callable, params, batch):
    """The Hessian as a map on flat vectors: ``(matvec, x0, unravel)``.

    ``x0`` is ``params`` raveled into one vector (leaves concatenated in
    ``jax.tree`` order, as :func:`jax.flatten_util.ravel_pytree` does; its
    length is the parameter count ``D``), ``unravel`` maps such a vector back
    to a pytree and ``matvec(u) = ravel(H unravel(u))``. The Krylov methods of
    this package work on these flat vectors. Conventions: [loss-mean], [float].
    """
    x0, unravel = ravel_pytree(params)

    def matvec(u: jax.Array) -> jax.Array:
        return ravel_pytree(hvp(loss_fn, params, batch, unravel(u)))[0]

    return matvec, x0, unravel
