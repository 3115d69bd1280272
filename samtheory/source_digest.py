"""The code of a figure module that can change its result, hashed: part of the result cache's identity.

A cached result is reused only if the figure module's code that computes it
is unchanged, so that editing one experiment recomputes exactly that figure
on the next ``samtheory figures`` and nothing else (issue 15). The digest
covers:

* the figure module's source, read as Python (:mod:`ast`): comments,
  docstrings and layout do not count;
* minus its presentation: the top-level ``plot``, ``summary``, ``TITLE`` and
  ``CAPTION``, and every private top-level helper that only they use
  (they run after every cache load, so a changed plot re-plots without
  recomputing). A presentation name that the computing code refers to
  stays in;
* plus, whole, every module of the same top-level package that it imports
  (``experiments/_dln_variants.py``, the experiments' shared helper).

It does **not** cover the library (``samtheory.*``) or any installed package:
a library change that alters a result still needs a ``CODE_VERSION`` bump in
each figure it reaches, or ``--force``.

Conventions: none of the mathematical ones apply here.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["PRESENTATION_NAMES", "figure_source_digest", "computing_source"]

#: Top-level names of the figure protocol that only present a result.
PRESENTATION_NAMES = frozenset({"plot", "summary", "TITLE", "CAPTION"})


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _defined_name(statement: ast.stmt) -> str | None:
    """The one name a top-level ``def``, ``class`` or single-target assignment binds; else ``None``."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return statement.name
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    return None


def _names_used(statement: ast.stmt) -> set[str]:
    return {node.id for node in ast.walk(statement) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def computing_source(tree: ast.Module) -> list[ast.stmt]:
    """The top-level statements of a figure module that can change what its ``run`` computes.

    Drops the presentation (:data:`PRESENTATION_NAMES`) and, repeatedly, any
    private (``_``-prefixed) top-level definition that only dropped
    definitions use, keeping any definition that kept code refers to.
    """
    statements = list(tree.body)
    names = [_defined_name(s) for s in statements]
    used = [_names_used(s) for s in statements]
    dropped = {i for i, name in enumerate(names) if name in PRESENTATION_NAMES}
    changed = True
    while changed:
        changed = False
        kept_uses = set().union(*(used[i] for i in range(len(statements)) if i not in dropped))
        # A presentation name that computing code refers to comes back.
        for i in sorted(dropped):
            if names[i] in kept_uses:
                dropped.discard(i)
                changed = True
        if changed:
            continue
        for i, name in enumerate(names):
            if i in dropped or name is None or not name.startswith("_"):
                continue
            users = [j for j in range(len(statements)) if j != i and name in used[j]]
            if users and all(j in dropped for j in users):
                dropped.add(i)
                changed = True
    return [s for i, s in enumerate(statements) if i not in dropped]


def _package_imports(tree: ast.Module, package: str, module_name: str) -> list[str]:
    """Modules of ``package`` that ``tree`` (the module ``module_name``) imports, absolute, in order."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_name.rsplit(".", node.level)[0]
                prefix = f"{base}.{node.module}" if node.module else base
            else:
                prefix = node.module or ""
            candidates = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.startswith(f"{package}.") and candidate not in found and candidate != module_name:
                found.append(candidate)
    return found


def _source_file(module: ModuleType) -> Path | None:
    path = getattr(module, "__file__", None)
    return Path(path) if path and str(path).endswith(".py") and Path(path).is_file() else None


def _package_file(package_dir: Path, package: str, name: str) -> Path | None:
    """The source file of module ``name`` inside ``package`` (found on disk, nothing imported)."""
    parts = name.split(".")[1:]
    for candidate in (package_dir.joinpath(*parts).with_suffix(".py"), package_dir.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None  # a name imported from a module, not a module


def figure_source_digest(module: ModuleType) -> str | None:
    """sha256 of the code of figure ``module`` that can change its result (module docstring); ``None`` without a source file.

    A module built in memory (tests) has no source file and gets ``None``:
    its results are cached by config and ``CODE_VERSION`` alone.
    """
    path = _source_file(module)
    if path is None:
        return None
    tree = _without_docstrings(ast.parse(path.read_bytes(), filename=str(path)))
    assert isinstance(tree, ast.Module)
    digest = hashlib.sha256()
    digest.update(ast.dump(ast.Module(body=computing_source(tree), type_ignores=[])).encode())
    package = module.__name__.split(".")[0]
    package_module = sys.modules.get(package)
    package_file = _source_file(package_module) if package_module is not None else None
    if package != module.__name__ and package_file is not None:
        for name in _package_imports(tree, package, module.__name__):
            helper = _package_file(package_file.parent, package, name)
            if helper is not None:
                digest.update(f"\0{name}\0".encode())
                digest.update(ast.dump(_without_docstrings(ast.parse(helper.read_bytes()))).encode())
    return digest.hexdigest()
