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

Left panel per data set: final test error against the switch epoch for
both directions, one marker per seed (a line through the seed means when
there is more than one seed), with ERM-only and SAM-only as horizontal
lines (k = 0 and k = E are those runs). A run of the study's design (both
directions × every switch epoch × every seed) without a result file is
marked with a grey ✕ at the last test error of its per-epoch log, saying
where it stopped. Right: test error per epoch of ERM-only and SAM-only over
the second half of training, where they separate, and the stopped run's
log.

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

from samtheory.style import variant_color, variant_label

NAME = "resnet_switching"
TITLE = "ResNet-18: test error after switching between ERM and SAM at epoch k"
CAPTION = "With one seed, ERM alone ends below SAM alone on Fashion-MNIST (6.47 % against 7.09 % test error at 12 epochs, 4.86 % against 5.13 % at 30), so these runs cannot show SAM's late-phase benefit."
CODE_VERSION = 1  # 1: per-seed errors and the missing runs (with their logs)

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
    logs: tuple[str, ...]  # per-epoch logs under metrics/: a run without a result file may have one
    content_sha256: str


#: The two switching directions, in the order of the integer codes of ``<dataset>.missing_kind``.
SWITCH_KINDS = ("erm_to_sam", "sam_to_erm")
#: Colour and label of each kind of run (samtheory.style): ERM, n-SAM (the runs' SAM has m = None) and the switches.
_STYLE_KEY = {"erm": "erm", "sam": "n_sam", "erm_to_sam": "erm_to_sam", "sam_to_erm": "sam_to_erm"}

# The names samtheory.nn.study.result_file_name gives; other JSON files (an
# interpolation result, say) may sit beside them and are not read.
_RUN_FILE = re.compile(r"(erm|sam|erm_to_sam|sam_to_erm)(_at[0-9.e+-]+)?_seed[0-9]+\.json")


def _result_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.json") if p.is_file() and _RUN_FILE.fullmatch(p.name))


def _log_name(dataset: str, kind: str, k: float, seed: int) -> str:
    """``metrics/<dataset>_<kind>_at<k>_seed<seed>.jsonl``, the per-epoch log the study writes for a run."""
    return f"metrics/{dataset}_{kind}_at{k:g}_seed{seed}.jsonl"


def config(quick: bool) -> Config:
    """The result files and logs present now and their hash (reading them is fast: ``quick`` changes nothing)."""
    del quick
    root = _ROOT / RESULTS_DIR
    files = _result_files(root)
    logs = sorted(p for p in (root / "metrics").glob("*.jsonl") if p.is_file())
    digest = hashlib.sha256()
    for path in files + logs:
        relative = path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    rel = tuple(p.relative_to(root).as_posix() for p in files)
    rel_logs = tuple(p.relative_to(root).as_posix() for p in logs)
    return Config(RESULTS_DIR, tuple(sorted({r.split("/")[0] for r in rel})), rel, rel_logs, digest.hexdigest())


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


def _curve(metrics: list[dict]) -> np.ndarray:
    return np.asarray([m["test_error"] for m in metrics], dtype=float)


