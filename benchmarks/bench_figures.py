"""Wall time of every paper figure, split into compiling and running, cold and warm, quick and full (issue 15).

For each figure and each selected configuration (``--quick`` configs, full
configs, or both), two fresh processes make the figure with
:func:`samtheory.figures.run_figure` (``force``: ``run`` always runs):

* **cold**: empty result cache and empty JAX compilation cache;
* **warm**: the result file deleted, JAX's persistent compilation cache of
  the cold process kept (``<cache>/jax``, as ``samtheory figures`` keeps it):
  what a rerun after a change to this figure costs.

In each process, JAX's monitoring events give the time spent turning Python
into executables while ``run`` runs: the union of the time spans of tracing,
lowering to MLIR and the XLA backend step (a compile, or a load from the
persistent cache on a warm run), nested spans counted once. Reported per
run, in seconds:

* ``process_s``: the whole process (interpreter, imports, run, plot, save);
* ``setup_s``: imports and loading the module, before ``run``;
* ``run_s``: ``run()`` (as the manifest's ``run_s``);
* ``compile_s``: JAX compile work inside ``run`` (trace + lower + XLA);
  ``xla_s`` its XLA part, the part the persistent cache removes;
* ``execute_s`` = ``run_s - compile_s``: running compiled code, data
  generation and Python;
* ``plot_s``: ``plot`` and saving PNG/PDF;
* ``xla_compiles``/``cache_hits``: executables compiled or loaded.

``--end-to-end`` also times the command a reader runs, ``python -m
samtheory.cli figures [--quick] NAMES`` (one process for all figures, cold
caches), then again with the results deleted and the compile cache kept.

Results are merged into ``benchmarks/results/bench_figures.json`` (atomic;
each entry carries its provenance: git commit and dirty flag, versions,
machine, load average), so figures can be measured separately. The machine
may be shared with other work: the load average at start and end of each
measurement is recorded with it.

    python3 benchmarks/bench_figures.py --quick                 # every figure, quick configs
    python3 benchmarks/bench_figures.py --full NAME [NAME ...]  # full configs of a few figures
    python3 benchmarks/bench_figures.py --quick --end-to-end    # and the whole command
    python3 benchmarks/bench_figures.py --list                  # names

The full configs of all figures take well over 30 minutes on 2 cores; pick
figures with ``--full NAME ...``.

Conventions: [float] (the child turns float64 on, as the CLI does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_figures.json"
_CHILD_TAG = "BENCH_FIGURES_CHILD:"
_E2E_KEY = "end_to_end"

# JAX's monitoring events around turning a traced function into an executable.
_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_XLA_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def _union_length(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of time intervals (nested or overlapping spans counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


# --------------------------------------------------------------------------
# Child: one figure in one process
# --------------------------------------------------------------------------


def _child(name: str, quick: bool, cache_dir: Path, out_dir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import samtheory

    samtheory.enable_float64()
    import jax
    import matplotlib

    matplotlib.use("Agg")
    from samtheory import figures
    from samtheory.cli import figure_registry

    spans: dict[str, list[tuple[float, float]]] = {_TRACE_EVENT: [], _LOWER_EVENT: [], _XLA_EVENT: []}
    xla_by_program: list[tuple[float, float, str]] = []  # (start, end, program name)
    hits = [0]

    def on_span(event: str, start_time: float, end_time: float, **kwargs: Any) -> None:
        if event in spans:
            spans[event].append((start_time, end_time))
        if event == _XLA_EVENT:
            xla_by_program.append((start_time, end_time, str(kwargs.get("fun_name"))))

    def on_event(event: str, **kwargs: Any) -> None:
        if event == _CACHE_HIT_EVENT:
            hits[0] += 1

    jax.monitoring.register_event_time_span_listener(on_span)
    jax.monitoring.register_event_listener(on_event)

    module = figures.load_figure_module(name, figure_registry(ROOT))
    window: dict[str, float] = {}
    computing = module.run

    def timed_run(config: Any, progress: Any) -> Any:
        window["start"] = time.time()
        try:
            return computing(config, progress)
        finally:
            window["end"] = time.time()

    module.run = timed_run
    setup_s = time.perf_counter() - start
    with figures.persistent_compilation_cache(cache_dir, figure=name):  # the folder samtheory figures uses
        try:
            record = figures.run_figure(module, quick=quick, out_dir=out_dir, cache_dir=cache_dir, force=True)
        except figures.FigureUnavailable as why:
            return {"skipped": str(why)}

    def inside(event: str) -> list[tuple[float, float]]:
        return [(a, b) for a, b in spans[event] if a >= window["start"] and b <= window["end"]]

    compile_s = _union_length(inside(_TRACE_EVENT) + inside(_LOWER_EVENT) + inside(_XLA_EVENT))
    return {
        # The tree this process ran (the parent's stamp is read once, and the tree may change during a long run).
        "git": record.provenance.get("git"),
        "setup_s": setup_s,
        "run_s": record.run_s,
        "compile_s": compile_s,
        "xla_s": _union_length(inside(_XLA_EVENT)),
        "execute_s": record.run_s - compile_s,
        "plot_s": record.plot_s,
        "xla_compiles": len(inside(_XLA_EVENT)) - hits[0],
        "cache_hits": hits[0],
        # Where the XLA time goes: the slowest programs (compiled, or loaded on a warm run).
        "slowest_xla": [[name, round(b - a, 3)] for a, b, name in sorted(
            (s for s in xla_by_program if s[0] >= window["start"] and s[1] <= window["end"]),
            key=lambda s: s[0] - s[1])[:5]],
    }


# --------------------------------------------------------------------------
# Parent: processes, caches, the JSON file
# --------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the bench decides where compiled programs go
    return env


def _host() -> dict[str, Any]:
    """The machine, without hostname or user: CPU model, core count, memory, load average."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": model or platform.processor() or None, "cpus": os.cpu_count(), "memory_gib": memory_gib,
            "system": platform.system(), "machine": platform.machine()}


