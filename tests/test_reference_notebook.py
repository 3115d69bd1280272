"""Every test loss the reference notebook prints (cells 1–5) and its cell-7 plot, reproduced through ``train.run``.

Source: Andriushchenko & Flammarion, ``tml-epfl/understanding-sam``,
``diagonal_linear_nets/diag_nets_sam.ipynb`` at commit
``306adde0b8461a57e7fc8f46e84df1e38e0395fa``. The expected numbers below
are copied from the notebook's stored outputs; the settings are read from
the code of each cell, not from what it prints:

* every run has ``NOTEBOOK_STEPS = 10⁴ + 1`` updates (cell 5: two phases);
* a notebook 1-SAM ρ is our ρ/2, n-SAM and step sizes carry over
  ([rho-notebook] in ``docs/conventions.md``);
* cell 4 passes ``gamma_sgd`` to ``n_SAM_GD``: the variable left over from
  cell 3's loop, 10/d, not the cell's own 15/d;
* cell 5 prints ``rho`` = 0.9 (left over from cell 4), but runs 1-SAM at
  ρ = 10.0 (ERM → 1-SAM) and 0.175 (1-SAM → ERM), at γ = 1/d;
* cell 3's two SGD runs (``diag_nets.SGD``: one example per update, drawn by
  ``np.random.randint(n)`` from the global generator) take their examples
  from the stream that ``dln_reference.notebook_sgd_indices`` replays, and
  ``train.run`` trains on them through ``batch_indices``. The kernel had
  made 5 × 10 001 such draws after cell 0 before cell 3's runs
  (``SGD_RUNS_BEFORE_CELL_3``, found by search: see there).

Agreement. The notebook computes in float64 with NumPy; we compute the same
iterations in float64 with XLA, which sums in another order. Of the 38
finite printed numbers, 36 agree to a relative 2e-14 (measured). The other
two are the 1-SAM runs whose test loss is ~1e-8, close to 1-SAM's stability
limit, where round-off of order 1e-16 is amplified along 10⁴ steps: they
agree to 3e-15 absolute (relative 5e-7). Hence the tolerance
``|ours − printed| ≤ 1e-12·printed + 1e-14``.

Cell 7 prints nothing; its plot is stored as SVG, whose path coordinates
(6 decimals) were copied into ``tests/data/diag_nets_sam_cell7.json``
together with the axis ticks. They resolve a loss of 0.02/33.6 px·1e-6 ≈ 6e-10.

Conventions: [rho-notebook], [rho-sam], [m], [record], [float].
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import dln_switching
from samtheory import figures, sam, train
from samtheory.models import dln
from samtheory.models import dln_reference
from samtheory.models.dln_reference import (
    NOTEBOOK_SIZES,
    NOTEBOOK_STEPS,
    SGD_RUNS_BEFORE_CELL_3,
    notebook_problem,
    notebook_sgd_indices,
    rho_from_notebook,
)

D = 30
RTOL, ATOL = 1e-12, 1e-14

# (cell, variant, step size × d, u₀, notebook ρ, printed test loss)
PRINTED = [
    (1, "erm", 5, 0.1, None, 0.015056044189449159),
    (1, "n_sam", 5, 0.1, 0.01, 0.015143589149560101),
    (1, "n_sam", 5, 0.1, 0.03, 0.01532189739609112),
    (1, "n_sam", 5, 0.1, 0.1, 0.01598195225147282),
    (1, "n_sam", 5, 0.1, 0.3, 0.018241642036376265),
    (1, "n_sam", 5, 0.1, 1.0, 0.03606494489010675),
    (2, "erm", 5, 0.02, None, 0.0006337885714222886),
    (2, "one_sam", 5, 0.02, 0.01, 0.0004663830742908966),
    (2, "one_sam", 5, 0.02, 0.03, 0.00023853572282255735),
    (2, "one_sam", 5, 0.02, 0.1, 1.5396958089444108e-05),
    (2, "one_sam", 5, 0.02, 0.3, 0.024183218285324055),
    (3, "erm", 10, 0.1, None, 0.015747762611708224),
    (3, "one_sam", 10, 0.1, 0.03, 0.009127933293039658),
    (3, "one_sam", 10, 0.1, 0.1, 0.0015235412218010903),
    (3, "one_sam", 10, 0.1, 0.15, 0.00025260386614471894),
    (3, "one_sam", 10, 0.1, 0.2, 1.5622244035909675e-05),
    (3, "one_sam", 10, 0.1, 0.3, 1.316634050881677e-08),
    (4, "erm", 15, 0.1, None, 0.016445781003091926),
    # cell 4's n-SAM runs use the leftover gamma_sgd = 10/d
    (4, "n_sam", 10, 0.1, 0.001, 0.015756677115280553),
    (4, "n_sam", 10, 0.1, 0.003, 0.015774538224235406),
    (4, "n_sam", 10, 0.1, 0.01, 0.01583739124793595),
    (4, "n_sam", 10, 0.1, 0.03, 0.016019930687941112),
    (4, "n_sam", 10, 0.1, 0.1, 0.016695513663723727),
    (4, "n_sam", 10, 0.1, 0.3, 0.019007119935097728),
    (4, "n_sam", 10, 0.1, 0.9, 0.032812027137658364),
    (4, "one_sam", 15, 0.1, 0.001, 0.016174901502986682),
    (4, "one_sam", 15, 0.1, 0.003, 0.015641003537756094),
    (4, "one_sam", 15, 0.1, 0.01, 0.013855445463941646),
    (4, "one_sam", 15, 0.1, 0.03, 0.009469059057662111),
    (4, "one_sam", 15, 0.1, 0.1, 0.0015339774886805526),
    (4, "one_sam", 15, 0.1, 0.3, 6.350068450874803e-09),
]
DIVERGENT = (4, "one_sam", 15, 0.1, 0.9)  # prints "test loss nan"
# The same n-SAM run at the cell's own 15/d: it must NOT give the printed number.
CELL4_OWN_STEP = (4, "n_sam", 15, 0.1, 0.1)

# Cell 3's SGD runs (u₀ = 0.1), in print order: (step size, printed test loss).
# The step sizes as the cell computes them: np.array([gamma / 3, gamma]) with gamma = 10 / d.
CELL3_SGD = [((10 / D) / 3, 0.00917508147156238), (10 / D, 0.002480534609648869)]

# Cell 5 (γ = 1/d, u₀ = 0.1), in print order.
CELL5 = {
    "erm_two_phases": 0.014602323023706629,
    "erm_one_phase": 0.014865600195083558,
    "erm_to_sam": 0.00014269229669575567,
    "one_sam_one_phase": 0.0001245758657536336,
    "sam_to_erm": 9.834845199886545e-05,
}


def _id(row) -> str:
    cell, name, step, c, rho = row[:5]
    return f"cell{cell}-{name}-step{step}/d-u0={c:g}" + ("" if rho is None else f"-rho={rho:g}")


def _close(ours: float, printed: float) -> bool:
    return abs(ours - printed) <= RTOL * abs(printed) + ATOL


@pytest.fixture(scope="module")
def problem():
    return notebook_problem()


@pytest.fixture(scope="module")
def cells_1_to_4(problem):
    """All runs of cells 1–4 in one compiled call: one vmap per variant over (step, u₀, ρ)."""
    rows = {name: [r for r in PRINTED + [DIVERGENT, CELL4_OWN_STEP] if r[1] == name] for name in ("erm", "n_sam", "one_sam")}

    def one(name, lr, c, rho):
        variant = {"erm": sam.ERM(), "n_sam": sam.SAM(rho, normalize=False),
                   "one_sam": sam.SAM(rho, m=1, normalize=False)}[name]
        return train.run(dln.loss_uv, dln.init_uv(D, c), problem.train, variant=variant, num_steps=NOTEBOOK_STEPS,
                         learning_rate=lr, record_steps=np.array([NOTEBOOK_STEPS]),
                         metrics_fn=lambda p: {"test": dln.loss_uv(p, problem.test)})

    def table(name):
        rho = lambda r: 0.0 if r[4] is None else rho_from_notebook(name, r[4])
        return jnp.asarray([(r[2] / D, r[3], rho(r)) for r in rows[name]])

    @jax.jit
    def all_runs(tables):
        return {name: jax.vmap(lambda a, name=name: one(name, *a))(t) for name, t in tables.items()}

    results = all_runs({name: table(name) for name in rows})
    by_row = {}
    for name, result in results.items():
        for i, row in enumerate(rows[name]):
            by_row[row[:5]] = jax.tree.map(lambda x, i=i: x[i], result)
    return by_row


@pytest.mark.parametrize("row", PRINTED, ids=_id)
def test_cells_1_to_4_printed_test_loss(cells_1_to_4, row):
    result = train.check_finite(cells_1_to_4[row[:5]])
    ours = float(result.metrics["test"][-1])
    assert _close(ours, row[5]), f"{_id(row)}: ours {ours!r}, notebook {row[5]!r}"


def test_cell_4_uses_the_leftover_step_for_n_sam(cells_1_to_4):
    """At the cell's own 15/d, n-SAM at ρ = 0.1 gives another number than the printed one: the 10/d matters."""
    printed = next(r[5] for r in PRINTED if r[:5] == (4, "n_sam", 10, 0.1, 0.1))
    ours = float(cells_1_to_4[CELL4_OWN_STEP].metrics["test"][-1])
    assert abs(ours - printed) > 1e-3 * printed


