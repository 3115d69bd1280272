"""Compiled training loops for every SAM variant.

A run is a pure function of its configuration and key: the whole loop is one
``lax.scan`` over recording points, each advancing the iterate with a
``lax.fori_loop`` to the next recorded step. Nothing is computed at steps
that are not recorded, so log-spaced recording over 10⁴ steps costs a few
dozen metric evaluations.

* Variants can be switched during training with :func:`switch` (variant A
  before step k, B from step k on).
* ``jax.vmap`` over ρ and seeds works on :func:`run` directly; :func:`sweep`
  does the common ``seeds × rhos`` grid in one compiled call.
* A non-finite parameter or loss marks the run as diverged at the first step
  it happens; :func:`check_finite` turns that into an error naming the step
  (and the run, for sweeps).

Conventions: [loss-mean], [rho-sam], [m], [record], [rng].
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from samtheory._validation import check_positive_int, concrete_values
from samtheory.sam.oracle import batch_size, gradient
from samtheory.sam.variants import Variant

__all__ = [
    "VariantSchedule",
    "switch",
    "log_steps",
    "TrainResult",
    "run",
    "sweep",
    "DivergenceError",
    "check_finite",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VariantSchedule:
    """Piecewise-constant choice of variant: ``variants[i]`` for ``boundaries[i-1] ≤ t < boundaries[i]``.

    Steps are 0-based update indices: with ``boundaries=(k,)`` the first ``k``
    updates use ``variants[0]`` and the rest ``variants[1]``. The variants are
    pytree children, so their ``rho`` can be vmapped.
    Conventions: [rho-sam].
    """

    variants: tuple
    boundaries: tuple

    def __post_init__(self):
        if len(self.variants) != len(self.boundaries) + 1:
            raise ValueError(
                "variants must have one more entry than boundaries, got "
                f"{len(self.variants)} variants and {len(self.boundaries)} boundaries"
            )
        # Boundaries are pytree leaves so that a sweep can vmap over switch points;
        # concrete ones are checked here, traced ones were checked by the caller.
        concrete = [concrete_values(b) for b in self.boundaries]
        if all(c is not None for c in concrete):
            values = [np.asarray(c) for c in concrete]
            if any(v.ndim or not np.issubdtype(v.dtype, np.integer) or v < 0 for v in values) or values != sorted(values):
                raise ValueError(f"boundaries must be sorted integers >= 0, got {self.boundaries}")


def switch(first: Variant, second: Variant, at_step) -> VariantSchedule:
    """``first`` for the updates ``t < at_step``, ``second`` afterwards (SAM↔ERM switching).

    ``at_step`` may be traced, so one compiled run can be vmapped over switch points.
    Conventions: [record] (steps count updates from 0).
    """
    value = concrete_values(at_step)
    if value is not None and (
        isinstance(at_step, bool) or value.ndim or not np.issubdtype(value.dtype, np.integer) or value < 0
    ):
        raise ValueError(f"at_step must be an integer >= 0, got {at_step!r}")
    return VariantSchedule((first, second), (at_step,))


def log_steps(num_steps: int, num: int = 60) -> np.ndarray:
    """Sorted unique steps ``0 = s₀ < … < s_k = num_steps``, roughly log-spaced.

    Conventions: [record].
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("num", num)
    steps = np.unique(np.round(np.geomspace(1, num_steps, num)).astype(np.int64))
    return np.concatenate([[0], steps[steps > 0]])


class TrainResult(NamedTuple):
    """Outcome of :func:`run`. Leading axes are added by ``vmap``/:func:`sweep`.

    Attributes:
      params: parameters after the last recorded step.
      steps: the recorded steps (int array).
      metrics: dict of arrays, one entry per recorded step.
      diverged_step: first step after which a parameter or a recorded metric
        was non-finite, or −1.

    Conventions: [record].
    """

    params: object
    steps: jax.Array
    metrics: dict
    diverged_step: jax.Array


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _as_schedule(variant) -> VariantSchedule:
    if isinstance(variant, VariantSchedule):
        return variant
    return VariantSchedule((variant,), ())


def _checked_record_steps(record_steps, num_steps: int) -> np.ndarray:
    steps = np.asarray(record_steps)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError("record_steps must be a non-empty 1-D array of integers")
    if steps[0] < 0 or np.any(np.diff(steps) <= 0) or steps[-1] > num_steps:
        raise ValueError(
            f"record_steps must be strictly increasing within [0, num_steps={num_steps}], got {steps}"
        )
    return steps


