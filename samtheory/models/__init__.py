"""Models and problem families: diagonal linear networks, 1-D ReLU networks, quadratics.

* :mod:`samtheory.models.dln`: diagonal linear networks (u⊙v and w±
  parametrizations) and sparse-regression data.
* :mod:`samtheory.models.dln_reference`: the instance of Andriushchenko &
  Flammarion's reference notebook, drawn as the notebook draws it.
* :mod:`samtheory.models.relu1d`: two-layer ReLU networks on scalar inputs and
  their kinks.
* :mod:`samtheory.models.quadratic`: quadratic families and least squares with
  exact smoothness, PL and gradient-noise constants.

All losses follow ``loss_fn(params, batch)`` and return the mean over the
examples of the batch. ``relu1d.predict`` is re-exported as ``predict_relu1d``.

Conventions: [loss-mean], [loss-sq].
"""

from samtheory.models import dln, dln_reference, quadratic, relu1d
from samtheory.models import mlp
from samtheory.models.dln import (
    SparseRegressionData,
    alpha_of_uv_init,
    beta_pm,
    beta_uv,
    init_pm,
    init_uv,
    loss_beta,
    loss_pm,
    loss_uv,
    pm_to_uv,
    predict_pm,
    predict_uv,
    sparse_regression,
    uv_to_pm,
)
from samtheory.models.quadratic import LeastSquares, QuadraticFamily, least_squares_loss
from samtheory.models.relu1d import (
    EffectiveKinks,
    Kinks,
    effective_kinks,
    init_relu1d,
    kinks,
    loss_relu1d,
    maennel_points,
    relu_regression_1d,
)
from samtheory.models.relu1d import predict as predict_relu1d

__all__ = [
    "EffectiveKinks",
    "Kinks",
    "LeastSquares",
    "QuadraticFamily",
    "SparseRegressionData",
    "alpha_of_uv_init",
    "beta_pm",
    "beta_uv",
    "dln",
    "dln_reference",
    "effective_kinks",
    "init_pm",
    "init_relu1d",
    "init_uv",
    "kinks",
    "least_squares_loss",
    "loss_beta",
    "loss_pm",
    "loss_relu1d",
    "loss_uv",
    "maennel_points",
    "mlp",
    "pm_to_uv",
    "predict_pm",
    "predict_relu1d",
    "predict_uv",
    "quadratic",
    "relu1d",
    "relu_regression_1d",
    "sparse_regression",
    "uv_to_pm",
]
