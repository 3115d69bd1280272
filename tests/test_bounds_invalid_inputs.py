"""An invalid input to a bound function never gives a number (issue 14, §1).

For every public function of :mod:`samtheory.bounds` with a numeric
parameter that can be traced, and every such parameter, hypothesis draws one
invalid value (outside the parameter's range, ±inf where the range is
finite, or NaN) and valid values for the others. Called eagerly the
function must raise ``ValueError`` naming the parameter; under ``jax.jit``
it must return NaN in every bound it computes (and ``in_range`` False),
never a number that could be read as a bound. A second property checks
the other side: valid inputs give under ``jit`` what they give eagerly, so
the NaN guard never fires on a valid input.

All arguments go to ``jit`` as float64 scalars (and one ``(4,)`` array), so
each function compiles once. Subnormal floats are kept out of the draws:
XLA flushes them to zero on a CPU (``bounds/_checks.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samtheory import bounds as B

TINY = np.finfo(np.float64).tiny
NAN = st.just(math.nan)
INF = st.just(math.inf)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A parameter's range: strategies for valid and invalid values."""

    valid: st.SearchStrategy
    invalid: st.SearchStrategy


def _floats(lo, hi, **kw):
    return st.floats(lo, hi, allow_subnormal=False, **kw)


PROBABILITY = Kind(
    _floats(0.0, 1.0),
    st.one_of(st.floats(max_value=-TINY, allow_subnormal=False), st.floats(min_value=np.nextafter(1.0, 2.0)), NAN),
)
OPEN_PROBABILITY = Kind(
    _floats(1e-300, 1.0, exclude_max=True),
    st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), NAN),
)
NONNEGATIVE = Kind(_floats(0.0, 1e6), st.one_of(st.floats(max_value=-TINY, allow_subnormal=False), INF, NAN))
NONNEGATIVE_OR_INF = Kind(
    st.one_of(_floats(0.0, 1e6), INF), st.one_of(st.floats(max_value=-TINY, allow_subnormal=False), NAN)
)
POSITIVE = Kind(_floats(1e-6, 1e3), st.one_of(st.floats(max_value=0.0), INF, NAN))
LOG_VARIANCE = Kind(_floats(-20.0, 5.0), st.nothing())


def at_least(minimum: float, maximum: float = 1e7) -> Kind:
    below = st.floats(max_value=np.nextafter(minimum, -np.inf), allow_subnormal=False)
    return Kind(_floats(minimum, maximum), st.one_of(below, INF, NAN))


def _loss_fn(params, batch):
    # A 0-1 loss: it compares scores, so NaN weights would read as a loss of 0.
    return B.zero_one_loss(batch[0] @ params, batch[1])


_BATCH = (np.tile(np.eye(2), (4, 1)) + 0.1, np.tile([0, 1], 4))  # n = 8


def _gaussian_losses(std):
    return B.gaussian_perturbed_losses(_loss_fn, jnp.ones((2, 2)), _BATCH, std, key=jax.random.PRNGKey(0), num_samples=8)


def _foret_monte_carlo(rho, delta, delta_prime):
    return B.foret_monte_carlo_bound(
        _loss_fn, jnp.ones((2, 2)), _BATCH, rho=rho, key=jax.random.PRNGKey(0), num_samples=8,
        delta=delta, delta_prime=delta_prime,
    )


def _monte_carlo_upper(losses, delta_prime):
    return B.monte_carlo_upper_bound(losses, delta_prime)


def _clipped_ce(min_probability):
    return B.clipped_cross_entropy(jnp.array([[2.0, -1.0], [0.5, 0.3]]), jnp.array([0, 1]), min_probability)


@dataclasses.dataclass(frozen=True)
class Case:
    """A bound function, its parameters' kinds, and its outputs that must be NaN / False."""

    fn: Callable
    params: tuple[tuple[str, Kind], ...]
    bounds: Callable = lambda out: [out]  # noqa: E731
    flags: Callable = lambda out: []  # noqa: E731
    array_param: str | None = None  # drawn as a (4,) array; the invalid value in one entry


