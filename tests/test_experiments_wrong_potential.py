"""The wrong-potential experiments (paper Fig 3 and the power analysis) at small settings."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mirrorlib.experiments import wrong_potential as wp
from mirrorlib.results import write_table

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fig3_table():
    cfg = wp.config(
        "ci",
        w0_laws=("lognormal",),
        true_potentials=("negative_entropy", "2-norm"),
        p_grid=(1.1, 1.5, 2.0, 2.5, 3.0),
        betas=(0.1,),
        n_seeds=6,
    )
    return wp.run_fig3(cfg)


@pytest.fixture(scope="module")
def power_table():
    cfg = wp.config(
        "ci",
        pairs=(("negative_entropy", "3-norm"), ("negative_entropy", "1.5-norm")),
        changes=(0.1,),
        n_synapses=(100, 1000),
        repetitions=10,
        n_boot=20,
    )
    return wp.run_recovery_power(cfg)


def test_fig3_table_has_the_documented_columns(fig3_table):
    assert tuple(fig3_table.columns) == wp.FIG3_COLUMNS
    # 1 law x 2 truths x 6 seeds x 2 statistics x 7 candidates (NE, 5 p-norms, 1 hypentropy)
    assert len(fig3_table) == 2 * 6 * 2 * 7
    assert set(fig3_table["family"]) == {"negative_entropy", "p-norm", "hypentropy"}
    assert set(fig3_table["centered"]) == {False, True}
    floors = fig3_table.groupby("centered")["floor_mean"].first()
    assert floors[True] < floors[False]  # centring removes the sample-mean noise


@pytest.mark.parametrize("true", ["negative_entropy", "2-norm"])
@pytest.mark.parametrize("centered", [False, True])
def test_mean_delta_cdf_is_smallest_at_the_true_potential(fig3_table, true, centered):
    panel = fig3_table[
        (fig3_table["true_potential"] == true) & (fig3_table["centered"] == centered)
    ]
    means = panel.groupby("candidate")["delta_cdf"].mean().dropna()
    assert means.idxmin() == true
    # the truth's dual change is exactly Gaussian: its Delta-CDF sits at the floor
    floor, spread = panel["floor_mean"].iloc[0], panel["floor_std"].iloc[0]
    assert abs(means[true] - floor) < 2 * spread


def test_negative_entropy_is_excluded_when_signs_change(fig3_table):
    ne = fig3_table[fig3_table["candidate"] == "negative_entropy"]
    assert ne.loc[ne["true_potential"] == "2-norm", "excluded"].all()
    assert not ne.loc[ne["true_potential"] == "negative_entropy", "excluded"].any()
    assert ne.loc[ne["excluded"], "delta_cdf"].isna().all()


def test_truth_beats_candidate_is_a_fraction_of_seeds(fig3_table):
    beats = wp.truth_beats_candidate(fig3_table)
    assert (beats["n_seeds"] == 6).all()
    assert beats["fraction"].between(0, 1).all()
    assert not (beats["candidate"] == beats["true_potential"]).any()
    excluded = beats[
        (beats["true_potential"] == "2-norm") & (beats["family"] == "negative_entropy")
    ]
    assert (excluded["fraction"] == 1.0).all()


def test_summaries_of_fig3_agree_with_the_table(fig3_table):
    summary = wp.summarise_fig3(fig3_table)
    assert len(summary) == 2 * 2  # truths x statistics
    shares = wp.best_candidate_share(fig3_table)
    total = shares.groupby(["init", "true_potential", "centered"])["share"].sum()
    assert np.allclose(total, 1.0)
    assert (summary["mean_curve_best"] == summary["true_potential"]).all()
    assert summary["share_truth_best"].between(0, 1).all()
    beats = wp.truth_beats_candidate(fig3_table)
    ne = beats[beats["true_potential"] == "negative_entropy"].set_index("candidate")
    assert ne.loc["1.5-norm", "distance"].iloc[0] == pytest.approx(0.5)
    assert ne.loc["hypentropy(beta=0.1)", "distance"].isna().all()


def test_neighbour_check_uses_new_draws_and_only_the_nearest_candidates():
    cfg = wp.config(
        "ci",
        w0_laws=("lognormal",),
        true_potentials=("negative_entropy", "3-norm"),
        n_seeds=4,
        neighbour_seeds=40,
    )
    table = wp.run_neighbours(cfg)
    assert tuple(table.columns) == wp.FIG3_COLUMNS
    assert set(table["seed"]) == set(range(4, 44))  # after Fig 3's seeds 0..3
    assert set(table["candidate"]) == {
        "negative_entropy",
        "1.1-norm",
        "2.9-norm",
        "3-norm",
        "3.1-norm",
    }
    advantage = wp.neighbour_advantage(table)
    assert tuple(advantage.columns) == wp.NEIGHBOUR_COLUMNS
    # NE against the 1.1-norm; the 3-norm against 2.9 and 3.1; each with both statistics
    assert len(advantage) == 2 * 3
    assert (advantage["n_seeds"] == 40).all()
    row = advantage[(advantage["neighbour"] == "3.1-norm") & ~advantage["centered"]].iloc[0]
    keys = ["seed", "centered", "true_potential"]
    panel = table[(table["true_potential"] == "3-norm") & ~table["centered"]].set_index(keys)
    gap = (
        panel.loc[panel["candidate"] == "3.1-norm", "delta_cdf"]
        - panel.loc[panel["candidate"] == "3-norm", "delta_cdf"]
    )
    assert row["mean_gap"] == pytest.approx(gap.mean())
    assert row["se_gap"] == pytest.approx(gap.std(ddof=1) / np.sqrt(40))
    assert row["share_truth_lower"] == pytest.approx((gap > 0).mean())
    if row["mean_gap"] > 0:
        assert row["seeds_needed"] == math.ceil(4 * gap.var(ddof=1) / gap.mean() ** 2)


def test_neighbour_gap_that_favours_the_neighbour_needs_infinite_seeds():
    scores = {  # seed -> (truth, 1.9-norm, 2.1-norm)
        0: (0.05, 0.04, 0.051),
        1: (0.05, 0.03, 0.052),
        2: (0.05, 0.045, 0.057),
    }
    rows = [
        {
            "init": "normal",
            "true_potential": "2-norm",
            "centered": False,
            "seed": seed,
            "candidate": name,
            "delta_cdf": value,
        }
        for seed, values in scores.items()
        for name, value in zip(("2-norm", "1.9-norm", "2.1-norm"), values, strict=True)
    ]
    advantage = wp.neighbour_advantage(pd.DataFrame(rows)).set_index("neighbour")
    assert advantage.loc["1.9-norm", "mean_gap"] == pytest.approx(-0.035 / 3)
    assert advantage.loc["1.9-norm", "seeds_needed"] == math.inf
    assert advantage.loc["1.9-norm", "share_truth_lower"] == 0.0
    gaps = np.array([0.001, 0.002, 0.007])
    assert advantage.loc["2.1-norm", "mean_gap"] == pytest.approx(gaps.mean())
    expected = math.ceil(4 * gaps.var(ddof=1) / gaps.mean() ** 2)
    assert expected == 4
    assert advantage.loc["2.1-norm", "seeds_needed"] == expected


def test_power_table_has_the_documented_columns(power_table):
    assert tuple(power_table.columns) == wp.POWER_COLUMNS
    assert len(power_table) == 2 * 1 * 2
    assert (power_table["repetitions"] == 10).all()
    assert np.allclose(power_table["relative_change"], 0.1, atol=0.01)
    assert set(power_table["exponent_gap"]) == {0.5, 2.0}


def test_power_grows_with_the_number_of_synapses(power_table):
    rates = power_table.set_index(["alternative", "n"])
    assert rates.loc[("3-norm", 1000), "p_correct"] >= 0.9
    assert rates.loc[("3-norm", 1000), "ruled_out"] >= 0.9
    for column in ("p_correct", "ruled_out"):
        assert rates.loc[("1.5-norm", 1000), column] >= rates.loc[("1.5-norm", 100), column]
    assert (power_table["ruled_out"] <= power_table["p_correct"]).all()


def test_same_config_gives_byte_identical_tables(power_table, tmp_path):
    cfg = wp.config(
        "ci",
        pairs=(("negative_entropy", "3-norm"), ("negative_entropy", "1.5-norm")),
        changes=(0.1,),
        n_synapses=(100, 1000),
        repetitions=10,
        n_boot=20,
    )
    first = write_table(power_table, tmp_path / "a", "power").read_bytes()
    second = write_table(wp.run_recovery_power(cfg), tmp_path / "b", "power").read_bytes()
    assert first == second


def test_smallest_n_needs_the_rate_to_stay_above_the_level():
    table = pd.DataFrame(
        {
            "pair": ["a"] * 4 + ["b"] * 4,
            "change_scale": [0.1] * 8,
            "n": [100, 300, 1000, 3000] * 2,
            "p_correct": [0.95, 0.8, 0.92, 1.0, 0.2, 0.3, 0.5, 0.7],
            "ruled_out": [0.0] * 8,
        }
    )
    out = wp.smallest_n(table, "p_correct", 0.9)
    assert out.loc["a", 0.1] == 1000
    assert math.isnan(out.loc["b", 0.1])
    with pytest.raises(ValueError, match="criterion must be"):
        wp.smallest_n(table, "best")


def test_kurtosis_of_the_scale_mixture():
    assert wp.kurtosis_wrong_potential("2-norm", "2-norm", 1.0) == 3.0
    sigma_log = math.sqrt(math.log(2.0))  # log-normal |w0| with mean = std
    assert wp.kurtosis_wrong_potential("negative_entropy", "1.5-norm", sigma_log) == pytest.approx(
        6
    )
    assert wp.kurtosis_wrong_potential("2-norm", "2.5-norm", sigma_log) == pytest.approx(6)


def test_sample_w0_matches_the_paper():
    lognormal = np.abs(wp.sample_w0("lognormal", 200_000, seed=1))
    assert lognormal.mean() == pytest.approx(0.1, rel=0.02)
    assert lognormal.std() == pytest.approx(0.1, rel=0.05)
    assert wp.sample_w0("normal", 200_000, seed=1).std() == pytest.approx(0.1, rel=0.01)
    assert np.array_equal(wp.sample_w0("normal", 10, 3), wp.sample_w0("normal", 10, 3))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_weights": 50}, r"n_weights must be >= 100"),
        ({"w0_laws": ("uniform",)}, r"unknown w0 law 'uniform'"),
        ({"true_potentials": ("4-nrm",)}, r"unknown potential '4-nrm'"),
        ({"pairs": (("2-norm", "2.0-norm"),)}, r"two different potentials"),
        ({"n_synapses": (50, 100)}, r"each n_synapses must be >= 100"),
        ({"changes": (0.0,)}, r"changes must be finite and > 0"),
        ({"n_boot": 0}, r"n_boot must be >= 1"),
        ({"neighbour_seeds": 1}, r"neighbour_seeds must be >= 2"),
        ({"confidence": 1.5}, r"confidence must be in \(0, 1\)"),
        ({"p_grid": (0.5, 2.0)}, r"every p in p_grid must be > 1"),
        ({"colour": "red"}, r"unknown setting\(s\) colour"),
    ],
)
def test_bad_config_raises_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        wp.config("ci", **overrides)


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match=r"unknown scale 'huge'; choose one of \['ci', 'paper'\]"):
        wp.config("huge")


def test_plots_draw_from_the_tables(fig3_table, power_table):
    from mirrorlib.plotting import wrong_potential as plotting

    axes = plotting.plot_fig3_wrong_potential(fig3_table)
    assert axes.shape == (1, 2)
    assert axes[0, 0].get_yscale() == "log"
    beats = plotting.plot_truth_beats_candidate(wp.truth_beats_candidate(fig3_table))
    assert len(beats) == 2
    power = plotting.plot_recovery_power(power_table)
    assert power.shape == (2, 1)
    assert all(ax.get_title() == "" for ax in power[1])
    matplotlib.pyplot.close("all")


def test_neighbour_summary_reads_the_advantage_table():
    advantage = pd.DataFrame(
        {
            "true_potential": ["2-norm", "3-norm", "3-norm"],
            "neighbour": ["2.1-norm", "2.9-norm", "2.9-norm"],
            "mean_gap": [0.002, -0.001, 0.004],
            "se_gap": [0.0005, 0.001, 0.001],
            "z": [4.0, -1.0, 4.0],
            "verdict": ["lower than", "higher than", "lower than"],
            "share_truth_lower": [0.6, 0.45, 0.7],
            "seeds_needed": [100.0, math.inf, 40.0],
            "n_seeds": [400, 400, 400],
        }
    )
    out = wp.neighbour_summary(advantage)
    assert (out["rows"], out["positive"], out["significant"], out["unresolved"]) == (3, 2, 2, 1)
    assert (out["positive_count"], out["significant_count"]) == ("2 of the 3", "2 of the 3")
    assert out["above_zero"] == (
        "lies above zero; it does not for the 3-norm against the 2.9-norm in 1 of its 2 "
        "comparisons (mean gap -1.00 standard errors)"
    )
    assert out["weakest"] == "the 3-norm against the 2.9-norm"
    assert (out["weakest_z_min"], out["weakest_z_max"]) == (-1.0, 4.0)
    assert (out["gap_min"], out["gap_max"]) == (0.001, 0.004)
    assert (out["need_min"], out["need_max"], out["share_max"]) == (40.0, 100.0, 0.7)
    assert out["sd_ratio"] == pytest.approx(0.001 * 20 / 0.004)  # sd = se * sqrt(n)
    assert out["everywhere"] is False
    resolved = wp.neighbour_summary(advantage.drop(index=1))
    assert resolved["above_zero"] == "lies above zero" and resolved["everywhere"] is True
    assert (resolved["positive_count"], resolved["significant_count"]) == ("all 2", "all 2")
    two_open = advantage.assign(verdict="not distinguishable from")
    assert wp.neighbour_summary(two_open)["above_zero"] == (
        "lies above zero; it does not for the 2-norm against the 2.1-norm in every comparison "
        "(mean gap 4.00 standard errors) and the 3-norm against the 2.9-norm in every comparison "
        "(mean gap -1.00 to 4.00 standard errors)"
    )


def test_neighbour_verdict_is_the_paired_t_interval_not_two_standard_errors():
    """Three seeds whose gaps stand 3 standard errors above zero: beyond z = 2, inside the 95 %
    paired t interval (4.30 standard errors with 2 degrees of freedom)."""
    gaps = np.array([0.001, 0.002, 0.003])
    z = gaps.mean() / (gaps.std(ddof=1) / math.sqrt(3))
    assert 2 < z < 4.3
    rows = [
        {
            "init": "normal",
            "true_potential": "3-norm",
            "centered": True,
            "seed": seed,
            "candidate": name,
            "delta_cdf": value,
        }
        for seed, gap in enumerate(gaps)
        for name, value in (("3-norm", 0.05), ("2.9-norm", 0.05 + gap), ("3.1-norm", 0.06 + gap))
    ]
    advantage = wp.neighbour_advantage(pd.DataFrame(rows)).set_index("neighbour")
    assert advantage.loc["2.9-norm", "z"] == pytest.approx(z)
    assert advantage.loc["2.9-norm", "verdict"] == "not distinguishable from"
    out = wp.neighbour_summary(advantage.reset_index())
    # the 3.1-norm: gaps 0.011, 0.012, 0.013 (a gap equal on every seed would have no spread
    # to measure: no verdict, mirrorlib.stats.paired_verdict)
    assert (out["significant"], out["unresolved"]) == (1, 1)
    assert out["everywhere"] is False


def test_power_summary_quotes_the_pairs_and_the_gaps():
    pairs = {**{v: 0.5 for v in ("negative_entropy vs 1.5-norm", "2-norm vs 2.5-norm")},
             "negative_entropy vs 1.2-norm": 0.2, "negative_entropy vs 2-norm": 1.0,
             "2-norm vs 3-norm": 1.0}  # fmt: skip
    rows = []
    for pair, gap in pairs.items():
        for change in (0.05, 0.1, 0.3):
            for n in (100, 1000):
                rate = 1.0 if gap >= 1 else (0.95 if n == 1000 and gap == 0.5 else 0.2)
                rows.append(
                    {
                        "pair": pair,
                        "exponent_gap": gap,
                        "change_scale": change,
                        "n": n,
                        "ruled_out": rate + (0.01 if change == 0.3 and rate < 1 else 0),
                    }
                )
    needed, out = wp.power_summary(pd.DataFrame(rows), repetitions=100)
    assert needed.loc["2-norm vs 3-norm", 0.1] == 100
    assert (out["n90_ne15"], out["n90_n225"], out["n90_far"]) == (1000, 1000, 100)
    assert math.isnan(out["n90_ne12"])
    assert (out["n_min"], out["n_max"], out["rate_se"]) == (100, 1000, 0.05)
    assert out["same_gap"] == 0 and out["small_vs_mid"] == 0
    assert out["large_gain"] == pytest.approx(0.01)
    assert (out["change_lo"], out["change_mid"], out["change_hi"]) == (0.05, 0.1, 0.3)
    table = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="negative_entropy vs 1.2-norm"):
        wp.power_summary(table[table["pair"] != "negative_entropy vs 1.2-norm"], 100)
    with pytest.raises(ValueError, match="3 change scales"):
        wp.power_summary(table[table["change_scale"] != 0.3], 100)


def test_neighbour_rows_keep_what_the_advantage_reads():
    table = wp.run_neighbours(wp.config("ci", neighbour_seeds=4))
    rows = wp.neighbour_rows(table)
    assert len(rows) < len(table)
    assert list(rows.columns) == ["init", "true_potential", "centered", "seed", "candidate",
                                  "delta_cdf"]  # fmt: skip
    pd.testing.assert_frame_equal(wp.neighbour_advantage(rows), wp.neighbour_advantage(table))
