"""The SAM-variant engine.

* Variants (small pure descriptions of the ascent, with declared properties):
  :class:`ERM`, :class:`SAM`, :class:`RandomSAM`, :class:`ASAM`.
* The oracle, which owns every ``jax.grad``: :func:`gradient` — the update
  direction of any variant; :func:`step` — the same plus the clean loss and
  auxiliary outputs, per chunk; :func:`chunk_perturbation` — one chunk's ``ε``.
* Perturbation maps: :mod:`samtheory.sam.perturbation`.
* Sharpness-aware losses of Wen, Ma & Li: :func:`worst_direction_loss`,
  :func:`ascent_direction_loss`, :func:`average_direction_loss`.
* SAM inside any optax loop: :func:`sharpness_aware`.

Conventions: docs/conventions.md, [loss-mean], [rho-sam], [m], [normalize].
"""

from samtheory.sam.objectives import (
    ascent_direction_loss,
    average_direction_loss,
    average_direction_samples,
    worst_direction_loss,
    worst_direction_perturbation,
)
from samtheory.sam.optax_transform import SharpnessAwareState, sharpness_aware
from samtheory.sam.oracle import Step, chunk_perturbation, gradient, n_sam_gradient, perturbations, step
from samtheory.sam.perturbation import (
    asam_perturbation,
    dual_norm_perturbation,
    project_to_ball,
    pytree_norm,
    random_sphere_perturbation,
    scaled_gradient_perturbation,
)
from samtheory.sam.variants import ASAM, ERM, SAM, RandomSAM, Variant

__all__ = [
    "ERM", "SAM", "RandomSAM", "ASAM", "Variant",
    "gradient", "step", "Step", "chunk_perturbation", "perturbations", "n_sam_gradient",
    "dual_norm_perturbation", "scaled_gradient_perturbation", "project_to_ball",
    "random_sphere_perturbation", "asam_perturbation", "pytree_norm",
    "worst_direction_loss", "worst_direction_perturbation", "ascent_direction_loss",
    "average_direction_loss", "average_direction_samples",
    "sharpness_aware", "SharpnessAwareState",
]
