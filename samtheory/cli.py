"""Command line: ``samtheory figures [NAMES...] [--quick] [--force] [--out DIR] [--cache-dir DIR] [--list] [--experiments DIR]``,
``samtheory resnet ...`` (handed to :mod:`samtheory.nn.cli`) and ``samtheory demo ...``
(handed to :mod:`samtheory.demos`).

Exit codes: 0 all requested figures made (or listed); 1 at least one figure
failed (the others are still made); 2 usage error, e.g. an unknown figure
name (the valid names are printed).

Float policy ([float]): :func:`main` turns on float64 before anything else
runs JAX code (except for ``resnet``, which trains in float32/bf16), and selects matplotlib's non-interactive "Agg" backend so
figures render the same with or without a display.

Where the figures come from: the figure modules live in the top-level folder
``experiments/`` of the source tree, which is not installed (no package
named ``experiments`` lands in site-packages). This module is the one place
that names it: :func:`figure_registry` finds the folder (``--experiments DIR``,
else the current directory, else the source tree this package was installed
from in editable mode) and hands :mod:`samtheory.figures` a
:class:`~samtheory.figures.FigureRegistry`; the library itself imports no experiment.

Start-up cost (issue 15): ``samtheory --help`` and ``samtheory figures
--list`` import neither JAX nor NumPy nor matplotlib nor any experiment.
The parser is plain argparse, the listing reads each figure's ``NAME`` and
``TITLE`` from its source (:mod:`samtheory.figure_registry`), and the heavy
modules are imported only by the command that runs something.
``tests/test_cli_startup.py`` holds that line.

Conventions: turns on [float] before anything touches JAX.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import samtheory

#: The package of figure modules, and the folder of the source tree that holds it.
EXPERIMENTS_PACKAGE = "experiments"


def figure_registry(experiments_root: Path | None = None):
    """The registry of the ``experiments`` package, making it importable from ``experiments_root``.

    ``experiments_root`` is the folder that contains ``experiments/``; by
    default the current directory if it has one, else the source tree that
    holds this package (an editable install). An ``experiments`` package that
    is already importable (tests, ``PYTHONPATH``) is used as it is. Raises
    ``FileNotFoundError`` naming where it looked.
    """
    from samtheory.figure_registry import FigureRegistry

    if experiments_root is None and importlib.util.find_spec(EXPERIMENTS_PACKAGE) is not None:
        return FigureRegistry(EXPERIMENTS_PACKAGE)
    candidates = [experiments_root] if experiments_root is not None else [
        Path.cwd(), Path(samtheory.__file__).resolve().parents[1]
    ]
    for root in candidates:
        if (Path(root) / EXPERIMENTS_PACKAGE / "__init__.py").is_file():
            sys.path.insert(0, str(Path(root).resolve()))
            return FigureRegistry(EXPERIMENTS_PACKAGE)
    raise FileNotFoundError(
        f"no {EXPERIMENTS_PACKAGE}/ folder with an __init__.py in {', '.join(str(c) for c in candidates)}: "
        "run samtheory figures from the repository root, or pass --experiments DIR"
    )

__all__ = ["main", "build_parser", "figure_registry"]


def _positive_int(text: str) -> int:
    """``--jobs``: an integer >= 1; otherwise argparse's usage error names the option."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``samtheory`` command."""
    parser = argparse.ArgumentParser(
        prog="samtheory", description="Sharpness-Aware Minimization theory: checks and paper figures."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    figures = commands.add_parser(
        "figures",
        help="regenerate paper figures",
        description=(
            "Regenerate paper figures (all registered ones if no NAME is given). Results are cached by "
            "(figure, CODE_VERSION, config, the figure module's computing code; not the library); a cache hit "
            "only re-plots. Compiled programs are kept in <cache-dir>/jax/<figure>/. Full figures go to paper_figs/, "
            "quick ones to paper_figs/quick/ unless --out is given."
        ),
    )
    figures.add_argument("names", nargs="*", metavar="NAME", help="figures to make (default: all)")
    figures.add_argument("--quick", action="store_true", help="small smoke-test configurations (same code, tiny sizes)")
    figures.add_argument("--force", action="store_true", help="recompute even if a cached result exists")
    figures.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="output directory (default: paper_figs/, or paper_figs/quick/ with --quick)",
    )
    figures.add_argument(
        "--cache-dir", type=Path, default=None, metavar="DIR", help="result cache (default: .cache/samtheory/)"
    )
    figures.add_argument(
        "--jobs", type=_positive_int, default=1, metavar="N",
        help="make N figures at a time, each in its own process (default: 1)",
    )
    figures.add_argument("--list", action="store_true", help="list the registered figures and exit")
    figures.add_argument(
        "--experiments", type=Path, default=None, metavar="DIR",
        help="the folder that contains experiments/ (default: the current directory, else the source tree)",
    )
    # Parsed by samtheory.nn.cli; listed here so that `samtheory --help` shows it.
    resnet = commands.add_parser(
        "resnet", add_help=False,
        help="ResNet-18 SAM/ERM switching runs, checkpoints, benchmarks (needs the nn extra); "
        "`samtheory resnet --help`",
    )
    resnet.add_argument("rest", nargs=argparse.REMAINDER)
    # Parsed by samtheory.demos; listed here so that `samtheory --help` shows it.
    demo = commands.add_parser(
        "demo", add_help=False, help="reading-group demos (marimo; demo extra): `samtheory demo --list`"
    )
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _list_figures(names: Sequence[str], registry) -> int:
    # Static: reads NAME/TITLE from each module's source, imports no figure
    # (and so no JAX); a module whose TITLE is not a literal is imported.
    from samtheory.figure_registry import resolve_figure_names, static_figure_attributes

    status = 0
    selected = resolve_figure_names(names, registry)
    if not selected:
        print("(no figures registered in experiments.FIGURE_MODULES)", file=sys.stderr)
    for name in selected:
        try:
            attributes = static_figure_attributes(name, registry)
            if attributes["NAME"] != name:
                raise ValueError(f"NAME is {attributes['NAME']!r}; it must equal the module name")
            title = attributes["TITLE"]
        except Exception as err:  # list the rest even if one module is broken
            title = f"(cannot load: {type(err).__name__}: {err})"
            status = 1
        print(f"{name:<32} {title}")
    return status


