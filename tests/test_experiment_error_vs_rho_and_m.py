"""Fig. 1 of Andriushchenko & Flammarion (2022) at small scale (experiments/error_vs_rho_and_m.py), quick config.

Headline statements, each of which can fail:

* DLN (unnormalized, full batch; test loss paired with ERM on the same
  draw): at the fixed ρ of the m panel the test-loss ratio grows with m —
  1-SAM < m-SAM < n-SAM — so the effect is "amplified by m-sharpness", with
  a positive log-log slope; 1-SAM beats ERM on every draw there.
* DLN: m-SAM's best ρ is inside the grid, and at the largest ρ some draw
  fails (diverges or stops interpolating): the blow-up beyond the best ρ of
  Fig. 1.
* MLP (normalized SAM): every lane learns (test error below chance), and
  the largest ρ is worse than ERM for m-SAM (too large a radius hurts).
"""

import numpy as np
import pytest
from matplotlib.figure import Figure

from experiments import error_vs_rho_and_m as fig


@pytest.fixture(scope="module")
def quick():
    cfg = fig.config(quick=True)
    return cfg, fig.run(cfg)


def test_dln_error_is_amplified_by_m_sharpness(quick):
    cfg, result = quick
    h = fig.headline(result, cfg)
    trend = h["dln_m_trend"]
    assert trend["rho"] == cfg.dln.trend_rho and not np.any(trend["failed"])
    ratio = dict(zip(cfg.dln.ms, trend["ratio"]))
    assert ratio[1] < ratio[cfg.dln.msam_m] < ratio[cfg.dln.n]
    assert trend["slope"] > 0.1
    j = cfg.dln.rhos.index(cfg.dln.trend_rho)
    per_draw = fig.dln_ratios(result, cfg)["sam"][cfg.dln.ms.index(1), :, j]
    assert np.all(per_draw < 1.0)


def test_dln_m_sam_best_rho_is_interior_and_larger_rho_fails(quick):
    cfg, result = quick
    h = fig.headline(result, cfg)
    assert h["dln_m_sam"]["interior"]
    assert h["dln_m_sam"]["ratio"] < 1.0
    failed = fig.dln_failed(result["dln_sam_train"], cfg.dln)  # (ms, seeds, rhos)
    assert np.any(failed[cfg.dln.ms.index(cfg.dln.msam_m), :, -1])
    assert not np.any(failed[:, :, 0])  # the smallest ρ converges for every m and draw


def test_mlp_learns_and_too_large_a_radius_hurts(quick):
    cfg, result = quick
    chance = 0.9
    for key in ("mlp_erm_test", "mlp_sam_test", "mlp_random_test"):
        assert np.all(result[key] < chance), key
    msam = result["mlp_sam_test"][cfg.mlp.ms.index(cfg.mlp.msam_m)]  # (rhos, seeds)
    assert msam[-1].mean() > result["mlp_erm_test"].mean()


def test_summary_is_finite_and_the_figure_draws(quick):
    cfg, result = quick
    summary = fig.summary(result, cfg)
    assert summary and all(np.isfinite(v) for v in summary.values())
    assert summary["dln_m_trend_rho"] == cfg.dln.trend_rho
    assert isinstance(fig.plot(result, cfg), Figure)


def test_bad_configs_are_refused_naming_the_field():
    cfg = fig.config(quick=True)
    import dataclasses
    with pytest.raises(ValueError, match="dln.ms"):
        fig._check_config(dataclasses.replace(cfg, dln=dataclasses.replace(cfg.dln, ms=(1, 3, 20))))
    with pytest.raises(ValueError, match="mlp.trend_rho"):
        fig._check_config(dataclasses.replace(cfg, mlp=dataclasses.replace(cfg.mlp, trend_rho=0.8)))
    with pytest.raises(ValueError, match="best rho"):
        fig.best_rho(np.array([np.nan, np.nan]), (0.1, 0.2))