def test_cell_4_divergent_one_sam_is_flagged_at_the_step_the_notebook_loop_overflows(cells_1_to_4, problem):
    """Notebook 1-SAM ρ = 0.9 (ours 1.8) at 15/d prints NaN; ``check_finite`` names the step.

    The step is cross-checked against the notebook's own per-example loop
    (``one_SAM_GD``), replayed in NumPy until its iterate is non-finite.
    """
    result = cells_1_to_4[DIVERGENT]
    assert np.isnan(float(result.metrics["test"][-1]))
    x, y = (np.asarray(problem.train[k]) for k in ("x", "y"))
    u, v, gamma, rho = np.full(D, 0.1), np.zeros(D), 15 / D, 0.9
    step = 0
    with np.errstate(all="ignore"):
        while np.all(np.isfinite(u)) and np.all(np.isfinite(v)) and step < 100:
            r = x @ (u * v) - y
            grad_u, grad_v = np.zeros(D), np.zeros(D)
            for k in range(len(y)):
                u_k, v_k = u + 2 * rho * r[k] * x[k] * v, v + 2 * rho * r[k] * x[k] * u
                e = (x[k] * u_k * v_k).sum() - y[k]
                grad_u, grad_v = grad_u + e * v_k * x[k] / len(y), grad_v + e * u_k * x[k] / len(y)
            u, v, step = u - gamma * grad_u, v - gamma * grad_v, step + 1
    assert step < 100
    assert int(result.diverged_step) == step
    with pytest.raises(train.DivergenceError, match=rf"at step {step}\b"):
        train.check_finite(result)


