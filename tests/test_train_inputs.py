"""train.run checks its inputs at the door and names the parameter (issue 14 §3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samtheory import sam, train


def _loss(params, batch):
    return 0.5 * jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)


DATA = {"x": jnp.eye(4, 3), "y": jnp.arange(4.0)}
PARAMS = {"w": jnp.zeros(3)}


def _run(**overrides):
    kwargs = dict(variant=sam.SAM(0.1), num_steps=3, learning_rate=0.1)
    kwargs.update(overrides)
    params = kwargs.pop("params", PARAMS)
    return train.run(_loss, params, DATA, **kwargs)


@pytest.mark.parametrize(
    "overrides, error, name",
    [
        (dict(learning_rate="0.1"), TypeError, "learning_rate"),
        (dict(learning_rate=None, optimizer=None), ValueError, "learning_rate"),
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(variant="sam"), TypeError, "variant"),
        (dict(variant=train.switch(sam.ERM(), "sam", 1)), TypeError, "variant"),
        (dict(key=123, variant=sam.RandomSAM(0.1)), TypeError, "key"),
        (dict(params={"w": jnp.zeros(3, jnp.int32)}), TypeError, "params"),
    ],
)
def test_bad_inputs_raise_naming_the_parameter(overrides, error, name):
    with pytest.raises(error, match=name):
        _run(**overrides)


def test_good_inputs_still_run():
    result = _run(key=jax.random.PRNGKey(0), variant=sam.RandomSAM(0.1), learning_rate=np.float64(0.1))
    assert np.all(np.isfinite(np.asarray(result.metrics["loss"])))
    train.check_finite(_run(learning_rate=lambda t: 0.1 / (1 + t), key=jax.random.key(1)))
