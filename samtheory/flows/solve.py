"""Solving a flow: :func:`solve_flow`, its result and its argument checks (see :mod:`samtheory.flows`).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [record], [rng], [float].
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from samtheory._validation import check_positive, check_positive_int, concrete_values
from samtheory.batching import batch_size
from samtheory.errors import all_finite
from samtheory.flows.cost import EvaluationCount, FlowStats, _analytic_vf_count, gradients_per_direction
from samtheory.flows.events import (
    Stop,
    Termination,
    _LossAtStart,
    _LossCrossing,
    _NonFinite,
    _SteadyState,
)
from samtheory.flows.term import _Flow, _FlowArgs, _Save
from samtheory.sam.variants import Variant

__all__ = ["FlowResult", "solve_flow", "log_times"]

PyTree = Any

_SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno5": diffrax.Kvaerno5,
    "euler": diffrax.Euler,
}


class FlowResult(NamedTuple):
    """Outcome of :func:`solve_flow`. Leading axes are added by ``vmap``.

    Attributes:
      times: the requested save times, shape ``(k,)``.
      reached: ``(k,)`` bool, whether the solve got to that time before it
        stopped. Entries that were not reached hold NaN in ``params``,
        ``metrics`` and ``integral``: they were never computed. Use
        :meth:`reached_only` (host side) to drop them.
      params: saved parameters (leaves with a leading axis ``k``), or
        ``None`` with ``save_params=False``.
      metrics: dict of ``(k,)`` arrays, ``metrics_fn`` at the save times
        (default ``{"loss": L}``).
      integral: ``∫₀ᵗ aux`` at the save times, or ``None``.
      final_time: the time the solve stopped.
      final_params, final_metrics, final_integral: the state there.
      reason: ``int32`` :class:`Termination` code.
      stats: :class:`FlowStats`.
    """

    times: jax.Array
    reached: jax.Array
    params: PyTree
    metrics: dict
    integral: PyTree
    final_time: jax.Array
    final_params: PyTree
    final_metrics: dict
    final_integral: PyTree
    reason: jax.Array
    stats: FlowStats

    def divergence(self):
        """For :func:`samtheory.errors.check_finite`: a flow diverged if it stopped on a
        non-finite state (``NON_FINITE``) or with a collapsed step size in front of a
        singularity or finite-time blow-up (``STALLED``)."""
        reason = np.asarray(self.reason)
        mask = (reason == Termination.NON_FINITE) | (reason == Termination.STALLED)

        def describe(i):
            t = float(np.asarray(self.final_time)[i])
            return f"{Termination(int(reason[i])).description} at t = {t:.6g}"

        return mask, describe, "flow"

    @property
    def reason_name(self) -> str:
        """The termination reason in words (for an unbatched, concrete result)."""
        return Termination(int(np.asarray(self.reason))).description

    def reached_only(self) -> "FlowResult":
        """The same result with the unreached save times removed (host side, unbatched)."""
        keep = np.asarray(self.reached)
        if keep.ndim != 1:
            raise ValueError("reached_only works on an unbatched result; index the batch first")
        cut = lambda tree: jax.tree.map(lambda x: x[keep], tree)
        return self._replace(
            times=self.times[keep],
            reached=self.reached[keep],
            params=cut(self.params),
            metrics=cut(self.metrics),
            integral=cut(self.integral),
        )


def _nan_where(mask, tree):
    """``tree`` with the entries whose leading index has ``mask`` False set to NaN."""

    def one(x):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(x) - 1))
        return jnp.where(m, x, jnp.nan)

    return jax.tree.map(one, tree)


def log_times(t_final, num: int = 60, t_min=None) -> jax.Array:
    """Save times ``0, t_min, …, t_final``: 0 then ``num − 1`` log-spaced times.

    ``t_min`` defaults to ``t_final · 1e-4``. Works with a traced ``t_final``.
    Conventions: [record].
    """
    check_positive("t_final", t_final)
    num = check_positive_int("num", num)
    if num < 2:
        raise ValueError(f"num must be >= 2 (0 and t_final), got {num}")
    t_final = jnp.asarray(t_final, dtype=jnp.result_type(float))
    t_min = t_final * 1e-4 if t_min is None else jnp.asarray(t_min, t_final.dtype)
    check_positive("t_min", t_min)
    # geomspace goes through exp(log(·)), which can overshoot t_final by an ulp.
    tail = jnp.minimum(jnp.geomspace(t_min, t_final, num - 1), t_final).at[-1].set(t_final)
    return jnp.concatenate([jnp.zeros((1,), t_final.dtype), tail])


# --------------------------------------------------------------------------
# Argument checks.
# --------------------------------------------------------------------------


def _check_finite_scalar(name: str, value) -> None:
    arr = concrete_values(value)
    if arr is None:
        return
    if arr.ndim != 0 or not np.isfinite(arr):
        raise ValueError(f"{name} must be a finite scalar, got {value!r}")


def _check_params(params0, log_coordinates: bool) -> None:
    leaves = jax.tree.leaves(params0)
    if not leaves:
        raise ValueError("params0 must contain at least one array")
    for x in leaves:
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise ValueError(f"params0 leaves must be floating-point arrays, got dtype {jnp.result_type(x)}")
    if log_coordinates:
        for x in leaves:
            arr = concrete_values(x)
            if arr is not None and not np.all(arr > 0):
                raise ValueError(
                    "params0 must be strictly positive with log_coordinates=True "
                    f"(the coordinates are s = log w), got min {np.min(arr)!r}"
                )


def _resolve_solver(solver) -> diffrax.AbstractSolver:
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if isinstance(solver, str) and solver.lower() in _SOLVERS:
        return _SOLVERS[solver.lower()]()
    raise ValueError(
        f"solver must be one of {sorted(_SOLVERS)} or a diffrax.AbstractSolver, got {solver!r}"
    )


def _resolve_controller(controller, solver, rtol, atol, dt0, t_final, dtype):
    if controller is not None:
        if not isinstance(controller, diffrax.AbstractStepSizeController):
            raise ValueError(
                f"stepsize_controller must be a diffrax.AbstractStepSizeController, got {controller!r}"
            )
        if isinstance(controller, diffrax.ConstantStepSize) and dt0 is None:
            raise ValueError("dt0 is required with a constant step size")
        return controller
    if isinstance(solver, diffrax.AbstractAdaptiveSolver):
        rtol, atol = jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype)
        # Below dtmin the time grid no longer resolves t (≈ 10 ulps of
        # t_final): the solution is singular just ahead (finite-time blow-up,
        # or D undefined, whose NaN trial steps are rejected forever). Stop
        # and say so instead of burning max_steps on rejections.
        dtmin = 10 * jnp.finfo(dtype).eps * t_final
        # The PI coefficients diffrax recommends for stiff problems.
        pi = dict(pcoeff=0.3, icoeff=0.4) if isinstance(solver, diffrax.AbstractImplicitSolver) else {}
        return diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False, **pi)
    if dt0 is None:
        raise ValueError(f"dt0 is required by the fixed-step solver {type(solver).__name__}")
    return diffrax.ConstantStepSize()


# --------------------------------------------------------------------------
# The solver.
# --------------------------------------------------------------------------


def solve_flow(
    variant,
    loss_fn: Callable,
    params0,
    data,
    *,
    t_final,
    key: jax.Array | None = None,
    solver: str | diffrax.AbstractSolver = "tsit5",
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    rtol=1e-8,
    atol=1e-10,
    dt0=None,
    save_at=None,
    save_params: bool = True,
    metrics_fn: Callable | None = None,
    stop: Stop = Stop(),
    log_coordinates: bool = False,
    auxiliary: Callable | None = None,
    num_random_directions: int = 16,
    count_evaluations: bool = False,
) -> FlowResult:
    """Solve the flow ``ẇ = −D(w)`` of ``variant`` from ``params0`` on ``[0, t_final]``.

    ``D`` is the variant's full-batch direction (:func:`flow_direction`); the
    flow is the ``η → 0`` limit of full-batch SAM at fixed ρ (Andriushchenko
    & Flammarion 2022; for the stochastic, SDE view see Compagnoni et al.
    2023). The term is fixed; the solver and step-size controller are chosen
    here, and the whole solve is one compiled program (reused across calls
    with the same ``loss_fn``/``metrics_fn``/``auxiliary`` objects and
    configuration; works under ``jit`` and ``vmap``).

    Args:
      variant: ``ERM()``, ``SAM(...)``, ``RandomSAM(...)`` or ``ASAM(...)``.
        Its ``rho`` may be traced (``jax.vmap`` over ρ works).
      loss_fn: mean loss ``loss_fn(params, batch)`` ([loss-mean]).
      params0: initial parameters (floating-point pytree).
      data: the full data set (the flow is full-batch).
      t_final: final time (> 0, finite). Time is measured so that GD with
        step ``η`` for ``N`` steps corresponds to ``t = Nη``.
      key: fixes the random directions of RandomSAM ([rng]); else ignored.
      solver: ``"tsit5"`` (default), ``"dopri5"``, ``"dopri8"``,
        ``"kvaerno5"`` (implicit, for stiff problems), ``"euler"``
        (fixed step ``dt0``: GD with ``η = dt0``), or any
        ``diffrax.AbstractSolver``.
      stepsize_controller: any diffrax controller; default
        ``PIDController(rtol, atol)`` for adaptive solvers (with the PI
        coefficients 0.3/0.4 for implicit ones) and ``ConstantStepSize`` for
        fixed-step solvers.
      rtol, atol: tolerances of the default controller (in the integrated
        coordinates: ``log w`` with ``log_coordinates=True``).
      dt0: initial step (adaptive; default: diffrax's automatic choice) or
        the step (fixed-step solvers, required).
      save_at: increasing save times in ``[0, t_final]``; default
        :func:`log_times` ``(t_final)``.
      save_params: also save the parameters at the save times.
      metrics_fn: ``metrics_fn(params) -> dict`` of scalars, evaluated at
        the save times and at the end; default ``{"loss": loss_fn(w, data)}``.
      stop: :class:`~samtheory.flows.Stop`: the loss tolerance, the
        steady-state speed and the step budget (default: run to ``t_final``
        within 100 000 steps).
      log_coordinates: integrate ``s = log w`` (all leaves must be > 0).
      auxiliary: ``aux(t, w) -> pytree`` of arrays; its time integral from 0
        is returned in ``integral``/``final_integral``.
      num_random_directions: ``K`` for RandomSAM.
      count_evaluations: count the evaluations of ``D`` on the host (a
        ``jax.debug.callback`` per evaluation, each finite-difference
        Jacobian column included) instead of from the step count: exact for
        every solver, implicit ones included, but slower, and only for
        concrete inputs (not under ``jit``/``vmap``); the solve compiles afresh.

    Returns:
      :class:`FlowResult`. Call :func:`check_finite` before using it.

    Raises:
      ValueError: an invalid argument, named.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [record], [rng], [float].
    """
    if not isinstance(variant, Variant):
        raise ValueError(f"variant must be ERM, SAM, RandomSAM or ASAM, got {variant!r}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable")
    if not isinstance(log_coordinates, bool):
        raise ValueError(f"log_coordinates must be a bool, got {log_coordinates!r}")
    _check_params(params0, log_coordinates)
    batch_size(data)  # raises ValueError on an inconsistent data set
    check_positive("t_final", t_final)
    _check_finite_scalar("t_final", t_final)
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    if not isinstance(stop, Stop):
        raise ValueError(f"stop must be a samtheory.flows.Stop, got {stop!r}")
    num_random_directions = check_positive_int("num_random_directions", num_random_directions)
    if variant.needs_key and key is None:
        raise ValueError(f"key is required by {type(variant).__name__} (it fixes the random directions)")
    if dt0 is not None:
        check_positive("dt0", dt0)
    for name, fn in (("metrics_fn", metrics_fn), ("auxiliary", auxiliary)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be callable or None")
    solver = _resolve_solver(solver)
    dtype = jnp.result_type(*jax.tree.leaves(params0))
    t_final = jnp.asarray(t_final, dtype)
    controller = _resolve_controller(stepsize_controller, solver, rtol, atol, dt0, t_final, dtype)
    ts = None
    if save_at is not None:
        ts = jnp.asarray(save_at, dtype)
        if ts.ndim != 1 or ts.shape[0] == 0:
            raise ValueError(f"save_at must be a non-empty 1-D array of times, got shape {ts.shape}")
        arr, tf = concrete_values(ts), concrete_values(t_final)
        if arr is not None and tf is not None and (
            arr[0] < 0 or arr[-1] > tf or np.any(np.diff(arr) < 0) or not np.all(np.isfinite(arr))
        ):
            raise ValueError(f"save_at must be increasing within [0, t_final={float(tf)}], got {arr}")

    if not isinstance(count_evaluations, bool):
        raise ValueError(f"count_evaluations must be a bool, got {count_evaluations!r}")
    if count_evaluations and any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params0, data, variant, t_final))
    ):
        raise ValueError("count_evaluations=True needs concrete inputs: it cannot run under jit or vmap")
    flow = _Flow(
        loss_fn, log_coordinates, auxiliary, num_random_directions,
        finite_difference_jacobian=isinstance(solver, diffrax.AbstractImplicitSolver),
        counter=EvaluationCount() if count_evaluations else None,
    )
    # Everything numeric becomes an array, so that new values (ρ, tolerances,
    # data, times) reuse the compiled solve; only the configuration is static.
    as_array = lambda tree: jax.tree.map(jnp.asarray, tree)
    tol = lambda value: None if value is None else jnp.asarray(value, dtype)
    args = _FlowArgs(
        as_array(variant), as_array(data), key, tol(stop.loss_below), tol(stop.steady_state)
    )
    solve = lambda: _solve(
        flow, metrics_fn, save_params, solver, controller, as_array(params0), args,
        t_final, ts, tol(dt0), stop.max_steps,
    )
    if not count_evaluations:
        return solve()
    result = jax.block_until_ready(solve())
    jax.effects_barrier()
    num_vf = flow.counter.value
    if isinstance(controller, diffrax.PIDController) and dt0 is None:
        num_vf += 2  # diffrax's initial step selection: its two evaluations escape host callbacks
    per = gradients_per_direction(variant, num_random_directions)
    stats = result.stats._replace(
        num_vf_evaluations=jnp.asarray(num_vf), num_gradient_evaluations=jnp.asarray(num_vf * per)
    )
    return result._replace(stats=stats)


@eqx.filter_jit
def _solve(
    flow: _Flow, metrics_fn, save_params: bool, solver, controller, params0, args: _FlowArgs,
    t_final, ts, dt0, max_steps: int,
) -> FlowResult:
    """The compiled core of :func:`solve_flow` (arguments already validated)."""
    dtype = jnp.result_type(t_final)
    if ts is None:
        ts = log_times(t_final).astype(dtype)
    z0 = jax.tree.map(jnp.log, params0) if flow.log_coordinates else params0
    integral0 = None
    if flow.auxiliary is not None:
        shapes = jax.eval_shape(flow.auxiliary, t_final, params0)
        integral0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    y0 = (z0, integral0)

    # Event order matters only for simultaneous triggers: the first one wins.
    conds, directions, codes = [_NonFinite()], [None], [Termination.NON_FINITE]
    if args.loss_tol is not None:
        conds += [_LossAtStart(flow), _LossCrossing(flow)]
        directions += [None, False]  # False: downward crossings only
        codes += [Termination.LOSS_BELOW, Termination.LOSS_BELOW]
    if args.speed_tol is not None:
        conds.append(_SteadyState(flow))
        directions.append(None)
        codes.append(Termination.STEADY_STATE)
    root_finder = optx.Newton(rtol=1e-10, atol=1e-9) if args.loss_tol is not None else None
    event = diffrax.Event(tuple(conds), root_finder=root_finder, direction=tuple(directions))

    saveat = diffrax.SaveAt(
        subs=[
            diffrax.SubSaveAt(ts=ts, fn=_Save(flow, metrics_fn, save_params)),
            diffrax.SubSaveAt(t1=True, fn=_Save(flow, metrics_fn, True)),
        ]
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        solver,
        t0=jnp.zeros((), dtype),
        t1=t_final,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        event=event,
        max_steps=max_steps,
        # Nothing differentiates a solve in reverse (the finite-difference JVP of the implicit solvers has no
        # transpose), so the default RecursiveCheckpointAdjoint's checkpointed loop only costs compile time: the
        # plain while loop of ForwardMode runs the same steps (bitwise) and compiles about 20 % faster.
        adjoint=diffrax.ForwardMode(),
        throw=False,
    )

    # ---- termination reason -------------------------------------------------
    result = sol.result
    reason = jnp.select(
        [
            result == diffrax.RESULTS.successful,
            result == diffrax.RESULTS.max_steps_reached,
            result == diffrax.RESULTS.dt_min_reached,
        ],
        [Termination.T_FINAL, Termination.MAX_STEPS, Termination.STALLED],
        Termination.SOLVER_FAILURE,
    )
    event_reason = jnp.asarray(Termination.T_FINAL)
    for fired, code in reversed(list(zip(sol.event_mask, codes))):
        event_reason = jnp.where(fired, code, event_reason)
    # An event that fired decides the reason even when the root find that
    # locates it did not converge: near a tiny loss tolerance, rounding in L
    # bounds how precisely the crossing time is defined, and the root finder
    # then stops within that noise (its iterate is clipped to the last step).
    any_event = jnp.any(jnp.stack([jnp.asarray(m) for m in sol.event_mask]))
    reason = jnp.where(any_event, event_reason, reason)

    (saved_ts, final_ts) = sol.ts
    (saved, final) = sol.ys
    final_w, final_metrics, final_integral = jax.tree.map(lambda x: x[0], final)
    final_time = final_ts[0]

    # A solve that stops early without an event may do so because D is not
    # finite at the last accepted state: adaptive controllers reject such
    # steps instead of accepting a NaN. Evaluate D there to tell.
    stalled = (
        (reason == Termination.MAX_STEPS)
        | (reason == Termination.STALLED)
        | (reason == Termination.SOLVER_FAILURE)
    )
    vf_finite = jax.lax.cond(
        stalled,
        lambda: all_finite(flow.velocity(final_w, args)),
        lambda: jnp.asarray(True),
    )
    finite = all_finite((final_w, final_metrics, final_integral)) & (~stalled | vf_finite)
    reason = jnp.where(finite, reason, Termination.NON_FINITE).astype(jnp.int32)

    reached = jnp.isfinite(saved_ts)
    saved_w, saved_metrics, saved_integral = _nan_where(reached, saved)

    # ---- statistics ---------------------------------------------------------
    stats = sol.stats
    num_steps = jnp.asarray(stats["num_steps"])
    analytic = _analytic_vf_count(solver, controller, dt0, num_steps, args.speed_tol is not None)
    num_vf = jnp.asarray(-1) if analytic is None else jnp.asarray(analytic) + jnp.where(stalled, 1, 0)
    per = gradients_per_direction(args.variant, flow.num_random_directions)
    num_grad = jnp.where(num_vf >= 0, num_vf * per, -1)
    flow_stats = FlowStats(
        num_steps=num_steps,
        num_accepted_steps=jnp.asarray(stats["num_accepted_steps"]),
        num_rejected_steps=jnp.asarray(stats["num_rejected_steps"]),
        num_vf_evaluations=num_vf,
        num_gradient_evaluations=num_grad,
    )
    return FlowResult(
        times=ts,
        reached=reached,
        params=saved_w,
        metrics=saved_metrics,
        integral=saved_integral,
        final_time=final_time,
        final_params=final_w,
        final_metrics=final_metrics,
        final_integral=final_integral,
        reason=reason,
        stats=flow_stats,
    )