def _run_child(name: str, quick: bool, cache_dir: Path, out_dir: Path, timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--cache-dir", str(cache_dir),
               "--out-dir", str(out_dir)] + (["--quick"] if quick else [])
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s", "process_s": time.perf_counter() - start}
    process_s = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(_CHILD_TAG)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail), "process_s": process_s}
    measured = json.loads(lines[-1].removeprefix(_CHILD_TAG))
    return {"process_s": process_s, **measured, "loadavg_1min": [load_start, os.getloadavg()[0]]}


def _bench_figure(name: str, quick: bool, scratch: Path, timeout_s: float) -> dict[str, Any]:
    cache, out = scratch / f"{name}-{'quick' if quick else 'full'}" / "cache", scratch / "out"
    shutil.rmtree(cache.parent, ignore_errors=True)
    cold = _run_child(name, quick, cache, out, timeout_s)
    if "error" in cold or "skipped" in cold:
        return {"cold": cold}
    for result_file in cache.glob("*.npz"):
        result_file.unlink()  # warm: recompute the result, compiled programs kept
    warm = _run_child(name, quick, cache, out, timeout_s)
    return {"cold": cold, "warm": warm}


def _end_to_end(names: list[str], quick: bool, scratch: Path, timeout_s: float) -> dict[str, Any]:
    cache, out = scratch / "e2e" / "cache", scratch / "e2e" / "out"
    shutil.rmtree(scratch / "e2e", ignore_errors=True)
    command = [sys.executable, "-m", "samtheory.cli", "figures", *names, "--cache-dir", str(cache), "--out", str(out)]
    command += ["--quick"] if quick else []
    measured: dict[str, Any] = {"command": "samtheory figures " + " ".join(command[4:])}
    for kind in ("cold", "warm"):
        if kind == "warm":
            for result_file in cache.glob("*.npz"):
                result_file.unlink()
        load_start = os.getloadavg()[0]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout_s)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        wall = time.perf_counter() - start
        manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
        measured[kind] = {
            "process_s": wall,
            "exit": code,
            "run_s": {n: e["runtime"]["run_s"] for n, e in manifest.items() if n in names or not names},
            "plot_s": {n: e["runtime"]["plot_s"] for n, e in manifest.items() if n in names or not names},
            "loadavg_1min": [load_start, os.getloadavg()[0]],
        }
        print(f"end to end ({'quick' if quick else 'full'}, {kind}): {wall:.1f} s, exit {code}", flush=True)
    return measured


def _stamp() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from samtheory.results import provenance

    return {"provenance": provenance(), "host": _host(), "utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _fmt(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return f"ERROR {entry['error']}"
    if "skipped" in entry:
        return f"skipped ({entry['skipped'][:60]})"
    return (f"process {entry['process_s']:6.1f}  run {entry['run_s']:6.1f} = compile {entry['compile_s']:5.1f}"
            f" (xla {entry['xla_s']:5.1f}) + execute {entry['execute_s']:5.1f}  plot {entry['plot_s']:4.1f}"
            f"  [{entry['xla_compiles']} compiled, {entry['cache_hits']} loaded]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="figures (default: all registered)")
    parser.add_argument("--quick", action="store_true", help="measure the quick configs")
    parser.add_argument("--full", action="store_true", help="measure the full configs (slow: name figures)")
    parser.add_argument("--end-to-end", action="store_true", help="also time `samtheory figures` over NAMES")
    parser.add_argument("--no-per-figure", action="store_true", help="skip the per-figure processes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per process (default 3600)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--list", action="store_true", help="list the figure names and exit")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(_CHILD_TAG + json.dumps(_child(args.child, args.quick, args.cache_dir, args.out_dir)), flush=True)
        return 0
    sys.path.insert(0, str(ROOT))
    from samtheory.cli import figure_registry
    from samtheory.figure_registry import resolve_figure_names
    from samtheory.results import atomic_update_json

    registry = figure_registry(ROOT)
    names = list(resolve_figure_names(args.names, registry))
    if args.list:
        print("\n".join(names))
        return 0
    configs = [kind for kind, wanted in (("quick", args.quick), ("full", args.full)) if wanted]
    if not configs:
        parser.error("choose --quick and/or --full")

    def save(section: str, name: str, kind: str, entry: dict[str, Any]) -> None:
        def put(report: dict[str, Any]) -> dict[str, Any]:
            report["description"] = __doc__.split("\n\n")[0]
            report.setdefault(section, {}).setdefault(name, {})[kind] = entry
            return report

        atomic_update_json(args.out, put)

    with tempfile.TemporaryDirectory(prefix="bench-figures-") as tmp:
        scratch = Path(tmp)
        for kind in configs:
            if not args.no_per_figure:
                for name in names:
                    measured = _bench_figure(name, kind == "quick", scratch, args.timeout)
                    save("figures", name, kind, {**measured, **_stamp()})
                    for temperature, entry in measured.items():
                        print(f"{name:<26} {kind:<5} {temperature:<4} {_fmt(entry)}", flush=True)
            if args.end_to_end:
                measured = _end_to_end(list(args.names), kind == "quick", scratch, args.timeout)
                save(_E2E_KEY, "all" if not args.names else ",".join(args.names), kind, {**measured, **_stamp()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
