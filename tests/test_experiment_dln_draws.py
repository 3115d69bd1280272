"""dln_sparse_regression over fresh draws: every run is classified (converged / not converged / diverged).

The figure's claims about draws rest on this classification ([record]): a
diverged or unconverged run is never counted as a converged one, a pair
counts as converged only if both of its runs are, and the robust ρ range
counts failures against 1-SAM.
"""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import dln_sparse_regression as exp
from samtheory import sam, train
from samtheory.models import dln


def test_run_status_separates_converged_unconverged_and_diverged():
    data = dln.sparse_regression(jax.random.PRNGKey(3), 20, 30, 3, 10).train

    def one(rho, steps, lr):
        metrics = lambda p: {"train_loss": dln.loss_uv(p, data)}
        return train.run(dln.loss_uv, dln.init_uv(30, 0.1), data, variant=sam.SAM(rho, m=1, normalize=False),
                         num_steps=steps, learning_rate=lr, record_steps=np.array([steps]), metrics_fn=metrics)

    converged = one(0.0, 4000, 0.5)       # ERM with the notebook's step: train loss ~1e-10
    too_short = one(0.0, 30, 0.5)          # same run stopped early: train loss ~1e-2
    diverged = one(0.0, 200, 5.0)          # a step ten times too long
    status = [int(exp.run_status(r)) for r in (converged, too_short, diverged)]
    assert status == [exp.CONVERGED, exp.NOT_CONVERGED, exp.DIVERGED], (
        status, [float(r.metrics["train_loss"][-1]) for r in (converged, too_short, diverged)])
    assert int(diverged.diverged_step) > 0


def _synthetic(ratios, one_sam_status, erm_status):
    """A result dict with instance 0 (the notebook's) followed by the given draws, at ρ = (0, 0.1)."""
    ratios, one_sam_status, erm_status = (np.asarray(a) for a in (ratios, one_sam_status, erm_status))
    draws = ratios.shape[0]
    erm = np.full((draws + 1, 2, 1), 0.01)
    one = np.concatenate([erm[:1], 0.01 * ratios[..., None]])
    return {
        "rhos": np.array([0.0, 0.1]),
        "erm_test_loss": erm, "one_sam_test_loss": one,
        "erm_status": np.concatenate([[[0, 0]], erm_status]),
        "one_sam_status": np.concatenate([[[0, 0]], one_sam_status]),
    }


def test_outcomes_count_failures_against_one_sam_and_add_up_to_one():
    # 10 draws at ρ = 0.1: 7 pairs converged and better, 1 converged and worse,
    # 1 where 1-SAM did not converge (its ratio 0.5 must not count), 1 where ERM diverged.
    ratios = np.array([[1.0, r] for r in [0.2] * 7 + [2.0, 0.5, 0.5]])
    one_status = np.zeros((10, 2), int)
    one_status[8, 1] = exp.NOT_CONVERGED
    erm_status = np.zeros((10, 2), int)
    erm_status[9, 1] = exp.DIVERGED
    result = _synthetic(ratios, one_status, erm_status)
    fractions = exp.outcome_fractions(result)
    np.testing.assert_allclose(sum(fractions.values()), 1.0, rtol=0, atol=1e-15)
    assert fractions["beats"][1] == 0.7 and fractions["no_gain"][1] == 0.1
    assert fractions["not_converged"][1] == 0.1 and fractions["diverged"][1] == 0.1
    # ρ = 0 is ERM itself: a ratio of exactly 1 is no gain.
    assert fractions["no_gain"][0] == 1.0
    assert exp.robust_rhos(result).size == 0  # 70 % < 90 %
    ratios[:, 1] = 0.2
    one_status[:] = 0
    erm_status[:] = 0
    assert list(exp.robust_rhos(_synthetic(ratios, one_status, erm_status))) == [0.1]

