"""GPU check: the CUDA paths of mirrorlib, timed against the CPU in the same run.

Run on a machine with an NVIDIA GPU (the CI machine has none). Prints, and writes as CSV to
``--out``:

1. the exact Delta-CDF of 1e6 and 1e7 values on the GPU against the CPU (same values, same
   result to float64 rounding), with the times;
2. the paper's full Fig 2 linear-regression grid (``linear_regression.config("paper")``) on the
   GPU: its wall time, and the medians of ``delta_cdf / delta_cdf_floor`` per (correlation
   power, potential, alpha) at the largest D, to set against the CPU table of the same config
   (``--cpu-table``).

    python benchmarks/gpu_check.py --out gpu_results \
        --cpu-table _build/results/paper/fig2_linear_regression.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mirrorlib.experiments import linear_regression
from mirrorlib.stats import delta_cdf


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value, time.perf_counter() - start


def check_delta_cdf(device: torch.device) -> pd.DataFrame:
    rows = []
    for n in (10**6, 10**7):
        x_cpu = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        x_cpu = x_cpu + 0.2 * x_cpu**2  # skewed: far from Gaussian, a nonzero statistic
        x_gpu = x_cpu.to(device)
        delta_cdf(x_gpu)  # warm-up (kernels, allocator)
        gpu, t_gpu = _timed(lambda x=x_gpu: delta_cdf(x), device)
        cpu, t_cpu = _timed(lambda x=x_cpu: delta_cdf(x), torch.device("cpu"))
        rows.append(
            {
                "n": n,
                "delta_cdf_gpu": gpu,
                "delta_cdf_cpu": cpu,
                "abs_diff": abs(gpu - cpu),
                "gpu_s": t_gpu,
                "cpu_s": t_cpu,
                "speedup": t_cpu / t_gpu,
            }
        )
    return pd.DataFrame(rows)


def ratio_medians(table: pd.DataFrame) -> pd.Series:
    top = table[table["D"] == table["D"].max()]
    ratio = top["delta_cdf"] / top["delta_cdf_floor"]
    keys = [top["corr_power"], top["potential"], top["alpha"]]
    return ratio.groupby(keys).median().rename("median_ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_results", help="folder for the CSV tables")
    parser.add_argument("--cpu-table", help="the CPU run's fig2 table of the paper config")
    args = parser.parse_args()
    device = torch.device("cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device)}", flush=True)

    cdf = check_delta_cdf(device)
    cdf.to_csv(out / "gpu_delta_cdf.csv", index=False)
    print(cdf.to_string(index=False), flush=True)
    assert (cdf["abs_diff"] < 1e-9).all(), "GPU and CPU Delta-CDF disagree"

    cfg = linear_regression.config("paper")
    table, seconds = _timed(
        lambda: linear_regression.run(cfg, progress=False, device=device), device
    )
    table.to_csv(out / "gpu_fig2_linear_regression.csv", index=False)
    print(
        f"\nFig 2, paper config on {device}: {len(table)} runs in {seconds:.1f} s; "
        f"{int((~table['converged']).sum())} not converged"
    )
    medians = ratio_medians(table).to_frame("gpu")
    if args.cpu_table and Path(args.cpu_table).is_file():
        medians["cpu"] = ratio_medians(pd.read_csv(args.cpu_table))
    medians.to_csv(out / "gpu_fig2_medians.csv")
    print("median delta_cdf / floor at the largest D:")
    print(medians.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"finite everywhere: {bool(np.isfinite(table['delta_cdf']).all())}")


if __name__ == "__main__":
    main()
