"""The minimum of the PAC-Bayes curve over the ρ grid pays the union bound over the grid (issue 13 §8).

A bound at each of ``G`` grid points holds with probability ``1 − δ − δ'``
at that point only; the minimum over the grid is a bound only if all ``G``
hold at once, which the union bound buys with ``δ/G`` and ``δ'/G``
(``ln G`` more in both numerators). Checked against
:func:`samtheory.bounds.foret_kl_bound` called directly with ``δ/G``.
"""

import math

import numpy as np

from experiments import pac_bayes_bounds as pb
from samtheory import bounds

K, N, DRAWS = 2754, 4000, 100_000
RHOS = np.array([0.1, 0.5, 2.0, 10.0, 50.0])
COUNTS = np.array([[4100, 4300, 9000, 30000, 49000], [3000, 3100, 8000, 27000, 48000]])
DISTANCE = np.array([[14.0], [12.0]])


def test_union_over_the_grid_is_the_kl_form_at_delta_over_g():
    union = pb.union_over_rho_grid(COUNTS, DRAWS, K, N, DISTANCE, RHOS[None, :], 0.05, 0.01)
    g = len(RHOS)
    _, upper = pb.mc_upper_bound(COUNTS, DRAWS, 0.01 / g)
    direct = np.asarray(bounds.foret_kl_bound(upper, K, N, DISTANCE, RHOS[None, :], 0.05 / g).bound)
    np.testing.assert_allclose(union["kl_form_union"], direct, rtol=1e-12)
    np.testing.assert_array_equal(union["min_kl_form_union"], direct.min(axis=-1))
    assert union["rho_grid_cost"] == math.log(g)


def test_paying_for_the_grid_raises_every_point_and_the_minimum():
    union = pb.union_over_rho_grid(COUNTS, DRAWS, K, N, DISTANCE, RHOS[None, :], 0.05, 0.01)
    _, upper = pb.mc_upper_bound(COUNTS, DRAWS, 0.01)
    unpaid = np.asarray(bounds.foret_kl_bound(upper, K, N, DISTANCE, RHOS[None, :], 0.05).bound)
    assert np.all(union["kl_form_union"] > unpaid)
    assert np.all(union["min_kl_form_union"] > unpaid.min(axis=-1))


def test_a_one_point_grid_costs_nothing():
    one = pb.union_over_rho_grid(COUNTS[:, :1], DRAWS, K, N, DISTANCE, RHOS[None, :1], 0.05, 0.01)
    _, upper = pb.mc_upper_bound(COUNTS[:, :1], DRAWS, 0.01)
    plain = np.asarray(bounds.foret_kl_bound(upper, K, N, DISTANCE, RHOS[None, :1], 0.05).bound)
    np.testing.assert_array_equal(one["kl_form_union"], plain)
    assert one["rho_grid_cost"] == 0.0
