"""SAM as an optax transformation that wraps any base optimizer.

``sharpness_aware(variant, base)`` is a
:class:`optax.GradientTransformationExtraArgs`. Its ``update`` takes the usual
``(updates, state, params)`` plus the keyword arguments ``loss_fn``, ``batch``
and, for random variants, ``key``; it replaces ``updates`` by the variant's
gradient from :func:`samtheory.sam.gradient` and hands that to ``base``:

    opt = sharpness_aware(SAM(rho=0.05), optax.sgd(0.1, momentum=0.9))
    state = opt.init(params)
    grads = jax.grad(loss_fn)(params, batch)
    updates, state = opt.update(grads, state, params, loss_fn=loss_fn, batch=batch)
    params = optax.apply_updates(params, updates)

The incoming ``updates`` must be ``∇L_B(params)`` (as in any optax loop): for
n-SAM without the second-order term they are reused as the ascent gradient,
so one step costs exactly two gradient passes. Other variants recompute what
they need and ignore them.

Unlike ``optax.contrib.sam``, one call is one full SAM step (ascent and
descent), so schedules, momentum and step counters of ``base`` advance once
per SAM step. With ``optax.contrib.sam(base, chain(normalize(), sgd(rho)),
opaque_mode=True)`` and ``SAM(rho)`` the two produce the same iterates; this
is tested.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import optax

from samtheory.sam.oracle import gradient
from samtheory.sam.variants import Variant

__all__ = ["sharpness_aware", "SharpnessAwareState"]


class SharpnessAwareState(NamedTuple):
    """State of :func:`sharpness_aware`: the base optimizer's state."""

    base_state: optax.OptState


def sharpness_aware(
    variant: Variant, base: optax.GradientTransformation
) -> optax.GradientTransformationExtraArgs:
    """Wrap ``base`` so that it is fed ``variant``'s gradient instead of the plain one.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [rng].
    """

    def init_fn(params) -> SharpnessAwareState:
        return SharpnessAwareState(base.init(params))

    def update_fn(
        updates,
        state: SharpnessAwareState,
        params=None,
        *,
        loss_fn: Callable | None = None,
        batch=None,
        key: jax.Array | None = None,
        **extra_args,
    ):
        del extra_args
        if params is None:
            raise ValueError("params are required by sharpness_aware(...).update")
        if loss_fn is None or batch is None:
            raise ValueError("loss_fn and batch are required by sharpness_aware(...).update")
        sam_grad = gradient(variant, loss_fn, params, batch, key, clean_grad=updates)
        new_updates, base_state = base.update(sam_grad, state.base_state, params)
        return new_updates, SharpnessAwareState(base_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
