"""train.run's sampling modes and ρ schedules, read off exactly from a loss whose gradient counts examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samtheory import sam, train

N, B, STEPS = 10, 3, 12


def _counting_loss(w, batch):
    # ∇_w = (number of times each example is in the batch) / B: one ERM step with lr 1 writes them into w.
    return jnp.mean(w[batch["i"]])


def _counts(sampling=None, **batches):
    batches = batches or dict(batch_size_per_step=B, sampling=sampling, key=jax.random.PRNGKey(4))
    result = train.run(
        _counting_loss, jnp.zeros(N), {"i": jnp.arange(N)}, variant=sam.ERM(), num_steps=STEPS,
        learning_rate=1.0, record_steps=np.arange(STEPS + 1), metrics_fn=lambda w: {"w": w}, **batches,
    )
    w = np.asarray(result.metrics["w"])
    counts = -np.diff(w, axis=0) * B
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-12)
    counts = np.round(counts).astype(int)
    assert np.all(counts.sum(axis=1) == B)
    return counts


def test_epochs_see_every_example_at_most_once_per_epoch():
    counts = _counts("epochs")
    per_epoch = counts.reshape(STEPS // (N // B), N // B, N).sum(axis=1)
    assert np.all(per_epoch <= 1) and np.all(per_epoch.sum(axis=1) == (N // B) * B)
    assert len({tuple(row) for row in per_epoch}) > 1  # the leftover examples change from epoch to epoch


def test_without_replacement_has_no_repeat_within_a_step():
    assert np.all(_counts("without_replacement") <= 1)


def test_with_replacement_repeats_within_some_step():
    assert np.any(_counts("with_replacement") >= 2)


def test_given_batch_indices_are_each_step_s_batch():
    """``batch_indices[t]`` is update t's batch, repeats included; no key is needed for it."""
    indices = np.random.default_rng(0).integers(0, N, size=(STEPS, B))
    expected = np.stack([np.bincount(row, minlength=N) for row in indices])
    assert np.any(expected >= 2)  # the draw holds a repeat, which must count twice
    np.testing.assert_array_equal(_counts(batch_indices=indices), expected)


@pytest.mark.parametrize(
    "batches, match",
    [
        (dict(batch_indices=np.zeros((STEPS - 1, B), int)), "batch_indices must be an integer array of shape"),
        (dict(batch_indices=np.zeros((STEPS, B))), "batch_indices must be an integer array"),
        (dict(batch_indices=np.full((STEPS, B), N)), r"batch_indices must lie in \[0, 10\)"),
        (dict(batch_indices=np.zeros((STEPS, B), int), batch_size_per_step=B), "without batch_size_per_step"),
        (dict(batch_indices=np.zeros((STEPS, B), int), sampling="epochs"), "without batch_size_per_step and sampling"),
    ],
)
def test_bad_batch_indices_are_named(batches, match):
    with pytest.raises(ValueError, match=match):
        train.run(_counting_loss, jnp.zeros(N), {"i": jnp.arange(N)}, variant=sam.ERM(), num_steps=STEPS,
                  learning_rate=1.0, key=jax.random.PRNGKey(0), **batches)


def test_rho_schedule_sets_each_step_s_radius():
    a = jnp.diag(jnp.asarray([1.0, 3.0]))
    loss = lambda w, batch: 0.5 * jnp.mean(jax.vmap(lambda c: (w - c) @ a @ (w - c))(batch["c"]))  # noqa: E731
    data = {"c": jnp.asarray([[1.0, -1.0], [0.5, 2.0]])}
    rhos, lr = jnp.asarray([0.1, 0.3, 0.0, 0.2]), 0.1
    result = train.run(loss, jnp.ones(2), data, variant=sam.SAM(0.5), num_steps=4, learning_rate=lr,
                       rho=lambda t: rhos[t], record_steps=np.arange(5), metrics_fn=lambda w: {"w": w})
    w = jnp.ones(2)
    for t in range(4):
        w = w - lr * sam.gradient(sam.SAM(float(rhos[t])), loss, w, data)
        np.testing.assert_allclose(result.metrics["w"][t + 1], w, rtol=1e-14)


def test_bad_sampling_and_rho_are_named():
    with pytest.raises(ValueError, match="sampling"):
        train.run(_counting_loss, jnp.zeros(N), {"i": jnp.arange(N)}, variant=sam.ERM(), num_steps=1,
                  learning_rate=1.0, batch_size_per_step=B, sampling="shuffle", key=jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="rho"):
        train.run(_counting_loss, jnp.zeros(N), {"i": jnp.arange(N)}, variant=sam.SAM(0.1), num_steps=1,
                  learning_rate=1.0, rho=0.2)
