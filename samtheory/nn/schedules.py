"""Per-step learning-rate schedules that return float32 whatever the float policy.

``optax``'s schedules follow the dtype of their arguments, so under
``jax_enable_x64`` they would hand float64 rates to float32 parameters and
promote them. These return ``float32`` scalars; the step is the optimizer's
0-based update count.

* ``piecewise``: ``lr · factor^k`` after the k-th milestone (fractions of
  training, default 50% and 75%, factor 0.1);
* ``cosine``: ``lr · (1 + cos(π t / T)) / 2`` (no restarts);
* ``constant``.

Each may be preceded by a linear warm-up from 0 over ``warmup_steps``.

Conventions: [float-nn] (rates are float32 under any float policy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from samtheory._validation import check_positive_int

__all__ = ["SCHEDULES", "make_schedule"]

SCHEDULES = ("piecewise", "cosine", "constant")

Schedule = Callable[[jax.Array], jax.Array]


def make_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    *,
    milestones: Sequence[float] = (0.5, 0.75),
    factor: float = 0.1,
    warmup_steps: int = 0,
) -> Schedule:
    """The schedule ``name`` over ``total_steps`` updates, as ``step -> float32 rate``.

    Raises ``ValueError`` naming the argument for an unknown ``name``, a
    non-positive or non-finite ``learning_rate``, milestones outside
    ``(0, 1)`` or unsorted, ``factor`` outside ``(0, 1]``, or a negative
    ``warmup_steps``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"name must be one of {SCHEDULES}, got {name!r}")
    if not isinstance(learning_rate, (int, float)) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    total_steps = check_positive_int("total_steps", total_steps)
    if list(milestones) != sorted(milestones) or any(not 0 < f < 1 for f in milestones):
        raise ValueError(f"milestones must be sorted fractions in (0, 1), got {milestones!r}")
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    boundaries = jnp.asarray([round(f * total_steps) for f in milestones], jnp.int32)
    base = jnp.float32(learning_rate)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.int32)
        if name == "piecewise":
            drops = jnp.sum(step >= boundaries).astype(jnp.float32)
            rate = base * jnp.float32(factor) ** drops
        elif name == "cosine":
            progress = jnp.minimum(step, total_steps).astype(jnp.float32) / jnp.float32(total_steps)
            rate = base * jnp.float32(0.5) * (1 + jnp.cos(jnp.float32(math.pi) * progress))
        else:
            rate = base
        if warmup_steps:
            ramp = jnp.minimum(jnp.float32(1), (step + 1).astype(jnp.float32) / jnp.float32(warmup_steps))
            rate = rate * ramp
        return rate.astype(jnp.float32)

    return schedule
