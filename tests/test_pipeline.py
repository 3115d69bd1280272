"""The figure pipeline: atomic result files, cache, finiteness guard, outputs, manifest, CLI.

Figure modules here are fakes built in the test (``make_module``); they are
registered by monkeypatching ``experiments.FIGURE_MODULES`` and
``sys.modules``. Every output goes to ``tmp_path``; CLI tests also chdir
there, so the defaults (``paper_figs/``, ``.cache/``) land in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import types
from pathlib import Path

import experiments
import numpy as np
import pytest
from matplotlib.figure import Figure
from samtheory import figures, results
from samtheory.cli import main


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    n: int = 4
    scale: float = 1.0
    label: str = "a"
    shape: tuple[int, ...] = (2, 3)


def make_module(
    name: str = "fake_fig",
    *,
    code_version: int | None = None,
    result: dict | None = None,
    allow: frozenset[str] | None = None,
    fail: bool = False,
) -> types.ModuleType:
    """A figure module following the protocol; ``module.calls`` counts run() calls."""
    mod = types.ModuleType(f"experiments.{name}")
    mod.NAME = name
    mod.TITLE = f"Title of {name}"
    mod.CAPTION = f"What to see in {name}."
    mod.Config = FakeConfig
    mod.calls = 0
    mod.progress_seen = []
    if code_version is not None:
        mod.CODE_VERSION = code_version
    if allow is not None:
        mod.ALLOW_NONFINITE = allow

    def config(quick: bool) -> FakeConfig:
        return FakeConfig(n=3) if quick else FakeConfig()

    def run(cfg: FakeConfig, progress):
        if fail:
            raise RuntimeError(f"{name} exploded")
        mod.calls += 1
        if progress is not None:
            progress(0.5)
            progress(1.0)
            mod.progress_seen.append(True)
        if result is not None:
            return dict(result)
        x = np.arange(cfg.n, dtype=np.float64) * cfg.scale
        return {"x": x, "total": float(x.sum()), "steps": cfg.n, "label": cfg.label}

    def plot(res, cfg: FakeConfig) -> Figure:
        fig = Figure(figsize=(2.0, 1.5))
        ax = fig.add_subplot()
        ax.plot(np.nan_to_num(np.asarray(res["x"], dtype=float)))
        ax.set_title(cfg.label)
        return fig

    def summary(res, cfg):
        return {"total": float(np.nansum(res["x"]))}

    mod.config, mod.run, mod.plot, mod.summary = config, run, plot, summary
    return mod


@pytest.fixture
def register(monkeypatch):
    """Register fake modules: ``register(mod_a, mod_b)`` replaces the registry with them."""

    def _register(*modules: types.ModuleType) -> None:
        monkeypatch.setattr(experiments, "FIGURE_MODULES", tuple(m.NAME for m in modules))
        for m in modules:
            monkeypatch.setitem(sys.modules, f"experiments.{m.NAME}", m)

    return _register


def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache"}


# ---------------------------------------------------------------- results.py


def test_atomic_writes_leave_only_the_target(tmp_path):
    results.atomic_write_bytes(tmp_path / "a.bin", b"abc")
    results.atomic_write_bytes(tmp_path / "a.bin", b"defg")  # replace
    results.atomic_write_json(tmp_path / "sub" / "b.json", {"z": 1, "a": (1.5, "x")})
    assert (tmp_path / "a.bin").read_bytes() == b"defg"
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"a": [1.5, "x"], "z": 1}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.json", "sub"]


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    results.atomic_write_json(target, {"v": 1})
    old = target.read_bytes()

    with pytest.raises(RuntimeError, match="boom"):
        with results.atomic_open(target) as f:
            f.write(b'{"v": 2, "trunc')
            raise RuntimeError("boom")
    assert target.read_bytes() == old

    # A failure at the very end (the fsync before the rename) must not tear it either.
    def failing_fsync(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(results.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk gone"):
        results.atomic_write_json(target, {"v": 3})
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp files left


def test_result_npz_roundtrip(tmp_path):
    path = tmp_path / "r.npz"
    data = {"a": np.arange(6.0).reshape(2, 3), "i": np.arange(3), "f": 0.25, "n": 7, "b": True, "s": "ok"}
    results.save_result_npz(path, data, {"config": {"n": 1}, "key": "k"})
    loaded, meta = results.load_result_npz(path)
    assert meta == {"config": {"n": 1}, "key": "k"}
    assert set(loaded) == set(data)
    np.testing.assert_array_equal(loaded["a"], data["a"])
    assert loaded["a"].dtype == np.float64 and loaded["i"].dtype == data["i"].dtype
    for k in ("f", "n", "b", "s"):
        assert loaded[k] == data[k] and type(loaded[k]) is type(data[k])


def test_result_rejects_unstorable_values(tmp_path):
    with pytest.raises(TypeError, match="'bad'"):
        results.save_result_npz(tmp_path / "r.npz", {"bad": [1, 2]}, {})
    with pytest.raises(ValueError, match="reserved"):
        results.save_result_npz(tmp_path / "r.npz", {"__meta__": 1.0}, {})
    assert not (tmp_path / "r.npz").exists()


def test_cache_key_stable_and_sensitive():
    key = results.cache_key("fig", 0, FakeConfig())
    assert len(key) == 64 and int(key, 16) >= 0
    assert results.cache_key("fig", 0, FakeConfig()) == key  # a fresh, equal config
    assert results.cache_key("fig", 0, dataclasses.asdict(FakeConfig())) == key  # dict form, tuple→list
    others = {
        results.cache_key("fig", 0, FakeConfig(n=5)),
        results.cache_key("fig", 0, FakeConfig(scale=1.0 + 1e-12)),
        results.cache_key("fig", 0, FakeConfig(shape=(3, 2))),
        results.cache_key("fig", 1, FakeConfig()),
        results.cache_key("fig2", 0, FakeConfig()),
    }
    assert key not in others and len(others) == 5


def test_config_must_be_frozen_and_plain():
    @dataclasses.dataclass
    class Mutable:
        n: int = 1

    @dataclasses.dataclass(frozen=True)
    class WithArray:
        a: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))

    with pytest.raises(TypeError, match="frozen"):
        results.config_to_dict(Mutable())
    with pytest.raises(TypeError, match="WithArray.a"):
        results.config_to_dict(WithArray())
    assert results.config_to_dict(FakeConfig(scale=float("inf")))["scale"] == "inf"


def test_provenance_fields_and_no_hostname():
    prov = results.provenance(run_wall_s=1.5)
    assert set(prov["versions"]) == {
        "python", "numpy", "scipy", "jax", "jaxlib", "optax", "diffrax", "matplotlib", "samtheory"
    }
    assert prov["jax"]["x64"] is True  # conftest turned float64 on
    assert prov["jax"]["backend"] and prov["jax"]["devices"]
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["run_wall_s"] == 1.5 and prov["utc"].endswith("+00:00")
    host = socket.gethostname()
    if len(host) >= 6:  # a very short name could occur by chance in a version string
        assert host not in json.dumps(prov)


# ---------------------------------------------------------------- figures.py


def test_cache_hit_skips_run_and_force_reruns(tmp_path):
    mod = make_module()
    first = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert (mod.calls, first.cache_hit) == (1, False)
    assert first.cache_file.exists()

    second = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert (mod.calls, second.cache_hit) == (1, True)
    assert second.key == first.key
    np.testing.assert_array_equal(second.result["x"], first.result["x"])
    assert second.result["steps"] == 3 and second.result["label"] == "a"
    assert second.run_s == first.run_s  # the time of the computation that was cached

    third = figures.run_figure(mod, quick=True, force=True, **dirs(tmp_path))
    assert (mod.calls, third.cache_hit) == (2, False)

    full = figures.run_figure(mod, quick=False, **dirs(tmp_path))  # another config: a miss
    assert (mod.calls, full.cache_hit) == (3, False) and full.key != first.key


def test_code_version_bump_misses_cache(tmp_path):
    v0 = figures.run_figure(make_module(), quick=True, **dirs(tmp_path))
    bumped = make_module(code_version=1)
    v1 = figures.run_figure(bumped, quick=True, **dirs(tmp_path))
    assert bumped.calls == 1 and not v1.cache_hit and v1.key != v0.key


def test_unreadable_cache_file_is_recomputed(tmp_path):
    mod = make_module()
    rec = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    rec.cache_file.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert mod.calls == 2 and not again.cache_hit
    results.load_result_npz(rec.cache_file)  # repaired


def test_png_pdf_written_and_reproducible(tmp_path):
    mod = make_module()
    rec = figures.run_figure(mod, quick=True, **dirs(tmp_path))
    assert rec.png == tmp_path / "out" / "fake_fig.png" and rec.pdf == tmp_path / "out" / "fake_fig.pdf"
    png, pdf = rec.png.read_bytes(), rec.pdf.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and pdf.startswith(b"%PDF-")
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf and b"Software" not in png

    figures.run_figure(mod, quick=True, force=True, **dirs(tmp_path))
    assert mod.calls == 2
    assert rec.png.read_bytes() == png and rec.pdf.read_bytes() == pdf  # no churn


def test_nonfinite_result_raises_naming_key(tmp_path):
    bad = {"x": np.array([0.0, np.nan, 1.0]), "loss": np.array([1.0, np.inf])}
    with pytest.raises(figures.NonFiniteResultError, match="'fake_fig'.*'loss'") as info:
        figures.run_figure(make_module(result=bad), quick=True, **dirs(tmp_path))
    assert info.value.key == "loss"  # sorted order: "loss" before "x"
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # nothing cached or drawn

    # Allowing one key does not allow the others.
    with pytest.raises(figures.NonFiniteResultError, match="'x'"):
        figures.run_figure(make_module(result=bad, allow=frozenset({"loss"})), quick=True, **dirs(tmp_path))

    with pytest.raises(figures.NonFiniteResultError, match="'total'"):
        figures.run_figure(make_module(result={"x": np.ones(2), "total": float("nan")}), quick=True, **dirs(tmp_path))

    ok = figures.run_figure(make_module(result=bad, allow=frozenset({"loss", "x"})), quick=True, **dirs(tmp_path))
    assert np.isnan(ok.result["x"][1]) and ok.png.exists()


def test_manifest_merge_keeps_other_entries(tmp_path):
    out = tmp_path / "out"
    results.atomic_write_json(out / "manifest.json", {"foreign": {"title": "kept as is"}})
    figures.run_figure(make_module("fig_a"), quick=True, **dirs(tmp_path))
    figures.run_figure(make_module("fig_b"), quick=True, **dirs(tmp_path))
    first = json.loads((out / "manifest.json").read_text())
    assert set(first) == {"foreign", "fig_a", "fig_b"}

    figures.run_figure(make_module("fig_a"), quick=True, **dirs(tmp_path))  # update one figure
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["foreign"] == {"title": "kept as is"} and manifest["fig_b"] == first["fig_b"]
    entry = manifest["fig_a"]
    assert entry["cache_hit"] is True and first["fig_a"]["cache_hit"] is False
    assert entry["title"] == "Title of fig_a" and entry["quick"] is True
    assert entry["config"] == {"n": 3, "scale": 1.0, "label": "a", "shape": [2, 3]}
    assert entry["key"] == results.cache_key("fig_a", 0, FakeConfig(n=3))
    assert entry["summary"] == {"total": 3.0}
    assert entry["runtime"]["plot_s"] > 0 and entry["provenance"]["versions"]["numpy"] == np.__version__
    assert sorted(p.name for p in out.iterdir()) == [
        "fig_a.pdf", "fig_a.png", "fig_b.pdf", "fig_b.png", "manifest.json"
    ]


def test_progress_reaches_run_and_protocol_is_checked(tmp_path):
    seen: list[float] = []
    mod = make_module()
    figures.run_figure(mod, quick=True, progress=seen.append, **dirs(tmp_path))
    assert seen == [0.5, 1.0]

    broken = make_module()
    del broken.plot
    with pytest.raises(figures.FigureProtocolError, match="plot"):
        figures.run_figure(broken, quick=True, **dirs(tmp_path))


def test_registered_name_must_match(register):
    mod = make_module("fig_a")
    mod.NAME = "something_else"
    register(make_module("fig_a"))
    sys.modules["experiments.fig_a"] = mod  # restored by monkeypatch.setitem's teardown
    with pytest.raises(figures.FigureProtocolError, match="must equal"):
        figures.load_figure_module("fig_a", figures.FigureRegistry("experiments"))


# ---------------------------------------------------------------- cli.py


def test_cli_list(register, capsys):
    register(make_module("fig_a"), make_module("fig_b"))
    assert main(["figures", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["fig_a", "fig_b"]
    assert "Title of fig_b" in lines[1]


def test_cli_unknown_name_exits_2(register, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    register(make_module("fig_a"), make_module("fig_b"))
    assert main(["figures", "fig_a", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "fig_a" in err and "fig_b" in err
    assert not (tmp_path / "paper_figs").exists()  # validated before anything ran


def test_cli_quick_goes_to_quick_dir_and_caches(register, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = make_module("fig_a")
    register(mod)
    assert main(["figures", "--quick"]) == 0
    assert (tmp_path / "paper_figs" / "quick" / "fig_a.png").exists()
    assert not (tmp_path / "paper_figs" / "fig_a.png").exists()  # full figures untouched
    assert list((tmp_path / ".cache" / "samtheory").glob("fig_a-*.npz"))
    assert mod.progress_seen == [True]  # the CLI passes a progress callback to run()

    assert main(["figures", "--quick", "fig_a"]) == 0 and mod.calls == 1  # cache hit
    assert main(["figures", "--quick", "--force", "fig_a"]) == 0 and mod.calls == 2

    out, cache = tmp_path / "elsewhere", tmp_path / "c2"
    assert main(["figures", "--quick", "--out", str(out), "--cache-dir", str(cache)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fig_a"]["quick"] is True and (out / "fig_a.pdf").exists()
    assert mod.calls == 3 and list(cache.glob("*.npz"))


def test_cli_failure_reports_and_continues(register, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    register(make_module("broken", fail=True), make_module("fine"))
    assert main(["figures", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "broken exploded" in err
    assert (tmp_path / "paper_figs" / "quick" / "fine.png").exists()
    manifest = json.loads((tmp_path / "paper_figs" / "quick" / "manifest.json").read_text())
    assert set(manifest) == {"fine"}


def test_cli_unavailable_figure_is_skipped_not_failed(register, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = make_module("needs_gpu_results")

    def run(cfg, progress):
        raise figures.FigureUnavailable("no results under results/x; run `samtheory resnet switching-study`")

    missing.run = run
    register(missing, make_module("fine"))
    assert main(["figures", "--quick"]) == 0
    err = capsys.readouterr().err
    assert "1 made, 1 skipped (needs_gpu_results)" in err and "switching-study" in err
    assert not (tmp_path / "paper_figs" / "quick" / "needs_gpu_results.png").exists()
    assert not list((tmp_path / ".cache" / "samtheory").glob("needs_gpu_results-*"))


def test_cli_resnet_is_handed_over_without_float64(monkeypatch, register, tmp_path):
    seen = {"float64_calls": 0}

    def fake_main(argv):
        seen["argv"] = argv
        return 7

    def count_float64_calls():
        seen["float64_calls"] += 1

    fake = types.ModuleType("samtheory.nn.cli")
    fake.main = fake_main
    monkeypatch.setitem(sys.modules, "samtheory.nn.cli", fake)
    import samtheory
    import samtheory.nn as nn_package

    monkeypatch.setattr(nn_package, "cli", fake, raising=False)
    monkeypatch.setattr(samtheory, "enable_float64", count_float64_calls)
    assert main(["resnet", "train", "--epochs", "1"]) == 7
    assert seen == {"float64_calls": 0, "argv": ["train", "--epochs", "1"]}
    # Listing computes nothing and stays free of JAX (tests/test_cli_startup.py);
    # making a figure turns float64 on first.
    assert main(["figures", "--list"]) in (0, 1) and seen["float64_calls"] == 0
    monkeypatch.chdir(tmp_path)
    register(make_module("fig_a"))
    assert main(["figures", "--quick"]) == 0 and seen["float64_calls"] == 1
