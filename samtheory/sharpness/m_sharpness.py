"""m-sharpness (Foret et al. 2021, §4.1): worst-case sharpness averaged over chunks of m examples.

For a data set ``S`` of ``n`` examples split, in order, into ``n/m`` contiguous
chunks ``C`` of ``m`` examples ([m]),

    S_m(w) = (m/n) Σ_C [ max_{‖δ‖₂ ≤ ρ} L_C(w + δ) − L_C(w) ],

with ``L_C`` the mean loss on the chunk. ``m = n`` is the plain worst-case
sharpness of the whole set. Foret et al. found ``S_m`` at small ``m`` to
correlate better with generalization than at ``m = n``. At a point where
every chunk has zero gradient and Hessian ``H_C``,
``S_m = (ρ²/2)·(m/n) Σ_C λ_max(H_C) + O(ρ³)``; since ``λ_max`` is convex and
``H`` is the mean of the ``H_C``, refining the partition can only increase
this leading term.

The inner maximum is not available in closed form (the chunk loss is not
concave); it is approached from below by projected gradient ascent with
restarts, :func:`samtheory.sam.objectives.worst_direction_perturbation`, run
for every chunk at once with ``jax.vmap``. The result is therefore a **lower
bound** on ``S_m`` up to the optimizer's accuracy.

Conventions: [loss-mean], [rho-sam], [m], [rng].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from samtheory._validation import check_nonnegative
from samtheory.sam.objectives import worst_direction_perturbation
from samtheory.batching import batch_size, split_into_chunks

__all__ = ["MSharpness", "m_sharpness"]


class MSharpness(NamedTuple):
    """Attributes: ``sharpness`` (the mean over chunks) and ``per_chunk`` (``(n/m,)``)."""

    sharpness: jax.Array
    per_chunk: jax.Array


def m_sharpness(
    loss_fn: Callable,
    params,
    batch,
    rho,
    *,
    m: int | None,
    key: jax.Array,
    steps: int = 50,
    restarts: int = 8,
) -> MSharpness:
    """``S_m(params)`` on ``batch`` with ℓ₂ radius ``rho``.

    Args:
      loss_fn, params, batch: mean loss and where to evaluate it.
      rho: radius of the ℓ₂ ball ([rho-sam]).
      m: chunk size dividing ``n``, or ``None`` for ``m = n`` ([m]).
      key: PRNG key; chunk ``c`` uses the ``c``-th key of ``split(key, n/m)``
        for its random restarts.
      steps, restarts: of the projected ascent, per chunk.

    Returns:
      :class:`MSharpness`; each chunk's value is ``≥ 0`` (``δ = 0`` is feasible).

    Raises:
      ValueError: ``m`` does not divide ``n``.

    Conventions: [loss-mean], [rho-sam], [m], [rng].
    """
    check_nonnegative("rho", rho)
    n = batch_size(batch)
    chunks = split_into_chunks(batch, n if m is None else m)

    def chunk_sharpness(chunk, k):
        _, worst = worst_direction_perturbation(
            loss_fn, params, chunk, rho, key=k, steps=steps, restarts=restarts
        )
        return worst - loss_fn(params, chunk)

    num_chunks = jax.tree.leaves(chunks)[0].shape[0]
    per_chunk = jax.vmap(chunk_sharpness)(chunks, jax.random.split(key, num_chunks))
    # S_m = 0 at ρ = 0 by definition. The engine's ascent returns NaN there
    # (projecting onto the radius-0 ball is 0/0 in optax), so say it directly.
    per_chunk = jnp.where(rho > 0, per_chunk, jnp.zeros_like(per_chunk))
    return MSharpness(jnp.mean(per_chunk), per_chunk)