FORET_PARAMS = lambda first, min_n: (  # noqa: E731
    (first, PROBABILITY), ("num_params", at_least(1, 1e8)), ("n", at_least(min_n, 1e6)),
    ("weight_distance", NONNEGATIVE), ("rho", POSITIVE), ("delta", OPEN_PROBABILITY),
)

CASES = {
    "binary_kl": Case(B.binary_kl, (("q", PROBABILITY), ("p", PROBABILITY))),
    "kl_inverse": Case(B.kl_inverse, (("q", PROBABILITY), ("c", NONNEGATIVE_OR_INF))),
    "kl_inverse_lower": Case(B.kl_inverse_lower, (("q", PROBABILITY), ("c", NONNEGATIVE_OR_INF))),
    "isotropic_gaussian_kl": Case(
        B.isotropic_gaussian_kl,
        (("num_params", NONNEGATIVE), ("squared_distance", NONNEGATIVE),
         ("posterior_log_variance", LOG_VARIANCE), ("prior_log_variance", LOG_VARIANCE)),
    ),
    "grid_union_cost": Case(B.grid_union_cost, (("grid_index", at_least(1)),)),
    "pac_bayes_kl_budget": Case(
        B.pac_bayes_kl_budget,
        (("kl_divergence", NONNEGATIVE), ("n", at_least(8)), ("delta", OPEN_PROBABILITY),
         ("log_union_cost", NONNEGATIVE)),
    ),
    "pac_bayes_kl_bound": Case(
        B.pac_bayes_kl_bound,
        (("empirical", PROBABILITY), ("kl_divergence", NONNEGATIVE), ("n", at_least(8)),
         ("delta", OPEN_PROBABILITY), ("log_union_cost", NONNEGATIVE)),
    ),
    "mcallester_bound": Case(
        B.mcallester_bound,
        (("empirical", PROBABILITY), ("kl_divergence", NONNEGATIVE), ("n", at_least(2)),
         ("delta", OPEN_PROBABILITY), ("log_union_cost", NONNEGATIVE)),
    ),
    "foret_posterior_std": Case(
        B.foret_posterior_std, (("rho", POSITIVE), ("num_params", at_least(1, 1e8)), ("n", at_least(1, 1e6)))
    ),
    "foret_theorem2_bound": Case(
        B.foret_theorem2_bound, FORET_PARAMS("max_perturbed_loss", 2),
        bounds=lambda out: [out.bound], flags=lambda out: [out.in_range],
    ),
    "foret_eq13_bound": Case(
        B.foret_eq13_bound, FORET_PARAMS("gaussian_loss", 2),
        bounds=lambda out: [out.bound], flags=lambda out: [out.in_range],
    ),
    "foret_grid_prior": Case(
        B.foret_grid_prior, FORET_PARAMS(None, 2)[1:5],
        bounds=lambda out: [out.kl, out.grid_index, out.log_prior_variance, out.log_union_cost],
    ),
    "foret_kl_bound": Case(
        B.foret_kl_bound, FORET_PARAMS("gaussian_loss", 8), bounds=lambda out: [out.bound]
    ),
    "monte_carlo_upper_bound": Case(
        _monte_carlo_upper, (("losses", PROBABILITY), ("delta_prime", OPEN_PROBABILITY)),
        bounds=lambda out: [out.certified_upper], array_param="losses",
    ),
    "mean_upper_bound": Case(
        B.mean_upper_bound,
        (("mean", PROBABILITY), ("num_samples", at_least(1)), ("delta_prime", OPEN_PROBABILITY)),
    ),
    "clipped_cross_entropy": Case(_clipped_ce, (("min_probability", OPEN_PROBABILITY),)),
    "gaussian_perturbed_losses": Case(_gaussian_losses, (("std", NONNEGATIVE),)),
    "foret_monte_carlo_bound": Case(
        _foret_monte_carlo, (("rho", POSITIVE), ("delta", OPEN_PROBABILITY), ("delta_prime", OPEN_PROBABILITY)),
        bounds=lambda out: [out.kl_form, out.eq13.bound],
        flags=lambda out: [out.eq13.in_range],
    ),
}