@pytest.fixture(scope="module")
def cell_3_sgd(problem):
    """Final test losses of SGD (ERM, one example per update) at places in the notebook's stream.

    Rows: cell 3's two runs at their place (after ``SGD_RUNS_BEFORE_CELL_3``
    runs' worth of draws), then each step size one run too early and one run
    too late. One compiled call.
    """
    skips = [SGD_RUNS_BEFORE_CELL_3 - 1, SGD_RUNS_BEFORE_CELL_3, SGD_RUNS_BEFORE_CELL_3 + 1,
             SGD_RUNS_BEFORE_CELL_3 + 2]
    stream = notebook_sgd_indices(runs=len(skips), skip_runs=skips[0])
    at = lambda skip: stream[skip - skips[0]]  # noqa: E731
    (lr_small, _), (lr_large, _) = CELL3_SGD
    # (step size, run) pairs: the notebook's two, then the offsets that must not match
    rows = [(lr_small, SGD_RUNS_BEFORE_CELL_3), (lr_large, SGD_RUNS_BEFORE_CELL_3 + 1),
            (lr_small, SGD_RUNS_BEFORE_CELL_3 - 1), (lr_small, SGD_RUNS_BEFORE_CELL_3 + 1),
            (lr_large, SGD_RUNS_BEFORE_CELL_3), (lr_large, SGD_RUNS_BEFORE_CELL_3 + 2)]

    @jax.jit
    def runs(lrs, indices):
        one = lambda lr, idx: train.run(  # noqa: E731
            dln.loss_uv, dln.init_uv(D, 0.1), problem.train, variant=sam.ERM(), num_steps=NOTEBOOK_STEPS,
            learning_rate=lr, batch_indices=idx, record_steps=np.array([NOTEBOOK_STEPS]),
            metrics_fn=lambda p: {"test": dln.loss_uv(p, problem.test)})
        return jax.vmap(one)(lrs, indices)

    lrs, indices = jnp.asarray([r[0] for r in rows]), jnp.asarray(np.stack([at(r[1]) for r in rows]))
    result = train.check_finite(runs(lrs, indices))
    return np.asarray(result.metrics["test"][:, -1])


