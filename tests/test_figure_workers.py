"""``samtheory figures --jobs N``: figures made in worker processes compute what they compute alone (issue 15).

The workers are spawned Python processes; the figure modules they import are
written to ``tmp_path`` as a package (``jobfigs``), since a module built in
memory does not exist in another process. What can fail: a worker that
loses the caller's float policy ([float]) or import path, a manifest entry
lost to two processes writing it, a failing figure that stops the others,
records out of the caller's order, and a bad ``jobs`` that is not refused.
"""

from __future__ import annotations

import json
import textwrap

import jax
import numpy as np
import pytest
from samtheory import cli, figures

from _figure_packages import forget_package, write_figure_package

_MODULE = textwrap.dedent(
    '''\
    """Figure {name}."""

    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np
    from matplotlib.figure import Figure

    NAME = "{name}"
    TITLE = "Figure {name}"
    CAPTION = "What to see in {name}."


    @dataclasses.dataclass(frozen=True)
    class Config:
        n: int


    def config(quick):
        return Config(n={n})


    def run(cfg, progress):
        {body}
        x = jax.jit(lambda v: jnp.cumsum(v) / 3.0)(jnp.arange(cfg.n, dtype=float))
        return {{"x": np.asarray(x), "float64": bool(x.dtype == jnp.float64)}}


    def summary(result, cfg):
        return {{"last": float(result["x"][-1]), "float64": float(result["float64"])}}


    def plot(result, cfg):
        fig = Figure(figsize=(2, 1.5))
        fig.add_subplot().plot(result["x"])
        return fig
    '''
)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """Figures ``a``, ``b`` and ``c`` in the package ``jobfigs``; ``broken`` raises in ``run``."""
    modules = {name: _MODULE.format(name=name, n=n, body="pass") for name, n in (("a", 5), ("b", 7), ("c", 11))}
    modules["broken"] = _MODULE.format(name="broken", n=3, body='raise RuntimeError("run is broken")')
    write_figure_package(tmp_path / "src", "jobfigs", modules, ("a", "broken", "b", "c"))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield figures.FigureRegistry("jobfigs")
    forget_package("jobfigs")


def _run(registry, tmp_path, label: str, jobs: int):
    return figures.run_figures(
        registry=registry, quick=True, out_dir=tmp_path / label / "out", cache_dir=tmp_path / label / "cache",
        verbose=False, jobs=jobs,
    )


def test_workers_compute_bitwise_what_one_process_does_and_a_failure_stops_no_other(package, tmp_path):
    assert jax.config.jax_enable_x64  # the suite's float policy (conftest), which the workers must inherit
    alone = _run(package, tmp_path, "alone", jobs=1)
    together = _run(package, tmp_path, "together", jobs=3)

    for outcome in (alone, together):
        assert [r.name for r in outcome.records] == ["a", "b", "c"]  # the registry's order, whoever finished first
        assert list(outcome.failures) == ["broken"] and "run is broken" in outcome.failures["broken"]
    for one, other in zip(alone.records, together.records):
        assert one.summary == other.summary and one.summary["float64"] == 1.0
        np.testing.assert_array_equal(one.result["x"], other.result["x"])
        assert one.key == other.key and not other.cache_hit

    manifest = json.loads((tmp_path / "together" / "out" / figures.MANIFEST_NAME).read_text())
    assert sorted(manifest) == ["a", "b", "c"]  # three processes updated it; no entry lost
    # Each figure keeps its compiled programs in its own folder (no two processes write one file).
    jax_dir = tmp_path / "together" / "cache" / figures.COMPILATION_CACHE_SUBDIR
    assert {p.name for p in jax_dir.iterdir()} >= {"a", "b", "c"}
    assert all(any((jax_dir / name).iterdir()) for name in ("a", "b", "c"))

    again = _run(package, tmp_path, "together", jobs=2)  # a second run reads every result from the cache
    assert [r.cache_hit for r in again.records] == [True, True, True]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_a_bad_jobs_is_refused_naming_it(package, tmp_path, jobs):
    with pytest.raises(ValueError, match="jobs"):
        _run(package, tmp_path, "bad", jobs=jobs)
    assert not (tmp_path / "bad").exists()  # refused before anything ran


def test_the_cli_refuses_jobs_below_one(capsys):
    assert cli.main(["figures", "--jobs", "0"]) == 2
    assert "--jobs: must be an integer >= 1, got '0'" in capsys.readouterr().err
