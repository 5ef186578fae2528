"""Benchmark: the Fig 2 linear-regression grid, batched (mirrorlib) vs run the paper's way.

Every time is printed twice: wall clock and CPU time of this process (all its threads). On a
shared machine the wall clock of the same work varies several-fold with the others' load; the
CPU time much less, so both ratios are printed. What was measured and what was extrapolated is
said line by line:

1. mirrorlib: ``run(config("paper"))`` end to end (input sampling, learning-rate search,
   seeds, statistics), measured in full.
2. The paper-style baseline, the same protocol as the authors' code runs it:
   a. the dense ``D_max x D_max`` Toeplitz matrix and its Cholesky factor, once per correlation
      power: measured once (at ``D_max``), counted for each power;
   b. dense sampling ``randn(n_seeds + 1, N_max, D_max) @ L^T + U(-0.5, 0.5)``, redone for
      every (power, potential, alpha) as in the authors' code: one draw measured, extrapolated
      by the number of rows;
   c. training, one loop per run (:func:`train_per_run`: ``nn.Linear``, ``MSELoss``,
      ``MirrorDescent``, ``CosineAnnealingLR``): the cost of one run measured for every
      (N, D, potential) as set-up + per-step cost, multiplied out over the runs the protocol
      makes (16 runs per search round at budgets 100, 200, ... up to the cell's T, plus
      ``n_seeds`` runs of T steps; the budgets T are those of step 1's table);
   d. a check of (c): one whole paper-style cell timed and set against its extrapolation.
3. The ratios baseline / mirrorlib.
4. float32 vs float64 on the ``ci`` preset and on the paper's largest cells with alpha = 0.5:
   how much the Delta-CDF moves (against its spread over seeds), and the run times.

    python benchmarks/bench_linear_regression.py                 # the full paper grid
    python benchmarks/bench_linear_regression.py --quick         # D <= 3419, 10 seeds
    python benchmarks/bench_linear_regression.py --out table.csv # also save step 1's table
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from mirrorlib.experiments import linear_regression as LR
from mirrorlib.experiments.correlated_inputs import circulant_embedding, correlated_inputs

QUICK = {"dims": LR.PAPER_DIMS[:7], "n_seeds": 10}
"""The ``--quick`` subset of the paper grid: D = 100 ... 3419 (7 values), 10 seeds."""

STEPS_MEASURED = 40  # extra steps of one per-run loop, per (N, D, potential), for the step cost


def clock() -> np.ndarray:
    """``[wall, cpu]`` seconds now; differences of two clocks are durations."""
    return np.array([time.perf_counter(), time.process_time()])


def timed(fn, *args, repeats: int = 1) -> np.ndarray:
    """``[wall, cpu]`` seconds of ``fn(*args)``, the shortest (by wall clock) of ``repeats``."""
    best = np.array([math.inf, math.inf])
    for _ in range(repeats):
        start = clock()
        fn(*args)
        spent = clock() - start
        best = spent if spent[0] < best[0] else best
    return best


def line(label: str, cost: np.ndarray) -> None:
    wall, cpu = cost
    print(f"   {label:<58s} wall {wall:7.1f} s ({wall / 60:5.2f} min)   cpu {cpu:7.1f} s")


def paper_style_cholesky(D: int, p: float) -> torch.Tensor:
    """The authors' construction: the covariance row by row from a lag vector, then a dense
    float64 Cholesky factor, kept in float32."""
    lags = np.arange(-D, D + 1)
    dist = np.where(lags % 2 == 0, 1.0, -1.0) / (1.0 + np.abs(lags) ** p)
    corr = np.zeros((D, D))
    for i in range(D):
        corr[i] = dist[D - i : D - i + D]
    return torch.tensor(np.linalg.cholesky(corr), dtype=torch.float32)


def paper_style_draw(L: torch.Tensor, rows: int, gen: torch.Generator) -> torch.Tensor:
    """One draw of ``rows`` inputs the authors' way: ``randn @ L^T + U(-0.5, 0.5)``."""
    x = torch.randn(rows, L.shape[0], generator=gen) @ L.T
    return x.add_(torch.rand(rows, L.shape[0], generator=gen) - 0.5)


def search_budgets(steps: int, cfg: LR.LinearRegressionConfig) -> list[int]:
    """The budgets the search tried before settling on ``steps``: min_steps, +inc, ..."""
    return list(range(cfg.min_steps, steps + 1, cfg.step_increment))