def run(
    loss_fn: Callable,
    params,
    data,
    *,
    variant,
    num_steps: int,
    learning_rate: float | jax.Array | optax.Schedule | None = None,
    optimizer: optax.GradientTransformation | None = None,
    batch_size_per_step: int | None = None,
    record_steps: Sequence[int] | np.ndarray | None = None,
    metrics_fn: Callable | None = None,
    key: jax.Array | None = None,
) -> TrainResult:
    """Train ``params`` on ``data`` with a SAM variant (or a schedule of variants).

    Args:
      loss_fn: mean loss ``loss_fn(params, batch)`` ([loss-mean]).
      params: initial parameters.
      data: the training set, a pytree with a leading example axis.
      variant: a variant or a :class:`VariantSchedule`.
      num_steps: number of updates.
      learning_rate: step size (number, traced scalar, or optax schedule) for
        plain gradient descent; exclusive with ``optimizer``.
      optimizer: any optax transformation that consumes the variant's
        gradient (e.g. ``optax.sgd(lr, momentum=0.9)``).
      batch_size_per_step: ``None`` for full-batch steps; else each step uses
        a minibatch of that size drawn uniformly without replacement, and
        n-SAM perturbs with the minibatch gradient ([m]).
      record_steps: increasing steps in ``[0, num_steps]`` at which metrics
        are evaluated (default :func:`log_steps`). Step 0 is the
        initialization.
      metrics_fn: ``metrics_fn(params) -> dict`` of scalars; default
        ``{"loss": loss_fn(params, data)}``.
      key: PRNG key for minibatches and random perturbations. Step ``t`` uses
        ``fold_in(key, t)``, so runs are deterministic and independent of how
        the steps are grouped.

    Returns:
      :class:`TrainResult`. Call :func:`check_finite` before plotting.

    Conventions: [loss-mean], [rho-sam], [m], [record], [rng].
    """
    check_positive_int("num_steps", num_steps)
    if (learning_rate is None) == (optimizer is None):
        raise ValueError("give exactly one of learning_rate and optimizer")
    if optimizer is None:
        optimizer = optax.sgd(learning_rate)
    schedule = _as_schedule(variant)
    n = batch_size(data)
    if batch_size_per_step is not None:
        check_positive_int("batch_size_per_step", batch_size_per_step)
        if batch_size_per_step > n:
            raise ValueError(
                f"batch_size_per_step must be <= the number of examples {n}, got {batch_size_per_step}"
            )
    needs_key = batch_size_per_step is not None or any(v.needs_key for v in schedule.variants)
    if needs_key and key is None:
        raise ValueError("key is required for minibatches or random perturbations")
    steps = _checked_record_steps(log_steps(num_steps) if record_steps is None else record_steps, num_steps)
    if metrics_fn is None:
        metrics_fn = lambda p: {"loss": loss_fn(p, data)}
    boundaries = jnp.asarray(schedule.boundaries, dtype=jnp.int32)

    def direction(t, p):
        if needs_key:
            batch_key, sam_key = jax.random.split(jax.random.fold_in(key, t))
        else:  # deterministic full-batch runs skip the per-step key arithmetic
            batch_key = sam_key = None
        if batch_size_per_step is None:
            batch = data
        else:
            # The b largest of n i.i.d. uniforms index a uniformly random b-subset. On CPU, top_k over
            # float32 is 10-40x faster than choice(replace=False), which sorts a permutation of all n.
            idx = jax.lax.top_k(jax.random.uniform(batch_key, (n,), jnp.float32), batch_size_per_step)[1]
            batch = jax.tree.map(lambda x: x[idx], data)
        branches = [
            (lambda v: lambda p, b, k: gradient(v, loss_fn, p, b, k))(v) for v in schedule.variants
        ]
        if len(branches) == 1:
            return branches[0](p, batch, sam_key)
        which = jnp.searchsorted(boundaries, t, side="right")
        return jax.lax.switch(which, branches, p, batch, sam_key)

    def one_step(t, carry):
        p, opt_state, diverged = carry
        updates, opt_state = optimizer.update(direction(t, p), opt_state, p)
        p = optax.apply_updates(p, updates)
        diverged = jnp.where((diverged < 0) & ~_all_finite(p), t + 1, diverged)
        return p, opt_state, diverged

    def advance_and_record(carry, segment):
        start, stop = segment
        carry = jax.lax.fori_loop(start, stop, one_step, carry)
        p, opt_state, diverged = carry
        metrics = metrics_fn(p)
        diverged = jnp.where((diverged < 0) & ~_all_finite(metrics), stop, diverged)
        return (p, opt_state, diverged), metrics

    starts = np.concatenate([[0], steps[:-1]]).astype(np.int32)
    carry0 = (params, optimizer.init(params), jnp.asarray(-1, jnp.int32))
    (p, _, diverged), metrics = jax.lax.scan(
        advance_and_record, carry0, (jnp.asarray(starts), jnp.asarray(steps, jnp.int32))
    )
    return TrainResult(p, jnp.asarray(steps), metrics, diverged)


def sweep(
    run_one: Callable[[jax.Array, jax.Array], TrainResult],
    rhos: Sequence[float] | jax.Array,
    seeds: Sequence[int] | jax.Array,
) -> TrainResult:
    """``run_one(rho, key)`` over the grid ``seeds × rhos`` in one vmapped call.

    ``run_one`` builds its variant from the traced ``rho`` (e.g.
    ``SAM(rho, m=1)``) and its initialization/minibatches from ``key``. The
    result has leading axes ``(len(seeds), len(rhos))``. Wrap the call in
    ``jax.jit`` to compile once. Conventions: [rho-sam], [rng].
    """
    rhos = jnp.asarray(rhos)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
    over_rho = jax.vmap(run_one, in_axes=(0, None))
    return jax.vmap(over_rho, in_axes=(None, 0))(rhos, keys)


class DivergenceError(RuntimeError):
    """A run produced NaN or inf. The message names the step (and the run). Conventions: [record]."""


def check_finite(result: TrainResult, *, names: Sequence[str] | None = None) -> TrainResult:
    """Raise :class:`DivergenceError` if any run in ``result`` diverged.

    ``names`` optionally labels the leading grid axes in the message (e.g.
    ``("seed", "rho")``). Returns ``result`` unchanged otherwise.
    Conventions: [record].
    """
    diverged = np.asarray(result.diverged_step)
    mask = diverged >= 0
    if not mask.any():
        return result
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    labels = [names[i] if names and i < len(names) else f"axis{i}" for i in range(len(first))]
    where = "".join(f"{label}={j}, " for label, j in zip(labels, first))
    raise DivergenceError(
        f"{int(mask.sum())} run(s) diverged (non-finite parameters or metrics); "
        f"first: {where}at step {int(diverged[first])}"
    )
