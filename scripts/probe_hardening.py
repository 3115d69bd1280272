"""Replay every reproduction of the hardening issue (#14) and print what each gives now.

Each probe is the issue's own reproduction, run against the current tree;
the line says what came back (an error naming the parameter, NaN under
``jit``, a rebuilt file). The figure-cache probes run the fastest figure
(``sam_quadratic_stability --quick``) in a temporary directory. Nothing here
is a test (the tests are ``tests/test_bounds_invalid_inputs.py``,
``tests/test_pipeline_hardening.py``, ``tests/test_dln_inputs.py``,
``tests/test_train_inputs.py``, ``tests/test_sam_variants.py``,
``tests/test_data.py``, ``tests/test_nn_cli_help.py``); it prints the
outcomes for the closing note.

    python scripts/probe_hardening.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import samtheory  # noqa: E402
from samtheory import bounds, sam, train  # noqa: E402
from samtheory.data import load_mnist1d  # noqa: E402
from samtheory.models import dln  # noqa: E402

samtheory.enable_float64()


def outcome(thunk) -> str:
    """What ``thunk()`` gives: the value, or the exception's type and message."""
    try:
        value = thunk()
    except Exception as err:  # noqa: BLE001 - the point is to report any outcome
        return f"{type(err).__name__}: {str(err).splitlines()[0][:110]}"
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return ", ".join(f"{k}={np.asarray(v).item() if np.ndim(v) == 0 else v}" for k, v in value._asdict().items())
    return f"returns {value!r}"[:130]


def probe(name: str, thunk) -> None:
    print(f"- {name}: {outcome(thunk)}")


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samtheory.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return f"exit {proc.returncode}; {lines[-1][:140] if lines else ''}"


def bound_probes() -> None:
    print("## 1. bounds under jit")
    probe("jit(pac_bayes_kl_bound)(0.1, -5.0, 100, 0.05)", lambda: float(jax.jit(bounds.pac_bayes_kl_bound)(0.1, -5.0, 100, 0.05)))
    probe("pac_bayes_kl_bound(0.1, -5.0, 100, 0.05) eagerly", lambda: float(bounds.pac_bayes_kl_bound(0.1, -5.0, 100, 0.05)))
    probe("jit(pac_bayes_kl_bound)(0.1, 1.0, 100, 2.0)", lambda: float(jax.jit(bounds.pac_bayes_kl_bound)(0.1, 1.0, 100, 2.0)))
    probe("jit(pac_bayes_kl_budget)(1.0, 3, 0.05)", lambda: float(jax.jit(bounds.pac_bayes_kl_budget)(1.0, 3, 0.05)))
    probe("jit(mcallester_bound)(0.1, 1.0, 100, 2.0)", lambda: float(jax.jit(bounds.mcallester_bound)(0.1, 1.0, 100, 2.0)))
    probe("jit(foret_eq13_bound)(0.1, 1000, 100, 1.0, 0.5, delta=2.0)",
          lambda: jax.jit(bounds.foret_eq13_bound)(0.1, 1000, 100, 1.0, 0.5, 2.0))


