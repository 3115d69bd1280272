"""Command line of the ResNet module: ``samtheory resnet {train, switching-study, population-study, interpolate} ...``.

``main(argv)`` parses ``argv`` (the words after ``resnet``) and returns an
exit code: 0 done; 1 the run failed (diverged, a data or checkpoint error:
the message is printed); 2 usage error (argparse's own, or an invalid value
caught by a config check, named in the message).

Examples::

    samtheory resnet train --dataset fashion_mnist --variant sam --rho 0.05 --m 32 \\
        --epochs 20 --out runs/fmnist_sam
    samtheory resnet train ... --out runs/fmnist_sam --resume          # after a kill
    samtheory resnet train --dataset fashion_mnist --variant sam --epochs 5 \\
        --finetune-from runs/fmnist_erm/checkpoint.msgpack --out runs/fmnist_erm_sam_ft
    samtheory resnet switching-study --dataset fashion_mnist --epochs 20 --switch-epochs 5 10 15
    samtheory resnet population-study --preset gpu --out results/resnet_population/gpu.npz
    samtheory resnet interpolate runs/fmnist_erm/checkpoint.msgpack \\
        runs/fmnist_erm_sam_ft/checkpoint.msgpack --out results/interp.json

The module sets no global JAX option; parameters are float32 and compute is
bfloat16 unless ``--no-bf16`` ([float-nn]).

Conventions: [rho-sam], [m], [normalize], [rng], [label-noise], [float-nn].
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "FAST_COMPILE", "SMOKE_COMMAND"]

#: The smallest CPU smoke run (docs/resnet.md): a 1/16-width ResNet-18, one epoch of 128 synthetic images.
SMOKE_COMMAND = (
    "samtheory resnet train --dataset synthetic --synthetic-train 128 --synthetic-test 64 --epochs 1 "
    "--batch-size 32 --width 0.0625 --no-augment --eval-batch-size 64 --fast-compile --out runs/smoke"
)

#: XLA options for the ``--fast-compile`` flag: LLVM without optimization, classic CPU fusion emitters.
#: Compiles 2-3× faster on a CPU, runs several times slower; for smoke runs and tests.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _add_config_arguments(parser: argparse.ArgumentParser, *, with_variant: bool) -> None:
    from samtheory.nn.datasets import DATASETS
    from samtheory.nn.schedules import SCHEDULES
    from samtheory.nn.trainer import VARIANTS, TrainConfig

    d = TrainConfig()
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="fashion_mnist", help="data set")
    data.add_argument("--data-dir", default=None, help="folder of the data files (CIFAR: required)")
    data.add_argument("--label-noise", type=float, default=d.label_noise, help="fraction of noisy train labels")
    data.add_argument(
        "--synthetic-train", type=int, default=d.synthetic_train, help="train images of --dataset synthetic"
    )
    data.add_argument("--synthetic-test", type=int, default=d.synthetic_test, help="test images of --dataset synthetic")
    method = parser.add_argument_group("method")
    if with_variant:
        method.add_argument("--variant", choices=VARIANTS, default=d.variant, help="the SAM variant ([normalize])")
        method.add_argument("--switch-to", choices=VARIANTS, default=None, help="variant after --switch-epoch")
        method.add_argument("--switch-epoch", type=float, default=None, help="epoch (may be fractional) of the switch")
        method.add_argument("--finetune-from", default=None, metavar="CKPT", help="initialize from this checkpoint")
    method.add_argument("--rho", type=float, default=d.rho, help="perturbation radius ([rho-sam])")
    method.add_argument("--m", type=int, default=None, help="m-SAM chunk size (default: n-SAM over the batch)")
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help="examples per step")
    opt.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    opt.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate schedule")
    opt.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help="linear warm-up length")
    opt.add_argument("--momentum", type=float, default=d.momentum, help="heavy-ball momentum")
    opt.add_argument("--wd", type=float, default=d.weight_decay, help="L2 weight decay (added to the gradient)")
    model = parser.add_argument_group("model")
    model.add_argument("--width", type=float, default=d.width, help="channel multiplier (1 = ResNet-18)")
    model.add_argument("--norm", choices=("batch", "group"), default=d.norm, help="BatchNorm or GroupNorm")
    model.add_argument("--preact", action="store_true", help="PreAct ResNet-18")
    model.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 compute")
    aug = parser.add_argument_group("augmentation")
    aug.add_argument("--no-augment", dest="augment", action="store_false", help="no random crops")
    aug.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    aug.add_argument("--crop-pad", type=int, default=d.crop_pad, help="padding of the random crops")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=d.seed, help="seed of initialization, data order, noise ([rng])")
    run.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="examples per evaluation batch")
    run.add_argument("--segment-steps", type=int, default=100, help="steps per compiled call (progress granularity)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument("--fast-compile", action="store_true", help="unoptimized XLA code: CPU smoke runs")


def _config_from(args: argparse.Namespace, **overrides):
    from samtheory.nn.trainer import TrainConfig

    values = {
        "dataset": args.dataset, "data_dir": args.data_dir, "label_noise": args.label_noise,
        "synthetic_train": args.synthetic_train, "synthetic_test": args.synthetic_test,
        "rho": args.rho, "m": args.m, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "schedule": args.schedule, "warmup_epochs": args.warmup_epochs, "momentum": args.momentum,
        "weight_decay": args.wd, "width": args.width, "norm": args.norm, "preact": args.preact, "bf16": args.bf16,
        "augment": args.augment, "flip": args.flip, "crop_pad": args.crop_pad, "seed": args.seed,
        "eval_batch_size": args.eval_batch_size,
    }
    values.update(overrides)
    return TrainConfig(**values)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``samtheory resnet``."""
    parser = argparse.ArgumentParser(
        prog="samtheory resnet", description="ResNet-18 with SAM variants: training, switching study, interpolation.",
        epilog=f"Smallest CPU smoke run (about a minute): {SMOKE_COMMAND}",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shows_defaults = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}

    train = commands.add_parser(
        "train", help="one training run", description="Train one ResNet-18 configuration.",
        epilog=f"Smallest CPU smoke run: {SMOKE_COMMAND}", **shows_defaults,
    )
    _add_config_arguments(train, with_variant=True)
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="checkpoint, metrics.jsonl, result.json")
    train.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint if there is one")
    train.add_argument("--keep-epochs", type=int, nargs="*", default=(), help="also keep checkpoints of these epochs")

    study = commands.add_parser(
        "switching-study", help="ERM, SAM, ERM→SAM and SAM→ERM at each k",
        description="Run ERM-only, SAM-only and, for each k in --switch-epochs, ERM→SAM and SAM→ERM switched at "
        "epoch k (switched runs branch from the unswitched runs' checkpoints). Resumable; finished runs are skipped.",
        **shows_defaults,
    )
    _add_config_arguments(study, with_variant=False)
    study.add_argument("--switch-epochs", type=float, nargs="+", required=True, metavar="K", help="switch epochs k")
    study.add_argument(
        "--sam-variant", choices=("sam", "usam", "random_sam"), default="sam", help="the SAM side of each switch"
    )
    study.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: --seed)")
    study.add_argument(
        "--results-dir", type=Path, default=None, metavar="DIR",
        help="one JSON per run (default: results/resnet_switching/<dataset>)",
    )
    study.add_argument(
        "--work-dir", type=Path, default=None, metavar="DIR",
        help="checkpoints (default: .cache/resnet_switching/<dataset>, git-ignored)",
    )

    population = commands.add_parser(
        "population-study", help="the whole switching / fine-tuning / interpolation / label-noise study as populations",
        description="samtheory.nn.population_study: every run of the study vmapped into one program per phase.",
        **shows_defaults,
    )
    population.add_argument("--preset", choices=("cpu", "gpu"), default="gpu", help="sizes (population_study.CPU / GPU)")
    population.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    population.add_argument("--n-train", type=int, default=None, help="override the preset's training subset (0: all)")
    population.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    population.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: Debian's package)")
    population.add_argument("--batching", choices=("vmap", "map"), default=None,
                            help="run axis: one vmapped step, or the runs one after another in the program")
    population.add_argument("--out", type=Path, required=True, metavar="FILE.npz",
                            help="result arrays, with config and provenance (samtheory.results)")

    interp = commands.add_parser(
        "interpolate", help="losses on the segment between two checkpoints",
        description="Train/test loss and accuracy at (1-a) A + a B, BatchNorm statistics recomputed at each a.",
        **shows_defaults,
    )
    interp.add_argument("checkpoint_a", type=Path, help="the end point at a = 0")
    interp.add_argument("checkpoint_b", type=Path, help="the end point at a = 1")
    interp.add_argument("--num", type=int, default=11, help="number of equally spaced alphas in [0, 1]")
    interp.add_argument("--train-examples", type=int, default=10_000, help="train examples evaluated at each a")
    interp.add_argument("--batch-size", type=int, default=500, help="examples per evaluation batch")
    interp.add_argument("--data-dir", default=None, help="folder of the data files")
    interp.add_argument("--out", type=Path, required=True, metavar="FILE.json", help="where the result goes")
    interp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _train_command(args: argparse.Namespace) -> int:
    from samtheory.nn.trainer import CHECKPOINT_NAME, train

    checkpoint = args.out / CHECKPOINT_NAME
    if checkpoint.exists() and not args.resume:
        # Said here, before any data is loaded, in the words of the command line.
        raise ValueError(
            f"--out {args.out} already holds a checkpoint ({checkpoint}); pass --resume to continue that run, "
            "or choose another --out"
        )

    config = _config_from(
        args, variant=args.variant, switch_to=args.switch_to, switch_epoch=args.switch_epoch,
        finetune_from=args.finetune_from,
    )
    result = train(
        config, args.out, resume=args.resume, progress=args.progress, segment_steps=args.segment_steps,
        keep_epochs=tuple(args.keep_epochs), compiler_options=FAST_COMPILE if args.fast_compile else None,
    )
    final = result.summary.get("final", {})
    print(f"{args.out}: test error {final.get('test_error', float('nan')):.4f}, "
          f"train loss {final.get('train_loss', float('nan')):.4f} after {final.get('epoch')} epochs")
    return 0


