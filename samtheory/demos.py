"""``samtheory demo``: list, serve and export the reading-group demos (marimo notebooks in ``demos/``).

* ``samtheory demo --list``
* ``samtheory demo NAME [--port N] [--headless]``: ``marimo run``, in the browser;
* ``samtheory demo NAME --export html|ipynb [--out PATH]``: ``marimo export``
  (static HTML with the outputs, or a Jupyter notebook with them).

The demos are files of the source tree, found by path (``demos/`` next to
the package, or ``$SAMTHEORY_DEMOS_DIR``); the library never imports them.
They need the ``demo`` extra (marimo).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEMOS", "demos_dir", "demo_path", "marimo_command", "main"]

#: name → one-line description, in the order of the talk.
DEMOS: dict[str, str] = {
    "sam_2d": "SAM in two dimensions: GD, SAM and USAM between a sharp and a flat minimum, ascent arrows",
    "dln_implicit_bias": "Diagonal linear networks: beta vs beta*, effective alpha vs Theorem 1, Q_alpha between l1 and l2",
    "m_sharpness": "m-sharpness: test loss against m, and what the chunk perturbations look like",
    "sam_quadratics": "SAM on quadratics: the USAM stability region and normalized SAM's 2-cycle",
    "relu_kinks": "ReLU kinks: ERM vs 1-SAM on 1-D regression (trained runs cached), kinks counted live",
    "dln_switching": "Switching ERM -> 1-SAM on the DLN in the reference notebook's setting, and the linear path",
    "pac_bayes": "Foret et al.'s bound and its kl form (calculator, kl inverse drawn); Dziugaite-Roy from cached runs",
    "convergence": "Theorem 2's bounds against measured stochastic USAM runs, over the horizon T",
}


def demos_dir() -> Path:
    """``$SAMTHEORY_DEMOS_DIR`` or ``demos/`` of the source tree this package was loaded from."""
    override = os.environ.get("SAMTHEORY_DEMOS_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "demos"


def demo_path(name: str) -> Path:
    """The notebook file of demo ``name``; ``ValueError`` naming the valid names otherwise."""
    if name not in DEMOS:
        raise ValueError(f"NAME must be one of {', '.join(DEMOS)}; got {name!r}")
    path = demos_dir() / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the demos live in the source tree (demos/); set SAMTHEORY_DEMOS_DIR to that folder"
        )
    return path


def marimo_command(name: str, *, export: str | None = None, out: Path | None = None,
                   port: int | None = None, headless: bool = False) -> list[str]:
    """The ``marimo`` command line that serves or exports demo ``name``."""
    path = str(demo_path(name))
    marimo = [sys.executable, "-m", "marimo"]
    if export is None:
        command = marimo + ["run", path, "--no-token"]
        if port is not None:
            command += ["--port", str(port)]
        return command + (["--headless"] if headless else [])
    if export not in ("html", "ipynb"):
        raise ValueError(f"--export must be html or ipynb, got {export!r}")
    out = Path(out) if out is not None else Path(f"{name}.{export}")
    command = marimo + ["export", export, path, "-o", str(out), "--force"]
    return command + (["--include-outputs"] if export == "ipynb" else [])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samtheory demo", description="Serve or export a reading-group demo.")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the demo (see --list)")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    parser.add_argument("--export", choices=("html", "ipynb"), help="write static HTML or a notebook with outputs")
    parser.add_argument("--out", type=Path, help="output file of --export (default: NAME.html / NAME.ipynb)")
    parser.add_argument("--port", type=int, help="port to serve on (default: marimo's)")
    parser.add_argument("--headless", action="store_true", help="serve without opening a browser")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``samtheory demo ARGS``; return the exit code (2 on a usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.list:
        for name, title in DEMOS.items():
            print(f"{name:<20} {title}")
        return 0
    if args.name is None:
        parser.print_usage(sys.stderr)
        print("samtheory demo: error: give a NAME or --list", file=sys.stderr)
        return 2
    try:
        command = marimo_command(args.name, export=args.export, out=args.out, port=args.port, headless=args.headless)
    except (ValueError, FileNotFoundError) as err:
        print(f"samtheory demo: error: {err}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("marimo") is None:
        print("samtheory demo: error: marimo is not installed; python3 -m pip install -e '.[demo]'", file=sys.stderr)
        return 2
    return subprocess.call(command)
