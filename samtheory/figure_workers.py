"""Making figures in worker processes: ``samtheory figures --jobs N`` (:func:`samtheory.figures.run_figures`).

On a small machine most of a figure is single-threaded work, JAX tracing and
XLA compiling above all, so two figures made side by side finish sooner than
one after the other. Each worker is a fresh, *spawned* Python process (never
a fork of a process in which JAX may already run threads) that makes one
figure after another with the same function the sequential loop calls
(``figures._make_one``): same code, same config, and the caller's float
policy ([float]) and import path, so a figure computes the same numbers
whichever way it is made. The manifest is updated under its lock
(:func:`samtheory.figures.update_manifest`); each figure keeps its compiled
programs in its own folder, so no two processes write the same cache file.

Conventions: [float] (the caller's ``jax_enable_x64`` is handed to every
worker); no mathematical convention applies here.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["make_in_workers"]


def _float64_enabled() -> bool:
    """The caller's [float] setting; False if it has not imported JAX (then nothing set it)."""
    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.jax_enable_x64)


def _start_worker(path: list[str], float64: bool) -> None:
    """Give a new worker the caller's import path, float policy and the Agg backend."""
    sys.path[:] = path
    import jax
    import matplotlib

    jax.config.update("jax_enable_x64", float64)
    matplotlib.use("Agg")


def _make(name: str, verbose: bool, options: dict[str, Any]) -> tuple[str, Any]:
    """In a worker: make one figure; its progress lines (``  <name>: 40%``) go to stderr."""
    from samtheory import figures

    progress = figures._PlainProgress(name) if verbose else None

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return figures._make_one(name, progress=progress, say=say if verbose else None, **options)


def make_in_workers(
    names: Sequence[str],
    *,
    jobs: int,
    verbose: bool,
    report: Callable[[str, tuple[str, Any]], None],
    say: Callable[[str], None],
    **options: Any,
) -> None:
    """Make ``names`` in ``min(jobs, len(names))`` spawned workers, handing them out in this order.

    ``report(name, outcome)`` is called in this process as each figure ends,
    with ``("made", FigureRecord)``, ``("skipped", why)`` or ``("failed",
    traceback)``; a worker that dies (killed, out of memory) fails the
    figures it had not finished, naming the cause, and the others still run.
    ``options`` are :func:`samtheory.figures._make_one`'s keyword arguments.
    """
    context = multiprocessing.get_context("spawn")
    workers = min(jobs, len(names))
    say(f"making {len(names)} figures in {workers} processes: {', '.join(names)}")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker,
        initargs=(list(sys.path), _float64_enabled()),
    ) as pool:
        pending = {pool.submit(_make, name, verbose, options): name for name in names}
        for future in concurrent.futures.as_completed(pending):
            name = pending[future]
            try:
                outcome = future.result()
            except Exception as err:  # the worker process itself failed (BrokenProcessPool, pickling)
                outcome = ("failed", f"{type(err).__name__}: {err} (the worker process making {name} failed)\n")
            report(name, outcome)
