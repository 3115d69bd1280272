"""Figures for slides: the CAPTION protocol field, figures split into a main and a details part,
the automatic legibility checks, and the regeneration check of committed summaries.

Legibility rules and the regeneration policy: docs/pipeline.md. Quick configs only.
"""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest
from matplotlib.figure import Figure

from samtheory import figures, legibility, regeneration

REGISTRY = figures.FigureRegistry("experiments")


@dataclasses.dataclass(frozen=True)
class _Config:
    n: int = 3


def _module(caption="Three points rise.", plot=None):
    mod = types.ModuleType("experiments.fake_slide")
    mod.NAME, mod.TITLE, mod.Config = "fake_slide", "A fake figure", _Config
    if caption is not None:
        mod.CAPTION = caption
    mod.config = lambda quick: _Config()
    mod.run = lambda cfg, progress: {"x": np.arange(cfg.n, dtype=float)}
    mod.summary = lambda result, cfg: {"total": float(result["x"].sum())}

    def default_plot(result, cfg):
        fig = Figure(figsize=(6, 4))
        fig.add_subplot().plot(result["x"])
        return fig

    mod.plot = plot or default_plot
    return mod


@pytest.mark.parametrize("caption", [None, "", "two\nlines.", "no full stop", 3])
def test_a_figure_without_a_one_line_caption_is_refused(caption):
    mod = _module(caption)  # None: no CAPTION attribute at all
    with pytest.raises(figures.FigureProtocolError, match="CAPTION"):
        figures.check_figure_module(mod)


def test_every_registered_figure_has_a_caption():
    for name in figures.registered_figures(REGISTRY):
        module = figures.load_figure_module(name, REGISTRY)  # checks the protocol, CAPTION included
        assert len(module.CAPTION) > 20, name


def test_the_caption_goes_into_the_manifest(tmp_path):
    record = figures.run_figure(_module(), quick=True, out_dir=tmp_path, cache_dir=tmp_path / "cache")
    entry = json.loads((tmp_path / "manifest.json").read_text())["fake_slide"]
    assert entry["caption"] == "Three points rise." == record.caption
    assert "extra" not in entry["files"]


def test_a_plot_may_return_a_main_figure_and_details(tmp_path):
    def two(result, cfg):
        figs = {}
        for suffix in ("", "details"):
            figs[suffix] = Figure(figsize=(4, 3))
            figs[suffix].add_subplot().plot(result["x"])
        return figs

    record = figures.run_figure(_module(plot=two), quick=True, out_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert record.png == tmp_path / "fake_slide.png" and record.png.exists()
    assert (tmp_path / "fake_slide_details.png").exists() and (tmp_path / "fake_slide_details.pdf").exists()
    entry = json.loads((tmp_path / "manifest.json").read_text())["fake_slide"]
    assert entry["files"]["extra"] == {"details": {"png": "fake_slide_details.png", "pdf": "fake_slide_details.pdf"}}
    with pytest.raises(figures.FigureProtocolError, match="main figure"):
        figures.run_figure(_module(plot=lambda r, c: {"details": two(r, c)["details"]}), quick=True,
                           out_dir=tmp_path / "b", cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------
# legibility
# --------------------------------------------------------------------------


def _rules(fig):
    return {p.rule.split(" ")[0] for p in legibility.legibility_problems(fig)}


def test_a_clean_slide_figure_has_no_problems():
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([1, 10, 100], [1, 2, 3])
    left.set(xscale="log", xlabel="x", ylabel="y", title="left")
    right.plot([0, 1], [0, 1])
    right.set(xlabel="x", ylabel="y", title="right")
    assert legibility.legibility_problems(fig) == []


def test_small_text_is_found_relative_to_the_slide_width():
    fig = Figure(figsize=(13.333, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1])
    ax.tick_params(labelsize=10)
    ax.set_title("title", fontsize=8.5)  # 8.5 pt at 13.33 in: under 9 pt
    assert _rules(fig) == {"text"}
    ax.set_title("title", fontsize=9.5)
    assert legibility.legibility_problems(fig) == []
    big = Figure(figsize=(26.67, 4), layout="constrained")  # twice as wide: 12 pt shows as 6 pt
    big.add_subplot().set_title("title", fontsize=12)
    assert "text" in _rules(big)


def test_a_log_axis_with_one_tick_label_is_found():
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0.12, 0.3], [1, 2])
    ax.set_xscale("log")  # one decade boundary (10^-1) in view, minor labels off by default here
    ax.xaxis.set_minor_formatter(__import__("matplotlib").ticker.NullFormatter())
    assert "log" in _rules(fig)
    from samtheory.style import label_log_axis

    label_log_axis(ax.xaxis)
    assert "log" not in _rules(fig)


