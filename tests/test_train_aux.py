"""train.run with ``has_aux``: the recorded aux is that of the training step's own clean pass.

Contract (``samtheory.train.run``): with ``has_aux=True`` the loss returns
``(loss, aux)``; at a recorded step ``s`` the result holds the aux of update
``s − 1`` (its clean pass at ``w_{s−1}``, averaged over the variant's
chunks), NaN at a recorded step 0, and the trajectory is that of the run
without aux. The aux comes from the pass the gradient is taken in, so a
variant that reads its gradient evaluates the loss no more often than
without aux; RandomSAM, which reads none, pays one forward pass per
recorded step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import tanh_net_loss

from samtheory import sam, train

STEPS = 6
RECORD = np.arange(STEPS + 1)


def _problem():
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "a": rng.normal(size=4)}
    data = {"x": rng.normal(size=(8, 3)), "y": rng.normal(size=8)}
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, data)


def _with_aux(params, batch):
    loss = tanh_net_loss(params, batch)
    rows = jnp.asarray(batch["x"].shape[0], jnp.float64)
    return loss, {"loss": loss, "W": params["W"], "x_mean": jnp.mean(batch["x"], axis=0), "rows": rows}


def _run(variant, has_aux, **kw):
    params, data = _problem()
    loss = _with_aux if has_aux else tanh_net_loss
    return train.run(
        loss, params, data, variant=variant, num_steps=STEPS, learning_rate=0.1, record_steps=RECORD,
        metrics_fn=lambda p: {"W": p["W"], "loss": tanh_net_loss(p, data)}, key=jax.random.PRNGKey(3),
        has_aux=has_aux, **kw,
    )


@pytest.mark.parametrize("variant", [sam.ERM(), sam.SAM(0.05), sam.SAM(0.05, m=2), sam.RandomSAM(0.05)],
                         ids=["ERM", "n-SAM", "m-SAM", "RandomSAM"])
def test_aux_at_step_s_is_the_clean_pass_of_update_s_minus_1(variant):
    result = _run(variant, has_aux=True)
    plain = _run(variant, has_aux=False)
    assert result.aux is not None and plain.aux is None
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(plain.params)):
        np.testing.assert_array_equal(a, b)  # the aux pass changes nothing the step computes
    # The clean pass of update s−1 is at w_{s−1}: the parameters recorded one step earlier.
    np.testing.assert_array_equal(result.aux["W"][1:], result.metrics["W"][:-1])
    np.testing.assert_allclose(result.aux["loss"][1:], result.metrics["loss"][:-1], rtol=1e-13)
    _, data = _problem()
    np.testing.assert_allclose(result.aux["x_mean"][1:], np.broadcast_to(data["x"].mean(0), (STEPS, 3)), rtol=1e-14)
    assert all(np.all(np.isnan(leaf[0])) for leaf in jax.tree.leaves(result.aux))
    assert int(result.diverged_step) == -1


def test_aux_follows_a_switch_from_erm_to_m_sam_on_minibatches():
    params, data = _problem()
    recorded = np.array([0, 2, 3, 6])
    result = train.run(
        _with_aux, params, data, variant=train.switch(sam.ERM(), sam.SAM(0.05, m=2), at_step=3), num_steps=STEPS,
        learning_rate=0.1, batch_size_per_step=4, sampling="epochs", record_steps=recorded,
        metrics_fn=lambda p: {"W": p["W"]}, key=jax.random.PRNGKey(1), has_aux=True,
    )
    # Record 3 holds the aux of update 2, at w_2: the parameters recorded at step 2.
    np.testing.assert_array_equal(result.aux["W"][2], result.metrics["W"][1])
    # ERM is one chunk of the 4-example batch; m-SAM's two chunks of 2 are averaged.
    np.testing.assert_array_equal(result.aux["rows"][1:], [4.0, 4.0, 2.0])
    assert np.isnan(result.aux["rows"][0])


def _loss_evaluations(variant, has_aux):
    """Forward evaluations of the loss in one run, counted by a host callback inside it."""
    calls = []

    def counted(params, batch):
        jax.debug.callback(lambda: calls.append(1))
        return _with_aux(params, batch) if has_aux else tanh_net_loss(params, batch)

    params, data = _problem()
    result = train.run(
        counted, params, data, variant=variant, num_steps=STEPS, learning_rate=0.1, record_steps=np.array([0, 3, 6]),
        metrics_fn=lambda p: {}, key=jax.random.PRNGKey(3), has_aux=has_aux,
    )
    jax.block_until_ready(result.params)
    jax.effects_barrier()
    return len(calls)


@pytest.mark.parametrize("variant", [sam.ERM(), sam.SAM(0.05)], ids=["ERM", "n-SAM"])
def test_aux_costs_no_extra_forward_pass_for_a_variant_that_reads_its_gradient(variant):
    without = _loss_evaluations(variant, has_aux=False)
    assert without == STEPS * variant.gradient_passes
    assert _loss_evaluations(variant, has_aux=True) == without


def test_random_sam_pays_one_forward_pass_per_recorded_step():
    # Two recorded steps after updates (3 and 6): two clean passes RandomSAM would not otherwise make.
    assert _loss_evaluations(sam.RandomSAM(0.05), has_aux=True) == _loss_evaluations(sam.RandomSAM(0.05), False) + 2