def _study_command(args: argparse.Namespace) -> int:
    from samtheory.nn.study import switching_study

    base = _config_from(args)
    results_dir = args.results_dir or Path("results/resnet_switching") / args.dataset
    work_dir = args.work_dir or Path(".cache/resnet_switching") / args.dataset
    files = switching_study(
        base, args.switch_epochs, results_dir=results_dir, work_dir=work_dir, sam_variant=args.sam_variant,
        seeds=args.seeds or (args.seed,), progress=args.progress,
        compiler_options=FAST_COMPILE if args.fast_compile else None,
    )
    print(f"{len(files)} result files in {results_dir}")
    return 0


def _population_command(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from samtheory.nn import population_study
    from samtheory.results import config_to_dict, provenance, save_result_npz

    config = {"cpu": population_study.CPU, "gpu": population_study.GPU}[args.preset]
    changes = {k: v for k, v in (("epochs", args.epochs), ("n_train", args.n_train)) if v is not None}
    if args.seeds is not None:
        changes["seeds"] = tuple(args.seeds)
    if args.batching is not None:
        changes["batching"] = args.batching
    if "epochs" in changes:  # keep the switch points at the same fractions of training
        changes["switch_epochs"] = tuple(
            max(1, min(changes["epochs"] - 1, round(k * changes["epochs"] / config.epochs))) for k in config.switch_epochs
        )
    config = dataclasses.replace(config, **changes)
    started = time.perf_counter()
    result = population_study.run_study(
        config, lambda f: print(f"population-study: {100 * f:.0f} %", flush=True), data_dir=args.data_dir,
    )
    result["wall_s"] = time.perf_counter() - started
    save_result_npz(args.out, result, {"config": config_to_dict(config), "provenance": provenance()})
    print(f"population-study: wrote {args.out} ({result['wall_s']:.0f} s, training {result['train_images_per_s']:.0f} "
          f"images/s summed over runs)")
    return 0


def _interpolate_command(args: argparse.Namespace) -> int:
    import numpy as np

    from samtheory.nn.interpolation import interpolate_checkpoints
    from samtheory.results import atomic_write_json, provenance

    if args.num < 2:
        raise ValueError(f"--num must be >= 2, got {args.num}")
    result = interpolate_checkpoints(
        args.checkpoint_a, args.checkpoint_b, alphas=np.linspace(0.0, 1.0, args.num),
        data_dir=args.data_dir, train_examples=args.train_examples, batch_size=args.batch_size,
        progress=args.progress,
    )
    result["provenance"] = provenance()
    atomic_write_json(args.out, result)
    print(f"{args.out}: max test loss on the path {max(result['test_loss']):.4f} "
          f"(end points {result['test_loss'][0]:.4f}, {result['test_loss'][-1]:.4f})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``samtheory resnet ARGV``; return the exit code (see module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse exits on usage errors and --help
        return int(exit_.code or 0)
    from samtheory.data import DataError
    from samtheory.nn.checkpoint import CheckpointError
    from samtheory.errors import DivergenceError

    command = {"train": _train_command, "switching-study": _study_command, "population-study": _population_command,
               "interpolate": _interpolate_command}
    try:
        return command[args.command](args)
    except (DivergenceError, DataError, CheckpointError) as err:
        print(f"samtheory resnet {args.command}: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"samtheory resnet {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # python -m samtheory.nn.cli ...
    sys.exit(main())