def test_cell_3_sgd_printed_test_losses(cell_3_sgd):
    """Cell 3: ``SGD`` at γ = 10/(3d), then at γ = 10/d, u₀ = 0.1, one example per update.

    ``diag_nets.SGD`` updates with ``∇(½ r_i²)`` of one example ``i =
    np.random.randint(n)`` drawn from the global generator, which is ERM on
    ``dln.loss_uv`` with a batch of one, at the same step. The second run
    takes the draws after the first's, so it checks the stream independently
    of the search that found ``SGD_RUNS_BEFORE_CELL_3``.
    """
    for (lr, printed), ours in zip(CELL3_SGD, cell_3_sgd[:2]):
        assert _close(float(ours), printed), f"cell 3 SGD (gamma={lr:.3f}): ours {ours!r}, notebook {printed!r}"


def test_cell_3_sgd_needs_the_notebook_s_place_in_the_stream(cell_3_sgd):
    """One SGD run earlier or later in the generator's stream gives another number than the printed one."""
    printed = [CELL3_SGD[0][1]] * 2 + [CELL3_SGD[1][1]] * 2
    for ours, p in zip(cell_3_sgd[2:], printed):
        assert abs(ours - p) > 1e-3 * p


def test_sgd_stream_is_the_notebook_s_scalar_randint_calls():
    """A vector ``randint`` draw is the stream of the notebook's scalar calls, after cell 0's draws."""
    rng = dln_reference._after_cell_0(**NOTEBOOK_SIZES)[0]
    scalar = [rng.randint(NOTEBOOK_SIZES["n"]) for _ in range(2 * NOTEBOOK_STEPS)]
    indices = notebook_sgd_indices(runs=2, skip_runs=0)
    assert indices.shape == (2, NOTEBOOK_STEPS, 1)
    np.testing.assert_array_equal(indices.reshape(-1), scalar)
    np.testing.assert_array_equal(notebook_sgd_indices(runs=1, skip_runs=1)[0], indices[1])
    with pytest.raises(ValueError, match="^runs must"):
        notebook_sgd_indices(runs=0)
    with pytest.raises(ValueError, match="skip_runs"):
        notebook_sgd_indices(skip_runs=-1)


# Cells 5 and 7 compile three more training loops (about 15 s on a contended 2-core machine): slow.
@pytest.fixture(scope="module")
def cell_5_and_7(problem):
    return dln_switching.notebook_cells(dln_switching.config(quick=False), problem)


@pytest.mark.slow
def test_cell_5_fine_tuning_and_switching_printed_test_losses(cell_5_and_7):
    """ERM → 1-SAM at notebook ρ = 10 (ours 20) after a converged ERM phase; 1-SAM at 0.175 (ours 0.35) → ERM."""
    cfg = dln_switching.config(quick=False)
    assert cfg.step_size_times_d == 1.0 and cfg.init_scale == 0.1 and cfg.phase_steps == NOTEBOOK_STEPS
    assert cfg.rho_erm_to_sam == rho_from_notebook("one_sam", 10.0)
    assert cfg.rho_sam_to_erm == rho_from_notebook("one_sam", 0.175)
    at = lambda name, step: float(
        cell_5_and_7[name].metrics["test"][np.asarray(cell_5_and_7[name].steps).tolist().index(step)])
    ours = {
        "erm_two_phases": at("erm", 2 * NOTEBOOK_STEPS),
        "erm_one_phase": at("erm", NOTEBOOK_STEPS),
        "erm_to_sam": at("erm_to_sam", 2 * NOTEBOOK_STEPS),
        "one_sam_one_phase": at("sam_to_erm", NOTEBOOK_STEPS),
        "sam_to_erm": at("sam_to_erm", 2 * NOTEBOOK_STEPS),
    }
    for key, printed in CELL5.items():
        assert _close(ours[key], printed), f"cell 5 {key}: ours {ours[key]!r}, notebook {printed!r}"
    # The point of the cell: late fine-tuning with 1-SAM cuts ERM's test loss 100-fold.
    assert ours["erm_one_phase"] / ours["erm_to_sam"] > 100


