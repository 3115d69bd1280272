"""samtheory.bounds.kl against scipy: binary kl, its upper and lower inverses, their derivatives.

References are independent: ``scipy.special.rel_entr`` for ``kl``,
``scipy.optimize.brentq`` on that ``kl`` for the inverses, and
``-expm1(-c)`` for the closed form at ``q = 0``. Shapes are fixed
(vectors of ``SIZE``) so each jitted function compiles once.
"""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import brentq
from scipy.special import rel_entr

from samtheory.bounds import binary_kl, kl_inverse, kl_inverse_lower

SIZE = 16
EPS = np.finfo(np.float64).eps

# Means with the endpoints and near-endpoint values hypothesis might not find alone.
# XLA on CPU flushes subnormals to zero, so they are left out of the inputs.
probabilities = st.one_of(
    st.sampled_from([0.0, 1.0, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1 - 2**-53]),
    st.floats(0.0, 1.0, allow_subnormal=False),
)
prob_vectors = hnp.arrays(np.float64, (SIZE,), elements=probabilities)
budgets = st.one_of(
    st.sampled_from([0.0, 1e-30, 1e-12, 50.0, 800.0]), st.floats(0.0, 30.0, allow_subnormal=False)
)
budget_vectors = hnp.arrays(np.float64, (SIZE,), elements=budgets)

jit_kl = jax.jit(binary_kl)
jit_upper = jax.jit(kl_inverse)
jit_lower = jax.jit(kl_inverse_lower)


def reference_kl(q, p):
    return rel_entr(q, p) + rel_entr(1 - q, 1 - p)


def accurate_kl(q, p):
    """kl(q‖p) in NumPy, accurate enough to locate the root of kl = c to ~1e-16.

    With Δ = p − q, each log is ln(1 + Δ/q) or ln(1 + Δ/(1 − p)): by log1p
    when the ratio is near 1 (then 1 − p is never formed where it matters),
    by log of the ratio otherwise. (rel_entr forms 1 − p, which moves the
    root by up to ~1e-11 when kl is small.)
    """

    def log_ratio(numerator_minus_denominator, denominator, numerator):
        t = numerator_minus_denominator / denominator
        return np.log1p(t) if abs(t) < 0.5 else np.log(numerator / denominator)

    with np.errstate(divide="ignore"):
        if q == 0:
            return -np.log1p(-p)
        if q == 1:
            return -np.log(p)
        if p == 0 or p == 1:
            return np.inf
        delta = p - q
        return -q * log_ratio(delta, q, p) + (1 - q) * log_ratio(delta, 1 - p, 1 - q)


def reference_upper(q, c):
    """The largest root of kl(q‖p) = c on [q, 1], by brentq (1 when the root rounds to 1)."""
    if c == 0 or q == 1:
        return q if c == 0 else 1.0
    top = np.nextafter(1.0, 0.0)
    if accurate_kl(q, top) <= c:
        return 1.0
    return brentq(lambda p: accurate_kl(q, p) - c, q, top, xtol=1e-300, rtol=4 * EPS, maxiter=500)


def reference_lower(q, c):
    """The smallest root on [0, q], by brentq (in ln p below q/2: the root can be ~1e-300)."""
    if c == 0 or q == 0:
        return q if c == 0 else 0.0
    tiny = np.finfo(np.float64).tiny  # below it the root is 0 to within 1e-12 anyway
    if accurate_kl(q, tiny) <= c:
        return 0.0
    if accurate_kl(q, q / 2) > c:  # the root is in [q/2, q]
        return brentq(lambda p: accurate_kl(q, p) - c, q / 2, q, xtol=1e-300, rtol=4 * EPS, maxiter=500)
    log_root = brentq(lambda t: accurate_kl(q, np.exp(t)) - c, np.log(tiny), np.log(q / 2),
                      xtol=1e-300, rtol=4 * EPS, maxiter=500)
    return np.exp(log_root)


