"""ResNet-18: final test error when switching between ERM and SAM at epoch k.

Andriushchenko & Flammarion (2022), "At which stage of training is the effect
of SAM important?": SAM for the first k epochs then ERM (SAM → ERM), and ERM
then SAM (ERM → SAM), against ERM-only and SAM-only. In their ResNet runs
SAM matters most in the second half of training: ERM → SAM switched late
still gets most of SAM's benefit, SAM → ERM loses it.

The training runs need a GPU; this module only reads their result files,
``results/resnet_switching/<dataset>/*.json``, written by
``samtheory resnet switching-study`` (one file per run, committed to the
repository). The config holds a sha256 of those files, so the figure cache
updates whenever they change. Without result files, :func:`run` raises
:class:`samtheory.figures.FigureUnavailable` saying how to make them.

Left panel per data set: final test error (mean ± std over seeds) against
the switch epoch for both directions, with ERM-only and SAM-only as
horizontal lines (k = 0 and k = E are those runs). Right: test error per
epoch of ERM-only and SAM-only.

Conventions: [rho-sam], [m] (of the runs, recorded in their configs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

NAME = "resnet_switching"
TITLE = "ResNet-18: test error after switching between ERM and SAM at epoch k"
CODE_VERSION = 0

#: Where the switching study writes (relative to the repository root).
RESULTS_DIR = "results/resnet_switching"
_ROOT = Path(__file__).resolve().parents[1]
_HOW_TO = (
    "no ResNet switching results under results/resnet_switching/<dataset>/. They come from GPU runs: "
    "`samtheory resnet switching-study --dataset fashion_mnist --epochs 20 --switch-epochs 5 10 15` "
    "(docs/resnet.md gives the recipe and its cost); commit the JSON files it writes."
)


@dataclasses.dataclass(frozen=True)
class Config:
    results_dir: str
    datasets: tuple[str, ...]
    files: tuple[str, ...]  # relative to results_dir
    content_sha256: str


# The names samtheory.nn.study.result_file_name gives; other JSON files (an
# interpolation result, say) may sit beside them and are not read.
_RUN_FILE = re.compile(r"(erm|sam|erm_to_sam|sam_to_erm)(_at[0-9.e+-]+)?_seed[0-9]+\.json")


def _result_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.json") if p.is_file() and _RUN_FILE.fullmatch(p.name))


def config(quick: bool) -> Config:
    """The result files present now and their hash (reading them is fast: ``quick`` changes nothing)."""
    del quick
    root = _ROOT / RESULTS_DIR
    files = _result_files(root)
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    rel = tuple(p.relative_to(root).as_posix() for p in files)
    return Config(RESULTS_DIR, tuple(sorted({r.split("/")[0] for r in rel})), rel, digest.hexdigest())


def _load(root: Path, files: tuple[str, ...]) -> dict[str, list[dict]]:
    by_dataset: dict[str, list[dict]] = {}
    for relative in files:
        record = json.loads((root / relative).read_text(encoding="utf-8"))
        if "kind" not in record or "metrics" not in record or not record["metrics"]:
            raise ValueError(f"{relative} is not a switching-study result (no kind or metrics)")
        by_dataset.setdefault(relative.split("/")[0], []).append(record)
    return by_dataset


def _final_error(record: dict) -> float:
    return float(record["metrics"][-1]["test_error"])


def run(config: Config, progress: Callable[[float], None] | None) -> dict:
    """Final test errors per kind and switch epoch, and ERM/SAM test-error curves, per data set."""
    from samtheory.figures import FigureUnavailable

    if not config.files:
        raise FigureUnavailable(_HOW_TO)
    by_dataset = _load(_ROOT / config.results_dir, config.files)
    out: dict[str, np.ndarray | float | int | str] = {}
    for i, dataset in enumerate(config.datasets):
        records = by_dataset[dataset]
        epochs = {int(r["config"]["epochs"]) for r in records}
        if len(epochs) != 1:
            raise ValueError(f"{dataset}: results of different lengths {sorted(epochs)}; keep one study per folder")
        out[f"{dataset}.epochs"] = epochs.pop()
        for kind in ("erm", "sam"):
            runs = [r for r in records if r["kind"] == kind]
            if not runs:
                raise FigureUnavailable(f"{dataset}: no {kind}-only run. {_HOW_TO}")
            errors = np.array([_final_error(r) for r in runs])
            out[f"{dataset}.{kind}_error"] = float(errors.mean())
            out[f"{dataset}.{kind}_error_std"] = float(errors.std())
            length = min(len(r["metrics"]) for r in runs)
            out[f"{dataset}.{kind}_curve"] = np.mean(
                [[m["test_error"] for m in r["metrics"][:length]] for r in runs], axis=0
            )
        for kind in ("erm_to_sam", "sam_to_erm"):
            runs = [r for r in records if r["kind"] == kind]
            ks = sorted({float(r["switch_epoch"]) for r in runs})
            mean = [np.mean([_final_error(r) for r in runs if float(r["switch_epoch"]) == k]) for k in ks]
            std = [np.std([_final_error(r) for r in runs if float(r["switch_epoch"]) == k]) for k in ks]
            out[f"{dataset}.{kind}_k"] = np.asarray(ks, dtype=float)
            out[f"{dataset}.{kind}_error"] = np.asarray(mean, dtype=float)
            out[f"{dataset}.{kind}_error_std"] = np.asarray(std, dtype=float)
        out[f"{dataset}.seeds"] = len({r["seed"] for r in records})
        if progress is not None:
            progress((i + 1) / len(config.datasets))
    return out


def plot(result: dict, config: Config) -> Figure:
    """Per data set: test error against switch epoch (left) and per epoch (right)."""
    rows = len(config.datasets)
    fig = Figure(figsize=(8.0, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for row, dataset in enumerate(config.datasets):
        epochs = result[f"{dataset}.epochs"]
        left, right = axes[row]
        for kind, color in (("erm", "tab:blue"), ("sam", "tab:red")):
            level = 100 * result[f"{dataset}.{kind}_error"]
            left.axhline(level, color=color, linestyle="--", linewidth=1, label=f"{kind.upper()} only")
            curve = 100 * np.asarray(result[f"{dataset}.{kind}_curve"])
            right.plot(np.arange(1, len(curve) + 1), curve, color=color, label=f"{kind.upper()} only")
        # SAM → ERM gets open, larger markers, so that a point shared with ERM → SAM stays visible.
        for kind, label, color, marker, size, face in (
            ("erm_to_sam", "ERM → SAM at k", "tab:purple", "o", 5, "tab:purple"),
            ("sam_to_erm", "SAM → ERM at k", "tab:green", "s", 9, "none"),
        ):
            ks = np.asarray(result[f"{dataset}.{kind}_k"])
            if ks.size:
                left.errorbar(
                    ks, 100 * np.asarray(result[f"{dataset}.{kind}_error"]),
                    yerr=100 * np.asarray(result[f"{dataset}.{kind}_error_std"]),
                    color=color, marker=marker, markersize=size, markerfacecolor=face, capsize=3, label=label,
                )
        seeds = result[f"{dataset}.seeds"]
        left.set(xlim=(0, epochs), xlabel="switch epoch k", ylabel="final test error (%)",
                 title=f"{dataset}: switching ({seeds} seed{'s' if seeds > 1 else ''})")
        right.set(xlabel="epoch", ylabel="test error (%)", title=f"{dataset}: ERM and SAM")
        left.legend(fontsize=7)
        right.legend(fontsize=7)
    return fig


def summary(result: dict, config: Config) -> dict[str, float]:
    """Final test errors of ERM-only and SAM-only per data set."""
    out = {}
    for dataset in config.datasets:
        for kind in ("erm", "sam"):
            out[f"{dataset}_{kind}_test_error"] = float(result[f"{dataset}.{kind}_error"])
    return out
