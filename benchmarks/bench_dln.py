"""Speed of the compiled engine on the paper's diagonal-network setup, against NumPy baselines.

Setup (Andriushchenko & Flammarion 2022, the DLN figure): n = 20, d = 30,
``β = u⊙v``, ``u₀ = 0.1``, ``v₀ = 0``, GD step 15/d, 10⁴ steps, unnormalized
1-SAM at our ρ = 0.2.

Measured in one process, after compilation, as the median of repeats:

* ``numpy_loop_notebook_style``: a Python loop over steps and, for 1-SAM,
  over examples, with the reference notebook's bookkeeping (``i in
  iters_loss`` on a NumPy array every step, train and test loss recorded on
  its ~700-step schedule); compared with our engine recording the same
  losses on the same schedule;
* ``numpy_loop``: the same loop without bookkeeping (a leaner baseline
  than the notebook);
* ``numpy_vectorized``: a Python loop over steps, examples vectorized;
* ``samtheory``: :func:`samtheory.train.run` under ``jax.jit`` (one
  ``lax.scan``/``fori_loop`` program), recording only the final step, and
  again with 60 log-spaced records as the figure uses;
* ``grid``: the whole 7-ρ × {ERM, n-SAM, 1-SAM} grid in one compiled,
  vmapped call.

The implementations are checked against each other (final β) before timing.
Ratios are computed within this process; absolute CPU times are informative only.

Run: ``python benchmarks/bench_dln.py [--loop-steps N] [--repeats R]``.
Results go to ``benchmarks/results/bench_dln.json`` (atomic, with provenance).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import samtheory

samtheory.enable_float64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from samtheory.models.dln_reference import notebook_problem  # noqa: E402
from samtheory import sam, train  # noqa: E402
from samtheory.models import dln  # noqa: E402
from samtheory.results import atomic_write_json, provenance  # noqa: E402

N, D, K = 20, 30, 3
LR = 15.0 / D
RHO = 0.2
STEPS = 10_000
RHOS = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3)


def _loop_step_one_sam(x, y, u, v, lr, rho):
    """One 1-SAM step, unnormalized, looping over examples in Python: ε_k = ρ ∇(½ r_k²)."""
    n = x.shape[0]
    r = x @ (u * v) - y
    grad_u = np.zeros_like(u)
    grad_v = np.zeros_like(v)
    for k in range(n):
        u_k = u + rho * r[k] * x[k] * v
        v_k = v + rho * r[k] * x[k] * u
        r_k = x[k] @ (u_k * v_k) - y[k]
        grad_u += r_k * x[k] * v_k / n
        grad_v += r_k * x[k] * u_k / n
    return u - lr * grad_u, v - lr * grad_v


def numpy_loop_one_sam(x, y, u, v, lr, rho, steps):
    """1-SAM with Python loops over steps and examples, no bookkeeping."""
    for _ in range(steps):
        u, v = _loop_step_one_sam(x, y, u, v, lr, rho)
    return u * v


def notebook_record_steps(steps=STEPS):
    """The notebook's recording schedule: every step below 500, then 201 log-spaced ones."""
    first = np.arange(500)
    log = np.round(np.logspace(0, np.log10(steps), 201)).astype(int)
    return np.unique(np.concatenate([first, log]))


def numpy_loop_one_sam_notebook_style(x, y, x_test, y_test, u, v, lr, rho, steps, record):
    """:func:`numpy_loop_one_sam` plus the notebook's bookkeeping.

    As in the reference notebook, each step tests ``i in record`` against a
    NumPy array and, at those steps, appends train and test losses.
    """
    train_losses, test_losses = [], []
    for i in range(steps):
        u, v = _loop_step_one_sam(x, y, u, v, lr, rho)
        if i in record:
            train_losses.append(np.sum((x @ (u * v) - y) ** 2) / (2 * x.shape[0]))
            test_losses.append(np.sum((x_test @ (u * v) - y_test) ** 2) / (2 * x_test.shape[0]))
    return u * v, train_losses, test_losses