# ---------------------------------------------------------------------------
# binary_kl
# ---------------------------------------------------------------------------


dyadic_vectors = hnp.arrays(np.float64, (SIZE,), elements=st.integers(0, 2**20).map(lambda i: i / 2**20))


@given(dyadic_vectors, dyadic_vectors)
def test_binary_kl_matches_rel_entr(q, p):
    """On a dyadic grid, where 1 − q and 1 − p are exact inputs for rel_entr too.

    rel_entr(x, y) = x·ln(x/y) rounds x/y (an absolute error of x·eps/2 after
    the log) and the log and product (eps of the term each), so the
    reference alone is within eps·(1 + 2·scale); ours adds ≤ 4 eps·kl.
    """
    ours = np.asarray(jit_kl(q, p))
    ref = reference_kl(q, p)
    assert np.array_equal(np.isinf(ours), np.isinf(ref))
    finite = ~np.isinf(ref)
    scale = np.abs(rel_entr(q, p)) + np.abs(rel_entr(1 - q, 1 - p))
    tolerance = EPS * (1 + 2 * scale) + 4 * EPS * np.abs(ref)
    assert np.all(np.abs(ours - ref)[finite] <= tolerance[finite])
    assert np.all(ours >= 0)


def mp_kl(q, p):
    """kl at 50 digits from the exact binary values of q and p (log1p keeps 1 − p exact)."""
    q, p = mp.mpf(q), mp.mpf(p)
    first = mp.mpf(0) if q == 0 else (mp.inf if p == 0 else q * (mp.log(q) - mp.log(p)))
    second = mp.mpf(0) if q == 1 else (mp.inf if p == 1 else (1 - q) * (mp.log1p(-q) - mp.log1p(-p)))
    return first + second


@given(prob_vectors, prob_vectors)
def test_binary_kl_has_relative_accuracy_everywhere(q, p):
    """A few ulps relative to kl itself, also where kl is tiny (p ≈ q) or the inputs are extreme."""
    ours = np.asarray(jit_kl(q, p))
    with mp.workdps(50):
        for got, a, b in zip(ours, q, p):
            want = mp_kl(a, b)
            if mp.isinf(want):
                assert got == np.inf
            else:
                assert abs(mp.mpf(float(got)) - want) <= 8 * EPS * want


near_pairs = st.tuples(st.floats(1e-6, 0.5), st.floats(-1e-3, 1e-3)).map(lambda t: (t[0], t[0] * (1 + t[1])))


@given(st.lists(near_pairs, min_size=SIZE, max_size=SIZE))
def test_binary_kl_is_accurate_where_it_cancels(pairs):
    q, p = np.array(pairs).T
    ours = np.asarray(jit_kl(q, p))
    with mp.workdps(50):
        for got, a, b in zip(ours, q, p):
            want = mp_kl(a, b)
            assert abs(mp.mpf(float(got)) - want) <= 8 * EPS * want


def test_binary_kl_limits():
    p = np.array([0.0, 1e-300, 0.3, 1 - 1e-16, 1.0])
    np.testing.assert_array_equal(binary_kl(0.0, p), -np.log1p(-p))
    np.testing.assert_array_equal(binary_kl(1.0, p), -np.log(p))
    assert binary_kl(0.4, 0.0) == np.inf and binary_kl(0.4, 1.0) == np.inf
    assert binary_kl(0.0, 0.0) == 0 and binary_kl(1.0, 1.0) == 0 and binary_kl(0.37, 0.37) == 0


def test_binary_kl_rejects_and_masks_out_of_range():
    with pytest.raises(ValueError, match="q"):
        binary_kl(1.5, 0.2)
    with pytest.raises(ValueError, match="p"):
        binary_kl(0.5, -0.1)
    assert np.isnan(jit_kl(jnp.array(1.5), jnp.array(0.2)))


