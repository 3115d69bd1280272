"""Speed of ResNet-18 training with ERM and SAM in JAX, optionally against a PyTorch baseline.

Measures the real training loop of :func:`samtheory.nn.trainer.train` (the
compiled ``while_loop`` over steps: batch gather from device memory,
random crop + flip, forward/backward, SGD) on synthetic CIFAR-shaped data
(32×32×3 ``uint8``, 10 classes), bfloat16 compute, for ERM and n-SAM (and
m-SAM with ``--m``):

* steps/s and images/s: median over the epochs after the first (each epoch
  is timed to a host synchronization; compilation happens ahead of time and
  is reported separately, and the first epoch is dropped as warm-up);
* the SAM/ERM step-time ratio (two forward-backward passes against one: 2.0
  is the physical limit; the shared data pipeline makes it slightly lower);
* with ``--m``: the m-SAM step and its cost against n-SAM (``msam_over_sam_step_time``);
* **population throughput** (``--population 1 4 8``):
  :func:`samtheory.nn.population.train_population` with N runs (half ERM,
  half SAM, distinct seeds and ρ) vmapped into one program; the summed
  images/s of N runs against one run alone in the same program
  (``population_speedup``: 1 means no gain from batching runs, N means N
  runs for the price of one). A population step is always a SAM step
  (ERM is ρ = 0), so the baseline is the SAM step;
* with ``--with-torch``: ``bench_resnet_torch.py`` (the CIFAR ResNet-18 in
  ``torch.nn`` at the same width, AMP bf16 or float32 as the JAX side,
  channels-last, the usual two-pass SAM) in a subprocess after the JAX runs,
  and the JAX/PyTorch images/s ratios. JAX's GPU memory preallocation is
  turned off so both fit on one device. Without PyTorch it stops at once
  (exit 2) saying how to install it.

``--preset cpu`` is the configuration measured on this project's 2-core CPU
machines (width 1/16, 16×16×3 images, batch 32, float32, unoptimized XLA:
the optimizing compile of a vmapped population takes many minutes there);
``--smoke`` runs a tiny configuration (width 1/16, 8×8 images, 12 steps,
unoptimized XLA) so the script can be exercised in the tests; its numbers
mean nothing. Results go to ``benchmarks/results/bench_resnet.json`` (or
``bench_resnet_<preset>.json``), atomically, with provenance.

Float policy: unlike the theory benchmarks this one does not turn on
float64: parameters are float32 and compute is bfloat16 ([float-nn],
docs/resnet.md).

Run: ``python benchmarks/bench_resnet.py [--batch-size 256] [--with-torch]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs = epochs - 1")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--m", type=int, default=None, help="also time m-SAM with this chunk size")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--population", type=int, nargs="*", default=[1, 4, 8],
                        help="population sizes to time (vmapped runs); none: skip")
    parser.add_argument("--population-epochs", type=int, default=2)
    parser.add_argument("--with-torch", action="store_true", help="also run bench_resnet_torch.py (subprocess)")
    parser.add_argument("--fast-compile", action="store_true",
                        help="unoptimized XLA (samtheory.nn.cli.FAST_COMPILE): compiles fast, runs slower")
    parser.add_argument("--preset", choices=("cpu",), default=None,
                        help="cpu: the narrow configuration measured on a 2-core CPU")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU-sized run; the numbers mean nothing")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON file (default: benchmarks/results/...)")
    return parser


def _torch_baseline(args: argparse.Namespace) -> dict:
    script = pathlib.Path(__file__).resolve().parent / "bench_resnet_torch.py"
    with tempfile.TemporaryDirectory() as tmp:
        target = pathlib.Path(tmp) / "torch.json"
        command = [sys.executable, str(script), "--json-out", str(target), "--batch-size", str(args.batch_size),
                   "--image-size", str(args.image_size), "--rho", str(args.rho), "--width", str(args.width),
                   "--amp", "bf16" if args.bf16 else "none"]
        if args.smoke:
            command.append("--smoke")
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"bench_resnet_torch.py failed (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(target.read_text())


def _population(args: argparse.Namespace, base, data, compiler_options) -> dict:
    """Summed images/s of populations of N vmapped runs (half ERM, half SAM), against N = 1."""
    from samtheory.nn.population import train_population
    from samtheory.nn.trainer import TrainConfig

    out = {"epochs": args.population_epochs, "sizes": {}}
    for n in args.population:
        configs = [TrainConfig(**{**base.to_dict(), "epochs": args.population_epochs, "seed": i,
                                  "variant": "sam" if i % 2 == 0 else "erm", "rho": args.rho * (1 + i // 2)})
                   for i in range(n)]
        result = train_population(configs, data, compiler_options=compiler_options)
        out["sizes"][str(n)] = {k: result.summary[k] for k in ("images_per_s", "run_s", "compile_s")}
        print(f"population {n:>3}: {result.summary['images_per_s']:9.0f} images/s summed, "
              f"compile {result.summary['compile_s']:.1f} s", flush=True)
    if "1" in out["sizes"]:
        alone = out["sizes"]["1"]["images_per_s"]
        out["speedup_over_one_run"] = {k: v["images_per_s"] / alone for k, v in out["sizes"].items()}
        print("population speed-up over one run:", {k: round(v, 2) for k, v in out["speedup_over_one_run"].items()})
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.with_torch and importlib.util.find_spec("torch") is None:
        print("--with-torch needs PyTorch, which is not installed. On this project's CPU machines "
              "`pip install torch==2.13.0` takes the CPU wheel from the local disk (torchvision is not needed); "
              "on a GPU machine install a CUDA build of torch.", file=sys.stderr)
        return 2
    if args.with_torch:
        # Leave GPU memory for the PyTorch subprocess that runs after the JAX part.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    import jax

    from samtheory.data import synthetic_images
    from samtheory.nn.cli import FAST_COMPILE
    from samtheory.nn.trainer import TrainConfig, train
    from samtheory.results import atomic_write_json, provenance

    # The smoke configuration is the one of tests/test_nn_trainer.py, so that in one pytest
    # process both share their compiled programs (the trainer caches them).
    smoke = dict(batch_size=32, steps_per_epoch=4, epochs=3, width=1 / 16, image_size=8, num_classes=4,
                 lr=0.05, augment=False, n_test=64)
    # On 2 shared cores the optimizing XLA compile of a vmapped population takes many minutes: compile unoptimized.
    cpu = dict(batch_size=32, steps_per_epoch=8, epochs=3, width=1 / 16, image_size=16, bf16=False, fast_compile=True)
    if args.smoke:
        for name, value in smoke.items():
            setattr(args, name, value)
        args.population = [2] if args.population else []  # exercises the code; one compile
        args.population_epochs = 1
    elif args.preset == "cpu":
        for name, value in cpu.items():
            setattr(args, name, value)
    if not args.smoke:
        args.num_classes, args.lr, args.augment, args.n_test = 10, 0.1, True, args.batch_size
    options = FAST_COMPILE if (args.smoke or args.fast_compile) else None
    image_shape = (args.image_size, args.image_size, 3)
    data = synthetic_images(0, n_train=args.batch_size * args.steps_per_epoch, n_test=args.n_test,
                            image_shape=image_shape, num_classes=args.num_classes)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule="cosine",
                       width=args.width, bf16=args.bf16, rho=args.rho, augment=args.augment,
                       eval_batch_size=args.n_test)
    variants = {"erm": dict(variant="erm"), "sam": dict(variant="sam")}
    if args.m:
        variants[f"sam_m{args.m}"] = dict(variant="sam", m=args.m)
    jax_results = {}
    for name, fields in variants.items():
        config = TrainConfig(**{**base.to_dict(), **fields})
        result = train(config, None, dataset=data, progress=False, segment_steps=args.steps_per_epoch,
                       compiler_options=options)
        timed = result.metrics[1:] or result.metrics
        steps_per_s = statistics.median(r["steps_per_s"] for r in timed)
        jax_results[name] = {
            "steps_per_s": steps_per_s,
            "images_per_s": steps_per_s * args.batch_size,
            "step_ms": 1e3 / steps_per_s,
            "compile_s": sum(result.summary["compile_s"].values()),
            "epoch_steps_per_s": [r["steps_per_s"] for r in result.metrics],
        }
        print(f"jax {name:>8}: {steps_per_s:8.2f} steps/s, {steps_per_s * args.batch_size:9.0f} images/s, "
              f"compile {jax_results[name]['compile_s']:.1f} s", flush=True)
    ratio = jax_results["erm"]["steps_per_s"] / jax_results["sam"]["steps_per_s"]
    print(f"SAM/ERM step-time ratio {ratio:.3f} (goal <= 2.1)")
    record = {
        "setup": {"batch_size": args.batch_size, "image_shape": list(image_shape), "width": args.width,
                  "augment": args.augment, "num_classes": args.num_classes,
                  "bf16": args.bf16, "rho": args.rho, "m": args.m, "steps_per_epoch": args.steps_per_epoch,
                  "epochs": args.epochs, "smoke": args.smoke, "preset": args.preset,
                  "fast_compile": bool(options)},
        "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "jax": jax_results,
        "sam_over_erm_step_time": ratio,
    }
    if args.m:
        record["msam_over_sam_step_time"] = jax_results["sam"]["steps_per_s"] / jax_results[f"sam_m{args.m}"]["steps_per_s"]
        print(f"m-SAM (m = {args.m}) / n-SAM step-time ratio {record['msam_over_sam_step_time']:.3f}")
    if args.population:
        record["population"] = _population(args, base, data, options)
    if args.with_torch:
        jax.clear_caches()
        torch = _torch_baseline(args)
        record["torch"] = torch
        if "sam" in torch and "erm" in torch:
            record["jax_over_torch_images_per_s"] = {
                k: jax_results[k]["images_per_s"] / torch[k]["images_per_s"] for k in ("erm", "sam")
            }
            print(f"torch: ERM {torch['erm']['images_per_s']:.0f} images/s, SAM {torch['sam']['images_per_s']:.0f}; "
                  f"JAX/torch SAM speed ratio {record['jax_over_torch_images_per_s']['sam']:.2f}")
        else:
            print(f"torch baseline: {torch.get('skipped') or torch.get('error', '')[-500:]}")
    record["provenance"] = provenance()
    name = "smoke" if args.smoke else args.preset
    out = args.out or RESULTS / (f"bench_resnet_{name}.json" if name else "bench_resnet.json")
    atomic_write_json(out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
