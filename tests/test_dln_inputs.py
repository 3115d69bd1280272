"""Bad inputs to the diagonal linear network give an error naming the parameter (issue 14, §3)."""

import jax.numpy as jnp
import pytest
from samtheory.models import dln


@pytest.mark.parametrize("predict, init", [(dln.predict_uv, dln.init_uv), (dln.predict_pm, dln.init_pm)])
@pytest.mark.parametrize("shape", [(3, 4), (3, 6), (5,), (2, 5, 1)])
def test_predict_with_the_wrong_width_names_x(predict, init, shape):
    with pytest.raises(ValueError, match=r"^x must have shape \(n, 5\)"):
        predict(init(5, 0.1), jnp.ones(shape))
    assert predict(init(5, 0.1), jnp.ones((3, 5))).shape == (3,)


@pytest.mark.parametrize("fn", [dln.beta_uv, dln.beta_pm, dln.uv_to_pm, dln.pm_to_uv, dln.loss_uv])
@pytest.mark.parametrize("params", [[1, 2], (1.0, 2.0), jnp.ones(2), {"u": jnp.ones(2)}, {"a": 1, "b": 2}])
def test_params_that_are_not_the_parametrization_dict_name_params(fn, params):
    batch = {"x": jnp.ones((3, 2)), "y": jnp.ones(3)}
    args = (params, batch) if fn is dln.loss_uv else (params,)
    with pytest.raises(TypeError, match=r"^params must be a dict with keys"):
        fn(*args)
