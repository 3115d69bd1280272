"""The switching study: ERM, SAM, ERM → SAM at epoch k and SAM → ERM at epoch k, in one call.

Andriushchenko & Flammarion (2022, "At which stage of training is the effect
of SAM important?") train ResNets with SAM for the first k epochs and ERM
afterwards, and the other way round, and plot the final test error against
k: SAM matters most in the second half of training.

:func:`switching_study` runs, per seed, ERM-only, SAM-only and both switched
runs for every k. The switched runs share their first k epochs with an
unswitched one, and every key of a run is a function of the step ([rng]), so
ERM → SAM at k *branches* from ERM-only's checkpoint at epoch ⌊k⌋ (likewise
SAM → ERM from SAM-only) and computes only the remaining epochs, with
bitwise the same result as a run from scratch. With k ∈ {E/4, E/2, 3E/4}
that is 5E epochs of work instead of 8E.

Every run resumes if interrupted (its own checkpoint directory under
``work_dir``); a run whose result file already exists with the same config
is skipped. One JSON file per run goes to ``results_dir`` (small: config,
per-epoch metrics, final numbers, provenance); these are what
``experiments/resnet_switching.py`` plots and what gets committed.

Conventions: [rho-sam], [m], [rng].
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
from jax.sharding import Mesh

from samtheory.data import ArrayDataset
from samtheory.nn.trainer import TrainConfig, train
from samtheory.results import atomic_write_json

__all__ = ["KINDS", "StudyRun", "plan_study", "switching_study", "result_file_name"]

KINDS = ("erm", "sam", "erm_to_sam", "sam_to_erm")


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """One run of the study: its name, kind, switch epoch, seed, config, and the run it branches from."""

    name: str
    kind: str
    switch_epoch: float | None
    seed: int
    config: TrainConfig
    branch_from: str | None  # name of the unswitched run whose checkpoint it starts from
    branch_epoch: int


def result_file_name(kind: str, switch_epoch: float | None, seed: int) -> str:
    """``sam_seed0``, ``erm_to_sam_at10_seed0``, ``sam_to_erm_at2.5_seed1`` (without ``.json``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    at = "" if switch_epoch is None else f"_at{switch_epoch:g}"
    return f"{kind}{at}_seed{seed}"


def plan_study(
    base: TrainConfig, switch_epochs: Sequence[float], *, sam_variant: str = "sam", seeds: Sequence[int] = (0,)
) -> list[StudyRun]:
    """The runs of the study, unswitched ones first (the switched ones branch from them).

    ``base`` gives everything but the variant schedule and the seed; ERM is
    ``erm``, SAM is ``sam_variant`` with ``base.rho`` and ``base.m``. Raises
    ``ValueError`` naming ``switch_epochs`` unless each is in
    ``(0, base.epochs)``, or ``seeds`` if empty.
    """
    ks = [float(k) for k in switch_epochs]
    if any(not (0 < k < base.epochs) for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"switch_epochs must be distinct numbers in (0, epochs={base.epochs}), got {switch_epochs!r}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    plain = dataclasses.replace(base, switch_to=None, switch_epoch=None)
    runs: list[StudyRun] = []
    for seed in seeds:
        unswitched = {
            "erm": dataclasses.replace(plain, variant="erm", seed=seed),
            "sam": dataclasses.replace(plain, variant=sam_variant, seed=seed),
        }
        for kind, cfg in unswitched.items():
            runs.append(StudyRun(result_file_name(kind, None, seed), kind, None, seed, cfg, None, 0))
        for k in ks:
            for kind, first, second in (("erm_to_sam", "erm", sam_variant), ("sam_to_erm", sam_variant, "erm")):
                cfg = dataclasses.replace(plain, variant=first, switch_to=second, switch_epoch=k, seed=seed)
                source = result_file_name("erm" if first == "erm" else "sam", None, seed)
                runs.append(StudyRun(result_file_name(kind, k, seed), kind, k, seed, cfg, source, math.floor(k)))
    return runs


def _existing_result(path: Path, config: TrainConfig) -> bool:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return saved.get("config") == config.to_dict()


def switching_study(
    base: TrainConfig,
    switch_epochs: Sequence[float],
    *,
    results_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    sam_variant: str = "sam",
    seeds: Sequence[int] = (0,),
    dataset: ArrayDataset | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    compiler_options: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Run the study (see module docstring); return the result files, one per run.

    Each result file holds ``kind``, ``switch_epoch``, ``seed``, ``config``,
    ``metrics`` (per epoch), ``final``, ``wall_s``, ``branched_from`` and
    ``provenance``. Conventions: [rho-sam], [m], [rng].
    """
    runs = plan_study(base, switch_epochs, sam_variant=sam_variant, seeds=seeds)
    results_dir, work_dir = Path(results_dir), Path(work_dir)
    keep: dict[str, set[int]] = {}
    for run in runs:
        if run.branch_from is not None and run.branch_epoch >= 1:
            keep.setdefault(run.branch_from, set()).add(run.branch_epoch)
    written = []
    for run in runs:
        target = results_dir / f"{run.name}.json"
        written.append(target)
        if _existing_result(target, run.config):
            continue
        branch = None
        if run.branch_from is not None and run.branch_epoch >= 1:
            candidate = work_dir / run.branch_from / f"checkpoint_epoch{run.branch_epoch:04d}.msgpack"
            branch = candidate if candidate.exists() else None
        result = train(
            run.config, work_dir / run.name, resume=True, dataset=dataset, mesh=mesh, progress=progress,
            keep_epochs=sorted(keep.get(run.name, ())), branch_from=branch, compiler_options=compiler_options,
            run_name=run.name,
        )
        summary = dict(result.summary)
        summary.update({"kind": run.kind, "switch_epoch": run.switch_epoch, "seed": run.seed, "run": run.name})
        if jax.process_index() == 0:  # one writer on several hosts
            atomic_write_json(target, summary)
    return written

