"""One name and one colour per variant, and the slide style every figure uses.

A reader who has seen n-SAM drawn blue in one figure must find it blue in
every other figure, the demos and the ResNet plots. So every plot takes a
variant's label and colour from here, keyed by a short variant key, and
nothing else picks colours for variants.

Keys name the *family* a figure compares. The diagonal-network figures run
the unnormalized steps of Andriushchenko & Flammarion (2022) and call them
n-SAM and 1-SAM, as the paper does ([normalize]); figures that compare
normalized and unnormalized steps side by side use the ``*usam`` keys.

Colours are the Okabe–Ito palette (distinguishable under the common forms
of colour blindness), with ERM in black.

Conventions: [normalize], [m].
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "VARIANT_LABELS", "VARIANT_COLORS", "variant_label", "variant_color", "SLIDE_RC", "CAPTION_FONTSIZE",
    "sequential_colors", "label_log_axis",
]

VARIANT_LABELS: dict[str, str] = {
    "erm": "ERM",
    "n_sam": "n-SAM",
    "m_sam": "m-SAM",
    "one_sam": "1-SAM",
    "usam": "n-USAM",
    "one_usam": "1-USAM",
    "m_usam": "m-USAM",
    "random": "random",
    "asam": "ASAM",
    "erm_to_sam": "ERM → SAM",
    "sam_to_erm": "SAM → ERM",
}

VARIANT_COLORS: dict[str, str] = {
    "erm": "#000000",
    "n_sam": "#0072B2",      # blue
    "m_sam": "#CC79A7",      # reddish purple
    "one_sam": "#009E73",    # bluish green
    "usam": "#56B4E9",       # sky blue: the unnormalized n-step, near n-SAM's hue
    "one_usam": "#8FD3B6",   # light green: the unnormalized 1-step, near 1-SAM's hue
    "m_usam": "#E3A9CB",     # light purple: the unnormalized m-step, near m-SAM's hue
    "random": "#999999",     # grey
    "asam": "#E69F00",       # orange
    "erm_to_sam": "#D55E00", # vermillion
    "sam_to_erm": "#882255", # wine (Tol): Okabe-Ito yellow does not read on white
}


def variant_label(key: str) -> str:
    """The display label of a variant key (``"one_sam"`` → ``"1-SAM"``)."""
    try:
        return VARIANT_LABELS[key]
    except KeyError:
        raise ValueError(f"key must be one of {sorted(VARIANT_LABELS)}, got {key!r}") from None


def variant_color(key: str) -> str:
    """The colour of a variant key, the same in every figure and demo."""
    try:
        return VARIANT_COLORS[key]
    except KeyError:
        raise ValueError(f"key must be one of {sorted(VARIANT_COLORS)}, got {key!r}") from None


# Figures are drawn at the size they are shown: a 16:9 slide is about
# 13.3 in wide, and a figure spanning it at that width keeps text >= 9 pt.
CAPTION_FONTSIZE = 11
SLIDE_RC: dict[str, object] = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.framealpha": 0.85,
    "lines.linewidth": 2.0,
    "lines.markersize": 5,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def sequential_colors(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` colours for an ordered parameter that is not a variant (ρ, width, noise rate).

    Viridis, without its lightest end (too pale on white): a reader sees an
    order, and no variant's colour is reused for something else.
    """
    import matplotlib

    return [tuple(c) for c in matplotlib.colormaps["viridis"](np.linspace(0.0, 0.8, max(count, 1)))[:count]]


def label_log_axis(axis, subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """Label a log axis at 1, 2, 5 × 10^k in plain numbers, so that even a narrow range shows ≥ 2 labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator, StrMethodFormatter

    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
