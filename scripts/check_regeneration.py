#!/usr/bin/env python3
"""Regenerate figures from scratch and check that their summaries match a manifest.

    python scripts/check_regeneration.py                        # every figure in paper_figs/manifest.json
    python scripts/check_regeneration.py relu_kinks hessian_spectra
    python scripts/check_regeneration.py --quick --manifest paper_figs/quick/manifest.json NAME

Each figure is recomputed (no cache is read) into a temporary directory and
its summary compared with the manifest entry, bitwise (float32 figures too:
samtheory.regeneration.FLOAT32_RTOL is 0; docs/pipeline.md says why). Run it
from the repository root of a clean checkout, on the machine type that made
the manifest; on another one, --float64-rtol 1e-12 absorbs the last-bit
differences of float64 figures. A manifest entry made by another config or
CODE_VERSION is reported as stale.

Exit status: 0 all reproduced, 1 some differ or are stale, 2 usage error.
Conventions: [float] (float64 is enabled first, as the CLI does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's samtheory, not an installed one

import samtheory  # noqa: E402
from samtheory import figures, regeneration  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="figures to check (default: every figure in the manifest)")
    parser.add_argument("--manifest", default=None,
                        help="manifest to compare with (default paper_figs/manifest.json, or paper_figs/quick/ "
                             "with --quick)")
    parser.add_argument("--quick", action="store_true", help="regenerate the quick configurations")
    parser.add_argument("--float32-rtol", type=float, default=regeneration.FLOAT32_RTOL,
                        help="relative tolerance for float32 figures (default %(default)g)")
    parser.add_argument("--float64-rtol", type=float, default=0.0,
                        help="relative tolerance for float64 figures (default 0: bitwise; for another machine type)")
    parser.add_argument("--out", default=None, help="keep the regenerated figures here instead of a temp dir")
    args = parser.parse_args(argv)
    manifest = args.manifest or ("paper_figs/quick/manifest.json" if args.quick else "paper_figs/manifest.json")
    samtheory.enable_float64()
    try:
        registry = figures.FigureRegistry("experiments")  # this checkout's experiments/, on sys.path above
        checks = regeneration.check_regeneration(args.names or None, manifest, registry, quick=args.quick, out_dir=args.out,
                                                 float32_rtol=args.float32_rtol, float64_rtol=args.float64_rtol)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"check_regeneration: {err}", file=sys.stderr)
        return 2
    for check in checks:
        print(check)
    bad = [c.name for c in checks if not c.ok]
    print(f"{len(checks) - len(bad)} of {len(checks)} figures reproduced" + (f"; not: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
