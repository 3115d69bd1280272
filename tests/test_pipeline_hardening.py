"""The figure pipeline heals and fails early (issue 14, §2 and §4).

* an unreadable cache file (zero length, garbage) is reported, set aside
  (renamed, not deleted) and recomputed;
* an unwritable output or cache directory, or a corrupt ``manifest.json``,
  stops the run before anything is computed or written, naming the path;
* redirected to a file, progress is plain lines (no escape codes, no bar
  drawn twice), a line says what happens before the first progress, and the
  done line names every file written.

Fake figure modules come from ``test_pipeline.make_module``; everything is
written under ``tmp_path``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from samtheory import figures, results
from samtheory.cli import main
from test_pipeline import dirs, make_module, register  # noqa: F401  (register is a fixture)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"], ids=["zero-length", "truncated-zip"])
def test_unreadable_cache_file_is_set_aside_and_recomputed(tmp_path, content):
    mod = make_module()
    first = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    first.cache_file.write_bytes(content)  # `: > .cache/samtheory/<figure>-<key>.npz`
    with pytest.warns(UserWarning, match="unreadable cache file.*set aside") as caught:
        again = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert mod.calls == 2 and not again.cache_hit
    aside = first.cache_file.with_name(first.cache_file.name + ".unreadable")
    assert aside.read_bytes() == content and str(aside) in str(caught[0].message)
    results.load_result_npz(again.cache_file)  # rebuilt
    assert figures.run_figure(mod, quick=True, **dirs(tmp_path)).cache_hit


def _under_a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    return blocker / "sub"


@pytest.mark.parametrize("which, flag", [("out_dir", "--out"), ("cache_dir", "--cache-dir")])
def test_unwritable_directory_fails_before_computing(tmp_path, which, flag, register, capsys, monkeypatch):
    mod = make_module()
    bad = _under_a_file(tmp_path)
    paths = {**dirs(tmp_path), which: bad}
    with pytest.raises(figures.UnwritableDirectoryError, match=rf"{which} \({flag}\).*{bad}"):
        figures.run_figure(mod, quick=True, **paths)
    assert mod.calls == 0

    monkeypatch.chdir(tmp_path)
    register(mod)
    assert main(["figures", "--quick", flag, str(bad)]) == 2
    err = capsys.readouterr().err
    assert flag in err and str(bad) in err and "Traceback" not in err
    assert mod.calls == 0 and not (tmp_path / "paper_figs").exists()


def test_corrupt_manifest_is_reported_before_anything_is_written(tmp_path, register, capsys, monkeypatch):
    mod = make_module()
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"other_fig": {"title": "kept"')  # truncated
    with pytest.raises(ValueError, match="manifest.json"):
        figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert mod.calls == 0 and sorted(p.name for p in out.iterdir()) == ["manifest.json"]

    monkeypatch.chdir(tmp_path)
    register(mod)
    assert main(["figures", "--quick", "--out", str(out)]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert mod.calls == 0 and sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_redirected_progress_is_plain_lines_and_done_names_every_file(tmp_path, register, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = make_module("fig_a")
    register(mod)
    assert main(["figures", "--quick"]) == 0  # capsys: stderr is not a terminal
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err  # no escape codes, no carriage-return redraws
    lines = err.splitlines()
    progress = [line for line in lines if line.strip().startswith("fig_a: ") and line.endswith("%")]
    assert progress == ["  fig_a: 50%", "  fig_a: 100%"]  # the last one once
    starting = next(i for i, line in enumerate(lines) if "loading data" in line and "compiling" in line)
    assert starting < lines.index(progress[0])  # said before the first progress
    done = next(line for line in lines if line.startswith("fig_a: ran"))
    cache_file = next((tmp_path / ".cache" / "samtheory").glob("fig_a-*.npz"))
    quick = Path("paper_figs") / "quick"
    for path in (quick / "fig_a.png", quick / "fig_a.pdf", quick / "manifest.json", cache_file.relative_to(tmp_path)):
        assert str(path) in done, (path, done)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_quick_figures_are_git_ignored():
    check = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "paper_figs/quick/some_figure.png"], capture_output=True
    )
    if check.returncode == 128:
        pytest.skip("not a git work tree")
    assert check.returncode == 0, "paper_figs/quick/ must be in .gitignore"