def test_overlapping_labels_of_two_axes_are_found():
    fig = Figure(figsize=(8, 4))
    left = fig.add_axes((0.1, 0.2, 0.35, 0.7))
    right = fig.add_axes((0.47, 0.2, 0.35, 0.7))  # too close: the right y label runs into the left panel
    left.set_title("a long title of the left panel")
    right.set_ylabel("the right panel's y label")
    assert "overlapping" in _rules(fig)


# --------------------------------------------------------------------------
# regeneration
# --------------------------------------------------------------------------


def test_compare_summaries_is_bitwise_without_a_tolerance():
    x = 0.1 + 0.2
    assert regeneration.compare_summaries({"a": x, "b": "inf"}, {"a": x, "b": "inf"}) == []
    [m] = regeneration.compare_summaries({"a": x}, {"a": np.nextafter(x, 1.0)})
    assert m.key == "a"
    assert [m.key for m in regeneration.compare_summaries({"a": 1.0}, {"b": 1.0})] == ["a", "b"]


def test_compare_summaries_with_a_relative_tolerance():
    assert regeneration.compare_summaries({"a": 1.0, "z": 0.0}, {"a": 1.0005, "z": 0.0}, rtol=1e-3) == []
    assert len(regeneration.compare_summaries({"a": 1.0}, {"a": 1.002}, rtol=1e-3)) == 1
    with pytest.raises(ValueError, match="rtol"):
        regeneration.compare_summaries({}, {}, rtol=-1.0)


def test_the_float32_figures_are_the_ones_that_say_so():
    from experiments import dziugaite_roy_bound, hessian_spectra, m_sharpness_correlation, relu_kinks

    assert regeneration.uses_float32(m_sharpness_correlation.config(True))
    assert regeneration.uses_float32(dziugaite_roy_bound.config(True))
    assert not regeneration.uses_float32(hessian_spectra.config(True))
    assert not regeneration.uses_float32(relu_kinks.config(True))


def test_a_regeneration_reproduces_a_float64_manifest_bitwise_and_finds_a_changed_number(tmp_path):
    names = ["sam_quadratic_stability", "resnet_switching"]
    for name in names:
        figures.run_figure(figures.load_figure_module(name, REGISTRY), quick=True, out_dir=tmp_path / "committed",
                           cache_dir=tmp_path / "cache")
        record = figures.run_figure(figures.load_figure_module(name, REGISTRY), quick=True, out_dir=tmp_path / "regen0",
                                    cache_dir=tmp_path / "cache")  # a cache hit: only plots again
        assert legibility.figure_module_problems(figures.load_figure_module(name, REGISTRY), dict(record.result),
                                                 figures.load_figure_module(name, REGISTRY).config(True)) == {"": []}
    manifest = tmp_path / "committed" / "manifest.json"
    checks = regeneration.check_regeneration(names, manifest, REGISTRY, quick=True, out_dir=tmp_path / "regen")
    assert [c.ok for c in checks] == [True, True] and all(c.compared > 0 and not c.float32 for c in checks)

    entries = json.loads(manifest.read_text())
    key, value = next(iter(entries["sam_quadratic_stability"]["summary"].items()))
    entries["sam_quadratic_stability"]["summary"][key] = float(np.nextafter(value, np.inf))  # one ulp off
    entries["resnet_switching"]["key"] = "0" * 64  # made by another config or CODE_VERSION
    manifest.write_text(json.dumps(entries))
    quad, resnet = regeneration.check_regeneration(names, manifest, REGISTRY, quick=True, out_dir=tmp_path / "regen2")
    assert [m.key for m in quad.mismatches] == [key] and resnet.stale
    with pytest.raises(ValueError, match="quick"):
        regeneration.check_regeneration(names, manifest, REGISTRY, quick=False)


def test_convergence_bounds_reads_on_a_slide(tmp_path):
    module = figures.load_figure_module("convergence_bounds", REGISTRY)
    record = figures.run_figure(module, quick=True, out_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert legibility.figure_module_problems(module, dict(record.result), module.config(True)) == {"": []}