def run(config: Config, progress: Callable[[float], None] | None) -> dict:
    """Per data set: every run's final test error (per seed), ERM/SAM curves, and the runs that are missing.

    The study's design is both directions × every switch epoch seen × every
    seed seen; a combination without a result file is *missing*. If its
    per-epoch log exists (a run stopped before the end), the epochs it
    reached and its test-error curve are kept so the figure can mark it.
    """
    from samtheory.figures import FigureUnavailable

    if not config.files:
        raise FigureUnavailable(_HOW_TO)
    root = _ROOT / config.results_dir
    by_dataset = _load(root, config.files)
    out: dict[str, np.ndarray | float | int | str] = {}
    for i, dataset in enumerate(config.datasets):
        records = by_dataset[dataset]
        epochs = {int(r["config"]["epochs"]) for r in records}
        if len(epochs) != 1:
            raise ValueError(f"{dataset}: results of different lengths {sorted(epochs)}; keep one study per folder")
        out[f"{dataset}.epochs"] = epochs.pop()
        seeds = sorted({int(r["seed"]) for r in records})
        out[f"{dataset}.seeds"] = np.asarray(seeds)
        for kind in ("erm", "sam"):
            runs = sorted((r for r in records if r["kind"] == kind), key=lambda r: r["seed"])
            if not runs:
                raise FigureUnavailable(f"{dataset}: no {kind}-only run. {_HOW_TO}")
            out[f"{dataset}.{kind}_run_seed"] = np.asarray([int(r["seed"]) for r in runs])
            out[f"{dataset}.{kind}_run_error"] = np.asarray([_final_error(r) for r in runs])
            out[f"{dataset}.{kind}_error"] = float(np.mean(out[f"{dataset}.{kind}_run_error"]))
            length = min(len(r["metrics"]) for r in runs)
            out[f"{dataset}.{kind}_curve"] = np.mean([_curve(r["metrics"][:length]) for r in runs], axis=0)
        switch_epochs = sorted({float(r["switch_epoch"]) for r in records if r["kind"] in SWITCH_KINDS})
        missing = []
        for kind in SWITCH_KINDS:
            runs = sorted((r for r in records if r["kind"] == kind), key=lambda r: (r["switch_epoch"], r["seed"]))
            out[f"{dataset}.{kind}_run_k"] = np.asarray([float(r["switch_epoch"]) for r in runs])
            out[f"{dataset}.{kind}_run_seed"] = np.asarray([int(r["seed"]) for r in runs], dtype=np.int64)
            out[f"{dataset}.{kind}_run_error"] = np.asarray([_final_error(r) for r in runs])
            done = {(float(r["switch_epoch"]), int(r["seed"])) for r in runs}
            missing += [(kind, k, s) for k in switch_epochs for s in seeds if (k, s) not in done]
        # A missing run: its kind (index into SWITCH_KINDS), switch epoch, seed, and the epochs its log reached
        # (0 without a log); its logged curve, padded with the last value, for the plot.
        out[f"{dataset}.missing_kind"] = np.asarray([SWITCH_KINDS.index(m[0]) for m in missing], dtype=np.int64)
        out[f"{dataset}.missing_k"] = np.asarray([m[1] for m in missing], dtype=float)
        out[f"{dataset}.missing_seed"] = np.asarray([m[2] for m in missing], dtype=np.int64)
        reached, curves = [], []
        for kind, k, seed in missing:
            log = _log_name(dataset, kind, k, seed)
            metrics = []
            if log in config.logs:
                lines = (root / log).read_text(encoding="utf-8").splitlines()
                metrics = [json.loads(line) for line in lines if line.strip()]
            reached.append(len(metrics))
            curve = _curve(metrics) if metrics else np.zeros(1)
            curves.append(np.pad(curve, (0, out[f"{dataset}.epochs"] - curve.size), mode="edge"))
        out[f"{dataset}.missing_epochs_reached"] = np.asarray(reached, dtype=np.int64)
        out[f"{dataset}.missing_curve"] = np.asarray(curves, dtype=float).reshape(
            len(missing), out[f"{dataset}.epochs"])
        if progress is not None:
            progress((i + 1) / len(config.datasets))
    return out


def _dataset_title(dataset: str, epochs: int) -> str:
    """``fashion_mnist_e30`` → ``Fashion-MNIST, 30 epochs``."""
    base = re.sub(r"_e[0-9]+$", "", dataset)
    pretty = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}
    return f"{pretty.get(base, base)}, {epochs} epochs"