# ---------------------------------------------------------------------------
# kl_inverse and kl_inverse_lower
# ---------------------------------------------------------------------------


@given(prob_vectors, budget_vectors)
def test_kl_inverse_matches_brentq(q, c):
    upper = np.asarray(jit_upper(q, c))
    lower = np.asarray(jit_lower(q, c))
    ref_upper = np.array([reference_upper(a, b) for a, b in zip(q, c)])
    ref_lower = np.array([reference_lower(a, b) for a, b in zip(q, c)])
    np.testing.assert_allclose(upper, ref_upper, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lower, ref_lower, rtol=0, atol=1e-12)


@given(prob_vectors, budget_vectors)
def test_kl_inverse_is_the_root_to_one_ulp(q, c):
    """The bisection ends on adjacent floats: kl(q‖p⁻) ≤ c < kl(q‖p) for p < 1, p⁻ the float below p.

    So kl(q‖p) = c up to the change of kl over one ulp of p; for the lower
    inverse the mirror statement holds.
    """
    p = np.asarray(jit_upper(q, c))
    assert np.all((p >= q) & (p <= 1))
    moved = (p < 1) & (c > 0)
    below = np.nextafter(p, 0.0)
    assert np.all(np.asarray(jit_kl(q, below))[moved] <= c[moved])
    assert np.all(np.asarray(jit_kl(q, p))[moved] > c[moved])

    lo = np.asarray(jit_lower(q, c))
    assert np.all((lo <= q) & (lo >= 0))
    moved = (lo > 0) & (c > 0)
    above = np.nextafter(lo, 1.0)
    assert np.all(np.asarray(jit_kl(q, above))[moved] <= c[moved])
    assert np.all(np.asarray(jit_kl(q, lo))[moved] > c[moved])


@given(prob_vectors, budget_vectors, budget_vectors)
def test_kl_inverse_is_monotone_in_c(q, c1, c2):
    small, large = np.minimum(c1, c2), np.maximum(c1, c2)
    assert np.all(jit_upper(q, small) <= jit_upper(q, large))
    assert np.all(jit_lower(q, small) >= jit_lower(q, large))


@given(prob_vectors, prob_vectors, budget_vectors)
def test_kl_inverse_is_monotone_in_q_up_to_rounding(q1, q2, c):
    """Needed to plug an upper bound on the empirical loss into the kl-form bound.

    Exact in real arithmetic. In floats, two q closer than kl's rounding
    (a few ulps) can end the bisection on either of two adjacent floats:
    kl⁻¹(1e-300, 1/8) is one ulp below kl⁻¹(0, 1/8). Measured on 4·10⁶
    random near pairs: at most 3 ulps of p (upper) and 1.5 ulps of q (lower).
    """
    small, large = np.minimum(q1, q2), np.maximum(q1, q2)
    up_small, up_large = np.asarray(jit_upper(small, c)), np.asarray(jit_upper(large, c))
    assert np.all(up_small <= up_large + 4 * np.spacing(up_large))
    lo_small, lo_large = np.asarray(jit_lower(small, c)), np.asarray(jit_lower(large, c))
    assert np.all(lo_small <= lo_large + 4 * np.spacing(large))
    # Where q differ by more than kl's rounding and p is away from 0 and 1 the
    # order is exact: dp/dq = p(1 − p)(logit p − logit q)/(p − q) ≥ 4p(1 − p).
    apart = large - small > 1e-9
    for got_small, got_large in ((up_small, up_large), (lo_small, lo_large)):
        interior = apart & (got_large > 1e-3) & (got_large < 1 - 1e-3)
        assert np.all(got_small[interior] <= got_large[interior])


@given(hnp.arrays(np.float64, (SIZE,), elements=st.integers(0, 64).map(lambda i: i / 64)), budget_vectors)
def test_lower_inverse_mirrors_upper(q, c):
    """kl(q‖p) = kl(1 − q‖1 − p); q on a dyadic grid so that 1 − q is exact."""
    np.testing.assert_allclose(jit_lower(q, c), 1 - np.asarray(jit_upper(1 - q, c)), rtol=0, atol=1e-12)


