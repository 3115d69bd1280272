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

**Termination** (:class:`Termination`, configured by :class:`Stop`):
reaching ``t_final``; the loss crossing ``Stop.loss_below`` (located by root-finding ``log L = log tol``
on the dense output, so ``L(w_final) = tol`` to ~1e-9 relative, unless
``tol`` is within rounding of ``L``'s floor); the speed ``‖ẇ‖₂`` dropping
below ``Stop.steady_state`` (checked at the end of each step, which costs
one extra evaluation of ``D`` per step); ``Stop.max_steps``; a non-finite state
(the solve stops at the first step that accepts one, as in [record]);
*stalled*: the adaptive step size fell below ``10 ε_mach · t_final`` because
the solution is singular just ahead (finite-time blow-up, or ``D`` undefined
there: its NaN trial steps are rejected, never accepted); or another solver
failure. Divergence is flagged, never returned silently:
:func:`check_finite` raises :class:`samtheory.errors.DivergenceError` on
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

The package: :mod:`.term` (the vector field ``−D`` and what is saved along
it), :mod:`.events` (why a solve stops), :mod:`.cost` (what a solve costs)
and :mod:`.solve` (:func:`solve_flow`, its result and its checks).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [alpha], [record],
[rng], [float].
"""

from samtheory.errors import DivergenceError, check_finite
from samtheory.flows.cost import FlowStats, gradients_per_direction
from samtheory.flows.events import Stop, Termination
from samtheory.flows.solve import FlowResult, log_times, solve_flow
from samtheory.flows.term import flow_direction

__all__ = [
    "Termination",
    "Stop",
    "FlowStats",
    "FlowResult",
    "solve_flow",
    "flow_direction",
    "gradients_per_direction",
    "log_times",
    "check_finite",
    "DivergenceError",
]
