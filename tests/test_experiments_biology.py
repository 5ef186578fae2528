"""The introduction's statistics (signs per presynaptic unit, skewness of log|w|, the spine-volume
mixture) on weights with known structure, and the small trained networks."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from mirrorlib.experiments import biology as bio
from mirrorlib.init import signed_lognormal_
from mirrorlib.recovery import InputError
from mirrorlib.results import read_table, write_table

matplotlib.use("Agg")


def dale_weights(out: int = 50, n_in: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return signed_lognormal_(torch.empty(out, n_in, dtype=torch.float64), dale=True, generator=g)


# --- sign structure ---------------------------------------------------------------------------


def test_sign_structure_counts_a_hand_made_matrix():
    # columns are presynaptic units: +,+ | -,0 | +,- | 0,0
    w = np.array([[1.0, -2.0, 3.0, 0.0], [0.5, 0.0, -1.0, 0.0]])
    table = bio.sign_structure(w)
    assert table["pre"].tolist() == [0, 1, 2, 3]
    assert table["n_out"].tolist() == [2, 2, 2, 2]
    assert table["n_positive"].tolist() == [2, 0, 1, 0]
    assert table["n_negative"].tolist() == [0, 1, 1, 0]
    np.testing.assert_array_equal(table["fraction_positive"], [1.0, 0.0, 0.5, np.nan])
    assert table["same_sign"].tolist() == [True, True, False, True]


def test_dale_weights_are_sign_consistent_and_one_flip_breaks_one_unit():
    w = dale_weights()
    table = bio.sign_structure(w)
    assert table["same_sign"].all()
    assert set(table["fraction_positive"]) <= {0.0, 1.0}
    w[7, 3] = -w[7, 3]
    broken = bio.sign_structure(w)
    assert broken.loc[~broken["same_sign"], "pre"].tolist() == [3]
    stats_ = bio.weight_statistics(w)
    assert stats_["same_sign_fraction"] == pytest.approx(39 / 40)
    assert stats_["majority_sign_share"] == pytest.approx((39 + 49 / 50) / 40)


def test_sign_structure_uses_dimension_1_of_conv_weights():
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]).reshape(1, 5, 1, 1)
    w = signs * torch.rand(6, 5, 3, 3, generator=torch.Generator().manual_seed(2)).add(0.1)
    table = bio.sign_structure(w)
    assert len(table) == 5 and table["n_out"].eq(6 * 9).all() and table["same_sign"].all()
    assert bio.sign_structure(w.transpose(0, 1))["same_sign"].mean() < 1


def test_independent_random_signs_are_almost_never_sign_consistent():
    w = torch.randn(100, 300, generator=torch.Generator().manual_seed(0))
    s = bio.weight_statistics(w)
    assert s["same_sign_fraction"] == 0.0
    # majority share of 100 fair signs: about 0.5 + E|B - 50| / 100 ~ 0.54
    assert 0.52 < s["majority_sign_share"] < 0.57
    assert s["fraction_negative"] == pytest.approx(0.5, abs=0.01)


# --- skewness and log-magnitudes --------------------------------------------------------------


def test_skewness_matches_scipy():
    x = np.random.default_rng(0).gamma(2.0, size=500)
    assert bio.skewness(x) == pytest.approx(stats.skew(x), rel=1e-12)
    assert math.isnan(bio.skewness(np.ones(5)))


def test_gaussian_log_abs_skewness_is_exact():
    zeta3 = 1.2020569031595942
    assert bio.gaussian_log_abs_skewness() == pytest.approx(-14 * zeta3 / (np.pi**2 / 2) ** 1.5)
    z = np.random.default_rng(1).standard_normal(2_000_000)
    assert stats.skew(np.log(np.abs(z))) == pytest.approx(bio.gaussian_log_abs_skewness(), abs=0.01)


def test_statistics_tell_gaussian_from_signed_lognormal_weights():
    g = torch.Generator().manual_seed(3)
    gaussian = torch.randn(100, 200, generator=g, dtype=torch.float64)
    lognormal = signed_lognormal_(torch.empty(100, 200, dtype=torch.float64), generator=g)
    sg, sl = bio.weight_statistics(gaussian), bio.weight_statistics(lognormal)
    assert abs(sg["skew_w"]) < 0.05
    assert sg["skew_log_abs"] == pytest.approx(bio.gaussian_log_abs_skewness(), abs=0.05)
    assert abs(sl["skew_log_abs"]) < 0.05
    # Gaussian w: w near the floor (~0.0085 at n = 2e4), log|w| far from it; log-normal |w|:
    # the other way round
    assert sg["delta_cdf_w"] < 0.03 and sg["delta_cdf_log_abs"] > 0.15
    assert sl["delta_cdf_log_abs"] < 0.03 and sl["delta_cdf_w"] > 0.15


def test_sign_flips_and_relative_change_against_w0():
    w0 = np.array([[1.0, -1.0], [2.0, -2.0]])
    w = np.array([[1.0, 1.0], [2.0, -2.0]])  # one sign of four flipped
    s = bio.weight_statistics(w, w0)
    assert s["sign_flip_fraction"] == 0.25
    assert s["relative_change"] == pytest.approx(2 / math.sqrt(10))
    assert math.isnan(bio.weight_statistics(w)["sign_flip_fraction"])


def test_zero_weights_are_left_out_of_the_log_statistics():
    w = np.random.default_rng(0).standard_normal((20, 30))
    w[0, :5] = 0.0
    s = bio.weight_statistics(w)
    assert s["n_zero"] == 5 and np.isfinite(s["skew_log_abs"])


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (np.ones(5), "shape"),
        (np.array([[1.0, np.nan]]), "non-finite"),
        (np.zeros((3, 3)), "not all equal"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_bad_weights_raise_input_errors(w, message):
    with pytest.raises(InputError, match=message):
        bio.weight_statistics(w)


def test_w0_of_another_shape_is_refused():
    with pytest.raises(InputError, match="w0 has shape"):
        bio.weight_statistics(np.eye(3) + 0.1, np.eye(2))


# --- the spine-volume mixture -----------------------------------------------------------------


def test_one_component_mixture_is_gaussian():
    one = pd.DataFrame([{"weight": 1.0, "mean_log10": -1.0, "sd_log10": 0.3}])
    s = bio.mixture_statistics(one)
    assert s["mean"] == -1.0 and s["sd"] == pytest.approx(0.3)
    assert s["skew"] == pytest.approx(0.0, abs=1e-12)
    assert s["delta_cdf"] == pytest.approx(0.0, abs=1e-8)


def test_mixture_statistics_match_a_large_sample():
    table = bio.reference_table()
    assert table["weight"].sum() == pytest.approx(1.0)
    exact = bio.mixture_statistics(table)
    rng = np.random.default_rng(0)
    n = 1_000_000
    k = rng.choice(len(table), size=n, p=table["weight"].to_numpy())
    x = rng.normal(table["mean_log10"].to_numpy()[k], table["sd_log10"].to_numpy()[k])
    assert exact["mean"] == pytest.approx(x.mean(), abs=2e-3)
    assert exact["sd"] == pytest.approx(x.std(), rel=2e-3)
    assert exact["skew"] == pytest.approx(stats.skew(x), abs=0.01)
    from mirrorlib.stats import delta_cdf

    assert exact["delta_cdf"] == pytest.approx(delta_cdf(x, centered=True), abs=0.005)
    assert exact["skew"] > 0  # the large-spine component gives a right shoulder


@pytest.mark.parametrize(
    "density", [bio.gaussian_log_abs_density, bio.mixture_density], ids=["gaussian_w", "spines"]
)
def test_reference_densities_are_standardised(density):
    t = np.linspace(-30, 12, 200_001)
    f = density(t)
    dt = t[1] - t[0]
    moments = [float(np.sum(f * t**k) * dt) for k in range(4)]
    assert moments[0] == pytest.approx(1.0, abs=1e-6)
    assert moments[1] == pytest.approx(0.0, abs=1e-6)
    assert moments[2] == pytest.approx(1.0, abs=1e-5)
    expected = (
        bio.gaussian_log_abs_skewness()
        if density is bio.gaussian_log_abs_density
        else bio.mixture_statistics()["skew"]
    )
    assert moments[3] == pytest.approx(expected, abs=1e-4)


def test_a_bad_mixture_is_refused():
    bad = pd.DataFrame([{"weight": 0.5, "mean_log10": -1.0, "sd_log10": 0.3}])
    with pytest.raises(InputError, match="sum to 1"):
        bio.mixture_statistics(bad)


# --- configuration and the trained networks ---------------------------------------------------


def test_config_presets_and_errors():
    assert bio.config("ci").seeds == (0, 1, 2)
    paper = bio.config("paper")
    assert paper.n_seeds > bio.config("ci").n_seeds and len(paper.hidden_sizes) > 1
    assert bio.config("ci", seed=5, n_seeds=2).seeds == (5, 6)
    with pytest.raises(InputError, match="unknown scale"):
        bio.config("huge")
    with pytest.raises(InputError, match="unknown setting"):
        bio.config("ci", learning_rate=1.0)
    with pytest.raises(InputError, match="unknown model"):
        bio.config("ci", models=("adam",))
    with pytest.raises(InputError, match="p_excitatory"):
        bio.config("ci", p_excitatory=1.5)


@pytest.fixture(scope="module")
def small_run():
    torch.set_num_threads(1)
    cfg = bio.config("ci", hidden_sizes=(32,), n_seeds=2, epochs=3)
    return cfg, bio.run(cfg)


def test_run_tables_have_the_documented_shape(small_run):
    cfg, result = small_run
    assert tuple(result.stats.columns) == bio.STATS_COLUMNS
    assert len(result.stats) == len(bio.MODELS) * 2 * 2 * 2  # models x seeds x stages x layers
    assert tuple(result.weights.columns) == bio.WEIGHT_COLUMNS
    per_model = (64 * 32 + 32 * 10) * len(bio.MODELS)
    assert len(result.weights) == per_model
    trained = result.stats[result.stats["stage"] == "trained"]
    assert trained["train_accuracy"].min() > 0.5  # every network learns something in 3 epochs
    assert trained["relative_change"].gt(0).all()


def test_eg_keeps_every_sign_and_sgd_does_not(small_run):
    _, result = small_run
    s = result.stats.set_index(["model", "stage", "layer", "seed"]).sort_index()
    eg = s.loc[("eg_lognormal_dale", "trained")]
    assert eg["sign_flip_fraction"].eq(0).all() and eg["same_sign_fraction"].eq(1).all()
    gd = s.loc[("gd_lognormal_dale", "trained")]
    assert gd["sign_flip_fraction"].gt(0).all()
    assert s.loc[("gd_lognormal_dale", "init"), "same_sign_fraction"].eq(1).all()
    assert s.loc[("gd_gaussian", "trained"), "same_sign_fraction"].lt(0.1).all()


def test_both_lognormal_networks_start_from_the_same_weights(small_run):
    cfg, result = small_run
    init = result.stats[result.stats["stage"] == "init"].set_index(["model", "seed", "layer"])
    cols = ["mean", "std", "skew_w", "train_accuracy"]
    pd.testing.assert_frame_equal(
        init.loc["gd_lognormal_dale", cols], init.loc["eg_lognormal_dale", cols]
    )


def test_run_is_deterministic_and_round_trips(small_run, tmp_path):
    cfg, result = small_run
    again = bio.run(bio.config("ci", hidden_sizes=(32,), n_seeds=1, epochs=3))
    first = result.stats[result.stats["seed"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.stats, first)
    pd.testing.assert_frame_equal(again.weights, result.weights)
    write_table(result.stats, tmp_path, "stats")
    back = read_table(tmp_path, "stats")
    pd.testing.assert_frame_equal(back, result.stats, check_dtype=False)


def test_the_figure_draws_from_the_tables(small_run):
    import matplotlib.pyplot as plt

    from mirrorlib.plotting.biology import MODEL_LABELS, plot_weights_vs_synapses

    _, result = small_run
    axes = plot_weights_vs_synapses(result.weights, bio.reference_table())
    assert len(axes) == 3
    labels = axes[1].get_legend_handles_labels()[1]
    assert set(MODEL_LABELS.values()) <= set(labels) and "spine volumes (fit)" in labels
    plt.close(axes[0].figure)


def test_summarise_averages_over_seeds(small_run):
    _, result = small_run
    summary = bio.summarise(result.stats)
    assert summary["model"].tolist() == [m for m in bio.MODELS for _ in bio.LAYERS]
    assert summary["n_seeds"].eq(2).all()
    trained = result.stats[result.stats["stage"] == "trained"]
    expected = trained.loc[
        (trained["model"] == "gd_gaussian") & (trained["layer"] == "readout"), "skew_log_abs"
    ].mean()
    row = summary[(summary["model"] == "gd_gaussian") & (summary["layer"] == "readout")]
    assert float(row["skew_log_abs"].iloc[0]) == pytest.approx(expected)
    with pytest.raises(InputError, match="missing"):
        bio.summarise(result.stats.drop(columns="skew_w"))
    with pytest.raises(InputError, match="stage"):
        bio.summarise(result.stats, stage="halfway")
