"""Benchmark: MirrorDescent step time relative to torch.optim.SGD(momentum=0.9), same run.

Two workloads, float32 on the CPU: the 62 parameter tensors of ResNet-18 (11.69 M weights) and an
MLP 784-1000-1000-10 (weights and biases). For "3-norm", "1.5-norm" and "ne" it prints the median
step time of the fast (compiled) path and its ratio to SGD's (optimisers timed in rotating order,
round after round; median of the per-round ratios), and the reference path's for context (one
step per round). The fast path's first step, which compiles its kernel, is timed separately: by
default with inductor's caches disabled (a cold compile, as in a fresh environment);
``--warm-cache`` uses the on-disk cache instead. The load average is printed because other work
on the machine slows the multi-threaded steps unevenly.
Targets for the fast path: <= 1.0x SGD on ResNet-18 and <= 2x on the MLP.

    python benchmarks/bench_optim.py               # ~1-2 minutes on 2 idle cores
    python benchmarks/bench_optim.py --rounds 5    # quicker, noisier
    python benchmarks/bench_optim.py --threads 1   # less sensitive to other work on the machine
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mirrorlib import MirrorDescent

POTENTIALS = ["3-norm", "1.5-norm", "ne"]
LR, MOMENTUM = 1e-3, 0.9


def resnet18_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's ResNet-18 in ``model.parameters()`` order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]  # conv1, bn1
    in_ch = 64
    for out_ch, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            shapes += [(out_ch, in_ch, 3, 3), (out_ch,), (out_ch,)]  # conv1, bn1
            shapes += [(out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]  # conv2, bn2
            if block == 0 and (stride != 1 or in_ch != out_ch):
                shapes += [(out_ch, in_ch, 1, 1), (out_ch,), (out_ch,)]  # downsample
            in_ch = out_ch
    return shapes + [(1000, 512), (1000,)]  # fc


def mlp_shapes() -> list[tuple[int, ...]]:
    """Weight and bias shapes of the MLP 784-1000-1000-10 (torch Linear: (out, in), (out,))."""
    layers = [(784, 1000), (1000, 1000), (1000, 10)]
    return [shape for n_in, n_out in layers for shape in [(n_out, n_in), (n_out,)]]


def make_params(shapes, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Fresh parameters (weights away from 0) sharing the given gradients, on their device."""
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape, grad in zip(shapes, grads, strict=True):
        w = torch.randn(shape, generator=gen).to(grad.device)
        p = torch.nn.Parameter(w + 0.05 * torch.sign(w))
        p.grad = grad
        params.append(p)
    return params


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(optimizer: torch.optim.Optimizer, steps: int) -> float:
    device = optimizer.param_groups[0]["params"][0].device
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    _synchronize(device)
    return (time.perf_counter() - start) / steps


def bench_workload(
    name: str, shapes, rounds: int, steps: int, device: str = "cpu"
) -> tuple[list[str], dict]:
    gen = torch.Generator().manual_seed(1)
    grads = [1e-3 * torch.randn(shape, generator=gen).to(device) for shape in shapes]
    optimizers = {"SGD": torch.optim.SGD(make_params(shapes, grads), lr=LR, momentum=MOMENTUM)}
    first_step = {}
    for pot in POTENTIALS:
        for fast in (True, False):
            opt = MirrorDescent(make_params(shapes, grads), LR, pot, MOMENTUM, fast=fast)
            first_step[pot, fast] = time_steps(opt, 1)
            optimizers[pot, fast] = opt
    time_steps(optimizers["SGD"], 1)

    times: dict = {key: [] for key in optimizers}
    ratios: dict = {key: [] for key in optimizers}
    for r in range(rounds):
        keys = list(optimizers)
        keys = keys[r % len(keys) :] + keys[: r % len(keys)]  # rotate the order each round
        for key in keys:
            reference = isinstance(key, tuple) and not key[1]
            times[key].append(time_steps(optimizers[key], 1 if reference else steps))
        for key in optimizers:
            ratios[key].append(times[key][-1] / times["SGD"][-1])

    sgd_ms = 1e3 * statistics.median(times["SGD"])
    n_weights = sum(torch.Size(s).numel() for s in shapes)
    rows = []
    for pot in POTENTIALS:
        fast_ms = 1e3 * statistics.median(times[pot, True])
        ref_ms = 1e3 * statistics.median(times[pot, False])
        rows.append(
            f"{name:<10} {n_weights / 1e6:>6.2f}M {len(shapes):>4} {sgd_ms:>8.2f} {pot:>9} "
            f"{fast_ms:>8.2f} {statistics.median(ratios[pot, True]):>7.2f}x "
            f"{ref_ms:>8.2f} {statistics.median(ratios[pot, False]):>7.2f}x"
        )
    return rows, first_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median)")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's disk cache")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (the targets' setting) or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.compiler.config.force_disable_caches = not args.warm_cache

    resnet = resnet18_shapes()
    n_resnet = sum(torch.Size(s).numel() for s in resnet)
    assert len(resnet) == 62 and n_resnet == 11_689_512, (len(resnet), n_resnet)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {args.device}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"ResNet-18: {len(resnet)} tensors, {n_resnet:,} weights\n")

    workloads = [("ResNet-18", resnet, 5, 1.0), ("MLP", mlp_shapes(), 20, 2.0)]
    header = (
        f"{'workload':<10} {'weights':>7} {'tens':>4} {'SGD ms':>8} {'potential':>9} "
        f"{'fast ms':>8} {'/SGD':>8} {'ref ms':>8} {'/SGD':>8}"
    )
    print(header)
    compile_rows = []
    for name, shapes, steps, _target in workloads:
        rows, first_step = bench_workload(name, shapes, args.rounds, steps, args.device)
        print("\n".join(rows), flush=True)
        if not compile_rows:
            cache = "warm disk cache" if args.warm_cache else "caches disabled: cold"
            for pot in POTENTIALS:
                compile_rows.append(
                    f"  {pot:>9}: first fast step {first_step[pot, True]:6.1f} s ({cache}); "
                    f"first reference step {first_step[pot, False]:.3f} s"
                )
    targets = ", ".join(f"<= {target:g}x on {name}" for name, _, _, target in workloads)
    print(f"\ntargets for fast/SGD: {targets}")
    print("one-off compile (first step on ResNet-18; the MLP reuses the same graphs):")
    print("\n".join(compile_rows))
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
