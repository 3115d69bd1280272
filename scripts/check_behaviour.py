"""Behaviour check for refactors: recompute the numbers the project draws, and compare two such records.

    python3 scripts/check_behaviour.py compute OUT.json [--full-dln] [--only NAME ...]   (resumes OUT.json)
    python3 scripts/check_behaviour.py compare BEFORE.json AFTER.json

``compute`` records, in one JSON file (floats written with ``repr``, so
float64 values round-trip exactly):

- ``quick/<figure>``: ``summary()`` of every registered figure on
  ``config(quick=True)``, and every numeric array of its result (the
  summary alone can hide a change), run fresh (no cache);
- ``full/<figure>`` (with ``--full-dln``): the same for the full configs of
  the diagonal-network figures;
- ``resnet/...``: the losses of the ResNet CPU smoke run of
  ``tests/test_nn_trainer.py`` (ERM → SAM switch inside epoch 2) and the
  directions of every SAM variant on the tiny ResNet of ``tests/test_nn_step.py``
  (float32, in a subprocess, since everything else runs in float64).

Figures whose ``run`` raises ``FigureUnavailable`` (inputs made elsewhere)
are recorded as skipped. ``compare`` prints the largest absolute and
relative differences per entry and overall, and how many values are
bitwise equal; exit code 1 if the keys differ or a value differs by more
than ``--tol`` (default 1e-12, relative to max(1, |before|)).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DLN_FIGURES = ("dln_sparse_regression", "dln_implicit_bias", "dln_switching", "dln_flows_vs_gd")
_MAX_ELEMENTS = 200_000  # a larger array is recorded by its sum, norm and a strided sample


def _figure_names() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT))
    return tuple(importlib.import_module("experiments").FIGURE_MODULES)


def _numbers(value) -> list[float] | None:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        return None
    flat = array.astype(np.float64).ravel()
    if flat.size > _MAX_ELEMENTS:
        step = flat.size // _MAX_ELEMENTS + 1
        flat = np.concatenate([[flat.sum(), np.linalg.norm(flat)], flat[::step]])
    return [float(x) for x in flat]


def _figure_record(name: str, quick: bool) -> dict:
    from samtheory import figures

    module = importlib.import_module(f"experiments.{name}")
    config = module.config(quick)
    start = time.perf_counter()
    try:
        raw = module.run(config, None)
    except figures.FigureUnavailable as err:
        return {"skipped": str(err)}
    seconds = time.perf_counter() - start
    result = figures.normalize_result(raw)
    record: dict = {"seconds": seconds}
    if hasattr(module, "summary"):
        summary = module.summary(result, config)
        record["summary"] = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float, np.number))}
    arrays = {}
    for key, value in sorted(result.items()):
        numbers = _numbers(value)
        if numbers is not None:
            arrays[key] = numbers
    record["arrays"] = arrays
    return record


def _resnet_record() -> dict:
    """The ResNet smoke run's losses and every variant's direction on the tiny ResNet (float32)."""
    import tempfile

    import jax
    import jax.numpy as jnp

    from samtheory import sam
    from samtheory.nn.cli import FAST_COMPILE
    from samtheory.nn.resnet import ResNetConfig, build_model, init_variables
    from samtheory.nn.sam_step import sam_direction
    from samtheory.nn.trainer import TrainConfig, train

    record: dict = {}
    config = TrainConfig(
        dataset="synthetic", synthetic_train=128, synthetic_test=64, variant="erm", switch_to="sam",
        switch_epoch=1.5, rho=0.05, epochs=3, batch_size=32, lr=0.05, schedule="cosine", width=1 / 16,
        bf16=True, augment=False, eval_batch_size=64,
    )
    with tempfile.TemporaryDirectory() as out:
        run = train(config, out, progress=False, segment_steps=3, compiler_options=FAST_COMPILE)
    for key in ("train_loss", "test_loss", "train_error", "test_error"):
        if key in run.metrics[0]:
            record[f"smoke/{key}"] = [float(r[key]) for r in run.metrics]

    net = ResNetConfig(num_classes=4, width=1 / 16, bf16=False)
    params, stats = init_variables(net, jax.random.PRNGKey(0), (8, 8, 3))
    images = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 8, 3), jnp.float32)
    labels = jnp.arange(8, dtype=jnp.int32) % 4
    model = build_model(net)
    variants = {
        "erm": sam.ERM(),
        "n-sam": sam.SAM(rho=0.1),
        "m-sam": sam.SAM(rho=0.1, m=4),
        "n-usam": sam.SAM(rho=0.1, normalize=False),
        "m-usam": sam.SAM(rho=0.1, m=4, normalize=False),
        "random": sam.RandomSAM(rho=0.1, m=4),
    }
    key = jax.random.PRNGKey(2)
    for name, variant in variants.items():
        direction = jax.jit(lambda p, s, b, k, v=variant: sam_direction(v, model, p, s, b, k))(
            params, stats, (images, labels), key
        )
        leaves = jax.tree.leaves(direction)
        record[f"direction/{name}"] = [float(x) for leaf in leaves for x in np.ravel(np.asarray(leaf, np.float64))]
    return record


def _write(out: Path, record: dict) -> None:
    """Atomically, after every entry: a long run that is stopped keeps what it finished."""
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(out)


def compute(out: Path, full_dln: bool, only: list[str] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import samtheory

    samtheory.enable_float64()
    record: dict = json.loads(out.read_text()) if out.exists() else {}  # resume: keep finished entries
    plan = [("quick", name) for name in _figure_names()] + [("full", name) for name in DLN_FIGURES if full_dln]
    for kind, name in plan:
        entry = f"{kind}/{name}"
        if (only and name not in only) or entry in record:
            continue
        start = time.perf_counter()
        record[entry] = _figure_record(name, quick=kind == "quick")
        _write(out, record)
        print(f"{entry}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    if (not only or "resnet" in only) and "resnet" not in record:
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "_resnet"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            raise SystemExit(f"the ResNet part failed:\n{child.stderr}")
        record["resnet"] = json.loads(child.stdout)
        _write(out, record)
        print(f"resnet: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _flatten(record: dict, prefix: str = "") -> dict[str, list[float]]:
    """entry path -> list of numbers (seconds and skip messages are not compared)."""
    flat: dict[str, list[float]] = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if key in ("seconds", "skipped"):
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "/"))
        elif isinstance(value, list):
            flat[path] = [float(x) for x in value]
        else:
            flat[path] = [float(value)]
    return flat


def _diff(a: float, b: float) -> tuple[float, float]:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0, 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf, math.inf
    absolute = abs(a - b)
    return absolute, absolute / max(1.0, abs(a))


def compare(before: Path, after: Path, tol: float, verbose: bool, common: bool = False) -> int:
    a_record, b_record = json.loads(before.read_text()), json.loads(after.read_text())
    if common:  # compare only the entries both records finished
        shared = set(a_record) & set(b_record)
        print(f"comparing {len(shared)} shared entries; left out: {sorted(set(a_record) ^ set(b_record))}")
        a_record = {k: v for k, v in a_record.items() if k in shared}
        b_record = {k: v for k, v in b_record.items() if k in shared}
    a, b = _flatten(a_record), _flatten(b_record)
    status = 0
    for key in sorted(set(a) ^ set(b)):
        print(f"only in {'before' if key in a else 'after'}: {key}")
        status = 1
    worst_abs, worst_rel, worst_key = 0.0, 0.0, None
    total = equal = 0
    for key in sorted(set(a) & set(b)):
        if len(a[key]) != len(b[key]):
            print(f"{key}: {len(a[key])} values before, {len(b[key])} after")
            status = 1
            continue
        diffs = [_diff(x, y) for x, y in zip(a[key], b[key])]
        total += len(diffs)
        equal += sum(1 for d in diffs if d == (0.0, 0.0))
        entry_abs = max((d[0] for d in diffs), default=0.0)
        entry_rel = max((d[1] for d in diffs), default=0.0)
        if verbose or entry_rel > tol:
            print(f"{key}: max abs diff {entry_abs:.3e}, max rel diff {entry_rel:.3e}")
        if entry_rel > tol:
            status = 1
        if entry_rel > worst_rel or worst_key is None:
            worst_abs, worst_rel, worst_key = entry_abs, entry_rel, key
    print(f"{equal} of {total} values bitwise equal; largest difference {worst_abs:.3e} "
          f"(relative {worst_rel:.3e}) in {worst_key}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("compute")
    run.add_argument("out", type=Path)
    run.add_argument("--full-dln", action="store_true", help="also the full configs of the DLN figures")
    run.add_argument("--only", nargs="*", help="figure names (and/or 'resnet') to compute")
    check = commands.add_parser("compare")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    check.add_argument("--tol", type=float, default=1e-12)
    check.add_argument("-v", "--verbose", action="store_true")
    check.add_argument("--common", action="store_true", help="compare only the entries both records hold")
    commands.add_parser("_resnet")
    args = parser.parse_args(argv)
    if args.command == "compute":
        compute(args.out, args.full_dln, args.only)
        return 0
    if args.command == "compare":
        return compare(args.before, args.after, args.tol, args.verbose, args.common)
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_resnet_record()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
