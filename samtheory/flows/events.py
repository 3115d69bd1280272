"""Why a flow stops: the stopping configuration, the termination reasons, and the diffrax events.

All events are ``eqx.Module`` s whose callables are static fields, so the
compiled solve is reused across calls with the same loss and configuration;
tolerances travel as traced ``args``.

Conventions: [loss-mean], [record].
"""

from __future__ import annotations

import dataclasses
import enum

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from samtheory._validation import check_positive, check_positive_int, concrete_values
from samtheory.errors import all_finite
from samtheory.flows.term import _Flow, _FlowArgs
from samtheory.sam.perturbation import pytree_norm

__all__ = ["Stop", "Termination"]


@dataclasses.dataclass(frozen=True)
class Stop:
    """When a solve stops before ``t_final``.

    Attributes:
      loss_below: stop when ``L(w)`` first crosses this value downward
        (root-found; stops at ``t = 0`` if ``L(w₀) ≤ loss_below``); ``None``: never.
      steady_state: stop at the end of the first step with
        ``‖ẇ‖₂ = ‖D(w)‖₂ <`` this value (costs one ``D`` per step); ``None``: never.
      max_steps: the solver's step budget (static).

    Checked when built: ``ValueError`` naming the field.
    """

    loss_below: float | None = None
    steady_state: float | None = None
    max_steps: int = 100_000

    def __post_init__(self):
        if self.loss_below is not None:
            value = concrete_values(self.loss_below)
            if value is not None and (value.ndim != 0 or not np.isfinite(value)):
                raise ValueError(f"loss_below must be a finite scalar, got {self.loss_below!r}")
        if self.steady_state is not None:
            check_positive("steady_state", self.steady_state)
        check_positive_int("max_steps", self.max_steps)


class Termination(enum.IntEnum):
    """Why a solve stopped; stored as an ``int32`` code in :attr:`FlowResult.reason`."""

    T_FINAL = 0
    LOSS_BELOW = 1
    STEADY_STATE = 2
    MAX_STEPS = 3
    NON_FINITE = 4
    STALLED = 5
    SOLVER_FAILURE = 6

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Termination.T_FINAL: "reached t_final",
    Termination.LOSS_BELOW: "event: loss below tol",
    Termination.STEADY_STATE: "event: steady state",
    Termination.MAX_STEPS: "max_steps reached",
    Termination.NON_FINITE: "non-finite state",
    Termination.STALLED: "stalled: step size collapsed (blow-up or singularity ahead)",
    Termination.SOLVER_FAILURE: "solver failure",
}


class _NonFinite(eqx.Module):
    def __call__(self, t, y, args, **kwargs):
        return jnp.logical_not(all_finite(y))


class _LossAtStart(eqx.Module):
    """Boolean: already ``L ≤ tol`` at ``t₀`` (a float event cannot fire at ``t₀``)."""

    flow: _Flow

    def __call__(self, t, y, args: _FlowArgs, *, t0, **kwargs):
        loss = self.flow.loss_fn(self.flow.params(y[0]), args.data)
        return (t == t0) & (loss <= args.loss_tol)


class _LossCrossing(eqx.Module):
    """Float whose downward zero crossing is ``L(w) = tol``; it is root-found.

    For ``tol > 0`` it is ``log L − log tol``: losses decay exponentially in
    time near a minimum, so ``log L`` is nearly linear in ``t`` there and
    Newton converges in a step or two, while ``L − tol`` at ``tol ~ 1e-20``
    is dominated by rounding and Newton fails. For ``tol ≤ 0`` it is ``L − tol``.
    """

    flow: _Flow

    def __call__(self, t, y, args: _FlowArgs, **kwargs):
        loss = self.flow.loss_fn(self.flow.params(y[0]), args.data)
        tol = args.loss_tol
        positive = tol > 0
        tiny = jnp.finfo(jnp.result_type(loss)).tiny
        log_gap = jnp.log(jnp.maximum(loss, tiny)) - jnp.log(jnp.where(positive, tol, 1.0))
        return jnp.where(positive, log_gap, loss - tol)


class _SteadyState(eqx.Module):
    """Boolean: ``‖ẇ‖₂ < tol`` (in the original coordinates ``w``)."""

    flow: _Flow

    def __call__(self, t, y, args: _FlowArgs, **kwargs):
        w = self.flow.params(y[0])
        return pytree_norm(self.flow.velocity(w, args), 2.0) < args.speed_tol