def plot(result: dict, config: Config) -> Figure:
    """Per data set: final test error against the switch epoch (left) and test error per epoch (right)."""
    rows = len(config.datasets)
    fig = Figure(figsize=(12.0, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for row, dataset in enumerate(config.datasets):
        epochs = int(result[f"{dataset}.epochs"])
        seeds = np.asarray(result[f"{dataset}.seeds"])
        left, right = axes[row]
        for kind in ("erm", "sam"):
            key = _STYLE_KEY[kind]
            color, label = variant_color(key), f"{variant_label(key)} only"
            for error in 100 * np.asarray(result[f"{dataset}.{kind}_run_error"]):
                left.axhline(error, color=color, ls="--", lw=1.5)
            left.plot([], [], "--", color=color, label=label)
            curve = 100 * np.asarray(result[f"{dataset}.{kind}_curve"])
            right.plot(np.arange(1, curve.size + 1), curve, color=color, label=label)
        for kind, marker, size in zip(SWITCH_KINDS, ("o", "s"), (7, 13)):
            ks = np.asarray(result[f"{dataset}.{kind}_run_k"])
            errors = 100 * np.asarray(result[f"{dataset}.{kind}_run_error"])
            # Large squares under small circles, so that a point shared by both directions shows both; a dark
            # edge keeps the light colours readable on white.
            left.plot(ks, errors, marker, ms=size, mfc=variant_color(kind), mec="0.2", mew=1.0, ls="none",
                      zorder=3 if marker == "o" else 2, label=f"{variant_label(kind)} at k")
            if seeds.size > 1 and ks.size:
                means = [errors[ks == k].mean() for k in np.unique(ks)]
                left.plot(np.unique(ks), means, "-", color=variant_color(kind), lw=1.5)
        for kind_index, k, seed, reached, curve in zip(
            result[f"{dataset}.missing_kind"], result[f"{dataset}.missing_k"], result[f"{dataset}.missing_seed"],
            result[f"{dataset}.missing_epochs_reached"], result[f"{dataset}.missing_curve"],
        ):
            kind = SWITCH_KINDS[int(kind_index)]
            what = f"{variant_label(kind)} at {k:g}, seed {seed}"
            if reached:
                level = 100 * curve[reached - 1]
                status = f"stopped at epoch {reached} of {epochs}:\nno final error; ✕ = its last error"
                after = np.arange(int(k), reached + 1)  # before the switch it is the SAM-only run
                right.plot(after, 100 * curve[after - 1], ":", color="0.35", lw=2.5,
                           label=f"{what}\n(stopped at epoch {reached} of {epochs})")
            else:  # no log at all: mark the switch epoch between the ERM-only and SAM-only levels
                level = 50 * (result[f"{dataset}.erm_error"] + result[f"{dataset}.sam_error"])
                status = "not run"
            left.plot([k], [level], "x", color="0.35", ms=12, mew=2.5, ls="none", zorder=4)
            left.annotate(f"missing: {what}\n{status}", (k, level), xytext=(-14, -10), textcoords="offset points",
                          ha="right", va="top", fontsize=10, color="0.25")
        left.set(xlim=(0, epochs), xlabel="switch epoch k", ylabel="final test error (%)")
        seeds_text = f"seed {seeds[0]} only" if seeds.size == 1 else f"{seeds.size} seeds"
        left.set_title(f"({'abcdefgh'[2 * row]}) {_dataset_title(dataset, epochs)}: final error ({seeds_text})")
        half = max(1, epochs // 2)
        right.set(xlim=(half, epochs + 0.5), xlabel="epoch", ylabel="test error (%)")
        shown = [100 * np.asarray(result[f"{dataset}.{kind}_curve"])[half - 1:] for kind in ("erm", "sam")]
        right.set_ylim(0.95 * min(c.min() for c in shown), 1.05 * max(c.max() for c in shown))
        right.set_title(f"({'abcdefgh'[2 * row + 1]}) {_dataset_title(dataset, epochs)}: test error, second half")
        right.legend(loc="upper right")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    seeds_all = sorted({int(s) for d in config.datasets for s in np.asarray(result[f"{d}.seeds"])})
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels),
               title=f"one marker per run (seed{'s' if len(seeds_all) > 1 else ''} {', '.join(map(str, seeds_all))}); "
                     "dashed: the runs without a switch")
    return fig


def summary(result: dict, config: Config) -> dict[str, float]:
    """Final test errors of ERM-only and SAM-only per data set."""
    out = {}
    for dataset in config.datasets:
        for kind in ("erm", "sam"):
            out[f"{dataset}_{kind}_test_error"] = float(result[f"{dataset}.{kind}_error"])
        out[f"{dataset}_seeds"] = float(np.asarray(result[f"{dataset}.seeds"]).size)
        out[f"{dataset}_missing_runs"] = float(np.asarray(result[f"{dataset}.missing_k"]).size)
    return out
