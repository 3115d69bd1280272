"""Classification losses bounded in ``[0, 1]``, as PAC-Bayes bounds require.

Both take ``scores`` and integer ``labels`` and return the **mean** over the
examples ([loss-mean]). Two layouts of ``scores``:

* ``(n, C)`` with ``C ≥ 2``: one score per class, labels in ``{0, …, C−1}``;
* ``(n,)`` (or ``(n, 1)``): one logit for class 1 of a binary problem,
  labels in ``{0, 1}``; it is the two-class case with scores ``(0, s)``.

Conventions: [loss-mean], [bounds].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from samtheory.bounds._checks import check_open_probability

__all__ = ["misclassified", "zero_one_loss", "clipped_cross_entropy"]


def _two_class_scores(scores):
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        return jnp.stack([jnp.zeros_like(scores), scores], axis=1)
    if scores.ndim == 2:
        return scores
    raise ValueError(f"scores must have shape (n,), (n, 1) or (n, C), got {scores.shape}")


def _checked(scores, labels):
    scores = _two_class_scores(jnp.asarray(scores))
    labels = jnp.asarray(labels)
    if labels.shape != scores.shape[:1]:
        raise ValueError(f"labels must have shape ({scores.shape[0]},), got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return scores, labels


def misclassified(scores, labels) -> jax.Array:
    """``(n,)`` bools: the label's score is not strictly the largest (a tie is an error).

    Arguments as in :func:`zero_one_loss`, whose per-example terms these are.
    Conventions: [bounds].
    """
    scores, labels = _checked(scores, labels)
    own = jnp.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
    is_label = jax.nn.one_hot(labels, scores.shape[1], dtype=bool)
    best_other = jnp.max(jnp.where(is_label, -jnp.inf, scores), axis=1)
    return own <= best_other


def zero_one_loss(scores, labels) -> jax.Array:
    """Fraction of examples whose label's score is not strictly the largest.

    A tie counts as an error: the bound then holds for any tie-breaking rule.

    Args:
      scores: ``(n, C)`` class scores, or ``(n,)`` binary logits.
      labels: ``(n,)`` integer labels.

    Returns:
      The mean 0-1 loss, in the dtype of ``scores`` (0-d).

    Conventions: [loss-mean], [bounds].
    """
    dtype = jnp.result_type(scores)
    return jnp.mean(misclassified(scores, labels).astype(dtype))


def clipped_cross_entropy(scores, labels, min_probability=1e-4) -> jax.Array:
    """Cross-entropy with the label's probability floored softly, rescaled to ``[0, 1]``.

    ``ℓ = −ln(p_min + (1 − p_min)·p_y) / ln(1/p_min)`` with ``p_y`` the softmax
    probability of the label. It is ``0`` at ``p_y = 1`` and ``1`` at
    ``p_y = 0``; for ``p_y ≫ p_min`` it is ``CE/ln(1/p_min)``. The floor is
    an affine mix rather than a hard ``max(p_y, p_min)`` so the gradient
    never vanishes on badly misclassified examples, which is what a
    surrogate for the 0-1 loss needs. (Pérez-Ortiz et al. 2021 bound the
    cross-entropy with a hard floor.)

    Args:
      scores: ``(n, C)`` class scores, or ``(n,)`` binary logits.
      labels: ``(n,)`` integer labels.
      min_probability: ``p_min ∈ (0, 1)``: below about this label probability
        the loss saturates near 1.

    Returns:
      The mean bounded loss, in ``[0, 1]`` (0-d).

    Conventions: [loss-mean], [bounds].
    """
    min_probability = check_open_probability("min_probability", min_probability)
    scores, labels = _checked(scores, labels)
    log_p = jnp.take_along_axis(jax.nn.log_softmax(scores, axis=1), labels[:, None], axis=1)[:, 0]
    log_floor = jnp.log(jnp.asarray(min_probability, scores.dtype))
    log_mixed = jnp.logaddexp(log_floor, jnp.log1p(-jnp.exp(log_floor)) + log_p)
    # ln(p_min + (1 − p_min)·1) can round to a hair above 0: keep ℓ in [0, 1].
    return jnp.mean(jnp.clip(log_mixed / log_floor, 0.0, 1.0))