def run_costs(cfg: LR.LinearRegressionConfig, table: pd.DataFrame) -> dict:
    """Cost of one paper-style run of T steps, ``a + b T`` (``[wall, cpu]`` arrays), for every
    (N, D, potential): ``b`` from runs of 2 and 2 + STEPS_MEASURED steps, best of 3 each."""
    d_max = max(cfg.dims)
    n_max = max(LR.n_samples(D, a) for D in cfg.dims for a in cfg.alphas)
    gen = torch.Generator().manual_seed(0)
    X = correlated_inputs(n_max, circulant_embedding(d_max, cfg.corr_powers[0]), gen)
    y = torch.randint(0, 2, (n_max,), generator=gen).float() * 2 - 1
    lrs = table.groupby(["alpha", "D", "potential"])["lr"].median()
    costs = {}
    for (alpha, D, name), lr in lrs.items():
        N = LR.n_samples(D, alpha)
        w0 = torch.randn(D, generator=gen) / math.sqrt(D)
        args = (X[:N, :D].contiguous(), y[:N], w0, name, float(lr))
        short = timed(LR.train_per_run, *args, 2, repeats=3)
        long = timed(LR.train_per_run, *args, 2 + STEPS_MEASURED, repeats=3)
        per_step = np.maximum(long - short, 0.0) / STEPS_MEASURED
        costs[(N, D, name)] = (np.maximum(short - 2 * per_step, 0.0), per_step)
    return costs


def runs_cost(costs: dict, key: tuple, runs: int, steps: int) -> np.ndarray:
    """Extrapolated ``[wall, cpu]`` of ``runs`` paper-style runs of ``steps`` steps each."""
    setup, per_step = costs[key]
    return runs * (setup + per_step * steps)


def training_estimate(table: pd.DataFrame, cfg: LR.LinearRegressionConfig, costs: dict):
    """Paper-style training cost (``[wall, cpu]``) and run-steps, counting the protocol's runs."""
    cells = table.groupby(["corr_power", "alpha", "D", "N", "potential"])["steps"].first()
    total, steps_total = np.zeros(2), 0
    for (_, _, D, N, name), steps in cells.items():
        for budget in search_budgets(steps, cfg):
            total += runs_cost(costs, (N, D, name), len(cfg.lrs), budget)
            steps_total += len(cfg.lrs) * budget
        total += runs_cost(costs, (N, D, name), cfg.n_seeds, steps)
        steps_total += cfg.n_seeds * steps
    return total, steps_total


def paper_style_cell(draws, labels, cfg: LR.LinearRegressionConfig, name: str) -> list[int]:
    """The authors' cell: search (a fresh w0 per run, nanargmin), then the seeds; the runs'
    step budgets."""
    D = draws[0].shape[1]
    gen = torch.Generator().manual_seed(2)
    budget, budgets = cfg.min_steps, []
    while True:
        losses = []
        for lr in cfg.lrs:
            w0 = torch.randn(D, generator=gen) / math.sqrt(D)
            losses.append(LR.train_per_run(draws[-1], labels[-1], w0, name, lr, budget)[1])
        budgets += [budget] * len(cfg.lrs)
        best = np.nanargmin(losses)
        if losses[best] < cfg.loss_target or budget >= cfg.max_steps:
            break
        budget += cfg.step_increment
    for X, y in zip(draws[:-1], labels[:-1], strict=True):
        w0 = torch.randn(D, generator=gen) / math.sqrt(D)
        LR.train_per_run(X, y, w0, name, cfg.lrs[best], budget)
    return budgets + [budget] * len(draws[:-1])


def check_cell(cfg: LR.LinearRegressionConfig, costs: dict, D: int, alpha: float, name: str):
    """Time one whole paper-style cell; return (measured, extrapolated, run-steps)."""
    N = LR.n_samples(D, alpha)
    gen = torch.Generator().manual_seed(1)
    emb = circulant_embedding(D, cfg.corr_powers[0])
    draws = [correlated_inputs(N, emb, gen) for _ in range(cfg.n_seeds + 1)]
    labels = [torch.randint(0, 2, (N,), generator=gen).float() * 2 - 1 for _ in draws]
    start = clock()
    budgets = paper_style_cell(draws, labels, cfg, name)
    measured = clock() - start
    predicted = sum(runs_cost(costs, (N, D, name), 1, b) for b in budgets)
    return measured, predicted, sum(budgets)


