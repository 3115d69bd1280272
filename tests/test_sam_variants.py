"""Variants as descriptions: declared properties, labels from samtheory.style, checks at the door, pytree rebuilds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import tanh_net_loss

from samtheory import sam
from samtheory.style import VARIANT_LABELS


def _problem():
    params = {"W": jnp.linspace(-0.4, 0.7, 6).reshape(3, 2), "b": jnp.asarray([0.1, -0.2]),
              "a": jnp.asarray([0.5, -0.3])}
    batch = {"x": jnp.linspace(-1.0, 1.0, 24).reshape(8, 3), "y": jnp.linspace(0.5, -0.5, 8)}
    return params, batch


@pytest.mark.parametrize(
    "variant, label, m, needs_key, passes",
    [
        (sam.ERM(), "ERM", None, False, 1),
        (sam.SAM(0.1), "n-SAM", None, False, 2),
        (sam.SAM(0.1, m=1), "1-SAM", 1, False, 2),
        (sam.SAM(0.1, m=4), "m-SAM", 4, False, 2),
        (sam.SAM(0.1, normalize=False), "n-USAM", None, False, 2),
        (sam.SAM(0.1, m=1, normalize=False), "1-USAM", 1, False, 2),
        (sam.SAM(0.1, ascent_steps=3, p=math.inf), "n-SAM", None, False, 4),
        (sam.RandomSAM(0.1, m=2), "random", 2, True, 1),
        (sam.ASAM(0.1), "ASAM", None, False, 2),
    ],
)
def test_declared_properties_and_labels(variant, label, m, needs_key, passes):
    assert variant.label == label and label in VARIANT_LABELS.values()
    assert VARIANT_LABELS[variant.style_key] == label
    assert (variant.m, variant.needs_key, variant.gradient_passes) == (m, needs_key, passes)


def test_plain_n_sam_step_is_the_oracle_n_sam():
    params, batch = _problem()
    plain = sam.n_sam_gradient(tanh_net_loss, params, batch, 0.3)
    oracle = sam.gradient(sam.SAM(0.3), tanh_net_loss, params, batch)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(oracle)):
        np.testing.assert_array_equal(a, b)


def test_step_reports_the_clean_loss_per_chunk_and_the_oracle_direction():
    params, batch = _problem()
    key = jax.random.PRNGKey(3)
    for variant in [sam.ERM(), sam.SAM(0.2), sam.SAM(0.2, m=2), sam.RandomSAM(0.2, m=4), sam.ASAM(0.2, m=1)]:
        out = sam.step(variant, tanh_net_loss, params, batch, key)
        direction = sam.gradient(variant, tanh_net_loss, params, batch, key)
        for a, b in zip(jax.tree.leaves(out.direction), jax.tree.leaves(direction)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
        chunks = 1 if variant.m is None else 8 // variant.m
        size = 8 // chunks
        expected = [tanh_net_loss(params, jax.tree.map(lambda x, i=i: x[i * size:(i + 1) * size], batch))
                    for i in range(chunks)]
        np.testing.assert_allclose(out.loss, expected, rtol=1e-13)


@pytest.mark.parametrize(
    "make, error, field",
    [
        (lambda: sam.SAM(rho="0.1"), TypeError, "rho"),
        (lambda: sam.SAM(rho=None), TypeError, "rho"),
        (lambda: sam.SAM(rho=True), TypeError, "rho"),
        (lambda: sam.SAM(0.1, normalize="no"), TypeError, "normalize"),
        (lambda: sam.SAM(0.1, second_order=1), TypeError, "second_order"),
        (lambda: sam.RandomSAM(rho="1"), TypeError, "rho"),
        (lambda: sam.ASAM(rho=[0.1]), TypeError, "rho"),
        (lambda: sam.ASAM(0.1, eta="0.01"), TypeError, "eta"),
    ],
)
def test_bad_fields_raise_naming_the_field(make, error, field):
    with pytest.raises(error, match=field):
        make()


def test_optional_fields_are_keyword_only():
    for make in (lambda: sam.SAM(0.5, 4), lambda: sam.ASAM(0.5, 4), lambda: sam.RandomSAM(0.5, 4)):
        with pytest.raises(TypeError):
            make()


def test_usam_ignores_p():
    assert sam.SAM(0.1, normalize=False, p=0.5).p == 0.5
    with pytest.raises(ValueError, match="p must"):
        sam.SAM(0.1, p=0.5)


def test_jax_rebuilds_variants_without_validating_placeholders():
    leaves, treedef = jax.tree.flatten(sam.SAM(0.1, m=2))
    assert jax.tree.unflatten(treedef, [None]).m == 2
    rhos = jnp.asarray([0.0, 0.1, 0.2])
    params, batch = _problem()
    over_variant = jax.vmap(lambda v: sam.gradient(v, tanh_net_loss, params, batch))(sam.SAM(rhos, m=2))
    looped = [sam.gradient(sam.SAM(float(r), m=2), tanh_net_loss, params, batch) for r in rhos]
    for i, one in enumerate(looped):
        np.testing.assert_allclose(over_variant["W"][i], one["W"], rtol=1e-13)
