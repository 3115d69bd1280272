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
* With ``has_aux`` the loss returns ``(loss, aux)`` (as in ``jax.grad``):
  the aux of the training step's own clean pass is recorded, at no extra
  forward pass for a variant that reads its gradient.

Conventions: [loss-mean], [rho-sam], [m], [record], [rng].
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from samtheory._validation import check_nonnegative, check_positive_int, concrete_values
from samtheory.batching import batch_size
from samtheory.errors import DivergenceError, all_finite, check_finite  # noqa: F401 (re-exported)
from samtheory.sam.oracle import gradient, step
from samtheory.sam.variants import Variant

__all__ = [
    "VariantSchedule",
    "switch",
    "log_steps",
    "TrainResult",
    "CONVERGED",
    "NOT_CONVERGED",
    "DIVERGED",
    "run_outcome",
    "run",
    "SAMPLING",
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

    def index_at(self, step) -> int:
        """Index into ``variants`` of the variant of update ``step`` (concrete steps and boundaries)."""
        return int(np.searchsorted(np.asarray(self.boundaries, np.int64), step, side="right"))

    def variant_at(self, step):
        """The variant of update ``step`` (concrete steps and boundaries). Conventions: [record]."""
        return self.variants[self.index_at(step)]


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
      aux: with ``run(..., has_aux=True)``, the auxiliary output of the last
        update before each recorded step (leading axis: recorded steps);
        else ``None``.

    Conventions: [record].
    """

    params: object
    steps: jax.Array
    metrics: dict
    diverged_step: jax.Array
    aux: object = None

    def divergence(self):
        """For :func:`samtheory.errors.check_finite`: which runs diverged, and at which step."""
        step = np.asarray(self.diverged_step)
        return step >= 0, lambda i: f"at step {int(step[i])} (non-finite parameters or metrics)", "run"


#: What became of a run, as :func:`run_outcome` classifies it (result files store these ints).
CONVERGED, NOT_CONVERGED, DIVERGED = 0, 1, 2


def run_outcome(final_loss, diverged_step, converged_below: float) -> np.ndarray:
    """Per run: ``DIVERGED``, else ``CONVERGED`` if its final loss is ``≤ converged_below``, else ``NOT_CONVERGED``.

    A run diverged if ``diverged_step ≥ 0`` (as in :class:`TrainResult`) or
    its final loss is not finite. Host arrays, one entry per run (e.g. the
    (draw, ρ) grid of a vmapped sweep); a figure draws each outcome as such,
    never an unconverged run as a converged one.

    Conventions: [record].
    """
    final_loss = np.asarray(final_loss)
    diverged = (np.asarray(diverged_step) >= 0) | ~np.isfinite(final_loss)
    return np.where(diverged, DIVERGED, np.where(final_loss <= converged_below, CONVERGED, NOT_CONVERGED))


def _as_schedule(variant) -> VariantSchedule:
    if isinstance(variant, VariantSchedule):
        return variant
    return VariantSchedule((variant,), ())


def _check_inputs(params, variant, learning_rate, key) -> None:
    """Type and sign checks at the door, naming the parameter (traced values pass)."""
    schedule_variants = variant.variants if isinstance(variant, VariantSchedule) else (variant,)
    for v in schedule_variants:
        if not isinstance(v, Variant):
            raise TypeError(
                f"variant must be a samtheory.sam variant ({', '.join(t.__name__ for t in Variant.__args__)}) "
                f"or a VariantSchedule, got {v!r}"
            )
    if learning_rate is not None and not callable(learning_rate):
        if isinstance(learning_rate, bool) or not isinstance(
            learning_rate, (numbers.Real, np.ndarray, np.generic, jax.Array)
        ) or not np.issubdtype(np.result_type(learning_rate), np.number):
            raise TypeError(
                f"learning_rate must be a number, an array or an optax schedule, got {learning_rate!r}"
            )
        check_nonnegative("learning_rate", learning_rate)
    if key is not None and not (
        isinstance(key, (jax.Array, np.ndarray))
        and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,)))
    ):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.PRNGKey or jax.random.key), got {key!r}")
    for leaf in jax.tree.leaves(params):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise TypeError(
                f"params must hold floating-point arrays (gradient steps on integers are meaningless), "
                f"got a leaf of dtype {jnp.result_type(leaf)}"
            )


def _checked_record_steps(record_steps, num_steps: int) -> np.ndarray:
    steps = np.asarray(record_steps)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError("record_steps must be a non-empty 1-D array of integers")
    if steps[0] < 0 or np.any(np.diff(steps) <= 0) or steps[-1] > num_steps:
        raise ValueError(
            f"record_steps must be strictly increasing within [0, num_steps={num_steps}], got {steps}"
        )
    return steps


def _checked_batch_indices(batch_indices, num_steps: int, n: int):
    """``batch_indices`` as an integer array of shape ``(num_steps, b)`` with entries in ``[0, n)``.

    Shape and dtype are always checked; the range only if the array is
    concrete (a traced array, e.g. under ``vmap``, was checked by its caller).
    JAX clamps out-of-range indices silently, hence the check.
    """
    shape, dtype = jnp.shape(batch_indices), jnp.result_type(batch_indices)
    if len(shape) != 2 or shape[0] != num_steps or shape[1] < 1 or not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(
            f"batch_indices must be an integer array of shape (num_steps={num_steps}, batch size >= 1), "
            f"got shape {shape} and dtype {dtype}"
        )
    values = concrete_values(batch_indices)
    if values is not None and (values.min() < 0 or values.max() >= n):
        raise ValueError(f"batch_indices must lie in [0, {n}) (the number of examples), "
                         f"got values in [{values.min()}, {values.max()}]")
    return jnp.asarray(batch_indices)


#: How :func:`run` draws the batch of each step (``batch_size_per_step`` set).
SAMPLING = ("without_replacement", "with_replacement", "epochs")


def _sampler(sampling: str, data, n: int, b: int | None, num_steps: int, key, needs_sam_key: bool,
             indices=None):
    """``(init, draw)``: ``draw(t, state) -> (batch, sam_key, state)``; ``state`` rides in the loop carry.

    The keys of step ``t`` ([rng]):

    * full batch: ``sam_key = split(fold_in(key, t))[1]`` (only if a variant draws);
    * given ``indices`` (``run(batch_indices=...)``): the batch is
      ``data[indices[t]]``, no key is drawn for it, and
      ``sam_key = fold_in(fold_in(key, t), 1)`` (only if a variant draws);
    * ``without_replacement``: ``batch_key, sam_key = split(fold_in(key, t))``;
      the ``b`` largest of ``n`` i.i.d. uniforms index a uniformly random
      ``b``-subset (on CPU, ``top_k`` over float32 is 10-40x faster than
      ``choice(replace=False)``, which sorts a permutation of all ``n``);
    * ``with_replacement``: ``b`` indices ``randint(fold_in(key, t))``, and
      ``sam_key = fold_in(fold_in(key, t), 1)``;
    * ``epochs``: epoch ``e`` walks through ``permutation(order_key, n)`` in
      ``⌊n/b⌋`` minibatches (the few examples left over differ from epoch to
      epoch), with ``order_key, steps_key = split(split(key, E)[e])`` and the
      SAM key of its ``i``-th step ``split(steps_key, ⌊n/b⌋)[i]``.
    """
    if b is None and indices is None:
        def draw_full(t, state):
            if not needs_sam_key:  # deterministic full-batch runs skip the per-step key arithmetic
                return data, None, state
            return data, jax.random.split(jax.random.fold_in(key, t))[1], state

        return (), draw_full
    take = lambda idx: jax.tree.map(lambda x: x[idx], data)  # noqa: E731
    if indices is not None:
        def draw_given(t, state):
            sam_key = jax.random.fold_in(jax.random.fold_in(key, t), 1) if needs_sam_key else None
            return take(indices[t]), sam_key, state

        return (), draw_given
    if sampling == "without_replacement":
        def draw_subset(t, state):
            batch_key, sam_key = jax.random.split(jax.random.fold_in(key, t))
            idx = jax.lax.top_k(jax.random.uniform(batch_key, (n,), jnp.float32), b)[1]
            return take(idx), sam_key, state

        return (), draw_subset
    if sampling == "with_replacement":
        def draw_independent(t, state):
            step_key = jax.random.fold_in(key, t)
            idx = jax.random.randint(step_key, (b,), 0, n)
            return take(idx), (jax.random.fold_in(step_key, 1) if needs_sam_key else None), state

        return (), draw_independent
    steps_per_epoch = n // b
    epoch_keys = jax.random.split(key, -(-num_steps // steps_per_epoch))

    def epoch_plan(e):
        order_key, steps_key = jax.random.split(epoch_keys[e])
        order = jax.random.permutation(order_key, n)[: steps_per_epoch * b]
        return order, jax.random.split(steps_key, steps_per_epoch)

    def draw_epoch(t, state):
        i = t % steps_per_epoch
        order, step_keys = jax.lax.cond(i == 0, lambda: epoch_plan(t // steps_per_epoch), lambda: state)
        idx = jax.lax.dynamic_slice(order, (i * b,), (b,))
        return take(idx), step_keys[i], (order, step_keys)

    return epoch_plan(0), draw_epoch


def _with_rho(variant, rho):
    """``variant`` with its radius replaced by ``rho`` (unchanged if it has none, as ERM)."""
    return jax.tree.map(lambda _: rho, variant)


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
    sampling: str | None = None,
    batch_indices: jax.Array | np.ndarray | None = None,
    rho: optax.Schedule | None = None,
    record_steps: Sequence[int] | np.ndarray | None = None,
    metrics_fn: Callable | None = None,
    key: jax.Array | None = None,
    has_aux: bool = False,
) -> TrainResult:
    """Train ``params`` on ``data`` with a SAM variant (or a schedule of variants).

    Args:
      loss_fn: mean loss ``loss_fn(params, batch)`` ([loss-mean]); with
        ``has_aux``, ``loss_fn(params, batch) -> (loss, aux)``.
      params: initial parameters.
      data: the training set, a pytree with a leading example axis.
      variant: a variant or a :class:`VariantSchedule`.
      num_steps: number of updates.
      learning_rate: step size (number, traced scalar, or optax schedule) for
        plain gradient descent; exclusive with ``optimizer``.
      optimizer: any optax transformation that consumes the variant's
        gradient (e.g. ``optax.sgd(lr, momentum=0.9)``).
      batch_size_per_step: ``None`` for full-batch steps; else each step uses
        a minibatch of that size drawn as ``sampling`` says, and n-SAM
        perturbs with the minibatch gradient ([m]).
      sampling: with ``batch_size_per_step``: ``"without_replacement"``
        (the default; each step an independent uniform subset),
        ``"with_replacement"`` (each step ``b`` independent uniform indices)
        or ``"epochs"`` (each epoch a permutation walked through in
        ``⌊n/b⌋`` minibatches, the usual SGD recipe).
      batch_indices: instead of ``batch_size_per_step`` and ``sampling``, an
        integer array of shape ``(num_steps, b)``: update ``t`` trains on the
        examples ``batch_indices[t]``. For a minibatch schedule drawn
        elsewhere, e.g. replayed from another code's random generator to
        reproduce its runs; it may be traced (vmap over schedules).
      rho: an optax-style schedule ``t -> ρ_t`` that sets the radius of the
        variant(s) at update ``t`` (as ``learning_rate`` sets the step);
        ``None`` keeps the variants' own ``rho``.
      record_steps: increasing steps in ``[0, num_steps]`` at which metrics
        are evaluated (default :func:`log_steps`). Step 0 is the
        initialization.
      metrics_fn: ``metrics_fn(params) -> dict`` of scalars evaluated at the
        recorded parameters (a pass of its own over what it reads); default
        ``{"loss": loss_fn(params, data)}`` on the whole training set.
      key: PRNG key for minibatches and random perturbations (with
        ``batch_indices``, only for the latter). Step ``t``
        uses keys derived from ``fold_in(key, t)`` (by epoch in ``"epochs"``
        mode; :func:`_sampler` gives each scheme), so runs are deterministic
        and independent of how the steps are grouped.
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``, ``aux`` a pytree
        of arrays. Then ``TrainResult.aux`` holds, at each recorded step
        ``s``, the ``aux`` of update ``s − 1``: its clean pass at ``w_{s−1}``
        on that update's batch (the pass whose gradient the variant ascends
        with, so free for every variant that reads its gradient; RandomSAM
        and ``second_order`` variants pay one forward pass per recorded
        step), averaged over the variant's chunks (m-SAM evaluates ``n/m``
        chunks: for a mean over examples this is the batch's mean). At a
        recorded step 0 no update has run, and every aux leaf is NaN. Aux is
        recorded as it is: divergence is read from the parameters and
        ``metrics_fn``.

    Returns:
      :class:`TrainResult`. Call :func:`check_finite` before plotting.

    Conventions: [loss-mean], [rho-sam], [m], [record], [rng].
    """
    check_positive_int("num_steps", num_steps)
    _check_inputs(params, variant, learning_rate, key)
    if (learning_rate is None) == (optimizer is None):
        raise ValueError("give exactly one of learning_rate and optimizer")
    if optimizer is None:
        optimizer = optax.sgd(learning_rate)
    if batch_indices is not None and (batch_size_per_step is not None or sampling is not None):
        raise ValueError("batch_indices sets every step's batch: give it without batch_size_per_step and sampling")
    if sampling is None:
        sampling = "without_replacement"
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    if rho is not None and not callable(rho):
        raise TypeError(f"rho must be a schedule t -> rho_t (callable), got {rho!r}")
    schedule = _as_schedule(variant)
    n = batch_size(data)
    if batch_size_per_step is not None:
        check_positive_int("batch_size_per_step", batch_size_per_step)
        if batch_size_per_step > n:
            raise ValueError(
                f"batch_size_per_step must be <= the number of examples {n}, got {batch_size_per_step}"
            )
    if batch_indices is not None:
        batch_indices = _checked_batch_indices(batch_indices, num_steps, n)
    needs_sam_key = any(v.needs_key for v in schedule.variants)
    if (batch_size_per_step is not None or needs_sam_key) and key is None:
        raise ValueError("key is required for minibatches or random perturbations")
    steps = _checked_record_steps(log_steps(num_steps) if record_steps is None else record_steps, num_steps)
    mean_loss = (lambda p, b: loss_fn(p, b)[0]) if has_aux else loss_fn
    if metrics_fn is None:
        metrics_fn = lambda p: {"loss": mean_loss(p, data)}
    boundaries = jnp.asarray(schedule.boundaries, dtype=jnp.int32)
    sampler0, draw = _sampler(sampling, data, n, batch_size_per_step, num_steps, key, needs_sam_key, batch_indices)

    def with_aux(v, p, b, k):
        # The oracle's step: the direction and the aux of its clean pass, one per chunk.
        result = step(v, loss_fn, p, b, k, has_aux=True)
        return result.direction, jax.tree.map(lambda a: jnp.mean(a, axis=0), result.aux)

    def direction(t, p, sampler_state, want_aux=False):
        batch, sam_key, sampler_state = draw(t, sampler_state)
        variants = schedule.variants if rho is None else [_with_rho(v, rho(t)) for v in schedule.variants]
        if want_aux:
            branches = [functools.partial(with_aux, v) for v in variants]
        else:
            branches = [(lambda v: lambda p, b, k: gradient(v, mean_loss, p, b, k))(v) for v in variants]
        if len(branches) == 1:
            return branches[0](p, batch, sam_key), sampler_state
        which = jnp.searchsorted(boundaries, t, side="right")
        return jax.lax.switch(which, branches, p, batch, sam_key), sampler_state

    def update(t, carry, want_aux):
        p, opt_state, diverged, sampler_state, aux = carry
        d, sampler_state = direction(t, p, sampler_state, want_aux)
        if want_aux:
            d, aux = d
        updates, opt_state = optimizer.update(d, opt_state, p)
        p = optax.apply_updates(p, updates)
        diverged = jnp.where((diverged < 0) & ~all_finite(p), t + 1, diverged)
        return p, opt_state, diverged, sampler_state, aux

    def one_step(t, carry):
        return update(t, carry, False)

    def advance_and_record(carry, segment):
        start, stop = segment
        if has_aux:
            # Only the segment's last update asks for its aux, so a variant
            # that reads no gradient pays its clean pass once per record.
            carry = jax.lax.fori_loop(start, stop - 1, one_step, carry)
            carry = jax.lax.cond(stop > start, lambda c: update(stop - 1, c, True), lambda c: c, carry)
        else:
            carry = jax.lax.fori_loop(start, stop, one_step, carry)
        p, opt_state, diverged, sampler_state, aux = carry
        metrics = metrics_fn(p)
        diverged = jnp.where((diverged < 0) & ~all_finite(metrics), stop, diverged)
        return (p, opt_state, diverged, sampler_state, aux), (metrics, aux)

    aux0 = None
    if has_aux:  # NaN until the first update returns one
        shapes = jax.eval_shape(lambda: direction(0, params, sampler0, True)[0][1])
        aux0 = jax.tree.map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), shapes)
    starts = np.concatenate([[0], steps[:-1]]).astype(np.int32)
    carry0 = (params, optimizer.init(params), jnp.asarray(-1, jnp.int32), sampler0, aux0)
    (p, _, diverged, _, _), (metrics, aux) = jax.lax.scan(
        advance_and_record, carry0, (jnp.asarray(starts), jnp.asarray(steps, jnp.int32))
    )
    return TrainResult(p, jnp.asarray(steps), metrics, diverged, aux)


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
