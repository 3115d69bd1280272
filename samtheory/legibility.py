"""Automatic checks that a figure reads on a 16:9 slide.

The rules of ``docs/pipeline.md`` that a program can check on a drawn
:class:`matplotlib.figure.Figure`:

* **text size**: every visible piece of text is at least
  :data:`MIN_SLIDE_POINTS` pt when the saved figure (its tight bounding box,
  as the pipeline saves it) is shown :data:`SLIDE_WIDTH_IN` wide, i.e. a
  font of ``s`` pt in a figure ``W`` in wide needs ``s · 13.33 / W ≥ 9``;
* **log axes**: every visible log-scaled axis shows at least two labelled
  ticks, so that its scale can be read;
* **overlaps**: no axis label, title or tick label of one axes overlaps one
  of another axes (a colour bar's label running into the neighbouring
  panel's label, say). Text within one axes and legends are not compared.

The others (no hidden curve, no redundant reference line, one colour per
variant) need a reader's eye: look at the PNG.
"""

from __future__ import annotations

import dataclasses

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["SLIDE_WIDTH_IN", "MIN_SLIDE_POINTS", "OVERLAP_PAD_POINTS", "Problem", "legibility_problems", "figure_module_problems"]

#: Width of a 16:9 slide (PowerPoint / Beamer "wide" at 13.33 in × 7.5 in).
SLIDE_WIDTH_IN = 13.333
#: The smallest text size, in points at slide width, that reads from the back of a room.
MIN_SLIDE_POINTS = 9.0
#: Labels of different axes closer than this (in points of the figure) count as overlapping.
OVERLAP_PAD_POINTS = 2.0


@dataclasses.dataclass(frozen=True)
class Problem:
    """One legibility problem: which rule, and where (the text or axis concerned)."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def _visible_text(text: Text) -> bool:
    """Drawn and non-empty (a text in an invisible axes is not drawn)."""
    if not (text.get_visible() and text.get_text().strip()):
        return False
    return text.axes is None or text.axes.get_visible()


def _shown_ticklabels(axis, renderer) -> list[Text]:
    """Tick labels (major and minor) that are drawn: visible, non-empty and inside the view."""
    low, high = sorted(axis.get_view_interval())
    shown = []
    for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
        label = tick.label1
        location = tick.get_loc()
        if location is None or not (low * (1 - 1e-9) <= location <= high * (1 + 1e-9)):
            continue
        if label.get_visible() and label.get_text().strip():
            shown.append(label)
    return shown


def _axes_texts(ax: Axes, renderer) -> list[Text]:
    texts = [ax.xaxis.label, ax.yaxis.label, ax.title, ax._left_title, ax._right_title]
    for axis in (ax.xaxis, ax.yaxis):
        texts.extend(_shown_ticklabels(axis, renderer))
    return [t for t in texts if _visible_text(t)]


def legibility_problems(
    fig: Figure, *, slide_width_in: float = SLIDE_WIDTH_IN, min_points: float = MIN_SLIDE_POINTS
) -> list[Problem]:
    """The slide-legibility problems of ``fig`` (empty list: none found); draws ``fig`` once.

    ``fig`` is measured as the pipeline saves it (``bbox_inches="tight"``):
    its shown width is the width of its tight bounding box.
    """
    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width_in = fig.get_tightbbox(renderer).width  # inches
    scale = slide_width_in / width_in
    problems: list[Problem] = []

    smallest: dict[float, list[str]] = {}
    for text in fig.findobj(Text):
        if not _visible_text(text):
            continue
        shown = text.get_fontsize() * scale
        if shown < min_points:
            smallest.setdefault(round(shown, 1), []).append(text.get_text().strip().replace("\n", " ")[:40])
    for shown, texts in sorted(smallest.items()):
        problems.append(Problem(
            "text under {:g} pt".format(min_points),
            f"{len(texts)} text(s) at {shown:g} pt on a {slide_width_in:g}-in slide, e.g. {texts[:3]}",
        ))

    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.axison]
    for ax in axes:
        for name, axis, scale_name in (("x", ax.xaxis, ax.get_xscale()), ("y", ax.yaxis, ax.get_yscale())):
            if scale_name != "log" or not axis.get_visible():
                continue
            labels = _shown_ticklabels(axis, renderer)
            if len(labels) < 2:
                problems.append(Problem(
                    "log axis with fewer than 2 tick labels",
                    f"{name} axis of {ax.get_title()!r} ({ax.get_ylabel() if name == 'y' else ax.get_xlabel()!r}) "
                    f"shows {[t.get_text() for t in labels]}",
                ))

    pad = OVERLAP_PAD_POINTS * fig.dpi / 72  # touching counts as overlapping: text needs air around it
    boxes = [(i, t, t.get_window_extent(renderer).expanded(1.0, 1.0).padded(pad / 2))
             for i, ax in enumerate(axes) for t in _axes_texts(ax, renderer)]
    for a in range(len(boxes)):
        i, text_a, box_a = boxes[a]
        for b in range(a + 1, len(boxes)):
            j, text_b, box_b = boxes[b]
            if i != j and box_a.overlaps(box_b):
                problems.append(Problem(
                    "overlapping labels",
                    f"{text_a.get_text()[:40]!r} and {text_b.get_text()[:40]!r}",
                ))
    return problems


def figure_module_problems(module, result: dict, config) -> dict[str, list[Problem]]:
    """Draw a figure module's ``plot(result, config)`` as the pipeline does (under ``SLIDE_RC``) and check it.

    Returns ``{suffix: problems}`` for every figure ``plot`` returns (``""``: the main one).
    """
    import matplotlib

    from samtheory.style import SLIDE_RC

    with matplotlib.rc_context(SLIDE_RC):
        drawn = module.plot(result, config)
        parts = dict(drawn) if isinstance(drawn, dict) else {"": drawn}
        return {suffix: legibility_problems(fig) for suffix, fig in parts.items()}
