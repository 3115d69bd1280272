"""PyTorch baseline for bench_resnet.py: the CIFAR ResNet-18 in torch.nn, ERM and two-pass SAM.

The usual PyTorch SAM recipe, made as fast as eager PyTorch allows:
the CIFAR ResNet-18 (torchvision's layout with a 3×3 stride-1 stem and no
max-pool, written in ``torch.nn`` with a width multiplier),
channels-last memory format, autocast to bfloat16 (as the JAX side; no
loss scaling needed), SGD with momentum 0.9 and weight decay
5e-4 (L2 in the gradient), and for SAM: forward-backward, ``ε = ρ g/‖g‖``
with fused multi-tensor ops, a second forward-backward at ``w + ε`` with
BatchNorm running statistics frozen, restore ``w``, step. Inputs are random
tensors already on the device (no data loading or augmentation: the JAX
side does both inside its timed loop, so the comparison favours PyTorch).
``--compile`` wraps the model in ``torch.compile``.

Timing: warm-up steps, then the median over repeats of N steps, each timed
to a ``torch.cuda.synchronize()``. Prints a summary and writes JSON
(``--json-out``). Without PyTorch it writes ``{"error": ...}`` saying how to
install it and exits 2.

Run: ``python benchmarks/bench_resnet_torch.py --json-out FILE [--batch-size 256] [--smoke]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier of the ResNet-18")
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="autocast dtype")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; the numbers mean nothing")
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    return parser


def _write(path: pathlib.Path | None, record: dict) -> None:
    text = json.dumps(record, indent=2, sort_keys=True)
    if path is None:
        print(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def _model(torch, device, width: float = 1.0):
    """CIFAR ResNet-18 (3×3 stride-1 stem, no max-pool, basic blocks 64·w … 512·w), channels-last.

    Written in ``torch.nn`` rather than taken from torchvision, so the baseline
    needs only ``torch`` (the CPU wheel this project can install has no
    matching torchvision) and takes the same width multiplier as the JAX side
    (``samtheory.nn.resnet``: stage widths ``max(1, round(c·w))``).
    """
    nn = torch.nn
    widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for cout, stride in zip(widths, (1, 2, 2, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers).to(device=device, memory_format=torch.channels_last)


def _set_bn_momentum(torch, model, momentum_by_module):
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            if momentum_by_module is None:
                module._saved_momentum, module.momentum = module.momentum, 0.0  # running stats frozen
            else:
                module.momentum = module._saved_momentum


def _time_variant(torch, name: str, args: argparse.Namespace, device, amp_dtype, x, y) -> dict:
    """Median step time of ERM or SAM on a fresh model; prints one line."""
    model = _model(torch, device, args.width)
    forward = torch.compile(model) if args.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def loss_and_backward():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn(forward(x), y)
        loss.backward()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_and_backward()
        if name == "sam":
            grads = [p.grad for p in params]
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            eps = torch._foreach_mul(grads, args.rho / (norm + 1e-12))  # stays on the device: no sync
            with torch.no_grad():
                torch._foreach_add_(params, eps)
            optimizer.zero_grad(set_to_none=True)
            _set_bn_momentum(torch, model, None)
            loss_and_backward()
            _set_bn_momentum(torch, model, True)
            with torch.no_grad():
                torch._foreach_sub_(params, eps)
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        times.append((time.perf_counter() - start) / args.steps)
    step_s = statistics.median(times)
    print(f"torch {name:>4}: {1 / step_s:8.2f} steps/s, {args.batch_size / step_s:9.0f} images/s", flush=True)
    return {"step_ms": 1e3 * step_s, "steps_per_s": 1 / step_s, "images_per_s": args.batch_size / step_s}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch
    except ImportError as err:
        message = (f"PyTorch is not installed ({err}). On this project's CPU machines `pip install torch==2.13.0` "
                   "takes the CPU wheel from the local disk; on a GPU machine install a CUDA build of torch.")
        _write(args.json_out, {"error": message})
        print(message, file=sys.stderr)
        return 2
    if args.smoke:
        args.batch_size, args.image_size, args.steps, args.repeats, args.warmup = 4, 16, 2, 1, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    amp_dtype = {"bf16": torch.bfloat16, "none": None}[args.amp]
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device).to(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    results = {name: _time_variant(torch, name, args, device, amp_dtype, x, y) for name in ("erm", "sam")}
    record = {
        **results,
        "sam_over_erm_step_time": results["sam"]["step_ms"] / results["erm"]["step_ms"],
        "setup": {"batch_size": args.batch_size, "image_size": args.image_size, "amp": args.amp,
                  "channels_last": True, "compile": args.compile, "width": args.width, "rho": args.rho, "smoke": args.smoke},
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                     "cuda": torch.version.cuda, "python": platform.python_version()},
    }
    _write(args.json_out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