@pytest.mark.slow
def test_cell_5_erm_to_one_sam_ends_on_a_two_cycle_not_an_interpolator(cell_5_and_7):
    """The fine-tuned point is not a minimizer: its train loss alternates from step to step, above ERM's."""
    run = cell_5_and_7["erm_to_sam"]
    train_loss = np.asarray(run.metrics["train"])
    last, previous = train_loss[-1], train_loss[-2]
    assert np.asarray(run.steps[-2:]).tolist() == [2 * NOTEBOOK_STEPS - 1, 2 * NOTEBOOK_STEPS]
    assert abs(last - previous) > 0.05 * last
    assert min(last, previous) > 10 * float(cell_5_and_7["erm"].metrics["train"][-1])


@pytest.mark.slow
def test_cell_7_interpolation_matches_the_notebook_plot(cell_5_and_7):
    """Train and test loss along ``(1 − α) w_{ERM→1SAM} + α w_ERM`` against the notebook's plotted SVG paths."""
    fixture = json.loads((pathlib.Path(__file__).parent / "data" / "diag_nets_sam_cell7.json").read_text())
    to_data = lambda ticks: np.polyfit([t[1] for t in ticks], [t[0] for t in ticks], 1)
    fx, fy = to_data(fixture["x_ticks"]), to_data(fixture["y_ticks"])
    for key, path in (("interp_test", "test_loss_path"), ("interp_train", "train_loss_path")):
        pixels = np.asarray(fixture[path])
        np.testing.assert_allclose(np.polyval(fx, pixels[:, 0]), cell_5_and_7["interp_alpha"], atol=1e-8)
        np.testing.assert_allclose(cell_5_and_7[key], np.polyval(fy, pixels[:, 1]), rtol=0, atol=2e-9, err_msg=key)
    # np.linspace(-1, 2, 100) holds 0 and 1 exactly (the notebook selects them with ==).
    j0, j1 = (int(np.flatnonzero(cell_5_and_7["interp_alpha"] == a)[0]) for a in (0.0, 1.0))
    assert abs(cell_5_and_7["interp_test"][j0] - np.polyval(fy, fixture["star_alpha0"][1])) < 2e-9
    assert abs(cell_5_and_7["interp_test"][j1] - np.polyval(fy, fixture["circle_alpha1"][1])) < 2e-9
    # Ends of the path are the cell-5 runs.
    assert _close(float(cell_5_and_7["interp_test"][j0]), CELL5["erm_to_sam"])
    assert _close(float(cell_5_and_7["interp_test"][j1]), CELL5["erm_one_phase"])


def test_notebook_problem_is_the_notebooks_draw_and_checks_its_arguments():
    p = notebook_problem()
    assert p.train["x"].shape == (20, 30) and p.test["x"].shape == (1000, 30)
    beta = np.asarray(p.beta_star)
    assert np.count_nonzero(beta) == 3 and np.all(beta[:3] > 0) and abs(np.linalg.norm(beta) - 1) < 1e-15
    np.testing.assert_array_equal(np.asarray(p.train["y"]), np.asarray(p.train["x"]) @ beta)
    with pytest.raises(ValueError, match="k must be <= d"):
        notebook_problem(k=31)
    with pytest.raises(ValueError, match="n_test"):
        notebook_problem(n_test=0)
    with pytest.raises(ValueError, match="variant"):
        rho_from_notebook("m_sam", 0.1)
    assert rho_from_notebook("one_sam", 0.1) == 0.2 and rho_from_notebook("n_sam", 0.1) == 0.1


@pytest.mark.slow
def test_quick_switching_figure_runs_through_the_pipeline(tmp_path):
    """run, plot and summary of ``dln_switching`` on its quick config (about 15 s contended)."""
    record = figures.run_figure(dln_switching, quick=True, out_dir=tmp_path / "figs", cache_dir=tmp_path / "cache")
    assert record.png.exists() and record.pdf.exists()
    cfg = dln_switching.config(quick=True)
    # The notebook-protocol runs in the figure are the grid's cells at the notebook's (k, rho).
    i = list(cfg.switch_steps).index(cfg.phase_steps)
    j = list(cfg.erm_to_sam_rhos).index(cfg.rho_erm_to_sam)
    assert record.result["grid_erm_to_sam_test"][i, j] == record.result["erm_to_sam_test"][-1]
    assert record.summary["erm_to_sam_test"] == record.result["erm_to_sam_test"][-1]
