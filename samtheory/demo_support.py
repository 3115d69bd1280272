"""What every reading-group demo (``demos/*.py``, marimo notebooks) shares: float64, the slide style,
compile-once, timing, and drawing fast enough for a slider.

Each demo compiles its computations once, when it loads, on fixed shapes, and
then feeds the sliders' values in as *traced* arguments, so that moving a
slider never recompiles. :func:`compile_once` does the jit and the warm-up
call; :class:`InteractionTimer` measures what an interaction costs after
that (the benchmark ``benchmarks/bench_demos.py`` and the page itself read
it). :func:`figure` and :class:`LiveFigure` draw without rebuilding a
Figure per interaction.

Importing this module sets the process up for a demo, as an entry point
does: float64 on, matplotlib's Agg backend and the slide style
(``style.SLIDE_RC``), and JAX's persistent compilation cache in
``$XDG_CACHE_HOME/samtheory/jax-demos`` (``~/.cache/...``). Only the demos
import it; nothing else in samtheory does. The demos themselves are files of
the source tree (:mod:`samtheory.demos` finds them); they import this module
like any other, so they run the same as scripts, under ``marimo run/edit``,
through ``samtheory demo`` and from an installed package.

Conventions: [float] (turned on here, as at every entry point).
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import matplotlib

from samtheory._precision import enable_float64

enable_float64()
matplotlib.use("Agg")
# Compiled programs persist across processes (tests, reloads of a page, other checkouts); the first load on
# a machine still compiles everything.
_CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
jax.config.update("jax_compilation_cache_dir", str(_CACHE_HOME / "samtheory" / "jax-demos"))
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
    "VARIANT_COLORS", "VARIANT_LABELS", "compile_once", "compile_many", "figure", "show", "InteractionTimer", "timer",
    "readout", "LiveFigure", "live_figure",
]


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
    timer = _ACTIVE_TIMER.get()
    if timer is not None:
        timer.mark_draw()
        figures = timer.figures
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


class LiveFigure:
    """A figure drawn in two layers: per axes, a cached static layer, and the live artists drawn over it.

    Matplotlib's Agg backend renders every glyph of every text anew on each
    draw (about a millisecond a label), so a multi-panel figure spends most of
    an interaction drawing tick labels, titles and legends that did not
    change. Here each axes' *static layer* (frame, ticks, labels, title and
    every artist not marked live) is rendered once per state into its cell of
    the grid and kept as pixels; an interaction restores those pixels and
    draws only the artists marked with :meth:`live` (set their data in place),
    in the order they were marked, over the whole static layer (spines and
    static legends included: a live legend goes after the lines it covers).

    The state of an axes is what its static layer shows: visibility, limits,
    scales, title (unless live), axis labels, and the visibility, text and
    data of its static lines and texts (:meth:`_state`). Change any of them and the
    layer is rendered again (and cached: a state seen before costs nothing).
    Static patches and collections must not change once built: draw what
    changes as live artists. Each axes with its labels must stay inside its
    cell of the grid (see :meth:`_grid_cells`); :meth:`png` raises if a
    state leaves it.
    """

    def __init__(self, width: float, height: float, *, ncols: int = 1, nrows: int = 1) -> None:
        self.fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.axes = self.fig.subplots(nrows, ncols, squeeze=False)
        # figure()'s margins, with wider gaps between columns: each axes' labels must stay in its own cell.
        self.fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13 if nrows == 1 else 0.08,
                                 top=0.9 if nrows == 1 else 0.94, wspace=0.34, hspace=0.38)
        self._cells: list[Bbox] | None = None
        self._live: list = []
        self._layers: dict[tuple, object] = {}  # (axes index, state) -> saved pixels of its cell
        self._blank_pixels = None  # the empty figure (its background colour), as an RGBA array

    def live(self, *artists):
        """Mark ``artists`` as live (drawn on every :meth:`png`, over the static layers); returns the first."""
        for artist in artists:
            artist.set_animated(True)
            self._live.append(artist)
        return artists[0] if artists else None

    def _grid_cells(self, renderer) -> list[Bbox]:
        """One pixel rectangle per axes, tiling the figure, cut just past what each axes draws right and below.

        Measured on the first state drawn (the tight boxes of the visible
        axes: frame, ticks, labels, title), with a few pixels to spare: the
        rest of each gap goes to the axes on the right (its tick labels and
        axis label, which widen with the limits) and below (its title).
        Later states are checked against the cells when their layer is rendered.
        """
        width, height = self.fig.canvas.get_width_height()
        nrows, ncols = self.axes.shape
        spare = 6  # pixels: a tick label at the right end of the x axis may widen a little with the limits
        reach = [[(ax.get_tightbbox(renderer) if ax.get_visible() else ax.get_window_extent(renderer))
                  for ax in row] for row in self.axes]
        xs = [0] + [round(max(reach[i][j].x1 for i in range(nrows)) + spare) for j in range(ncols - 1)] + [width]
        # Rows run top to bottom; pixels bottom to top.
        ys = [height] + [round(min(reach[i][j].y0 for j in range(ncols)) - spare) for i in range(nrows - 1)] + [0]
        return [Bbox([[xs[j], ys[i + 1]], [xs[j + 1], ys[i]]]) for i in range(nrows) for j in range(ncols)]

    @staticmethod
    def _state(ax) -> tuple:
        static = []
        for artist in (*ax.lines, *ax.texts, *ax.patches, *ax.collections, ax.legend_):
            if artist is None or artist.get_animated():
                continue
            entry = (id(artist), artist.get_visible())
            if hasattr(artist, "get_xydata"):
                entry += (artist.get_xydata().tobytes(),)
            if hasattr(artist, "get_text"):
                entry += (artist.get_text(),)
            static.append(entry)
        title = None if ax.title.get_animated() else ax.get_title()
        return (ax.get_visible(), ax.get_xlim(), ax.get_ylim(), ax.get_xscale(), ax.get_yscale(),
                title, ax.get_xlabel(), ax.get_ylabel(), tuple(static))

    def _layer(self, index: int):
        """The static layer of axes ``index`` in its present state, rendered into its cell now if not cached.

        Rendering one clears the canvas: call it for every axes before restoring any.
        """
        ax, cell = self.axes.flat[index], self._cells[index]
        key = (index, self._state(ax))
        layer = self._layers.get(key)
        if layer is None:
            import numpy as np

            canvas = self.fig.canvas
            renderer = canvas.get_renderer()
            renderer.clear()
            self.fig.patch.draw(renderer)
            if ax.get_visible():
                _no_minor_ticks(ax)
                ax.draw(renderer)  # not saving: the live (animated) artists are left out
            # Nothing may be drawn outside the cell (it would be cut off): compare with the empty figure there.
            pixels, height = np.asarray(canvas.buffer_rgba()), self._blank_pixels.shape[0]
            top, bottom = height - round(cell.y1), height - round(cell.y0)  # buffer rows run downwards
            left, right = round(cell.x0), round(cell.x1)
            outside = [(slice(None, top), slice(None)), (slice(bottom, None), slice(None)),
                       (slice(top, bottom), slice(None, left)), (slice(top, bottom), slice(right, None))]
            if not all(np.array_equal(pixels[part], self._blank_pixels[part]) for part in outside):
                raise ValueError(f"the axes {ax.get_title()!r} draws outside its cell of the grid {cell.extents} "
                                 "(its labels are wider than in the first state): widen the gaps between the axes")
            layer = self._layers[key] = canvas.copy_from_bbox(cell)
        return layer

    def _ensure_grid(self) -> None:
        """At the first use: the grid's cells (measured on the state drawn now), and the empty figure."""
        if self._blank_pixels is not None:
            return
        import numpy as np

        canvas = self.fig.canvas
        renderer = canvas.get_renderer()
        canvas.draw()
        self._cells = self._grid_cells(renderer)
        renderer.clear()
        self.fig.patch.draw(renderer)
        self._blank_pixels = np.array(canvas.buffer_rgba())

    def prepare(self, ax, states) -> None:
        """Render and cache ``ax``'s static layer in each of ``states`` (``ax.set`` keywords), then restore it.

        For states an interaction is likely to reach (limits on a fixed
        ladder, say): called while the demo loads, so that reaching one later
        costs no rendering. The grid's cells are measured on the state the
        figure is in at the first call (of this or :meth:`png`).
        """
        self._ensure_grid()
        index = list(self.axes.flat).index(ax)
        for state in states:
            before = {name: getattr(ax, f"get_{name}")() for name in state}
            ax.set(**state)
            self._layer(index)
            ax.set(**before)

    def png(self) -> bytes:
        """The figure as PNG: cached static layers restored, live artists drawn over them."""
        import io

        from PIL import Image

        self._ensure_grid()
        canvas = self.fig.canvas
        renderer = canvas.get_renderer()
        for layer in [self._layer(index) for index in range(self.axes.size)]:  # all rendered, then restored
            canvas.restore_region(layer)
        for artist in self._live:
            if artist.get_visible() and (artist.axes is None or artist.axes.get_visible()):
                artist.draw(renderer)
        width, height = canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        # Light compression: a live image is sent once over a local socket; zlib's default level costs more.
        image.convert("RGB").save(buffer, format="png", compress_level=1)
        return buffer.getvalue()


