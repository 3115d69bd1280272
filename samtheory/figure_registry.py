"""Which figures exist and what they are called, known without importing them.

The registry of figure modules (:class:`FigureRegistry`, the package whose
``FIGURE_MODULES`` lists them) and name resolution live here, apart from the
pipeline of :mod:`samtheory.figures`, because they must stay cheap: ``samtheory
figures --list`` answers from this module alone, in well under a second,
without importing NumPy, matplotlib, JAX or any experiment (issue 15).
:func:`static_figure_attributes` reads a figure's ``NAME`` and ``TITLE``
from the literal assignments in its source with :mod:`ast`; a module that
computes them is imported instead (correct, only slower).

Conventions: none of the mathematical ones apply here.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "FigureRegistry",
    "UnknownFigureError",
    "registered_figures",
    "resolve_figure_names",
    "figure_source_path",
    "static_figure_attributes",
]


class UnknownFigureError(ValueError):
    """A requested figure name is not in the registry."""

    def __init__(self, unknown: Sequence[str], valid: Sequence[str]):
        self.unknown = tuple(unknown)
        self.valid = tuple(valid)
        listing = ", ".join(self.valid) if self.valid else "(none registered)"
        super().__init__(f"unknown figure(s): {', '.join(self.unknown)}; valid names: {listing}")


@dataclasses.dataclass(frozen=True)
class FigureRegistry:
    """Where the figure modules live: the importable package ``package`` whose
    ``FIGURE_MODULES`` lists them, in order, and whose submodule ``<name>`` is each one.

    Handed to the pipeline by its caller, so that the library names no
    experiment. The list is read at call time (tests may replace it).
    """

    package: str

    def names(self) -> tuple[str, ...]:
        """The registered figure names."""
        return tuple(importlib.import_module(self.package).FIGURE_MODULES)

    def module(self, name: str) -> ModuleType:
        """The module ``<package>.<name>`` (not checked; see :func:`samtheory.figures.load_figure_module`)."""
        return importlib.import_module(f"{self.package}.{name}")


def registered_figures(registry: FigureRegistry) -> tuple[str, ...]:
    """The figure names of ``registry``, read at call time."""
    return registry.names()


def resolve_figure_names(names: Iterable[str] | None, registry: FigureRegistry) -> tuple[str, ...]:
    """Validate requested names against the registry; ``None`` or empty → all, in registry order.

    Duplicates are dropped (first occurrence kept). Raises
    :class:`UnknownFigureError` listing the unknown and the valid names.
    """
    valid = registered_figures(registry)
    requested = tuple(dict.fromkeys(names or ()))
    if not requested:
        return valid
    unknown = [n for n in requested if n not in valid]
    if unknown:
        raise UnknownFigureError(unknown, valid)
    return requested


def figure_source_path(name: str, registry: FigureRegistry) -> Path | None:
    """The source file of ``<package>.<name>`` without importing it; ``None`` if it has none.

    A module already in ``sys.modules`` answers from its ``__file__`` (a
    module built in memory, as tests do, has none).
    """
    qualified = f"{registry.package}.{name}"
    loaded = sys.modules.get(qualified)
    if loaded is not None:
        path = getattr(loaded, "__file__", None)
        return Path(path) if path else None
    spec = importlib.util.find_spec(qualified)  # imports the package, not the module
    if spec is None or not spec.origin or not spec.has_location or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _statements_through(source: str, wanted: frozenset[str]) -> list[ast.stmt]:
    """The top-level statements of ``source`` up to the last line that may assign one of ``wanted``.

    Parsing a whole experiment costs ~15 ms (the listing would spend a
    quarter of a second on it); ``NAME`` and ``TITLE`` sit near the top, so
    only the prefix that ends with the last line starting with one of the
    names at column 0 is parsed, extended line by line until it is complete
    (a parenthesized title spans lines; a match inside a docstring only
    makes the prefix longer). The whole file is the fallback.
    """
    lines = source.splitlines(keepends=True)
    pattern = re.compile(rf"^(?:{'|'.join(map(re.escape, sorted(wanted)))})\s*[:=]")
    last = max((i for i, line in enumerate(lines) if pattern.match(line)), default=None)
    if last is not None:
        for end in range(last + 1, min(last + 40, len(lines)) + 1):
            try:
                return ast.parse("".join(lines[:end])).body
            except SyntaxError:
                continue
    return ast.parse(source).body


def _literal_assignments(path: Path, wanted: Iterable[str]) -> dict[str, Any]:
    """Top-level ``NAME = <literal>`` assignments of ``path`` for the names in ``wanted``.

    The last assignment wins, as at import; a name bound to anything but a
    literal (a call, a name, an f-string) is left out.
    """
    wanted = frozenset(wanted)
    found: dict[str, Any] = {}
    for node in _statements_through(path.read_text(encoding="utf-8"), wanted):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    found.pop(target.id, None)
    return found


def static_figure_attributes(
    name: str, registry: FigureRegistry, attributes: Sequence[str] = ("NAME", "TITLE")
) -> dict[str, Any]:
    """The module-level ``attributes`` of figure ``name``, read without running its module when possible.

    A module already imported answers directly. Otherwise its source is
    parsed and the literal assignments read; if one of ``attributes`` is not
    a literal there (or the module has no source file), the module is
    imported and asked. Raises what reading or importing raises
    (``SyntaxError``, ``ImportError``, ...) and ``AttributeError`` for a
    missing attribute.
    """
    qualified = f"{registry.package}.{name}"
    module = sys.modules.get(qualified)
    if module is None:
        path = figure_source_path(name, registry)
        if path is not None:
            found = _literal_assignments(path, attributes)
            if all(a in found for a in attributes):
                return {a: found[a] for a in attributes}
        module = registry.module(name)
    missing = [a for a in attributes if not hasattr(module, a)]
    if missing:
        raise AttributeError(f"figure module {qualified} lacks {', '.join(missing)}")
    return {a: getattr(module, a) for a in attributes}