def numpy_vectorized_one_sam(x, y, u, v, lr, rho, steps):
    """The same iteration with the per-example perturbations as (n, d) arrays."""
    for _ in range(steps):
        r = x @ (u * v) - y
        u_k = u + rho * (r[:, None] * x) * v  # row k: u perturbed for example k
        v_k = v + rho * (r[:, None] * x) * u
        r_k = np.einsum("kd,kd->k", x, u_k * v_k) - y
        grad_u = np.mean(r_k[:, None] * x * v_k, axis=0)
        grad_v = np.mean(r_k[:, None] * x * u_k, axis=0)
        u, v = u - lr * grad_u, v - lr * grad_v
    return u * v


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-steps", type=int, default=STEPS,
                        help="steps for the NumPy per-step loop (its time is scaled linearly to 10^4)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results" / "bench_dln.json")
    args = parser.parse_args(argv)

    problem = notebook_problem(N, D, K, 1000)
    data, test = problem.train, problem.test
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    nb_record = notebook_record_steps()
    nb_record = nb_record[nb_record < STEPS]  # loop index i records after update i + 1
    u0, v0 = np.full(D, 0.1), np.zeros(D)
    params0 = dln.init_uv(D, 0.1)

    def engine(variant, record_steps):
        return train.run(dln.loss_uv, params0, data, variant=variant, num_steps=STEPS,
                         learning_rate=LR, record_steps=record_steps)

    one_sam = sam.SAM(RHO, m=1, normalize=False)
    final_only = np.array([STEPS])
    run_final = jax.jit(lambda rho: engine(sam.SAM(rho, m=1, normalize=False), final_only).params)
    run_logged = jax.jit(lambda rho: engine(sam.SAM(rho, m=1, normalize=False), train.log_steps(STEPS, 60)).metrics)
    # Same bookkeeping as the notebook: train and test loss after each step in its schedule.
    run_notebook_records = jax.jit(lambda rho: train.run(
        dln.loss_uv, params0, data, variant=sam.SAM(rho, m=1, normalize=False), num_steps=STEPS,
        learning_rate=LR, record_steps=nb_record + 1,
        metrics_fn=lambda p: {"train": dln.loss_uv(p, data), "test": dln.loss_uv(p, test)},
    ).metrics)

    @jax.jit
    def grid(rhos):
        out = {}
        for name, make in [("erm", lambda r: sam.ERM()),
                           ("n_sam", lambda r: sam.SAM(r, normalize=False)),
                           ("one_sam", lambda r: sam.SAM(r, m=1, normalize=False))]:
            out[name] = jax.vmap(lambda r: engine(make(r), final_only).metrics["loss"])(rhos)
        return out

    # Correctness first: the three implementations agree (short runs to keep the loop cheap).
    check_steps = 200
    beta_loop = numpy_loop_one_sam(x, y, u0, v0, LR, RHO, check_steps)
    beta_vec = numpy_vectorized_one_sam(x, y, u0, v0, LR, RHO, check_steps)
    short = train.run(dln.loss_uv, params0, data, variant=one_sam, num_steps=check_steps,
                      learning_rate=LR, record_steps=np.array([check_steps]))
    np.testing.assert_allclose(beta_vec, beta_loop, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dln.beta_uv(short.params)), beta_loop, rtol=1e-9, atol=1e-12)

    rhos = jnp.asarray(RHOS)
    compile_start = time.perf_counter()
    jax.block_until_ready((run_final(RHO), run_logged(RHO), run_notebook_records(RHO), grid(rhos)))
    compile_s = time.perf_counter() - compile_start

    t_ours, params = median_time(lambda: run_final(RHO), args.repeats)
    t_logged, _ = median_time(lambda: run_logged(RHO), args.repeats)
    t_nb_ours, nb_metrics = median_time(lambda: run_notebook_records(RHO), args.repeats)
    t_grid, _ = median_time(lambda: grid(rhos), max(3, args.repeats // 4))
    t_vec, beta_vec_full = median_time(lambda: numpy_vectorized_one_sam(x, y, u0, v0, LR, RHO, STEPS), 3)
    t_loop_raw, _ = median_time(lambda: numpy_loop_one_sam(x, y, u0, v0, LR, RHO, args.loop_steps), 1)
    t_loop = t_loop_raw * STEPS / args.loop_steps
    t_nb_raw, (_, nb_train, _) = median_time(
        lambda: numpy_loop_one_sam_notebook_style(
            x, y, test_np["x"], test_np["y"], u0, v0, LR, RHO, args.loop_steps, nb_record
        ), 1)
    t_nb = t_nb_raw * STEPS / args.loop_steps
    count = len(nb_train)
    np.testing.assert_allclose(np.asarray(nb_metrics["train"])[:count], nb_train, rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(np.asarray(dln.beta_uv(params)), beta_vec_full, rtol=1e-8, atol=1e-12)

    report = {
        "setup": {"n": N, "d": D, "lr": LR, "rho": RHO, "steps": STEPS, "grid_rhos": RHOS,
                  "loop_steps_measured": args.loop_steps, "repeats": args.repeats},
        "seconds": {
            "numpy_loop_notebook_style_one_sam_1e4": t_nb,
            "numpy_loop_one_sam_1e4": t_loop,
            "numpy_vectorized_one_sam_1e4": t_vec,
            "samtheory_one_sam_1e4_final_only": t_ours,
            "samtheory_one_sam_1e4_60_records": t_logged,
            "samtheory_one_sam_1e4_notebook_records": t_nb_ours,
            "samtheory_grid_7rho_x_3variants": t_grid,
            "samtheory_compile_all": compile_s,
        },
        "speedup": {
            "notebook_style_loop_over_samtheory_same_records": t_nb / t_nb_ours,
            "lean_loop_over_samtheory_final_only": t_loop / t_ours,
            "lean_loop_over_numpy_vectorized": t_loop / t_vec,
            "numpy_vectorized_over_samtheory_final_only": t_vec / t_ours,
        },
        "goals": {
            "one_sam_run_at_most_25ms": t_ours <= 0.025,
            "one_sam_200x_vs_notebook_style_loop": t_nb / t_nb_ours >= 200,
            "one_sam_200x_vs_lean_loop": t_loop / t_ours >= 200,
            "grid_at_most_0.5s": t_grid <= 0.5,
        },
        "provenance": provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)
    width = max(map(len, report["seconds"]))
    for key, value in report["seconds"].items():
        print(f"{key:<{width}}  {value * 1e3:10.2f} ms")
    for key, value in report["speedup"].items():
        print(f"{key:<{width}}  {value:10.1f} x")
    print(f"goals: {report['goals']}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
