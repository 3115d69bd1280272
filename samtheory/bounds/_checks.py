"""Argument checks shared by the bound modules.

They follow :mod:`samtheory._validation`: a concrete value is checked and a
``ValueError`` names the parameter; a traced value is let through (the
functions then return NaN where the input is out of range, so nothing
invalid looks like a bound).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samtheory._validation import concrete_values


def is_scalar(value) -> bool:
    """Whether ``value`` is a single 0-d leaf (a number or a 0-d array), not a container."""
    return jax.tree.structure(value) == jax.tree.structure(0.0) and jnp.ndim(value) == 0


def check_probability(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has an entry outside ``[0, 1]`` or NaN."""
    arr = concrete_values(value)
    if arr is None:
        return
    if np.any(np.isnan(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def check_open_probability(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has an entry outside ``(0, 1)``."""
    arr = concrete_values(value)
    if arr is None:
        return
    if np.any(np.isnan(arr)) or np.any(arr <= 0) or np.any(arr >= 1):
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def check_nonnegative_or_inf(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has a negative or NaN entry (``+inf`` is allowed)."""
    arr = concrete_values(value)
    if arr is None:
        return
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (inf allowed), got {value!r}")


def check_at_least(name: str, value, minimum: float) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has an entry below ``minimum`` or non-finite."""
    arr = concrete_values(value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)) or np.any(arr < minimum):
        raise ValueError(f"{name} must be finite and >= {minimum}, got {value!r}")
