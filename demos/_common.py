"""Plumbing shared by every demo in ``demos/``: float64, the slide style, compile-once and timing.

Each demo compiles its computations once, when it loads, on fixed shapes, and
then feeds the sliders' values in as *traced* arguments, so that moving a
slider never recompiles. :func:`compile_once` does the jit and the warm-up
call; :class:`InteractionTimer` measures what an interaction costs after
that (the benchmark ``benchmarks/bench_demos.py`` and the page itself read
it).

This module is not part of the library: ``samtheory`` never imports it.
Conventions: [float] (turned on here, as at every entry point).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

# The demos use the samtheory (and experiments) of the tree they are in, whatever is installed.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax
import matplotlib

import samtheory

samtheory.enable_float64()
matplotlib.use("Agg")
# Compiled programs persist across processes (tests, reloads of a page); the first load on a
# machine still compiles everything. The folder is the figure cache's (gitignored).
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).resolve().parent.parent / ".cache" / "jax-demos"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)

from samtheory.style import SLIDE_RC, VARIANT_COLORS, VARIANT_LABELS  # noqa: E402

# Every demo draws in the slide style; ticks read rcParams when they are drawn, so set it globally
# (all demos share it, also when one server runs several of them).
matplotlib.rcParams.update(SLIDE_RC)

__all__ = [
    "REPO_ROOT", "VARIANT_COLORS", "VARIANT_LABELS", "compile_once", "figure", "show", "InteractionTimer", "timer",
    "readout",
]

#: The repository root (demos/ lives directly under it).
REPO_ROOT = Path(__file__).resolve().parent.parent


def compile_once(fn: Callable, *example_args, static_argnames=None) -> Callable:
    """``jax.jit(fn)``, called once on ``example_args`` so that the demo pays the compile at load time.

    Pass slider values as JAX scalars of the same dtype as ``example_args``
    afterwards: Python floats are traced as weak float64 scalars, so they
    reuse the compiled program too.
    """
    jitted = jax.jit(fn, static_argnames=static_argnames)
    jax.block_until_ready(jitted(*example_args))
    return jitted


def figure(width: float = 11.0, height: float = 3.8, ncols: int = 1, nrows: int = 1):
    """A ``(Figure, axes)`` pair in the slide style (``SLIDE_RC``), without pyplot's global state."""
    # Fixed margins: constrained layout costs more than the whole computation of most interactions.
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13 if nrows == 1 else 0.08, top=0.9 if nrows == 1 else 0.94,
                        wspace=0.28, hspace=0.38)
    return fig, axes.ravel() if axes.size > 1 else axes[0, 0]


class InteractionTimer:
    """Wall time of each interaction of a demo, the first (warm-up) call kept apart."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.times: list[float] = []

    def __call__(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            elapsed = time.perf_counter() - start
            if self.first is None:
                self.first = elapsed
            else:
                self.times.append(elapsed)
            return out

        timed.__wrapped__ = fn
        timed.timer = self
        return timed

    @property
    def last(self) -> float:
        return self.times[-1] if self.times else (self.first or 0.0)


def timer() -> InteractionTimer:
    """A fresh :class:`InteractionTimer` for one demo's ``update`` function."""
    return InteractionTimer()


def readout(text: str) -> str:
    """HTML for the demo's key numbers (``**bold**`` allowed); the browser tests read this element."""
    import re

    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return f'<div class="st-readout">{html}</div>'


def show(fig: Figure, *, alt: str = "figure"):
    """Render ``fig`` to PNG now (so that an interaction's timing includes the drawing) as a marimo image."""
    import io

    import marimo as mo

    from matplotlib.ticker import NullLocator

    # Minor ticks of log axes are most of matplotlib's drawing time; the major decades carry the scale.
    for ax in fig.axes:
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_locator(NullLocator())
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return mo.image(src=buffer.getvalue(), alt=alt)
