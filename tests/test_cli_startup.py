"""``samtheory --help`` and ``samtheory figures --list`` start without JAX (issue 15).

Each command runs in a fresh interpreter that reports, after ``main``
returns, which heavy packages it imported; none may be there. The wall time
is checked only loosely (the machine is shared); the measured numbers are
in ``benchmarks/results/bench_figures.json`` and the README.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import experiments
import pytest
from samtheory.figure_registry import FigureRegistry, static_figure_attributes

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "jaxlib", "numpy", "scipy", "matplotlib", "optax", "diffrax")

# Runs samtheory.cli.main(argv) and prints, last, the heavy packages and the
# figure modules it imported.
_PROBE = textwrap.dedent(
    """
    import sys
    from samtheory.cli import main
    code = main(sys.argv[1:])
    heavy = sorted(m for m in {heavy!r} if m in sys.modules)
    figures = sorted(m for m in sys.modules if m.startswith("experiments."))
    print("IMPORTED:" + ",".join(heavy + figures))
    sys.exit(code)
    """
).format(heavy=HEAVY)


def _run_cli(*argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    return done, time.perf_counter() - start


def _imported(done: subprocess.CompletedProcess[str]) -> list[str]:
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("IMPORTED:"), done.stdout + done.stderr
    return [m for m in line.removeprefix("IMPORTED:").split(",") if m]


@pytest.mark.parametrize("argv", [("--help",), ("figures", "--help"), ("figures", "--list")])
def test_help_and_list_import_no_jax(argv):
    done, wall_s = _run_cli(*argv)
    assert done.returncode == 0, done.stderr
    assert _imported(done) == []
    # Loose: a bare interpreter takes ~0.5 s here under load; JAX alone took 3-5 s.
    assert wall_s < 3.0, f"samtheory {' '.join(argv)} took {wall_s:.1f} s"


def test_list_prints_every_registered_figure_with_its_title():
    done, _ = _run_cli("figures", "--list")
    listed = {line.split()[0]: line.split(None, 1)[1] for line in done.stdout.splitlines()[:-1]}
    assert tuple(listed) == experiments.FIGURE_MODULES
    for name in experiments.FIGURE_MODULES:
        source = (ROOT / "experiments" / f"{name}.py").read_text(encoding="utf-8")
        titles = [
            ast.literal_eval(node.value)
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TITLE" for t in node.targets)
        ]
        assert listed[name] == titles[-1]


def test_unknown_name_in_list_is_a_usage_error():
    done, _ = _run_cli("figures", "--list", "no_such_figure")
    assert done.returncode == 2
    assert "no_such_figure" in done.stderr and experiments.FIGURE_MODULES[0] in done.stderr
    assert _imported(done) == []


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A registry package ``startup_figs`` in ``tmp_path`` whose modules are written by the test."""
    package = tmp_path / "startup_figs"
    package.mkdir()
    (package / "__init__.py").write_text("FIGURE_MODULES = ('literal', 'computed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "startup_figs" or m.startswith("startup_figs.")]:
        monkeypatch.delitem(sys.modules, name)
    yield package
    for name in [m for m in sys.modules if m == "startup_figs" or m.startswith("startup_figs.")]:
        del sys.modules[name]


def test_static_attributes_read_literals_without_importing(fake_package):
    (fake_package / "literal.py").write_text(
        textwrap.dedent(
            '''\
            """A docstring that mentions
            TITLE = "not this one"
            """
            raise RuntimeError("importing this module is not allowed")
            NAME = "literal"
            TITLE = ("spans "
                     "two lines")
            '''
        )
    )
    registry = FigureRegistry("startup_figs")
    # Importing would raise: the values come from the source alone.
    assert static_figure_attributes("literal", registry) == {"NAME": "literal", "TITLE": "spans two lines"}
    assert "startup_figs.literal" not in sys.modules


def test_static_attributes_fall_back_to_import_for_computed_values(fake_package):
    # A literal first, then a computed rebinding: only importing knows the value.
    (fake_package / "computed.py").write_text(
        'NAME = "computed"\nTITLE = "literal"\nTITLE = "x".upper() + " computed"\n'
    )
    attributes = static_figure_attributes("computed", FigureRegistry("startup_figs"))
    assert attributes == {"NAME": "computed", "TITLE": "X computed"}
    assert "startup_figs.computed" in sys.modules


def test_a_listing_piped_into_head_ends_quietly():
    """`samtheory figures --list | head -1`: the closed pipe is not an error (no traceback, status 0)."""
    reader_closes_early = (
        f"{sys.executable} -m samtheory.cli figures --list | head -1; exit ${{PIPESTATUS[0]}}"
    )
    done = subprocess.run(["bash", "-c", reader_closes_early], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1
