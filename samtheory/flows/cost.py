"""What a flow costs: steps, evaluations of the direction ``D``, and gradient passes.

For explicit Runge–Kutta solvers the number of evaluations of ``D`` follows
exactly from the step count and the Butcher tableau; with
``count_evaluations=True`` an :class:`EvaluationCount` counts them on the
host instead (every solver, implicit ones included).

Conventions: [rho-sam], [m].
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax

from samtheory._validation import check_positive_int

__all__ = ["FlowStats", "gradients_per_direction", "EvaluationCount"]


class FlowStats(NamedTuple):
    """Cost of a solve.

    Attributes:
      num_steps: attempted steps (accepted + rejected).
      num_accepted_steps, num_rejected_steps: as in diffrax.
      num_vf_evaluations: evaluations of the direction ``D`` (vector field),
        including the steady-state event's and the initial step-size
        selection's. For explicit Runge–Kutta solvers it is computed from the
        step count and the Butcher tableau (``s`` stages): ``(s − 1)·num_steps
        + 1`` for FSAL tableaus (Tsit5, Dopri5/8), ``s·num_steps`` otherwise
        (Euler: ``num_steps``); + 2 for diffrax's automatic initial step
        (adaptive, ``dt0=None``); + ``num_steps + 1`` for the steady-state
        event; + 1 for the finiteness check of a stalled solve. It is exact
        unless the very first attempt is rejected (then short by one per
        rejected first attempt). Implicit solvers evaluate ``D`` inside Newton
        iterations and Jacobians that diffrax does not report: −1 there,
        unless ``count_evaluations=True`` (host-side count, exact for all
        solvers; a finite-difference Jacobian costs ``2·dim`` evaluations).
      num_gradient_evaluations: ``num_vf_evaluations ×``
        :func:`gradients_per_direction`: gradient passes, the unit in which
        GD with ``N`` steps costs ``N ×`` the same factor. −1 if unknown.
    """

    num_steps: jax.Array
    num_accepted_steps: jax.Array
    num_rejected_steps: jax.Array
    num_vf_evaluations: jax.Array
    num_gradient_evaluations: jax.Array



def gradients_per_direction(variant, num_random_directions: int = 1) -> int:
    """Gradient passes per evaluation of the direction ``D`` of ``variant``.

    The variant's declared ``gradient_passes`` (ERM 1, SAM/USAM of any ``m``
    ``ascent_steps + 1``, ASAM 2, RandomSAM 1), times ``num_random_directions``
    for a variant that draws its perturbation (the frozen-sample mean field).
    ``second_order=True`` is counted the same, although differentiating
    through the ascent costs a few more passes. Conventions: [rho-sam], [m].
    """
    if not variant.needs_key:
        return variant.gradient_passes
    return variant.gradient_passes * check_positive_int("num_random_directions", num_random_directions)


class EvaluationCount:
    """A host-side tally of the evaluations of ``D`` in one solve (``count_evaluations=True``).

    One per solve, so no state outlives the call; the solve compiles afresh
    for each count (a diagnostic mode: slower, exact).
    """

    def __init__(self) -> None:
        self.value = 0

    def __call__(self, _) -> None:
        self.value += 1


def _analytic_vf_count(solver, controller, dt0, num_steps, steady_state: bool):
    """Vector-field evaluations of an explicit RK solve, from the step count (see FlowStats)."""
    if isinstance(solver, diffrax.Euler):
        per_step, first = 1, 0
    elif isinstance(solver, diffrax.AbstractERK):
        tableau = solver.tableau
        fsal = bool(tableau.fsal)
        per_step, first = tableau.num_stages - int(fsal), int(fsal)
    else:
        return None
    count = per_step * num_steps + first * (num_steps > 0)
    if isinstance(controller, diffrax.PIDController) and dt0 is None:
        count = count + 2  # diffrax's initial step-size selection evaluates f twice.
    if steady_state:
        count = count + num_steps + 1  # the event evaluates D at init and after every step.
    return count
