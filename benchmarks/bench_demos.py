"""Time per interaction of each reading-group demo, after the compile at load.

For each demo: load the notebook (``app.run()``: every cell runs once, which
compiles and warms up), then call its ``update_*`` function, the function
the page calls when a control moves, with a sequence of control settings,
and time each call (computation and drawing of the PNG). The first call of
each demo is reported apart (``first_call_s``); ``interactions_s`` are the
rest, split into ``compute_s`` (JAX, results pulled to NumPy) and ``draw_s``
(Figure → PNG) by the demo's timer (``samtheory.demo_support``), and ``cpu_s``, the
process's CPU seconds per interaction (all threads; what other sessions'
load does not inflate, unlike the wall times). JAX's compile log
is on during the interactions: ``compiles_during_interactions`` lists any
compile (there must be none). Target: every interaction ≤ 0.3 s on 2 cores.

Writes ``benchmarks/results/bench_demos.json`` (timings, load average,
provenance). The machine may be shared: the load average at start and end
is recorded next to the timings.

    python3 benchmarks/bench_demos.py [NAME ...]

Conventions: [float] (turned on by samtheory.demo_support).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the samtheory of this tree, as the demos' own imports then find it

import jax  # noqa: E402

from samtheory.results import atomic_write_json, provenance  # noqa: E402

#: demo → (update function's name, list of argument tuples = one interaction each).
INTERACTIONS: dict[str, tuple[str, list[tuple]]] = {
    "sam_2d": ("update_2d", [(x, -0.6, 0.05, 0.2, 0.05) for x in (-0.95, -0.9, -0.85, -0.8, -0.75, -0.7)]),
    "dln_implicit_bias": ("update_dln", [
        (0.05, 0.05, "one_sam", 5, False), (0.05, 0.1, "one_sam", 5, False), (0.03, 0.05, "n_sam", 5, False),
        (0.05, 0.05, "m_sam", 5, False), (0.05, 0.05, "m_sam", 2, False), (0.1, 0.0, "erm", 5, False),
        (0.05, 0.05, "one_sam", 5, True), (0.1, 0.05, "n_sam", 5, True), (0.05, 0.0, "erm", 5, True)]),
    "m_sharpness": ("update_m", [(r, m) for r in (0.05, 0.1) for m in (1, 4, 20)]),
    "sam_quadratics": ("update_quadratic", [(e, r, l) for e in (0.05, 0.1) for r in (0.1, 0.5) for l in (5.0, 15.0)]),
    "relu_kinks": ("update_relu", [(i, f, j) for i in (0, 1, 2) for f, j in ((0.05, 0.05), (0.1, 0.02))]),
    "dln_switching": ("update_switch", [(r, s) for r in (10.0, 5.0, 2.0) for s in (10001, 3000)]),
    "pac_bayes": ("update_bound", [(n, k, w, r, d) for n in (1000, 50000) for k in (1000, 100000)
                                   for w, r, d in ((10.0, 0.05, 0.05), (30.0, 0.1, 0.01))]),
    "convergence": ("update_convergence", [(s, u) for s in (0.5, 1.0, 2.0) for u in (1.0, 2.0)]),
}


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", ROOT / "demos" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


class CompileCounter(logging.Handler):
    """Counts JAX's "Compiling ..." log records (``jax_log_compiles``): an interaction must have none."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling") or "compiling" in message.lower()[:40]:
            self.messages.append(message.splitlines()[0][:200])


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def bench(name: str) -> dict:
    start = time.perf_counter()
    _, defs = load(name).run()
    load_s = time.perf_counter() - start
    fn_name, calls = INTERACTIONS[name]
    update = defs[fn_name]
    timer = update.timer
    first = time.perf_counter()
    update(*calls[0])
    first_s = time.perf_counter() - first
    counter = CompileCounter()
    jax_logger = logging.getLogger("jax")
    jax.config.update("jax_log_compiles", True)
    jax_logger.addHandler(counter)
    times, splits, cpu = [], [], []
    try:
        for args in calls[1:] + calls[:1]:
            t0, c0 = time.perf_counter(), time.process_time()
            update(*args)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            splits.append(timer.splits[-1])
    finally:
        jax_logger.removeHandler(counter)
        jax.config.update("jax_log_compiles", False)
    compute, draw = [c for c, _ in splits], [d for _, d in splits]
    return {"load_s": load_s, "first_call_s": first_s, "interactions_s": times, "max_s": max(times),
            "median_s": _median(times), "compute_s": compute, "draw_s": draw,
            "cpu_s": cpu, "cpu_median_s": _median(cpu),
            "compute_median_s": _median(compute), "draw_median_s": _median(draw),
            "compiles_during_interactions": counter.messages, "loadavg_after": os.getloadavg()}


def main(names: list[str]) -> int:
    names = names or list(INTERACTIONS)
    out = {"target_s": 0.3, "loadavg_start": os.getloadavg(), "cpus": os.cpu_count(), "demos": {}}
    for name in names:
        result = bench(name)
        out["demos"][name] = result
        print(f"{name:<20} load {result['load_s']:6.1f} s  interaction median {result['median_s']:.3f} s"
              f"  max {result['max_s']:.3f} s  (compute {result['compute_median_s']:.3f} s, draw "
              f"{result['draw_median_s']:.3f} s; CPU {result['cpu_median_s']:.3f} s; {len(result['compiles_during_interactions'])} compiles;"
              f" load average {result['loadavg_after'][0]:.1f})", flush=True)
        for message in result["compiles_during_interactions"]:
            print(f"    compiled during an interaction: {message}")
    out["loadavg_end"] = os.getloadavg()
    out["provenance"] = provenance()
    path = ROOT / "benchmarks" / "results" / "bench_demos.json"
    if len(names) < len(INTERACTIONS) and path.exists():  # a partial run updates the others' entries in place
        previous = json.loads(path.read_text())
        out["demos"] = previous.get("demos", {}) | out["demos"]
    atomic_write_json(path, out)
    print(f"load average {out['loadavg_start']} -> {out['loadavg_end']}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