def live_figure(build: Callable[[], tuple]) -> tuple:
    """What ``build()`` returns (a :class:`LiveFigure` and its artists), built once per demo timer and thread.

    Like :func:`figure`, it marks where the interaction's drawing starts; the
    result lives on the demo's timer, so two demos or sessions never share one.
    """
    import threading

    timer = _ACTIVE_TIMER.get()
    if timer is None:
        return build()
    timer.mark_draw()
    key = (threading.get_ident(), build)
    figures = timer.figures
    if key not in figures:
        figures[key] = build()
    return figures[key]


#: The timer of the interaction running now in this context (thread), or None; :func:`figure` marks on it
#: where drawing starts. A context variable, not a module-level list: each thread sees only its own.
_ACTIVE_TIMER: contextvars.ContextVar[InteractionTimer | None] = contextvars.ContextVar(
    "samtheory_demo_timer", default=None)


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
            token = _ACTIVE_TIMER.set(self)
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                _ACTIVE_TIMER.reset(token)
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


def _no_minor_ticks(ax) -> None:
    """Minor ticks of log axes are most of matplotlib's drawing time; the major decades carry the scale.

    (Setting a scale restores its default locators: call this just before drawing.)
    """
    from matplotlib.ticker import NullLocator

    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())


def show(fig: Figure | LiveFigure, *, alt: str = "figure"):
    """Render ``fig`` to PNG now (so that an interaction's timing includes the drawing) as a marimo image."""
    import io

    import marimo as mo

    if isinstance(fig, LiveFigure):
        return mo.image(src=fig.png(), alt=alt)

    for ax in fig.axes:
        _no_minor_ticks(ax)
    buffer = io.BytesIO()
    # Light compression: a live image is sent once over a local socket; zlib's default level costs more.
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return mo.image(src=buffer.getvalue(), alt=alt)
