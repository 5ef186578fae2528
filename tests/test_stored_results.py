"""CI check of the stored paper-scale results (results/paper/): the cheapest rows of each stored
table are recomputed from their seeds with the current code and compared with the stored values.
A stored table that the current code would no longer reproduce fails here."""

from __future__ import annotations

import pandas as pd
import pytest

from mirrorlib.experiments import dual_gaussian as dg
from mirrorlib.stored import Provenance, read_stored

RTOL = 1e-8
"""Relative tolerance on recomputed values. Measured: recomputing a central-limit point (binary
and short-range inputs; 1 and 2 torch threads; three runs) gave bit-identical values, and the
CSV round trip is exact; the margin covers another BLAS build, whose float32 rounding changes
the Newton-CG path but not its converged point beyond ~4e-9 of the change in w (the fast
projection against the dense float64 one, benchmarks/bench_projection.py)."""


def test_a_stored_central_limit_point_is_reproduced():
    # the largest D at N = D^0.5 for iid sign inputs, seed 0: paper scale, about 3 s
    stored, provenance = read_stored(dg.STORED_CHAPTER, "clt")
    assert isinstance(provenance, Provenance) and provenance.commit and provenance.wall_time_s > 0
    D = int(stored["D"].max())
    cell = stored[(stored["inputs"] == "binary") & (stored["D"] == D) & (stored["alpha"] == 0.5)
                  & (stored["seed"] == 0)].reset_index(drop=True)  # fmt: skip
    assert len(cell) == len(dg.PRESETS["paper"].potentials)
    again = pd.DataFrame(dg.clt_point(dg.config("paper"), "binary", D, 0.5, 0))
    pd.testing.assert_frame_equal(again[cell.columns], cell, check_exact=False, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", ["clt"])
def test_stored_tables_hold_the_paper_preset(name):
    stored, _ = read_stored(dg.STORED_CHAPTER, name)
    cfg = dg.PRESETS["paper"]
    assert set(stored["D"]) == set(cfg.clt_dims)
    assert set(stored["inputs"]) == set(cfg.clt_inputs)
    assert set(stored["alpha"]) == set(cfg.clt_alphas)
    seeds = sorted(set(stored["seed"]))
    assert seeds == list(range(len(seeds)))  # whole seeds, from 0