INVALID_CASES = [
    (name, index) for name, case in CASES.items() for index, (_, kind) in enumerate(case.params)
    if kind.invalid is not st.nothing()
]


@functools.cache
def jitted(name: str):
    return jax.jit(CASES[name].fn)


def _arguments(case: Case, draw, invalid_index: int | None):
    args = []
    for index, (param, kind) in enumerate(case.params):
        value = draw(kind.invalid if index == invalid_index else kind.valid)
        if param == case.array_param:
            entries = [draw(kind.valid) for _ in range(3)]
            value = np.array([*entries, value])
        args.append(value)
    return args


def _traced(args):
    return [jnp.asarray(a, jnp.float64) for a in args]


@pytest.mark.parametrize("name, index", INVALID_CASES, ids=[f"{n}-{CASES[n].params[i][0]}" for n, i in INVALID_CASES])
@given(data=st.data())
def test_invalid_input_raises_eagerly_and_is_nan_under_jit(name, index, data):
    case = CASES[name]
    param = case.params[index][0]
    args = _arguments(case, data.draw, index)
    with pytest.raises(ValueError, match=rf"^{param} "):
        case.fn(*args)
    out = jitted(name)(*_traced(args))
    for value in case.bounds(out):
        assert np.all(np.isnan(value)), f"{name}({param}={args[index]!r}) under jit gave {value}"
    for flag in case.flags(out):
        assert not np.any(flag), f"{name}({param}={args[index]!r}) under jit claims in_range"


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_valid_input_gives_the_same_number_under_jit(name, data):
    case = CASES[name]
    args = _arguments(case, data.draw, None)
    eager = case.fn(*args)
    traced = jitted(name)(*_traced(args))
    for e, t in zip(case.bounds(eager), case.bounds(traced)):
        np.testing.assert_allclose(np.asarray(t), np.asarray(e), rtol=1e-9, atol=0)
    for e, t in zip(case.flags(eager), case.flags(traced)):
        assert np.array_equal(np.asarray(e), np.asarray(t))


# The reproductions of issue 14, §1, one by one (each printed a number before the fix):
# (function, arguments, the invalid parameter, its position, a valid value for it).
ISSUE_PROBES = {
    "pac_bayes_kl_bound KL=-5": (B.pac_bayes_kl_bound, (0.1, -5.0, 100, 0.05), "kl_divergence", 1, 1.0),
    "pac_bayes_kl_bound delta=2": (B.pac_bayes_kl_bound, (0.1, 1.0, 100, 2.0), "delta", 3, 0.05),
    "pac_bayes_kl_budget n=3": (B.pac_bayes_kl_budget, (1.0, 3, 0.05), "n", 1, 100),
    "mcallester_bound delta=2": (B.mcallester_bound, (0.1, 1.0, 100, 2.0), "delta", 3, 0.05),
    "foret_eq13_bound delta=2, bound": (
        lambda *a: B.foret_eq13_bound(*a).bound, (0.1, 1000, 100, 1.0, 0.05, 2.0), "delta", 5, 0.05
    ),
    "foret_eq13_bound delta=2, in_range": (  # NaN where in_range is False, 1 where True
        lambda *a: jnp.where(B.foret_eq13_bound(*a).in_range, 1.0, jnp.nan),
        (0.1, 1000, 100, 1.0, 0.05, 2.0), "delta", 5, 0.05,
    ),
}


@pytest.mark.parametrize("probe", sorted(ISSUE_PROBES))
def test_issue_probes_raise_eagerly_and_are_nan_under_jit_and_vmap(probe):
    fn, args, param, position, valid = ISSUE_PROBES[probe]
    with pytest.raises(ValueError, match=rf"^{param} "):
        fn(*args)
    assert np.isnan(jax.jit(fn)(*args))
    # Under vmap only the invalid entry is NaN; the valid one is the eager value.
    stacked = [jnp.array([a, a]) for a in args]
    stacked[position] = jnp.array([args[position], valid])
    out = jax.vmap(fn)(*stacked)
    fixed = list(args)
    fixed[position] = valid
    assert np.isnan(out[0]) and out[1] == pytest.approx(float(fn(*fixed)), rel=1e-12)
