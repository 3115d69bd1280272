"""Argument checks that stay out of the way of ``jit`` and ``vmap``.

A value that is concrete (a Python number, a NumPy array or a committed JAX
array) is checked and a ``ValueError`` naming the parameter is raised. A
traced value cannot be inspected without breaking ``vmap`` over it, so it is
let through; its concrete values were (or can be) checked by the caller
before tracing.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np


def concrete_values(value) -> np.ndarray | None:
    """Return ``value`` as a NumPy array if it is concrete, else ``None``."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (numbers.Number, np.ndarray, np.generic, jax.Array)):
        return np.asarray(value)
    return None


def _check_finite_and(name: str, value, holds, requirement: str) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has a non-finite entry or one where ``holds`` is false."""
    arr = concrete_values(value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if not np.all(holds(arr)):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")


def check_nonnegative(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has a negative or non-finite entry."""
    _check_finite_and(name, value, lambda arr: arr >= 0, ">= 0")


def check_positive(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has an entry that is not > 0 and finite."""
    _check_finite_and(name, value, lambda arr: arr > 0, "> 0")


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