def test_kl_inverse_at_zero_is_one_minus_exp_to_the_last_bits():
    c = np.array([1e-300, 1e-30, 1e-12, 1e-3, 0.1, 1.0, 10.0, 37.0])
    expected = -np.expm1(-c)
    got = np.asarray(kl_inverse(np.zeros_like(c), c))
    np.testing.assert_allclose(got, expected, rtol=4 * EPS, atol=0)


def test_kl_inverse_edge_cases():
    q = np.array([0.0, 0.3, 1.0, 0.3, 0.3, 0.0, 1.0, 0.999])
    c = np.array([0.0, 0.0, 5.0, np.inf, 1e300, np.inf, 0.0, 700.0])
    upper = np.asarray(kl_inverse(q, c))
    np.testing.assert_array_equal(upper, [0.0, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    lower = np.asarray(kl_inverse_lower(q, c))
    # q = 1, c = 5: kl(1‖p) = −ln p ≤ 5 down to e^{−5}; q = 0.999, c = 700: ≈ e^{−700.7}.
    np.testing.assert_array_equal(lower[[0, 1, 3, 4, 5, 6]], [0.0, 0.3, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(lower[2], np.exp(-5.0), rtol=4 * EPS)
    np.testing.assert_allclose(lower[7], reference_lower(0.999, 700.0), rtol=1e-12)


def test_kl_inverse_rejects_and_masks_bad_input():
    with pytest.raises(ValueError, match="q"):
        kl_inverse(-0.1, 1.0)
    with pytest.raises(ValueError, match="c"):
        kl_inverse(0.1, -1.0)
    with pytest.raises(ValueError, match="c"):
        kl_inverse_lower(0.1, np.nan)
    bad = jit_upper(jnp.array([0.2, 1.2, np.nan, 0.2]), jnp.array([-1.0, 0.1, 0.1, np.nan]))
    assert np.all(np.isnan(bad))


def test_kl_inverse_vectorizes_and_keeps_float32():
    q = jnp.linspace(0.0, 1.0, SIZE)
    c = jnp.full((3, 1), 0.2)
    out = kl_inverse(q, c)
    assert out.shape == (3, SIZE)
    # Two compilations may round kl differently (e.g. fused multiply-adds),
    # which can move the bisection's last step by one float.
    np.testing.assert_allclose(out, jax.vmap(kl_inverse, (None, 0))(q, c), rtol=2 * EPS, atol=0)
    single = kl_inverse(np.float32(0.1), np.float32(0.05))
    assert single.dtype == jnp.float32
    np.testing.assert_allclose(float(single), reference_upper(0.1, 0.05), rtol=2e-6)


def test_kl_inverse_derivatives_match_finite_differences():
    q, c, h = 0.13, 0.07, 1e-6
    for fn in (kl_inverse, kl_inverse_lower):
        dq, dc = jax.grad(fn, argnums=(0, 1))(q, c)
        np.testing.assert_allclose(dq, (fn(q + h, c) - fn(q - h, c)) / (2 * h), rtol=1e-7)
        np.testing.assert_allclose(dc, (fn(q, c + h) - fn(q, c - h)) / (2 * h), rtol=1e-7)
    # q = 0: p = 1 − e^{−c}; the c-derivative is e^{−c} and stays finite alone.
    np.testing.assert_allclose(jax.grad(kl_inverse, argnums=1)(0.0, c), np.exp(-c), rtol=1e-12)
    assert jax.grad(kl_inverse, argnums=0)(0.0, c) == np.inf
    # Saturated at 1: locally constant.
    assert jax.grad(kl_inverse, argnums=1)(0.5, 1e300) == 0
