"""GPU benchmark: MirrorDescent's step against torch's SGD(foreach=True) and SGD(fused=True).

Two workloads, float32 on one device: the parameter lists of ResNet-18 (62 tensors, 11.69 M
weights) and ResNet-50 (161 tensors, 25.56 M weights), with gradients already in place. For
every potential it prints the median step time of MirrorDescent's fast path (``fast=True``,
momentum 0.9) and its ratio to SGD(foreach=True) (the issue's target: <= 1.0x) and to
SGD(fused=True), each measured in the same rounds (optimisers timed in rotating order; median
of the per-round ratios). The first (compiling) step is reported apart. Writes the table as
CSV to ``--out`` as well.

    python benchmarks/bench_optim_gpu.py --out results/bench_optim_gpu.csv
    python benchmarks/bench_optim_gpu.py --device cpu --rounds 1 --steps 1   # check the logic
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_optim import make_params, resnet18_shapes, time_steps  # noqa: E402

from mirrorlib import MirrorDescent  # noqa: E402

POTENTIALS = ["2-norm", "3-norm", "1.5-norm", "ne", "hypentropy"]
LR, MOMENTUM = 1e-3, 0.9


def resnet50_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's ResNet-50 in ``model.parameters()`` order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]  # conv1, bn1
    in_ch = 64
    for width, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        for block in range(blocks):
            shapes += [(width, in_ch, 1, 1), (width,), (width,)]  # conv1, bn1
            shapes += [(width, width, 3, 3), (width,), (width,)]  # conv2, bn2
            shapes += [(4 * width, width, 1, 1), (4 * width,), (4 * width,)]  # conv3, bn3
            if block == 0:
                shapes += [(4 * width, in_ch, 1, 1), (4 * width,), (4 * width,)]  # downsample
            in_ch = 4 * width
    return shapes + [(1000, 2048), (1000,)]  # fc


def bench(shapes, device: str, rounds: int, steps: int) -> tuple[dict, dict]:
    """Median step times (s) and median per-round ratios to SGD(foreach=True), by optimiser."""
    gen = torch.Generator().manual_seed(1)
    grads = [1e-3 * torch.randn(shape, generator=gen).to(device) for shape in shapes]
    optimizers: dict = {
        "SGD foreach": torch.optim.SGD(
            make_params(shapes, grads), lr=LR, momentum=MOMENTUM, foreach=True
        ),
        "SGD fused": torch.optim.SGD(
            make_params(shapes, grads), lr=LR, momentum=MOMENTUM, fused=True
        ),
    }
    first_step = {}
    for pot in POTENTIALS:
        opt = MirrorDescent(make_params(shapes, grads), LR, pot, MOMENTUM, fast=True)
        first_step[pot] = time_steps(opt, 1)
        optimizers[pot] = opt
    for name in ("SGD foreach", "SGD fused"):
        first_step[name] = time_steps(optimizers[name], 1)
    times: dict = {key: [] for key in optimizers}
    for r in range(rounds):
        keys = list(optimizers)
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            times[key].append(time_steps(optimizers[key], steps))
    medians = {key: statistics.median(t) for key, t in times.items()}
    ratios = {
        (key, base): statistics.median(t / b for t, b in zip(times[key], times[base], strict=True))
        for key in optimizers
        for base in ("SGD foreach", "SGD fused")
    }
    return {"median_s": medians, "first_s": first_step}, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (median)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--out", type=Path, help="CSV file for the table")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, float32, {device} ({name})", flush=True)
    rows = []
    for workload, shapes in [("ResNet-18", resnet18_shapes()), ("ResNet-50", resnet50_shapes())]:
        n_weights = sum(torch.Size(s).numel() for s in shapes)
        stats, ratios = bench(shapes, args.device, args.rounds, args.steps)
        for key, seconds in stats["median_s"].items():
            rows.append(
                {
                    "workload": workload,
                    "tensors": len(shapes),
                    "weights": n_weights,
                    "optimizer": key if key.startswith("SGD") else f"MirrorDescent {key}",
                    "step_ms": 1e3 * seconds,
                    "first_step_s": stats["first_s"][key],
                    "vs_sgd_foreach": ratios[key, "SGD foreach"],
                    "vs_sgd_fused": ratios[key, "SGD fused"],
                }
            )
    header = f"{'workload':<10} {'optimizer':<26} {'step ms':>8} {'/foreach':>9} {'/fused':>8}"
    print(header)
    for row in rows:
        print(
            f"{row['workload']:<10} {row['optimizer']:<26} {row['step_ms']:>8.3f} "
            f"{row['vs_sgd_foreach']:>8.2f}x {row['vs_sgd_fused']:>7.2f}x"
        )
    print("target: MirrorDescent <= 1.0x SGD(foreach=True) on both lists, every potential")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
