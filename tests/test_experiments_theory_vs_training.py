"""Tests of the comparison of Fig 2's trained endpoints with the exact Bregman projection."""

from __future__ import annotations

import pytest
import torch

from mirrorlib import potential
from mirrorlib.experiments import dual_gaussian as DG
from mirrorlib.experiments import theory_vs_training as TV
from mirrorlib.recovery import InputError

TINY = TV.config(dims=(40, 80), corr_powers=(2.0,), seeds=2, long_max_d=80)


@pytest.fixture(scope="module")
def table():
    return TV.run(TINY)


def test_the_projection_is_its_own_reference(table):
    proj = table[table["endpoint"] == "projection"]
    assert (proj["dual_distance"] == 0).all() and (proj["bregman_ratio"] == 1).all()
    assert set(table["endpoint"]) == set(TV.ENDPOINTS)


def test_longer_training_lands_on_the_projection(table):
    wide = table.pivot_table(
        index=["D", "seed", "potential"], columns="endpoint", values="dual_distance"
    )
    assert (wide["long"] <= wide["fig2"] + 1e-6).all()
    assert (wide["long"] < 1e-3).all()


def test_endpoint_stats_measure_the_gap_to_the_projection():
    gen = torch.Generator().manual_seed(3)
    X = DG.sample_inputs("short", 6, 30, gen)
    y = torch.randint(0, 2, (6,), generator=gen).double() * 2 - 1
    w0 = torch.randn(30, generator=gen, dtype=torch.float64) / 30**0.5
    pot = potential("2-norm")
    w_star = DG.bregman_projection(X, y, w0, pot).w
    halfway = w0 + 0.5 * (w_star - w0)
    stats = TV.endpoint_stats(pot, X, y, w0, halfway, w_star)
    assert stats["dual_distance"] == pytest.approx(0.5) and stats["distance"] == pytest.approx(0.5)
    assert stats["bregman"] == pytest.approx(0.25 * float(pot.bregman(w_star, w0).sum()))
    assert stats["loss"] > 0.1


def test_summary_pools_seeds_and_powers(table):
    summary = TV.summarise(table)
    assert len(summary) == len(table.groupby(["potential", "D", "endpoint"]))
    assert (summary["ratio_min"] <= summary["ratio"]).all()


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="alpha"):
        TV.config(alpha=1.5)
    with pytest.raises(InputError, match="seeds"):
        TV.config(seeds=0)
