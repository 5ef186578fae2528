"""Tests of the departures tables and the effects they measure."""

from __future__ import annotations

import pandas as pd
import pytest

from mirrorlib.experiments import departures as DP

ROW = ("paper", "chapter", "effect")


def test_table_has_every_aspect_in_order():
    table = DP.departures_table({key: ROW for key in reversed(list(DP.ASPECTS))})
    assert list(table.index) == list(DP.ASPECTS.values())
    with pytest.raises(ValueError, match="missing"):
        DP.departures_table({"statistic": ROW})


def test_grid_error_is_small_for_gaussian_samples_and_larger_for_heavy_tails():
    table = DP.grid_error(500, seeds=4).set_index("law")
    assert table.at["gaussian", "relative_error"] < 0.02
    assert table.at["student_t3", "abs_error"] > table.at["gaussian", "abs_error"]


def test_recovery_by_statistic_counts_gains_and_losses():
    rows = []
    for cand, centred, uncentred in (("2-norm", 0.1, 0.3), ("3-norm", 0.2, 0.2)):
        rows.append({"architecture": "mlp", "n_weights": 10, "objective": "supervised",
                     "trained_potential": "2-norm", "candidate": cand, "seed": 0,
                     "n_samples": 5, "epochs": 1, "train_accuracy": 1.0,
                     "relative_change": 0.1, "best": "2-norm", "p_best": 1.0,
                     "indistinguishable": False, "delta_cdf": centred,
                     "delta_cdf_uncentred": uncentred})  # fmt: skip
    counts = DP.recovery_by_statistic(pd.DataFrame(rows)).set_index("column")
    assert counts.at["delta_cdf", "correct"] == 1
    assert counts.at["delta_cdf_uncentred", "correct"] == 0
    assert counts.at["delta_cdf_uncentred", "lost"] == 1
