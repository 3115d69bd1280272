"""The arrows between the library and the figures point one way: read from the source with ``ast``.

* ``samtheory`` never imports ``experiments`` (the ``samtheory figures``
  command hands the pipeline a registry instead; ``samtheory/cli.py`` names
  the package as a string, the one place that does).
* An experiment imports the library and at most the one shared helper
  ``experiments/_dln_variants.py``, never another experiment.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_HELPER = "experiments._dln_variants"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` gives ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_experiment(name: str) -> bool:
    return name == "experiments" or name.startswith("experiments.")


def test_the_library_imports_no_experiment():
    arrows = [
        (_module_name(path), target)
        for path in sorted((ROOT / "samtheory").rglob("*.py"))
        for target in _imports(path)
        if _is_experiment(target)
    ]
    assert arrows == []


def test_no_experiment_imports_another():
    arrows = set()
    experiments = sorted((ROOT / "experiments").glob("*.py"))
    assert len(experiments) > 5
    for path in experiments:
        source = _module_name(path)
        for target in _imports(path):
            # `from experiments._dln_variants import X` also yields `..._dln_variants.X`.
            if _is_experiment(target) and not target.startswith(SHARED_HELPER) and target != "experiments":
                if (ROOT / (target.replace(".", "/") + ".py")).exists() or target.count(".") == 1:
                    arrows.add((source, target))
    assert arrows == set(), f"experiments import other experiments: {sorted(arrows)}"


def test_the_installed_distribution_has_no_experiments_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = next(line for line in pyproject.splitlines() if line.startswith("include"))
    assert "experiments" not in include
