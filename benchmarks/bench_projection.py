"""Benchmark: the exact Bregman projection of ``book/dual_gaussian.md``, matrix-free Newton-CG
(:func:`~mirrorlib.experiments.dual_gaussian.bregman_projection`) against the dense float64
Newton it replaced (:func:`~mirrorlib.experiments.dual_gaussian.bregman_projection_dense`),
timed in the same run on the same problems of the central-limit scan (``N = int(D^alpha)``).

For each problem and potential it prints both times, their ratio, and the accuracy of the fast
path where both converged: the largest difference of the projected weights and of the dual
change (relative to the largest change) and of the Delta-CDF. ``--fast-only D ...`` also times
the fast path alone on sizes where the dense one takes minutes (one seed of every input law,
``alpha`` and potential per ``D``).

    nice python benchmarks/bench_projection.py                   # about 5 min on 2 idle cores
    nice python benchmarks/bench_projection.py --fast-only 20000
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from mirrorlib.experiments import dual_gaussian as dg
from mirrorlib.potentials import potential
from mirrorlib.stats import delta_cdf


def _timed(solve, *args):
    start = time.perf_counter()
    result = solve(*args)
    return result, time.perf_counter() - start


def compare(kinds, dims, alphas, seed: int = 0) -> pd.DataFrame:
    """One row per problem and potential: both solvers' times and the fast path's accuracy."""
    rows = []
    for kind in kinds:
        for D in dims:
            for alpha in alphas:
                N = int(D**alpha)
                X, y, w0 = dg.clt_problem(dg.config("ci"), kind, N, D, seed)
                for name in dg.PRESETS["paper"].potentials:
                    pot = potential(name)
                    fast, t_fast = _timed(dg.bregman_projection, X, y, w0, pot)
                    dense, t_dense = _timed(dg.bregman_projection_dense, X, y, w0, pot)
                    row = {"inputs": kind, "D": D, "N": N, "potential": pot.name}
                    row |= {"dense_s": t_dense, "fast_s": t_fast, "speedup": t_dense / t_fast}
                    row |= {"dense_conv": dense.converged, "fast_conv": fast.converged}
                    if fast.converged and dense.converged:
                        change = dense.w - w0
                        dual_fast = pot.to_dual(fast.w) - pot.to_dual(w0)
                        dual_dense = pot.to_dual(dense.w) - pot.to_dual(w0)
                        row["w_diff"] = float((fast.w - dense.w).abs().max() / change.abs().max())
                        row["dual_diff"] = float(
                            (dual_fast - dual_dense).abs().max() / dual_dense.abs().max()
                        )
                        row["dcdf_diff"] = abs(delta_cdf(dual_fast) - delta_cdf(dual_dense))
                    rows.append(row)
                    print(pd.DataFrame([row]).to_string(index=False, header=False), flush=True)
    return pd.DataFrame(rows)


def fast_only(dims, seed: int = 0) -> pd.DataFrame:
    """The fast path alone on every input law, ``alpha`` and potential of each ``D``."""
    cfg = dg.PRESETS["paper"]
    rows = []
    for D in dims:
        for kind in cfg.clt_inputs:
            for alpha in cfg.clt_alphas:
                N = int(D**alpha)
                X, y, w0 = dg.clt_problem(dg.config("ci"), kind, N, D, seed)
                for name in cfg.potentials:
                    proj, t = _timed(dg.bregman_projection, X, y, w0, name)
                    rows.append({"inputs": kind, "D": D, "N": N, "potential": name, "fast_s": t})
                    rows[-1]["converged"] = proj.converged
                    print(pd.DataFrame([rows[-1]]).to_string(index=False, header=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1053, 3419])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--kinds", nargs="+", default=["binary", "short"])
    parser.add_argument("--fast-only", type=int, nargs="*", default=[])
    args = parser.parse_args()
    table = compare(args.kinds, args.dims, args.alphas)
    total_dense, total_fast = table["dense_s"].sum(), table["fast_s"].sum()
    print(f"\ntotal: dense {total_dense:.1f} s, Newton-CG {total_fast:.1f} s, "
          f"speed-up {total_dense / total_fast:.1f}x")  # fmt: skip
    by_d = table.groupby("D")[["dense_s", "fast_s"]].sum()
    print((by_d["dense_s"] / by_d["fast_s"]).rename("speed-up by D").to_string())
    both = table.dropna(subset=["w_diff"])
    print(f"accuracy over {len(both)} problems both solved: max |w diff| / max |w* - w0| = "
          f"{both['w_diff'].max():.1e}, dual change {both['dual_diff'].max():.1e}, "
          f"Delta-CDF {both['dcdf_diff'].max():.1e}")  # fmt: skip
    print(f"converged: dense {int(table['dense_conv'].sum())}, Newton-CG "
          f"{int(table['fast_conv'].sum())} of {len(table)}")  # fmt: skip
    if args.fast_only:
        alone = fast_only(args.fast_only)
        print(alone.groupby("D")["fast_s"].sum().rename("Newton-CG s per seed").to_string())


if __name__ == "__main__":
    main()