def _figures_command(args: argparse.Namespace) -> int:
    from samtheory.figure_registry import UnknownFigureError

    try:
        registry = figure_registry(args.experiments)
    except FileNotFoundError as err:
        print(f"samtheory figures: error: {err}", file=sys.stderr)
        return 2
    if args.list:
        try:
            return _list_figures(args.names, registry)
        except UnknownFigureError as err:
            print(f"samtheory figures: error: {err}", file=sys.stderr)
            return 2
    # Something will be computed or drawn: float64 before any JAX array
    # exists ([float]), Agg before any figure exists.
    samtheory.enable_float64()
    import matplotlib

    matplotlib.use("Agg")
    from samtheory import figures

    try:
        outcome = figures.run_figures(
            args.names, registry=registry, quick=args.quick, out_dir=args.out, cache_dir=args.cache_dir, force=args.force,
            jobs=args.jobs,
        )
    except UnknownFigureError as err:
        print(f"samtheory figures: error: {err}", file=sys.stderr)
        return 2
    except (figures.UnwritableDirectoryError, ValueError) as err:
        # Checked before any figure runs: an unwritable --out/--cache-dir or a corrupt manifest.
        print(f"samtheory figures: error: {err}; nothing was computed", file=sys.stderr)
        return 2
    made = len(outcome.records)
    skipped = f", {len(outcome.skipped)} skipped ({', '.join(outcome.skipped)})" if outcome.skipped else ""
    if outcome.failures:
        print(
            f"samtheory figures: {made} made{skipped}, {len(outcome.failures)} failed: {', '.join(outcome.failures)}",
            file=sys.stderr,
        )
        return 1
    print(f"samtheory figures: {made} made{skipped}", file=sys.stderr)
    return 0


def _resnet_command(argv: Sequence[str]) -> int:
    try:
        from samtheory.nn import cli as resnet_cli
    except ImportError as err:
        print(
            f"samtheory resnet: error: {err}. Install the nn extra: python3 -m pip install -e '.[nn]'",
            file=sys.stderr,
        )
        return 2
    return resnet_cli.main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``samtheory`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    A reader who pipes a listing into ``head`` closes the pipe early; that is
    not an error, so the command stops quietly with status 0 then.
    """
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at
        # exit; point stdout at /dev/null first (the recipe of the signal docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _dispatch(argv: list[str]) -> int:
    # The ResNet runs stay in float32/bf16, so they branch off before float64
    # is switched on; everything else is theory and runs in float64.
    if argv[:1] == ["resnet"]:
        return _resnet_command(argv[1:])
    if argv[:1] == ["demo"]:  # serves or exports marimo notebooks, in their own process
        from samtheory import demos

        return demos.main(argv[1:])
    # No JAX, NumPy or matplotlib yet: --help and --list must stay instant.
    # The command that computes turns on float64 and Agg first thing.
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error (code 2): return instead of exiting
        return int(exit_.code or 0)
    if args.command == "figures":
        return _figures_command(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
