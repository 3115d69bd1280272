"""A warm rerun after a code change that touches one figure recomputes only that figure (issue 15).

The result cache is keyed on the config and ``CODE_VERSION`` and, besides,
on the figure module's computing code (``samtheory.source_digest``): editing
an experiment's ``run`` or a helper it uses recomputes that figure and no
other; editing its plot, caption, comments or docstrings only re-plots. The
figure modules here are written to ``tmp_path`` as a package, edited on disk,
and re-imported as a new process would.
"""

from __future__ import annotations

import ast
import json
import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from samtheory import figures, source_digest

from _figure_packages import forget_package, write_figure_package

_MODULE = textwrap.dedent(
    '''\
    """Figure {name}: a docstring."""

    import dataclasses

    import numpy as np
    from matplotlib.figure import Figure
    {helper_import}
    NAME = "{name}"
    TITLE = "Figure {name}"
    CAPTION = "What to see in {name}."


    @dataclasses.dataclass(frozen=True)
    class Config:
        n: int


    def config(quick):
        return Config(n=3)


    def _scale():
        return 2.0  # a helper of run


    def run(cfg, progress):
        return {{"x": np.arange(cfg.n) * _scale(){helper_call}}}


    def _label():
        return "x"  # a helper of plot only


    def plot(result, cfg):
        fig = Figure(figsize=(2, 1.5))
        fig.add_subplot().plot(result["x"], label=_label())
        return fig
    '''
)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A figure package ``srcfigs`` with figures ``a`` (using the helper ``_shared``) and ``b``; returns its folder."""
    root = tmp_path / "src"
    folder = write_figure_package(root, "srcfigs", {
        "_shared": "OFFSET = 1.0\n",
        "a": _MODULE.format(name="a", helper_import="from srcfigs._shared import OFFSET\n", helper_call=" + OFFSET"),
        "b": _MODULE.format(name="b", helper_import="", helper_call=""),
    }, ("a", "b"))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within the same second must be seen
    yield folder
    _forget_modules()


def _forget_modules() -> None:
    forget_package("srcfigs")


def _make(tmp_path: Path) -> dict[str, bool]:
    """Run every figure as a fresh process would (modules re-imported); figure → computed (not a cache hit)."""
    _forget_modules()
    outcome = figures.run_figures(
        registry=figures.FigureRegistry("srcfigs"), quick=True, out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache", verbose=False, compilation_cache=False,
    )
    assert outcome.ok, outcome.failures
    return {record.name: not record.cache_hit for record in outcome.records}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_editing_one_figure_recomputes_only_that_figure(package, tmp_path):
    a = package / "a.py"
    assert _make(tmp_path) == {"a": True, "b": True}
    assert _make(tmp_path) == {"a": False, "b": False}

    # Presentation, comments, docstrings, layout: re-plotted from the cache.
    _edit(a, 'label=_label()', 'label=_label(), lw=2')
    _edit(a, 'return "x"  # a helper of plot only', 'return "x, edited"')
    _edit(a, '"""Figure a: a docstring."""', '"""Figure a: another docstring."""')
    _edit(a, 'CAPTION = "What to see in a."', 'CAPTION = "Another caption."')
    _edit(a, "return 2.0  # a helper of run", "return  2.0   # reworded")
    assert _make(tmp_path) == {"a": False, "b": False}

    # The computation itself, or a helper of run: only that figure.
    _edit(a, "return  2.0", "return 3.0")
    assert _make(tmp_path) == {"a": True, "b": False}
    _edit(package / "_shared.py", "OFFSET = 1.0", "OFFSET = 1.5")
    assert _make(tmp_path) == {"a": True, "b": False}
    _edit(package / "b.py", "def config(quick):", "def config(quick):  # unchanged result\n    assert quick\n   ")
    assert _make(tmp_path) == {"a": False, "b": True}

    # Back to an earlier version: its result is still in the cache.
    _edit(package / "_shared.py", "OFFSET = 1.5", "OFFSET = 1.0")
    assert _make(tmp_path) == {"a": False, "b": False}


def test_a_presentation_name_that_run_uses_counts(tmp_path):
    tree = ast.parse(textwrap.dedent(
        """
        TITLE = "t"
        def _fmt(x): return x
        def _only_plot(): return _fmt(1)
        def plot(r, c): return _only_plot()
        def summary(r, c): return {}
        def run(c, p): return {"title": TITLE}
        """
    ))
    kept = [getattr(s, "name", None) or s.targets[0].id for s in source_digest.computing_source(tree)]
    assert kept == ["TITLE", "run"]  # _fmt and _only_plot serve plot alone


def test_the_manifest_records_the_source_digest(package, tmp_path):
    _make(tmp_path)
    manifest = (tmp_path / "out" / figures.MANIFEST_NAME).read_text()
    module = importlib.import_module("srcfigs.a")
    digest = source_digest.figure_source_digest(module)
    assert digest is not None and len(digest) == 64 and digest in manifest
    assert figures.cache_file_path(tmp_path / "cache", "a", figures.figure_cache_key(module, module.config(True)),
                                   digest).exists()


def test_every_committed_figure_was_made_by_the_current_code():
    """Each entry of ``paper_figs/manifest.json`` names the computing-code digest of the module as it is now.

    A change to an experiment's computing code (``run`` and what it uses, imports included) must come
    with its figure regenerated from the committed tree: otherwise the committed picture was drawn
    by other code. Every entry must carry a digest.
    """
    root = Path(__file__).resolve().parents[1]
    manifest = json.loads((root / "paper_figs" / figures.MANIFEST_NAME).read_text())
    registry = figures.FigureRegistry("experiments")
    stale, checked = [], 0
    for name, entry in manifest.items():
        assert entry["provenance"]["git"]["dirty"] is False, f"{name} was made from a dirty tree"
        assert "source_digest" in entry, f"{name}: no source digest recorded"
        checked += 1
        if entry["source_digest"] != source_digest.figure_source_digest(figures.load_figure_module(name, registry)):
            stale.append(name)
    assert checked == len(manifest) >= 16
    assert not stale, f"regenerate from a clean tree: samtheory figures {' '.join(stale)}"
