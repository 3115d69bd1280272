"""The SAM step on a real (tiny-width) ResNet-18: variants against the oracle, m-SAM chunks, BatchNorm.

Each test compiles one program that computes everything it compares (XLA
without LLVM optimization: compiling dominates on a CPU). Conventions:
[rho-sam], [m], [normalize], [rng].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

pytest.importorskip("flax")

from samtheory import sam  # noqa: E402
from samtheory.nn.cli import FAST_COMPILE  # noqa: E402
from samtheory.nn.resnet import ResNetConfig, apply_model, build_model, init_variables  # noqa: E402
from samtheory.nn.sam_step import (  # noqa: E402
    chunk_perturbations,
    cross_entropy,
    init_train_state,
    make_optimizer,
    make_train_step,
    sam_direction,
)
from samtheory.nn.schedules import make_schedule  # noqa: E402

RHO = 0.1
BATCH = 8
CONFIG = ResNetConfig(num_classes=4, width=1 / 16, bf16=False)


@pytest.fixture(scope="module")
def setup():
    params, stats = init_variables(CONFIG, jax.random.PRNGKey(0), (8, 8, 3))
    images = jax.random.normal(jax.random.PRNGKey(1), (BATCH, 8, 8, 3), jnp.float32)
    labels = jnp.arange(BATCH, dtype=jnp.int32) % 4
    return build_model(CONFIG), params, stats, (images, labels)


def _oracle_loss(model, stats, unravel):
    # The oracle's loss_fn, on the raveled parameter vector as the step uses it (norms are
    # the same, [rho-sam]): training-mode BatchNorm over whatever batch (chunk) it is given.
    def loss_fn(theta, batch):
        logits, _ = apply_model(model, unravel(theta), stats, batch[0], train=True)
        return cross_entropy(logits, batch[1])

    return loss_fn


def _oracle(variant, model, stats, params, batch, key=None):
    theta, unravel = ravel_pytree(params)
    return unravel(sam.gradient(variant, _oracle_loss(model, stats, unravel), theta, batch, key))


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def _chunk_norms(eps):
    # eps: pytree with a leading chunk axis -> (norm of chunk 0, norm of chunk 1, norm of their difference)
    chunks = [np.concatenate([np.ravel(np.asarray(x[i], np.float64)) for x in jax.tree.leaves(eps)]) for i in range(2)]
    return np.linalg.norm(chunks[0]), np.linalg.norm(chunks[1]), np.linalg.norm(chunks[0] - chunks[1])


def _close(a, b, rtol=1e-5):
    a, b = _flat(a), _flat(b)
    return np.linalg.norm(a - b) <= rtol * np.linalg.norm(b)


def test_sam_family_matches_oracle_and_batchnorm_sees_only_clean_pass(setup):
    model, params, stats, batch = setup
    lr, wd = 0.05, 0.5  # a large decay, so that decaying perturbed weights would show
    optimizer = make_optimizer(make_schedule("constant", lr, 10), momentum=0.9, weight_decay=wd)

    def probe(params, stats, batch):
        out = {}
        out["n"] = sam_direction(sam.SAM(RHO), model, params, stats, batch, None)
        out["m=n"] = sam_direction(sam.SAM(RHO, m=BATCH), model, params, stats, batch, None)
        out["m4"] = sam_direction(sam.SAM(RHO, m=4), model, params, stats, batch, None)
        # USAM with step rho/||g|| takes the same ascent step as SAM with radius rho.
        out["erm"] = sam_direction(sam.ERM(), model, params, stats, batch, None)
        gradient_norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(out["erm"][0])))
        out["usam"] = sam_direction(sam.SAM(RHO / gradient_norm, normalize=False), model, params, stats, batch, None)
        out["oracle_m4"] = _oracle(sam.SAM(RHO, m=4), model, stats, params, batch)
        out["eps_m4"] = chunk_perturbations(sam.SAM(RHO, m=4), model, params, stats, batch, None)
        clean_logits, out["clean_stats"] = apply_model(model, params, stats, batch[0], train=True)
        out["clean_loss"] = cross_entropy(clean_logits, batch[1])
        perturbed = jax.tree.map(lambda p, e: p + e[0], params, out["eps_m4"])
        out["perturbed_stats"] = apply_model(model, perturbed, stats, batch[0], train=True)[1]
        step = make_train_step(model, sam.SAM(RHO), optimizer)
        out["step"] = step(init_train_state(params, stats, optimizer), batch, None)
        return out

    out = jax.jit(probe, compiler_options=FAST_COMPILE)(params, stats, batch)
    direction_n, stats_n, report_n = out["n"]

    # m-SAM is the oracle's, with BatchNorm per chunk ([m]); chunks really change the direction.
    assert _close(out["m4"][0], out["oracle_m4"])
    assert not _close(out["m4"][0], direction_n, rtol=1e-3)
    # USAM's ascent is rho' g ([normalize]): with rho' = rho / ||g|| it is SAM's; the descent is not ERM's.
    assert _close(out["usam"][0], direction_n)
    assert not _close(direction_n, out["erm"][0], rtol=1e-3)
    # m = batch size runs the chunked code with one chunk and equals n-SAM.
    assert _close(out["m=n"][0], direction_n, rtol=1e-5)
    assert _close(out["m=n"][1], stats_n, rtol=1e-5)

    # Each m-SAM chunk has its own perturbation of norm rho.
    assert jax.tree.leaves(out["eps_m4"])[0].shape[0] == 2
    norm0, norm1, difference = _chunk_norms(out["eps_m4"])
    np.testing.assert_allclose([norm0, norm1], [RHO, RHO], rtol=1e-5)
    assert difference > 0.1 * RHO

    # BatchNorm running statistics come from the clean pass only.
    assert _close(stats_n, out["clean_stats"], rtol=1e-7)
    assert not _close(out["clean_stats"], out["perturbed_stats"], rtol=1e-4)
    # ... and the reported loss is the clean loss.
    np.testing.assert_allclose(float(report_n.loss), float(out["clean_loss"]), rtol=1e-5)

    # One step: momentum buffer starts at the direction; weight decay at the unperturbed w, not perturbed.
    new_state, report = out["step"]
    expected = _flat(params) - lr * (_flat(direction_n) + wd * _flat(params))
    np.testing.assert_allclose(_flat(new_state.params), expected, rtol=1e-5, atol=1e-7)
    assert int(new_state.step) == 1
    assert float(report.loss) == pytest.approx(float(report_n.loss), rel=1e-6)


def test_random_sam_matches_oracle_with_its_own_sphere_per_chunk(setup):
    model, params, stats, batch = setup
    key = jax.random.PRNGKey(7)

    def probe(params, stats, batch, key):
        return {
            "random": sam_direction(sam.RandomSAM(RHO, m=4), model, params, stats, batch, key)[0],
            "oracle_random": _oracle(sam.RandomSAM(RHO, m=4), model, stats, params, batch, key),
            "eps_random": chunk_perturbations(sam.RandomSAM(RHO, m=4), model, params, stats, batch, key),
            "erm": sam_direction(sam.ERM(), model, params, stats, batch, None),
            "clean_stats": apply_model(model, params, stats, batch[0], train=True)[1],
        }

    out = jax.jit(probe, compiler_options=FAST_COMPILE)(params, stats, batch, key)
    assert _close(out["random"], out["oracle_random"])
    norm0, norm1, difference = _chunk_norms(out["eps_random"])
    np.testing.assert_allclose([norm0, norm1], [RHO, RHO], rtol=1e-5)
    assert difference > 0.1 * RHO
    assert not _close(out["random"], out["erm"][0], rtol=1e-3)
    assert _close(out["erm"][1], out["clean_stats"], rtol=1e-7)
    with pytest.raises(ValueError, match="key"):
        sam_direction(sam.RandomSAM(RHO), model, params, stats, batch, None)
    with pytest.raises(ValueError, match="second_order"):
        sam_direction(sam.SAM(RHO, second_order=True), model, params, stats, batch, None)
