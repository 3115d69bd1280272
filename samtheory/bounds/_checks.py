"""Argument checks shared by the bound modules: an invalid input never looks like a bound.

Every check takes the parameter's name and value and returns the value to
compute with:

* a **concrete** value (a Python number or list, a NumPy array, a committed
  JAX array) is checked entry by entry; if any entry breaks the rule a
  ``ValueError`` naming the parameter is raised (a non-numeric value raises
  ``TypeError``), otherwise it is returned unchanged;
* a **traced** value (under ``jit``, ``vmap``, ``grad``) cannot be inspected,
  so it is returned with ``NaN`` in every entry that breaks the rule. The
  functions compute with the returned value, so NaN propagates to every
  output that depends on that input: under ``jit`` an invalid input gives
  NaN, never a number that could be read as a bound.

One predicate per rule serves both paths, so what raises eagerly is exactly
what becomes NaN under a trace (``tests/test_bounds_invalid_inputs.py``
checks this property for every public bound function). One caveat is XLA's:
on a CPU it flushes subnormal floats to zero, so a traced subnormal negative
number (``> -2.3e-308``) is read as ``-0.0`` and accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "is_scalar",
    "check_probability",
    "check_open_probability",
    "check_nonnegative",
    "check_nonnegative_or_inf",
    "check_positive",
    "check_at_least",
]


def is_scalar(value) -> bool:
    """Whether ``value`` is a single 0-d leaf (a number or a 0-d array), not a container."""
    return jax.tree.structure(value) == jax.tree.structure(0.0) and jnp.ndim(value) == 0


@dataclasses.dataclass(frozen=True)
class _Rule:
    """``holds(xp, x)``: where ``x`` obeys the rule, with ``xp`` NumPy or ``jax.numpy``.

    Written with comparisons, which are False for NaN, so NaN never holds.
    """

    requirement: str
    holds: Callable


def _checked(name: str, value, rule: _Rule):
    if isinstance(value, jax.core.Tracer):
        return jnp.where(rule.holds(jnp, value), value, jnp.nan)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}")
    if not np.all(rule.holds(np, arr)):
        raise ValueError(f"{name} {rule.requirement}, got {value!r}")
    return value


_PROBABILITY = _Rule("must lie in [0, 1]", lambda xp, x: (x >= 0) & (x <= 1))
_OPEN_PROBABILITY = _Rule("must lie in (0, 1)", lambda xp, x: (x > 0) & (x < 1))
_NONNEGATIVE = _Rule("must be finite and >= 0", lambda xp, x: xp.isfinite(x) & (x >= 0))
_NONNEGATIVE_OR_INF = _Rule("must be >= 0 (inf allowed)", lambda xp, x: x >= 0)
_POSITIVE = _Rule("must be finite and > 0", lambda xp, x: xp.isfinite(x) & (x > 0))


def check_probability(name: str, value):
    """``value`` checked to lie in ``[0, 1]`` (see the module docstring)."""
    return _checked(name, value, _PROBABILITY)


def check_open_probability(name: str, value):
    """``value`` checked to lie in ``(0, 1)``."""
    return _checked(name, value, _OPEN_PROBABILITY)


def check_nonnegative(name: str, value):
    """``value`` checked to be finite and ``>= 0``."""
    return _checked(name, value, _NONNEGATIVE)


def check_nonnegative_or_inf(name: str, value):
    """``value`` checked to be ``>= 0``; ``+inf`` is allowed."""
    return _checked(name, value, _NONNEGATIVE_OR_INF)


def check_positive(name: str, value):
    """``value`` checked to be finite and ``> 0``."""
    return _checked(name, value, _POSITIVE)


def check_at_least(name: str, value, minimum: float):
    """``value`` checked to be finite and ``>= minimum``."""
    rule = _Rule(f"must be finite and >= {minimum}", lambda xp, x: xp.isfinite(x) & (x >= minimum))
    return _checked(name, value, rule)
