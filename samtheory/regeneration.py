"""Does regenerating a figure reproduce the numbers its manifest records?

A committed figure is only worth as much as the promise that a user who
runs ``samtheory figures`` on a fresh clone gets the same numbers. This
module regenerates figures into a scratch directory, with a scratch cache
(so nothing is read from an earlier run), and compares each figure's
``summary`` with the manifest entry it is checked against.

The comparison is **bitwise** by default, for float64 and float32 figures
alike: JSON stores a float by its shortest round-tripping decimal, so equal
floats compare equal and any difference is a real one. Measured on one
machine type (docs/pipeline.md, "Reproducible numbers"): two regenerations
from different clones, at different loads, agree bitwise, float32 training
included, and a float64 run on 1 core agrees with one on 2. What does change
numbers is the machine type: XLA compiles for the host's vector instruction
set, which reorders float sums. On another machine type float64 summaries
move in the last bits (``float64_rtol`` lets such a check pass at, say,
1e-12), while the float32 figures (``dtype="float32"`` in their config: the
MNIST-1D and Fashion-MNIST MLPs, trained in float32 for CPU time) carry a
rounding difference through thousands of SGD steps and come out visibly
different (a bound moves by 0.7 %, a Kendall τ by 0.1): no tolerance tells
that apart from a changed computation, so :data:`FLOAT32_RTOL` is 0 and a
float32 figure is checked on the machine type that made its manifest entry.

A figure whose config key differs from the manifest's (another config or
``CODE_VERSION``) is reported as *stale*: its numbers are not comparable.

Conventions: [float], [record].
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from samtheory import figures

__all__ = [
    "FLOAT32_RTOL",
    "Mismatch",
    "FigureCheck",
    "uses_float32",
    "compare_summaries",
    "check_regeneration",
]

#: Relative tolerance for the summaries of float32 figures: 0, bitwise (module docstring, docs/pipeline.md).
FLOAT32_RTOL = 0.0


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One summary number that was not reproduced (``None``: the key is missing on that side)."""

    key: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.key}: manifest {self.expected!r}, regenerated {self.got!r}"


@dataclasses.dataclass(frozen=True)
class FigureCheck:
    """The outcome for one figure."""

    name: str
    float32: bool
    rtol: float
    stale: bool
    mismatches: tuple[Mismatch, ...]
    compared: int

    @property
    def ok(self) -> bool:
        return not self.stale and not self.mismatches

    def __str__(self) -> str:
        dtype = "float32" if self.float32 else "float64"
        how = f"rtol {self.rtol:g} ({dtype})" if self.rtol else f"bitwise ({dtype})"
        if self.stale:
            return f"{self.name}: STALE manifest entry (config key or CODE_VERSION differs); not compared"
        if not self.mismatches:
            return f"{self.name}: {self.compared} numbers reproduced, {how}"
        lines = [f"{self.name}: {len(self.mismatches)} of {self.compared} numbers differ, {how}"]
        lines += [f"    {m}" for m in self.mismatches]
        return "\n".join(lines)


def uses_float32(config: Any) -> bool:
    """Whether a figure's config computes in float32 (a ``dtype`` field equal to ``"float32"``)."""
    return getattr(config, "dtype", None) == "float32"


def _as_float(value: Any) -> float:
    # The manifest stores ±inf as the strings "inf"/"-inf" (samtheory.results.to_jsonable).
    return float(value) if isinstance(value, str) else value


def compare_summaries(expected: Mapping[str, Any], got: Mapping[str, Any], rtol: float = 0.0) -> list[Mismatch]:
    """The keys whose values differ: exactly (``rtol = 0``), or by more than ``rtol`` relative.

    With ``rtol > 0``, ``a`` and ``b`` agree if ``|a − b| ≤ rtol · max(|a|, |b|)``; two zeros agree.
    A key present on one side only is a mismatch. ``rtol`` must be ≥ 0.
    """
    if not (rtol >= 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be finite and >= 0, got {rtol!r}")
    out = []
    for key in sorted(set(expected) | set(got)):
        if key not in expected or key not in got:
            out.append(Mismatch(key, expected.get(key), got.get(key)))
            continue
        a, b = _as_float(expected[key]), _as_float(got[key])
        if a == b:
            continue
        if rtol > 0 and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b)):
            continue
        out.append(Mismatch(key, expected[key], got[key]))
    return out


def check_regeneration(
    names: Iterable[str] | None,
    manifest: str | Path,
    registry: figures.FigureRegistry,
    *,
    quick: bool,
    out_dir: str | Path | None = None,
    float32_rtol: float = FLOAT32_RTOL,
    float64_rtol: float = 0.0,
) -> list[FigureCheck]:
    """Regenerate ``names`` of ``registry`` (all its figures in ``manifest`` if ``None``) and compare with ``manifest``.

    The figures are recomputed (``force``) into ``out_dir`` (a temporary
    directory if ``None``) with a cache there too, so neither the committed
    outputs nor an earlier cache are touched or read. ``quick`` must match
    the manifest entries (quick figures are checked against a quick
    manifest). Raises ``KeyError`` naming a figure that the manifest lacks,
    and ``ValueError`` if an entry's ``quick`` flag differs from ``quick``.
    ``float64_rtol`` (default 0: bitwise) is for a check on another machine
    type than the manifest's, where XLA's code for another vector ISA
    changes float64 results in the last bits.
    """
    entries = json.loads(Path(manifest).read_text(encoding="utf-8"))
    selected = list(names) if names else [n for n in figures.registered_figures(registry) if n in entries]
    for name in selected:
        if name not in entries:
            raise KeyError(f"figure {name!r} is not in the manifest {manifest}")
        if bool(entries[name].get("quick")) != quick:
            raise ValueError(f"figure {name!r}: the manifest entry has quick={entries[name].get('quick')}, "
                             f"the check runs quick={quick}")
    with tempfile.TemporaryDirectory(prefix="samtheory-regen-") as scratch:
        base = Path(out_dir) if out_dir is not None else Path(scratch)
        checks = []
        for name in selected:
            module = figures.load_figure_module(name, registry)
            config = module.config(quick)
            entry = entries[name]
            f32 = uses_float32(config)
            rtol = float32_rtol if f32 else float64_rtol
            if figures.figure_cache_key(module, config) != entry.get("key"):
                checks.append(FigureCheck(name, f32, rtol, True, (), 0))
                continue
            record = figures.run_figure(module, quick=quick, out_dir=base / "figs", cache_dir=base / "cache",
                                        force=True)
            got = json.loads(json.dumps(record.summary))  # as the manifest stores it
            mismatches = compare_summaries(entry.get("summary", {}), got, rtol)
            checks.append(FigureCheck(name, f32, rtol, False, tuple(mismatches), len(entry.get("summary", {}))))
    return checks
