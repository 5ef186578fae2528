"""Benchmark: the whole ``paper`` preset of ``book/dual_gaussian.md`` against its target of
30 minutes on this project's two CPU cores, and against the code it replaced, timed in the same
run.

1. The baseline: ``mirrorlib/experiments/dual_gaussian.py`` as it was at ``--baseline``
   (default ``6ada40a``, the last commit before the projection's stopping rules and the
   linearisation scan's order changed), loaded from git into its own module. On a sample of the
   preset, it and the current code run the same work one after the other on one thread: the
   central-limit scan's ``--baseline-seeds`` first seeds (every input law, ``D`` and ``alpha``)
   and one seed of the linearisation scan. Their tables must agree (``converged`` may only go
   from False to True); their times give a ratio per table.
2. The whole preset with the current code, as ``dual_gaussian.store_paper`` runs it (two
   central-limit seeds at once, each on one thread; then the other tables), table by table,
   against the target. With ``--store`` its tables replace those in ``results/paper/``,
   with their provenance; otherwise they go to a temporary folder.

The printed estimate for the baseline's whole preset is each table's time times its measured
ratio (the implicit-bias and deep tables did not change: ratio 1).

    nice python benchmarks/bench_dual_gaussian_paper.py            # about 30 min, 2 idle cores
    nice python benchmarks/bench_dual_gaussian_paper.py --store    # and store the tables
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mirrorlib.experiments import cpu_threads
from mirrorlib.experiments import dual_gaussian as dg

TARGET_S = 30 * 60
ROOT = Path(__file__).resolve().parents[1]


def load_baseline(commit: str):
    """``dual_gaussian.py`` at ``commit``, imported as the module ``dual_gaussian_baseline``."""
    shown = subprocess.run(
        ["git", "show", f"{commit}:mirrorlib/experiments/dual_gaussian.py"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if shown.returncode != 0:
        sys.exit(
            f"the baseline is dual_gaussian.py at commit {commit}, read from git, which says: "
            f"{shown.stderr.strip()}; run the benchmark in a clone with its history "
            "(git fetch --unshallow), or give --baseline another commit"
        )
    source = shown.stdout
    path = Path(tempfile.mkdtemp()) / "dual_gaussian_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dual_gaussian_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def _check_same(before: pd.DataFrame, after: pd.DataFrame, what: str) -> str:
    """The current table against the baseline's: the same rows; where both converged the same
    values to ``1e-6`` (relative); ``converged`` only gained. Returns a one-line summary."""
    if len(before) != len(after):
        raise AssertionError(f"{what}: {len(before)} rows before, {len(after)} now")
    lost = before["converged"] & ~after["converged"]
    if lost.any():
        raise AssertionError(f"{what}: {int(lost.sum())} projections no longer converge")
    both = before["converged"] & after["converged"]
    worst = 0.0
    for column in ("delta_cdf", "relative_change", "relative_dual_change"):
        a, b = before.loc[both, column].to_numpy(), after.loc[both, column].to_numpy()
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300))))
    if worst > 1e-6:
        raise AssertionError(f"{what}: values moved by {worst:.1e} (relative)")
    gained = int((~before["converged"] & after["converged"]).sum())
    agree = f"{int(both.sum())} rows agree to {worst:.1e} (relative)"
    return f"{what}: {agree}; {gained} newly converged"


def baseline_sample(commit: str, seeds: int) -> dict[str, float]:
    """Time the baseline and the current code on the same sample, one thread; the ratios."""
    before = load_baseline(commit)
    cfg = dg.config("paper")
    ratios = {}
    with cpu_threads(1):
        t_before = t_after = 0.0
        for seed in range(seeds):
            old, t_old = _timed(lambda s=seed: before._clt_seed(before.config("paper"), s))
            new, t_new = _timed(lambda s=seed: dg.clt_seed_rows(cfg, s))
            print(f"central-limit seed {seed}: {t_old:.1f} s before, {t_new:.1f} s now "
                  f"({t_old / t_new:.2f}x)", flush=True)  # fmt: skip
            print("  " + _check_same(old, new, f"seed {seed}"), flush=True)
            t_before, t_after = t_before + t_old, t_after + t_new
        ratios["clt"] = t_before / t_after
        one_seed = {"lin_seeds": 1}
        old, t_old = _timed(lambda: before.run_linearisation(before.config("paper", **one_seed)))
        new, t_new = _timed(lambda: dg.run_linearisation(dg.config("paper", **one_seed)))
        print(f"linearisation, one seed: {t_old:.1f} s before, {t_new:.1f} s now "
              f"({t_old / t_new:.2f}x)", flush=True)  # fmt: skip
        print("  " + _check_same(old, new, "linearisation"), flush=True)
        ratios["linearisation"] = t_old / t_new
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="6ada40a")
    parser.add_argument("--baseline-seeds", type=int, default=2)
    parser.add_argument("--store", action="store_true", help="store the tables in results/paper")
    parser.add_argument("--note", default="", help="the provenance note of stored tables")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ratios = baseline_sample(args.baseline, args.baseline_seeds)
    root = None if args.store else tempfile.mkdtemp()
    command = "python benchmarks/bench_dual_gaussian_paper.py --store"
    start = time.perf_counter()
    times = dg.store_paper(root=root, note=args.note, command=command, workers=2)
    total = time.perf_counter() - start
    table = pd.DataFrame({"now_s": pd.Series(times)})
    table["ratio"] = [ratios.get(name, 1.0) for name in table.index]
    table["baseline_estimate_s"] = table["now_s"] * table["ratio"]
    print("\n" + table.round(2).to_string())
    estimate = float(table["baseline_estimate_s"].sum())
    verdict = "meets" if total <= TARGET_S else "misses"
    print(f"\nthe paper preset: {total / 60:.1f} min now ({verdict} the target of "
          f"{TARGET_S / 60:.0f} min); the baseline, estimated: {estimate / 60:.1f} min "
          f"({estimate / total:.2f}x)")  # fmt: skip
    print(f"tables in {root or 'results/paper/'}")


if __name__ == "__main__":
    main()
