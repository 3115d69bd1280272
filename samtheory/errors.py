"""Divergence: the one error a run raises when it produced NaN or ±inf, and the one check that raises it.

A training run (:class:`samtheory.train.TrainResult`) and a flow
(:class:`samtheory.flows.FlowResult`) record where they diverged instead of
raising inside compiled code; :func:`check_finite` turns that record into a
:class:`DivergenceError` naming the first diverged run of a batch and the
step or time it happened. Each result type says what "diverged" means for it
through a ``divergence()`` method (see :class:`Divergent`).

Conventions: [record].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DivergenceError", "Divergent", "check_finite", "all_finite"]


class DivergenceError(RuntimeError):
    """A run produced NaN or inf. The message names the step or time (and the run). Conventions: [record]."""


class Divergent(Protocol):
    """A result that knows where it diverged.

    ``divergence()`` returns ``(mask, describe, noun)``: a boolean array over
    the batch axes (0-d for a single run), a function from a batch index to
    the words ``"at step 17"``, and what one run is called (``"run"``, ``"flow"``).
    """

    def divergence(self) -> tuple[np.ndarray, Callable[[tuple[int, ...]], str], str]: ...


R = TypeVar("R", bound=Divergent)


def check_finite(result: R, *, names: Sequence[str] | None = None) -> R:
    """Raise :class:`DivergenceError` if any run in ``result`` diverged; return ``result`` otherwise.

    ``names`` optionally labels the leading batch axes in the message (e.g.
    ``("seed", "rho")``). Conventions: [record].
    """
    mask, describe, noun = result.divergence()
    mask = np.asarray(mask)
    if not mask.any():
        return result
    first = tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()
    labels = [names[i] if names and i < len(names) else f"axis{i}" for i in range(len(first))]
    where = "".join(f"{label}={j}, " for label, j in zip(labels, first))
    raise DivergenceError(f"{int(mask.sum())} {noun}(s) diverged; first: {where}{describe(first)}")


def all_finite(tree) -> jax.Array:
    """Traced boolean: every entry of every leaf of ``tree`` is finite (``True`` for an empty tree)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
