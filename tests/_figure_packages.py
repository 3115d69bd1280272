"""Figure packages written to disk for the pipeline tests, and forgetting them again.

A figure module built in memory is neither seen by the source digest nor
importable by a worker process, so these tests write real packages.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_figure_package(root: Path, package: str, modules: Mapping[str, str], figures: Sequence[str]) -> Path:
    """``root/<package>/`` with ``FIGURE_MODULES = figures`` and one ``<name>.py`` per entry of ``modules``."""
    folder = root / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(f"FIGURE_MODULES = {tuple(figures)!r}\n")
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def forget_package(package: str) -> None:
    """Drop ``package`` and its submodules from ``sys.modules``, so the next import reads the files again."""
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