def baseline(cfg: LR.LinearRegressionConfig, table: pd.DataFrame) -> np.ndarray:
    """Estimate the paper-style protocol's cost (``[wall, cpu]``), printing each part."""
    d_max = max(cfg.dims)
    n_rows = {a: LR.n_samples(d_max, a) for a in cfg.alphas}
    print(f"\n2. paper-style baseline (D_max = {d_max}, N_max = {n_rows})")
    start = clock()
    L = paper_style_cholesky(d_max, cfg.corr_powers[0])
    chol = clock() - start
    line("a. dense C + Cholesky, one power (measured)", chol)
    line(f"   x {len(cfg.corr_powers)} powers (extrapolated)", chol * len(cfg.corr_powers))
    rows_measured = max(n_rows.values())
    draw = timed(paper_style_draw, L, rows_measured, torch.Generator().manual_seed(0))
    del L
    gc.collect()
    rows_total = (
        len(cfg.corr_powers) * len(cfg.potentials) * (cfg.n_seeds + 1) * sum(n_rows.values())
    )
    sampling = draw / rows_measured * rows_total
    line(f"b. dense sampling, one draw of {rows_measured} rows (measured)", draw)
    line(f"   {rows_total} rows, per (p, potential, alpha) (extrapolated)", sampling)
    start = clock()
    costs = run_costs(cfg, table)
    measuring = clock() - start
    training, n_steps = training_estimate(table, cfg, costs)
    big = max(costs, key=lambda k: (k[1], k[0]))
    print(
        f"   c. run cost (set-up + per step) for {len(costs)} (N, D, potential), measured in "
        f"{measuring[0]:.0f} s; at (N, D) = {big[:2]}: {costs[big][0][0] * 1e3:.1f} ms + "
        f"{costs[big][1][0] * 1e3:.2f} ms/step (wall)"
    )
    line(f"   {n_steps} run-steps (extrapolated)", training)
    mid_d = cfg.dims[len(cfg.dims) // 2]
    alpha = max(cfg.alphas)
    measured, predicted, cell_steps = check_cell(cfg, costs, mid_d, alpha, "negative_entropy")
    print(
        f"   d. check of c on one whole cell (D={mid_d}, alpha={alpha}, negative_entropy, "
        f"{cell_steps} run-steps): measured {measured[0]:.1f} s wall / {measured[1]:.1f} s cpu,"
        f" extrapolated {predicted[0]:.1f} s / {predicted[1]:.1f} s"
    )
    total = chol * len(cfg.corr_powers) + sampling + training
    line("baseline total (a + b + c)", total)
    return total


def dtype_check(label: str, cfg: LR.LinearRegressionConfig) -> None:
    """float32 vs float64 on ``cfg``: shift of the Delta-CDF against its seed spread."""
    tables, costs = {}, {}
    for dtype in ("float32", "float64"):
        start = clock()
        tables[dtype] = LR.run(replace(cfg, dtype=dtype), progress=False)
        costs[dtype] = clock() - start
    a, b = tables["float32"], tables["float64"]
    same_lr = (a["lr"] == b["lr"]) & (a["steps"] == b["steps"])
    shift = (a["delta_cdf"] - b["delta_cdf"]).abs()[same_lr]
    spread = a.groupby(["corr_power", "alpha", "D", "potential"])["delta_cdf"].std().median()
    print(f"   {label}:")
    line("   float32", costs["float32"])
    line("   float64", costs["float64"])
    print(
        f"      runs whose cell chose the same (lr, T) in both: {same_lr.mean():.0%}; "
        f"|Delta-CDF(float32) - Delta-CDF(float64)| on them: median {shift.median():.1e}, "
        f"max {shift.max():.1e}; seed-to-seed std of Delta-CDF (median over cells) {spread:.1e}"
    )


def summary(table: pd.DataFrame) -> None:
    """Median Delta-CDF and relative change per potential at the largest D, against the floor
    (independent values) and the null (values correlated like the inputs)."""
    top = table[table["D"] == table["D"].max()]
    stats = top.groupby(["corr_power", "alpha", "potential"]).agg(
        N=("N", "first"),
        lr=("lr", "first"),
        T=("steps", "first"),
        converged=("converged", "mean"),
        delta_cdf_median=("delta_cdf", "median"),
        q05=("delta_cdf", lambda s: s.quantile(0.05)),
        q95=("delta_cdf", lambda s: s.quantile(0.95)),
        floor=("delta_cdf_floor", "first"),
        null=("delta_cdf_null", "first"),
        relative_change=("relative_change", "median"),
    )
    print(f"\nResults at D = {int(table['D'].max())} (median over seeds, 5-95% band):")
    print(stats.to_string(float_format=lambda v: f"{v:.4g}"))
    steps = table.groupby(["corr_power", "alpha", "D", "potential"])["steps"].first()
    print(
        f"cells by step budget T: {steps.value_counts().sort_index().to_dict()}; "
        f"runs converged (loss < 1e-3): {table['converged'].mean():.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D <= 3419 and 10 seeds")
    parser.add_argument("--out", help="save the mirrorlib table as CSV")
    args = parser.parse_args()
    cfg = LR.config("paper", **(QUICK if args.quick else {}))
    print(
        f"grid: powers {cfg.corr_powers}, alphas {cfg.alphas}, D {cfg.dims}, "
        f"{len(cfg.potentials)} potentials, {cfg.n_seeds} seeds, {len(cfg.lrs)} lrs, "
        f"{cfg.dtype}, {torch.get_num_threads()} threads"
    )
    start = clock()
    table = LR.run(cfg, progress=True)
    ours = clock() - start
    print()
    line("1. mirrorlib, whole grid (measured)", ours)
    if args.out:
        table.to_csv(args.out, index=False)
    gc.collect()
    total = baseline(cfg, table)
    wall, cpu = total / ours
    print(
        f"\n3. speed-up baseline / mirrorlib: {wall:.1f}x wall clock, {cpu:.1f}x CPU time "
        f"(mirrorlib {ours[0] / 60:.2f} min wall, baseline {total[0] / 60:.1f} min wall)"
    )
    print("\n4. float32 vs float64 (measured)")
    dtype_check("ci preset", LR.config("ci"))
    largest = {"dims": LR.PAPER_DIMS[-1:], "alphas": (0.5,), "corr_powers": (2.0,)}
    dtype_check("paper protocol at D = 20000, alpha = 0.5, p = 2", LR.config("paper", **largest))
    summary(table)


if __name__ == "__main__":
    main()
