"""The ResNet benchmarks run end to end at smoke size (so they do not rot); torch is optional."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("flax")

_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, _BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_resnet_smoke_with_torch_driver(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = _load("bench_resnet").main(["--smoke", "--with-torch", "--out", str(out)])
    if importlib.util.find_spec("torch") is None:
        # Without PyTorch, --with-torch stops before any work, saying how to install it.
        assert code == 2 and not out.exists()
        assert "pip install torch" in capsys.readouterr().err
        return
    assert code == 0
    record = json.loads(out.read_text())
    assert record["setup"]["smoke"] is True
    for name in ("erm", "sam"):
        assert record["jax"][name]["images_per_s"] > 0
    assert record["sam_over_erm_step_time"] > 0
    assert record["jax_over_torch_images_per_s"]["sam"] > 0
    assert record["population"]["sizes"]["2"]["images_per_s"] > 0
    assert record["provenance"]["versions"]["jax"]
