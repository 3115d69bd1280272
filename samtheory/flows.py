r"""Continuous-time SAM: the gradient flows of every variant, solved with diffrax.

The flow of a variant is the ODE

.. math::  \dot w(t) = -D(w(t)),

where ``D(w) = samtheory.sam.gradient(variant, loss_fn, w, data)`` is the
variant's update direction on the full data set ([loss-mean], [rho-sam], [m],
[normalize]):

* ``ERM()``: ``D = ∇L`` (gradient flow);
* ``SAM(rho, normalize=False)`` (USAM), n-SAM: ``D = ∇L(w + ρ∇L(w))``;
* ``SAM(rho, m=k, ...)``: ``D = (k/n) Σ_C ∇L_C(w + ε_C(w))``, one perturbation
  per chunk (1-SAM for ``k = 1``);
* ``SAM(rho)`` normalized: ``D = ∇L(w + ρ∇L/‖∇L‖)``. This field does not
  vanish near a minimizer (the perturbation keeps length ρ), so the flow has
  no steady state there; it chatters along the valley, which an adaptive
  solver resolves with ever smaller steps.

These are the continuous-time limits ``η → 0`` of full-batch SAM with step
``η`` at fixed ρ, the objects analysed by Andriushchenko & Flammarion (2022,
"Towards Understanding Sharpness-Aware Minimization", ICML; gradient flows
of SAM and the diagonal-network flows behind Theorem 1, see
``docs/theory.md``). GD with step ``η`` is the explicit Euler
scheme of this ODE, so ``w_GD(T) − w(T) = O(η)`` on a fixed horizon ``T``
(tested). Compagnoni et al. (2023, "An SDE for Modeling SAM") model *stochastic*
SAM by an SDE whose drift is this field plus an ``O(ρ)`` sharpness
correction; nothing here is stochastic.

**RandomSAM.** A flow needs a perturbation at every time, not an i.i.d. draw
per step. We integrate the *frozen-sample mean field*
``D_K(w) = (1/K) Σ_k gradient(variant, …, key_k)`` with ``K`` keys split once
from ``key`` and held fixed for the whole solve. For RandomSAM the
perturbation ``ρ z_k/‖z_k‖`` does not depend on ``w``, so ``D_K`` is a
smooth autonomous field, the Monte-Carlo estimate of ``∇ E_u L(w + ρu)``
(``∇L^Avg`` of :mod:`samtheory.sam.objectives`). By averaging, this mean
field is the ``η → 0`` limit of RandomSAM GD with fresh draws per step, up to
the ``O(K^{-1/2})`` sampling error of the frozen sample. **It is an ODE, not
an SDE**: the ``O(√η)`` fluctuations of the discrete algorithm are not
modelled.

**Log coordinates.** With ``log_coordinates=True`` every leaf must be
strictly positive (the w± diagonal network, [alpha]) and the solver
integrates ``s = log w``, ``ṡ = ẇ / w = −D(w)/w`` (chain rule, elementwise).
On the w± network ``D(w)/w = ±2 g̃ ⊙ (1 ± …)`` is bounded even where ``w`` is
tiny, so ``w`` stays positive, the tolerances become *relative* per
coordinate, and small-α problems (whose off-support weights decay by orders
of magnitude) need no absolute tolerance below those scales. Results are
reported in ``w``. For the ERM flow of the w± network there is more: in
``s`` the field is ``ṡ± = ∓2Xᵀr/n``, so ``s₊ + s₋ = 2 log α`` and
``s₊ − log α ∈ range(Xᵀ)`` are *linear* invariants, which every Runge–Kutta
method preserves exactly. Any such solution that reaches ``Xβ = y`` therefore
lands on ``argmin Q_α`` (the mirror-descent argument of Woodworth et al.
2020), whatever the tolerance: the limit's error is only the residual left
at the stopping time. (SAM adds a common term ``−4ρ g ⊙ g̃`` whose integral
is path-dependent, so there the tolerance matters.)

**Auxiliary integrals.** ``auxiliary(t, w) -> pytree`` is integrated along
the flow: the state is augmented with ``I(t) = ∫₀ᵗ aux(τ, w(τ)) dτ`` and the
solver controls its error like any other component. Theorem 1's
``Δ = 4∫ g ⊙ g̃ dt`` is one such integral.

**Termination** (:class:`Termination`): reaching ``t_final``; the loss
crossing ``stop_when_loss_below`` (located by root-finding ``log L = log tol``
on the dense output, so ``L(w_final) = tol`` to ~1e-9 relative, unless
``tol`` is within rounding of ``L``'s floor); the speed ``‖ẇ‖₂`` dropping
below ``stop_at_steady_state`` (checked at the end of each step, which costs
one extra evaluation of ``D`` per step); ``max_steps``; a non-finite state
(the solve stops at the first step that accepts one, as in [record]);
*stalled*: the adaptive step size fell below ``10 ε_mach · t_final`` because
the solution is singular just ahead (finite-time blow-up, or ``D`` undefined
there: its NaN trial steps are rejected, never accepted); or another solver
failure. Divergence is flagged, never returned silently:
:func:`check_finite` raises :class:`samtheory.train.DivergenceError` on
non-finite and stalled solves.

**Stiff solvers.** The oracle evaluates a perturbing variant's gradient at
``stop_gradient(w + ε)``, so autodiff of ``D`` misses the curvature at the
perturbed point. Implicit solvers (Kvaerno5) need ``∂D/∂w`` for their Newton
iterations; they get it from central differences of ``D`` (``2·dim``
evaluations per Jacobian), for every variant.

**Cost accounting** (:class:`FlowStats`): accepted and rejected steps, the
number of evaluations of ``D`` and the number of gradient passes they cost
(:func:`gradients_per_direction`), comparable to the step count of GD. For
explicit Runge–Kutta solvers the count follows exactly from the step count
and the tableau; ``count_evaluations=True`` counts on the host instead, which
also covers implicit solvers.

Terms, solvers and step-size controllers stay separate, as in diffrax: the
term is always the ODE above; ``solver`` and ``stepsize_controller`` are
chosen by name or passed as diffrax objects.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [record],
[rng], [float].
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from samtheory._validation import (
    check_positive,
    check_positive_int,
    concrete_values,
)
from samtheory.sam.oracle import batch_size, gradient
from samtheory.sam.perturbation import pytree_norm
from samtheory.sam.variants import ASAM, ERM, SAM, RandomSAM
from samtheory.train import DivergenceError

__all__ = [
    "Termination",
    "FlowStats",
    "FlowResult",
    "solve_flow",
    "flow_direction",
    "gradients_per_direction",
    "log_times",
    "check_finite",
]

PyTree = Any

_SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno5": diffrax.Kvaerno5,
    "euler": diffrax.Euler,
}


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


# --------------------------------------------------------------------------
# Small helpers.
# --------------------------------------------------------------------------


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _nan_where(mask, tree):
    """``tree`` with the entries whose leading index has ``mask`` False set to NaN."""

    def one(x):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(x) - 1))
        return jnp.where(m, x, jnp.nan)

    return jax.tree.map(one, tree)


def gradients_per_direction(variant, num_random_directions: int = 1) -> int:
    """Gradient passes per evaluation of the direction ``D`` of ``variant``.

    ERM: 1. SAM/USAM (any ``m``; 1-SAM's per-example gradients are one
    vmapped pass, as in :mod:`samtheory.sam.oracle`): ``ascent_steps + 1``.
    ASAM: 2. RandomSAM: 1 per random direction (no ascent gradient).
    ``second_order=True`` is counted the same, although differentiating
    through the ascent costs a few more passes. Conventions: [rho-sam], [m].
    """
    if isinstance(variant, ERM):
        return 1
    if isinstance(variant, SAM):
        return variant.ascent_steps + 1
    if isinstance(variant, ASAM):
        return 2
    if isinstance(variant, RandomSAM):
        return check_positive_int("num_random_directions", num_random_directions)
    raise ValueError(f"variant must be ERM, SAM, RandomSAM or ASAM, got {variant!r}")


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
    if not isinstance(variant, RandomSAM):
        return gradient(variant, loss_fn, params, data, key)
    if key is None:
        raise ValueError("key is required by RandomSAM (it fixes the random directions)")
    keys = jax.random.split(key, num_random_directions)
    per_key = jax.vmap(lambda k: gradient(variant, loss_fn, params, data, k))(keys)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_key)


# --------------------------------------------------------------------------
# The term, save functions and events. All are eqx.Modules whose callables
# are static fields: diffeqsolve's filter_jit then reuses its compilation
# across calls with the same loss_fn/metrics_fn/auxiliary objects, while
# data, variant (ρ), key and all tolerances travel as traced ``args``.
# --------------------------------------------------------------------------


# Host-side tally for count_evaluations=True. One module-level function, so
# that the compiled solve is reused across counted calls.
_EVALUATIONS = [0]


def _count_evaluation(_):
    _EVALUATIONS[0] += 1


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
    count_evaluations: bool = eqx.field(static=True)

    def params(self, z):
        return jax.tree.map(jnp.exp, z) if self.log_coordinates else z

    def velocity(self, w, args: _FlowArgs):
        """``ẇ = −D(w)``."""

        def minus_direction(p, a: _FlowArgs):
            if self.count_evaluations:
                # Batched under vmap (finite-difference Jacobian columns),
                # so every evaluation of D is counted once.
                jax.debug.callback(_count_evaluation, p)
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


class _NonFinite(eqx.Module):
    def __call__(self, t, y, args, **kwargs):
        return jnp.logical_not(_all_finite(y))


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
    stop_when_loss_below=None,
    stop_at_steady_state=None,
    log_coordinates: bool = False,
    auxiliary: Callable | None = None,
    max_steps: int = 100_000,
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
      stop_when_loss_below: stop when ``L(w)`` first crosses this value
        downward (root-found; stops at ``t = 0`` if ``L(w₀) ≤ tol``).
      stop_at_steady_state: stop at the end of the first step with
        ``‖ẇ‖₂ = ‖D(w)‖₂ <`` this value (costs one ``D`` per step).
      log_coordinates: integrate ``s = log w`` (all leaves must be > 0).
      auxiliary: ``aux(t, w) -> pytree`` of arrays; its time integral from 0
        is returned in ``integral``/``final_integral``.
      max_steps: step budget (static).
      num_random_directions: ``K`` for RandomSAM.
      count_evaluations: count the evaluations of ``D`` on the host (a
        ``jax.debug.callback`` per evaluation, each finite-difference
        Jacobian column included) instead of from the step count: exact for
        every solver, implicit ones included, but slower, and only for
        concrete inputs (not under ``jit``/``vmap``; not thread-safe).

    Returns:
      :class:`FlowResult`. Call :func:`check_finite` before using it.

    Raises:
      ValueError: an invalid argument, named.

    Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [record], [rng], [float].
    """
    if not isinstance(variant, (ERM, SAM, RandomSAM, ASAM)):
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
    max_steps = check_positive_int("max_steps", max_steps)
    num_random_directions = check_positive_int("num_random_directions", num_random_directions)
    if isinstance(variant, RandomSAM) and key is None:
        raise ValueError("key is required by RandomSAM (it fixes the random directions)")
    if dt0 is not None:
        check_positive("dt0", dt0)
    if stop_when_loss_below is not None:
        _check_finite_scalar("stop_when_loss_below", stop_when_loss_below)
    if stop_at_steady_state is not None:
        check_positive("stop_at_steady_state", stop_at_steady_state)
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
        count_evaluations=count_evaluations,
    )
    # Everything numeric becomes an array, so that new values (ρ, tolerances,
    # data, times) reuse the compiled solve; only the configuration is static.
    as_array = lambda tree: jax.tree.map(jnp.asarray, tree)
    tol = lambda value: None if value is None else jnp.asarray(value, dtype)
    args = _FlowArgs(
        as_array(variant), as_array(data), key, tol(stop_when_loss_below), tol(stop_at_steady_state)
    )
    solve = lambda: _solve(
        flow, metrics_fn, save_params, solver, controller, as_array(params0), args,
        t_final, ts, tol(dt0), max_steps,
    )
    if not count_evaluations:
        return solve()
    _EVALUATIONS[0] = 0
    result = jax.block_until_ready(solve())
    jax.effects_barrier()
    num_vf = _EVALUATIONS[0]
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
        lambda: _all_finite(flow.velocity(final_w, args)),
        lambda: jnp.asarray(True),
    )
    finite = _all_finite((final_w, final_metrics, final_integral)) & (~stalled | vf_finite)
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


def check_finite(result: FlowResult, *, names: tuple[str, ...] | None = None) -> FlowResult:
    """Raise :class:`samtheory.train.DivergenceError` if a solve diverged.

    Diverged means: stopped on a non-finite state (``NON_FINITE``) or with a
    collapsed step size in front of a singularity or finite-time blow-up
    (``STALLED``). Works on batched results (``vmap``); ``names`` labels the
    batch axes in the message (e.g. ``("rho",)``). Returns ``result``
    unchanged otherwise. Conventions: [record].
    """
    reason = np.asarray(result.reason)
    mask = (reason == Termination.NON_FINITE) | (reason == Termination.STALLED)
    if not mask.any():
        return result
    first = tuple(int(i) for i in np.argwhere(mask)[0]) if reason.ndim else ()
    labels = [names[i] if names and i < len(names) else f"axis{i}" for i in range(len(first))]
    where = "".join(f"{label}={j}, " for label, j in zip(labels, first))
    t = float(np.asarray(result.final_time)[first])
    what = Termination(int(reason[first])).description
    raise DivergenceError(
        f"{int(mask.sum())} flow(s) diverged; first: {where}{what} at t = {t:.6g}"
    )
