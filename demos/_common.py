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

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

#: Resolution of the live image: 80 dpi keeps the slide text (≥ 9 pt) legible in the browser.
DPI = 80

from samtheory.style import SLIDE_RC, VARIANT_COLORS, VARIANT_LABELS  # noqa: E402

# Every demo draws in the slide style; ticks read rcParams when they are drawn, so set it globally
# (all demos share it, also when one server runs several of them).
matplotlib.rcParams.update(SLIDE_RC)
# A fixed title height: matplotlib otherwise measures every tick label of every axes on each draw to
# lift titles above top-side ticks, which no demo has (a third of the drawing time of a panel).
matplotlib.rcParams["axes.titley"] = 1.0

__all__ = [
    "REPO_ROOT", "VARIANT_COLORS", "VARIANT_LABELS", "compile_once", "compile_many", "figure", "show", "InteractionTimer", "timer",
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


def _reset(ax) -> None:
    """Remove what the last interaction drew on ``ax``, leaving the axes as a fresh one draws (same scale)."""
    for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images, *ax.artists):
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.containers.clear()
    ax.set_prop_cycle(None)
    ax.set(title="", xlabel="", ylabel="")
    ax.set_visible(True)
    ax.set_aspect("auto")
    ax.dataLim.set_points(Bbox.null().get_points())
    ax.ignore_existing_data_limits = True
    ax.set_autoscale_on(True)


def compile_many(programs: dict) -> dict:
    """:func:`compile_once` for every ``key: (fn, example_args)`` at once, in threads (one per core).

    XLA compiles with the interpreter lock released, so on 2 cores two
    programs compile at the same time: the load time of a demo with several
    programs drops by up to the number of cores.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(programs), os.cpu_count() or 1) or 1) as pool:
        futures = {key: pool.submit(compile_once, fn, *args) for key, (fn, args) in programs.items()}
        return {key: future.result() for key, future in futures.items()}


def figure(width: float = 11.0, height: float = 3.8, ncols: int = 1, nrows: int = 1):
    """A ``(Figure, axes)`` pair in the slide style (``SLIDE_RC``), without pyplot's global state.

    Inside a demo's timed ``update`` function, the same Figure and axes on
    every call with the same size and grid (per thread), emptied of the
    previous call's artists; :func:`show` renders it to PNG before the next
    call. Why: the Figure's Agg canvas keeps its renderer, whose text-metrics
    and mathtext caches (log-axis labels such as 10⁻³ are mathtext) survive
    from one interaction to the next, and the axes keep their axis and tick
    objects; building a new Figure costs more than most interactions' whole
    computation. Hide a spare axes with ``set_visible`` (not ``delaxes``),
    so that the grid stays whole. The figures live on the demo's timer, so
    two demos (or two sessions, in their own threads) never share one.
    """
    import threading

    figures = None
    if _ACTIVE:
        _ACTIVE[-1].mark_draw()
        figures = _ACTIVE[-1].figures
    key = (threading.get_ident(), width, height, ncols, nrows)
    if figures is not None and key in figures:
        fig, axes = figures[key]
        for ax in axes.ravel():
            _reset(ax)
    else:
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)  # its own Agg canvas: savefig would otherwise make a new one (and renderer) per PNG
        # Fixed margins: constrained layout costs more than the whole computation of most interactions.
        axes = fig.subplots(nrows, ncols, squeeze=False)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13 if nrows == 1 else 0.08,
                            top=0.9 if nrows == 1 else 0.94, wspace=0.28, hspace=0.38)
        if figures is not None:
            figures[key] = fig, axes
    return fig, axes.ravel() if axes.size > 1 else axes[0, 0]


#: The timer of the interaction running now; :func:`figure` marks on it where drawing starts.
_ACTIVE: list[InteractionTimer] = []


class InteractionTimer:
    """Wall time of each interaction of a demo, the first (warm-up) call kept apart.

    Each demo computes everything (JAX results pulled to NumPy, which waits for
    them) before it asks :func:`figure` for a Figure, so an interaction splits
    into *compute* (start → ``figure()``) and *draw* (``figure()`` → PNG):
    ``splits`` holds one ``(compute_s, draw_s)`` per call, the first included.
    """

    def __init__(self) -> None:
        self.first: float | None = None
        self.times: list[float] = []
        self.splits: list[tuple[float, float]] = []
        self.figures: dict[tuple, tuple[Figure, object]] = {}  # reused by figure(), see there
        self._draw_start: float | None = None

    def mark_draw(self) -> None:
        if self._draw_start is None:
            self._draw_start = time.perf_counter()

    def __call__(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            self._draw_start = None
            _ACTIVE.append(self)
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                _ACTIVE.pop()
            end = time.perf_counter()
            elapsed = end - start
            draw_start = self._draw_start if self._draw_start is not None else end
            self.splits.append((draw_start - start, end - draw_start))
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
    # Light compression: a live image is sent once over a local socket; zlib's default level costs more.
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return mo.image(src=buffer.getvalue(), alt=alt)