def input_probes(tmp: Path) -> None:
    print("## 3. inputs checked at the door")
    loss = lambda p, b: jnp.mean((b["x"] @ p - b["y"]) ** 2)  # noqa: E731
    data = {"x": jnp.ones((4, 2)), "y": jnp.zeros(4)}
    w = jnp.ones(2)
    probe('SAM(0.1, normalize="no")', lambda: sam.SAM(0.1, normalize="no"))
    probe('SAM(rho="0.1")', lambda: sam.SAM(rho="0.1"))
    probe("SAM(rho=None)", lambda: sam.SAM(rho=None))
    probe("SAM(0.1, normalize=False, p=0.5)", lambda: sam.SAM(0.1, normalize=False, p=0.5))
    probe("ASAM(0.5, 4)", lambda: sam.ASAM(0.5, 4))
    run = lambda **kw: train.run(loss, kw.pop("params", w), data, num_steps=3, **{"variant": sam.ERM(), **kw})  # noqa: E731
    probe('train.run(learning_rate="0.1")', lambda: run(learning_rate="0.1"))
    probe("train.run(learning_rate=-0.1)", lambda: run(learning_rate=-0.1))
    probe('train.run(variant="sam")', lambda: run(variant="sam", learning_rate=0.1))
    probe("train.run(key=123) with RandomSAM", lambda: run(variant=sam.RandomSAM(0.1), learning_rate=0.1, key=123))
    probe("train.run(params=integer array)", lambda: run(params=jnp.ones(2, dtype=jnp.int32), learning_rate=0.1))
    probe("dln.predict_uv with the wrong width", lambda: dln.predict_uv(dln.init_uv(3, 0.1), jnp.ones((2, 5))))
    probe("dln.beta_uv([1, 2])", lambda: dln.beta_uv([1, 2]))
    regular = tmp / "a_file"
    regular.write_text("")
    probe("load_mnist1d(path under a regular file)", lambda: load_mnist1d(regular / "mnist1d.npz"))


def cache_probes(tmp: Path) -> None:
    print("## 2. the figure cache (sam_quadratic_stability --quick)")
    work = tmp / "cache_probe"
    work.mkdir()
    (work / "experiments").symlink_to(ROOT / "experiments")
    first = cli("figures", "sam_quadratic_stability", "--quick", cwd=work)
    print(f"- first run: {last_line(first)}")
    cache_dir = work / ".cache" / "samtheory"
    for npz in cache_dir.glob("sam_quadratic_stability-*.npz"):
        npz.write_bytes(b"")  # `: > .cache/samtheory/<figure>-<key>.npz`
    again = cli("figures", "sam_quadratic_stability", "--quick", cwd=work)
    set_aside = sorted(p.name for p in cache_dir.glob("*unreadable*"))
    print(f"- zero-length cache file: {last_line(again)}; set aside: {set_aside}")
    (work / "paper_figs" / "quick" / "manifest.json").write_text("{not json")
    corrupt = cli("figures", "sam_quadratic_stability", "--quick", "--force", cwd=work)
    print(f"- corrupt manifest.json: {last_line(corrupt)}")
    (work / "paper_figs" / "quick" / "manifest.json").unlink()
    blocked = work / "blocked"
    blocked.write_text("")
    for flag in ("--out", "--cache-dir"):
        proc = cli("figures", "sam_quadratic_stability", "--quick", "--force", flag, str(blocked / "sub"), cwd=work)
        print(f"- unwritable {flag}: {last_line(proc)}")
    data = tmp / "mnist1d.npz"
    load_mnist1d(data, num_samples=200)
    data.write_bytes(b"garbage")
    probe("corrupt MNIST-1D cache file", lambda: f"rebuilt with a warning, {load_mnist1d(data, num_samples=200).x_train.shape[0]} "
          "training examples")


def newcomer_probes(tmp: Path) -> None:
    print("## 4. newcomer friction")
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "paper_figs/quick/x.png"]).returncode == 0
    print(f"- paper_figs/quick/ in .gitignore: {ignored}")
    work = tmp / "progress_probe"
    work.mkdir()
    (work / "experiments").symlink_to(ROOT / "experiments")
    proc = cli("figures", "sam_quadratic_stability", "--quick", cwd=work)
    log = proc.stderr
    print(f"- progress to a log: escape codes: {chr(27) in log or chr(13) in log}; lines: "
          f"{[line for line in log.splitlines() if line.strip()][:3]}")
    done = [line for line in log.splitlines() if " -> " in line]
    print(f"- done line: {done[-1][:200] if done else '(none)'}")
    helptext = cli("resnet", "train", "--help", cwd=tmp).stdout
    print(f"- resnet train --help: shows defaults: {'default' in helptext}; --synthetic-train listed: "
          f"{'--synthetic-train' in helptext}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="samtheory-probe-") as scratch:
        tmp = Path(scratch)
        bound_probes()
        cache_probes(tmp)
        input_probes(tmp)
        newcomer_probes(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
