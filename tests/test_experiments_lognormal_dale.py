"""Log-normal weights and Dale's law: the chapter's experiments at tiny settings."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.experiments import linear_regression as linreg
from mirrorlib.experiments import lognormal_dale as ld
from mirrorlib.experiments.lognormal_dale import regression as ld_reg
from mirrorlib.plotting import lognormal_dale as plots
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf_floor
from mirrorlib.stored import read_stored

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def regression():
    cfg = ld.config(
        "ci",
        dim=1000,
        alphas=(0.5,),
        label_scales=(1.0, 4.0),
        example_scale=4.0,
        n_seeds_regression=2,
        regression_lrs=(0.1, 0.3, 1.0, 3.0, 10.0),
    )
    return ld.run_regression(cfg)


@pytest.fixture(scope="module")
def regression_two_alphas():
    # the settings of `regression` with a second alpha, so that small and large alpha differ
    cfg = ld.config(
        "ci",
        dim=1000,
        alphas=(0.5, 0.75),
        label_scales=(1.0, 4.0),
        example_scale=4.0,
        n_seeds_regression=2,
        regression_lrs=(0.1, 0.3, 1.0, 3.0, 10.0),
    )
    return cfg, ld.run_regression(cfg).table


@pytest.fixture(scope="module")
def dale_cfg():
    return ld.config(
        "ci",
        dataset="digits",
        hidden=(32,),
        epochs=3,
        batch_size=50,
        n_validation=300,
        n_eval_train=500,
        eg_lrs=(0.3, 1.0),
        gd_lrs=(0.03, 0.1),
        search_epochs=1,
        n_seeds=1,
    )


@pytest.fixture(scope="module")
def digits(dale_cfg):
    return ld.load_data(dale_cfg)


@pytest.fixture(scope="module")
def dale_run(dale_cfg, digits):
    return ld.run_dale(dale_cfg, {"eg": 1.0, "gd": 0.1, "sign_constrained_gd": 0.1}, digits)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alphas": (1.0,)}, "alphas must lie in"),
        ({"inits": ("uniform",)}, "unknown init"),
        ({"methods": ("adam",)}, "unknown method"),
        ({"eg_lrs": (1.0, 0.1)}, "must be increasing"),
        ({"example_scale": 3.0}, "example_scale"),
        ({"potentials": ("0.5-norm",)}, "p > 1"),
        ({"dim": 10}, "dim must be an integer >= 100"),
    ],
)
def test_bad_settings_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        ld.config("ci", **overrides)


def test_unknown_scale_and_setting():
    with pytest.raises(ValueError, match="unknown scale"):
        ld.config("huge")
    with pytest.raises(ValueError, match="unknown setting"):
        ld.config("ci", learning_rate=1.0)


def test_regression_table(regression):
    table = regression.table
    assert list(table.columns) == list(ld.REGRESSION_COLUMNS)
    assert len(table) == 2 * 2 * 2 * 2  # inits x potentials x scales x seeds
    assert table["converged"].all()
    eg, gd = table[table["potential"] == "negative_entropy"], table[table["potential"] == "2-norm"]
    assert (eg["sign_flips"] == 0).all()  # EG never changes a sign
    assert (gd["sign_flips"] > 0).all()
    # a larger label scale moves the weights further
    rel = table.groupby(["init", "potential", "label_scale"])["relative_change"].mean()
    assert (rel.xs(4.0, level="label_scale") > rel.xs(1.0, level="label_scale")).all()


def test_eg_keeps_a_lognormal_start_lognormal_and_gd_does_not(regression):
    table = regression.table
    start = table[(table["init"] == "lognormal") & (table["label_scale"] == 4.0)]
    floor = delta_cdf_floor(1000, centered=True)
    eg = start[start["potential"] == "negative_entropy"]
    gd = start[start["potential"] == "2-norm"]
    assert (eg["relative_change"] > 0.5).all()  # a large change, not a nudge
    assert (eg["delta_cdf_log_after"] < 2 * floor).all()
    assert (gd["delta_cdf_log_after"] > 4 * floor).all()
    # a Gaussian start is far from log-normal before, and GD keeps it so
    normal = table[(table["init"] == "normal") & (table["potential"] == "2-norm")]
    assert (normal["delta_cdf_log_before"] > 4 * floor).all()
    assert (normal["delta_cdf_log_after"] > 4 * floor).all()


def test_regression_example_weights(regression):
    example = regression.example
    assert set(example) == {
        (init, stage, pot)
        for init in ("lognormal", "normal")
        for stage, pot in (("before", "-"), ("after", "negative_entropy"), ("after", "2-norm"))
    }
    before, after = (
        example["lognormal", "before", "-"],
        example["lognormal", "after", "negative_entropy"],
    )
    assert np.array_equal(np.sign(before), np.sign(after))
    assert not np.allclose(before, after)


def test_log_weight_delta_cdf_ignores_zeros_and_detects_lognormal():
    rng = np.random.default_rng(0)
    w = np.exp(rng.normal(-2, 0.8, 4000)) * rng.choice([-1, 1], 4000)
    d, n = ld.log_weight_delta_cdf(np.concatenate([w, np.zeros(10)]))
    assert n == 4000
    assert d < 2 * delta_cdf_floor(4000, centered=True)
    d_normal, _ = ld.log_weight_delta_cdf(rng.normal(0, 0.1, 4000))
    assert d_normal > 5 * d
    assert math.isnan(ld.log_weight_delta_cdf(np.zeros(5))[0])


def test_distribution_tables():
    rng = np.random.default_rng(1)
    samples = {
        ("a",): np.exp(rng.normal(0, 1, 5000)),
        ("b",): rng.normal(0, 1, 5000),
    }
    hist, qq = ld.distribution_tables(samples, ("name",), bins=30, n_quantiles=99)
    assert len(hist) == 2 * 30 and len(qq) == 2 * 99
    widths = hist["right"] - hist["left"]
    mass = (hist["density"] * widths).groupby(hist["name"]).sum()
    assert mass.between(0.99, 1.0).all()  # the range keeps all but the pooled lowest 0.1 %
    a, b = qq[qq["name"] == "a"], qq[qq["name"] == "b"]
    assert np.abs(a["sample"] - a["normal"]).max() < 0.15  # log-normal: on the diagonal
    assert np.abs(b["sample"] - b["normal"]).max() > 1.0  # log of a Gaussian: far off
    with pytest.raises(InputError, match="does not match"):
        ld.distribution_tables({("a", "b"): np.ones(3)}, ("name",))
    by, _ = ld.distribution_tables(samples, ("name",), bins=30, edges_by="name")
    assert by.groupby("name")["left"].min().nunique() == 2  # edges per set
    with pytest.raises(InputError, match="is not one of the keys"):
        ld.distribution_tables(samples, ("name",), edges_by="layer")
    with pytest.raises(InputError, match="fewer than 2"):
        ld.distribution_tables({("a",): np.zeros(3)}, ("name",))


def test_dale_init_shares_signs_per_column_and_balances_rows():
    weight = torch.empty(400, 500)
    signs = ld.dale_init_(
        weight, p_excitatory=0.8, gain=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(torch.sign(weight), signs.expand_as(weight))
    n_e = int((signs > 0).sum())
    assert 0.74 < n_e / 500 < 0.86
    assert float(weight.square().sum(1).mean()) == pytest.approx(1.0, rel=0.1)
    row_sums = weight.sum(1)
    assert abs(float(row_sums.mean())) < 3 * float(row_sums.std()) / 20  # balanced on average
    ratio = weight[:, signs < 0].abs().mean() / weight[:, signs > 0].abs().mean()
    assert float(ratio) == pytest.approx(n_e / (500 - n_e), rel=0.1)
    with pytest.raises(InputError, match="needs a"):
        ld.dale_init_(torch.empty(3))


@pytest.mark.parametrize("method", ld.DALE_METHODS)
def test_optimisers_and_signs(method):
    gen = torch.Generator().manual_seed(0)
    model = ld.DaleMLP(20, (16,), 3, generator=gen)
    x, y = torch.randn(64, 20, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    optimizers = ld.make_optimizers(
        model, method, lr=3.0 if method == "eg" else 1.0, bias_lr=0.1, momentum=0.9
    )
    for _ in range(20):
        for opt in optimizers:
            opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for opt in optimizers:
            opt.step()
    wrong = sum(
        ld.sign_statistics(w, model.signs(k))[pop]["violations"]
        for k, w in enumerate(model.weights())
        for pop in ("excitatory", "inhibitory")
    )
    if method == "gd":
        assert wrong > 0
    else:
        assert wrong == 0
    assert all(float(b.detach().abs().sum()) > 0 for b in model.biases())  # biases learn freely
    with pytest.raises(InputError, match="unknown method"):
        ld.make_optimizers(model, "adam", 0.1, 0.1, 0.9)


def test_run_dale_tables(dale_run, dale_cfg):
    acc, weights = dale_run.accuracy, dale_run.weights
    assert set(acc["method"]) == set(ld.DALE_METHODS)
    assert (acc.groupby("method")["epoch"].max() == dale_cfg.epochs).all()
    start = acc[acc["epoch"] == 0]
    assert start["test_acc"].nunique() == 1  # the same initial network for every method
    final = acc[acc["epoch"] == dale_cfg.epochs].set_index("method")
    assert (final["test_acc"] > 0.6).all()  # far above chance (0.1)
    last = weights[weights["epoch"] == dale_cfg.epochs]
    by_method = last.groupby("method")[["violations", "zeros"]].sum()
    assert by_method.loc["eg", "violations"] == 0 and by_method.loc["eg", "zeros"] == 0
    assert by_method.loc["sign_constrained_gd", "violations"] == 0
    assert by_method.loc["gd", "violations"] > 0
    assert (weights["violation_fraction"] == weights["violations"] / weights["n"]).all()
    first = weights[weights["epoch"] == 0]
    assert (first["violations"] == 0).all()
    assert (first["relative_change"] == 0).all()
    assert set(weights["population"]) == {"excitatory", "inhibitory"}


def test_dale_example_and_figures(dale_run):
    hist, qq = ld.distribution_tables(dale_run.example, ("stage", "layer", "population", "method"))
    assert set(hist["method"]) == {"-", *ld.DALE_METHODS}
    axes = plots.plot_dale_distributions(hist, qq)
    assert axes.shape == (2, 4)
    axes = plots.plot_dale_training(dale_run.accuracy, dale_run.weights)
    assert len(axes) == 4
    matplotlib.pyplot.close("all")


def test_regression_figures(regression):
    hist, qq = ld.distribution_tables(regression.example, ("init", "stage", "potential"))
    assert plots.plot_regression_distributions(hist, qq).shape == (2, 3)
    assert len(plots.plot_lognormality_vs_change(regression.table)) == 1
    matplotlib.pyplot.close("all")


def test_learning_rate_search_picks_the_best(dale_cfg, digits):
    search = ld.select_learning_rates(
        ld.config("ci", **{**dale_cfg.__dict__, "methods": ("eg", "sign_constrained_gd")}), digits
    )
    assert len(search) == 4
    chosen = search[search["chosen"]]
    assert list(chosen["method"]) == ["eg", "sign_constrained_gd"]
    best = search.groupby("method")["val_acc"].max()
    assert (chosen.set_index("method")["val_acc"] == best).all()


def test_same_config_gives_the_same_tables(dale_cfg, dale_run, digits):
    cfg = ld.config("ci", **{**dale_cfg.__dict__, "methods": ("eg",)})
    again = ld.run_dale(cfg, {"eg": 1.0}, digits)
    first = dale_run.accuracy[dale_run.accuracy["method"] == "eg"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.accuracy, first)


def test_a_diverging_seed_is_retrained_with_a_smaller_rate():
    cfg = ld.config("ci", dim=200, alphas=(0.5,), regression_lrs=(0.1, 1.0, 1e4))
    problems = [ld.regression_problem(cfg, 1, s) for s in range(2)]
    X = torch.stack([p.X[:14] for p in problems])
    y = torch.stack([p.y[:14] for p in problems])
    w0 = torch.stack([p.w0["lognormal"] for p in problems])
    choice = linreg.LrChoice(lr=1e4, steps=100, loss=0.0)
    w, loss, lrs = ld_reg._train_stable(cfg, X, y, w0, potential("2-norm"), choice)
    assert torch.isfinite(w).all() and torch.isfinite(loss).all()
    assert (lrs < 1e4).all()


def test_regression_summary_gives_the_chapters_medians(regression_two_alphas):
    cfg, table = regression_two_alphas
    # the chapter's cells before regression_summary, verbatim (ci cell, then the paper cell)
    cells = table.groupby(["alpha", "init", "potential", "label_scale"])
    med = cells[["relative_change", "delta_cdf_log_after", "corr_log_change"]].median()
    eg_ln = med.xs(("lognormal", "negative_entropy"), level=("init", "potential"))
    a_small, a_large = cfg.alphas[0], cfg.alphas[-1]
    c_max = max(cfg.label_scales)
    gd_ln = med.xs(("lognormal", "2-norm"), level=("init", "potential"))
    eg_n = med.xs(("normal", "negative_entropy"), level=("init", "potential"))
    dual = cells["delta_cdf_dual"].median().xs(("lognormal", "negative_entropy"),
                                                level=("init", "potential"))  # fmt: skip
    old = {
        "eg_small_max_rel": float(eg_ln.loc[a_small, "relative_change"].max()),
        "eg_small_max_dcdf": float(eg_ln.loc[a_small, "delta_cdf_log_after"].max()),
        "eg_large_min_dcdf": float(eg_ln.loc[a_large, "delta_cdf_log_after"].min()),
        "eg_large_max_dcdf": float(eg_ln.loc[a_large, "delta_cdf_log_after"].max()),
        "eg_small_corr": float(eg_ln.loc[a_small, "corr_log_change"].abs().max()),
        "eg_large_corr": float(eg_ln.loc[a_large, "corr_log_change"].abs().max()),
        "gd_min_dcdf": float(gd_ln["delta_cdf_log_after"].min()),
        "gd_min_rel": float(gd_ln.loc[a_small, "relative_change"].min()),
        "egn_first": float(eg_n.loc[(a_small, min(cfg.label_scales)), "delta_cdf_log_after"]),
        "egn_last": float(eg_n.loc[(a_small, c_max), "delta_cdf_log_after"]),
        "eg_large_dual": float(dual.loc[a_large].max()),
        "alpha_small": a_small,
        "alpha_large": a_large,
    }
    paper_med = table.groupby(["alpha", "init", "potential", "label_scale"])[
        ["relative_change", "delta_cdf_log_after", "floor"]].median()  # fmt: skip
    eg_paper = paper_med.xs(("lognormal", "negative_entropy"), level=("init", "potential"))
    gd_paper = paper_med.xs(("lognormal", "2-norm"), level=("init", "potential"))
    old_paper = {
        "eg_small_max_rel": float(eg_paper.loc[a_small, "relative_change"].max()),
        "eg_small_max_dcdf": float(eg_paper.loc[a_small, "delta_cdf_log_after"].max()),
        "eg_large_max_dcdf": float(eg_paper.loc[a_large, "delta_cdf_log_after"].max()),
        "median_floor": float(eg_paper["floor"].iloc[0]),
        "gd_min_dcdf": float(gd_paper["delta_cdf_log_after"].min()),
    }
    summary = ld.regression_summary(table)
    assert set(summary) == set(old) | set(old_paper)
    assert {key: summary[key] for key in old} == old  # exactly, not approximately
    assert {key: summary[key] for key in old_paper} == old_paper
    assert all(type(v) is float for v in summary.values())
    assert summary["eg_large_max_dcdf"] != summary["eg_small_max_dcdf"]  # the alphas differ
    # the row order of the table does not matter
    assert ld.regression_summary(table.sample(frac=1.0, random_state=0)) == summary


def test_regression_summary_names_what_the_table_lacks(regression):
    table = regression.table
    with pytest.raises(InputError, match="no column.*corr_log_change"):
        ld.regression_summary(table.drop(columns=["corr_log_change"]))
    with pytest.raises(InputError, match="init='normal' and potential='negative_entropy'"):
        ld.regression_summary(table[table["init"] == "lognormal"])
    with pytest.raises(InputError, match="init='lognormal' and potential='2-norm'"):
        ld.regression_summary(table[table["potential"] == "negative_entropy"])


def _final_table(values: dict[str, list[float]], column: str) -> pd.DataFrame:
    """One row per (method, seed, epoch): ``values`` at epoch 2, the reverse order at epoch 1."""
    return pd.DataFrame(
        [
            {
                "method": method,
                "seed": seed,
                "epoch": epoch,
                column: value if epoch == 2 else -value,
            }
            for method, per_seed in values.items()
            for seed, value in enumerate(per_seed)
            for epoch in (1, 2)
        ]
    )


def test_paired_by_seed_gives_the_paired_t_verdict_at_the_last_epoch():
    # two seeds, EG lower by 0.004 +- 0.001: 4 standard errors, inside the 95 % t interval
    # (12.7 standard errors with one degree of freedom)
    two = _final_table({"eg": [0.885, 0.887], "gd": [0.890, 0.890]}, "test_acc")
    out = ld.paired_by_seed(two, "test_acc", "eg", "gd")
    assert out.n_seeds == 2
    assert out.difference == pytest.approx(-0.004)
    assert out.se == pytest.approx(0.001)
    assert out.verdict == "not distinguishable from"
    five = _final_table({"eg": [0.885, 0.887, 0.886, 0.884, 0.886],
                         "gd": [0.890, 0.891, 0.889, 0.890, 0.891]}, "test_acc")  # fmt: skip
    assert ld.paired_by_seed(five, "test_acc", "eg", "gd").verdict == "lower than"
    assert ld.paired_by_seed(five, "test_acc", "gd", "eg").verdict == "higher than"
    one = ld.paired_by_seed(two[two["seed"] == 0], "test_acc", "eg", "gd")
    assert (one.n_seeds, one.verdict) == (1, None) and math.isnan(one.se)
    with pytest.raises(InputError, match="no rows for method"):
        ld.paired_by_seed(two, "test_acc", "eg", "sign_constrained_gd")
    with pytest.raises(InputError, match="one row per"):
        ld.paired_by_seed(pd.concat([two, two]), "test_acc", "eg", "gd")


def test_accuracy_and_lognormality_verdicts_in_words(dale_run):
    accuracy = _final_table({"eg": [0.885, 0.887, 0.886, 0.884, 0.886],
                             "gd": [0.890, 0.891, 0.889, 0.890, 0.891],
                             "sign_constrained_gd": [0.880, 0.890, 0.884, 0.889, 0.883]},
                            "test_acc")  # fmt: skip
    assert ld.accuracy_verdict(accuracy) == (
        "lower than GD's (-0.0046 ± 0.0005) and not distinguishable from sign-constrained GD's "
        "(+0.0004 ± 0.0019)"
    )
    assert (
        ld.accuracy_resolution(accuracy)
        == "with 5 seeds a difference counts only beyond 2.8 standard errors"
    )
    two = accuracy[accuracy["seed"] < 2]  # -0.0045 +- 0.0005 and +0.0010 +- 0.0040: within 12.7 se
    assert ld.accuracy_resolution(two) == (
        "with 2 seeds a difference counts only beyond 12.7 standard errors, so this run cannot "
        "separate EG from GD or from sign-constrained GD"
    )
    one = accuracy[accuracy["seed"] == 0]
    assert ld.accuracy_verdict(one) == (
        "0.0050 below GD's (one seed, no verdict) and 0.0050 above sign-constrained GD's "
        "(one seed, no verdict)"
    )
    assert ld.accuracy_resolution(one) == "one seed gives no interval"
    assert ld.accuracy_verdict(dale_run.accuracy).count("(one seed, no verdict)") == 2
    weights = _final_table({"gd": [0.10, 0.11, 0.09], "eg": [0.15, 0.16, 0.15]}, "delta_cdf_log")
    weights = weights.assign(layer=1, population="excitatory")
    other = weights.assign(layer=2, delta_cdf_log=-weights["delta_cdf_log"])  # GD worse there
    both = pd.concat([weights, other])
    assert ld.lognormality_verdict(both) == "*closer* to log-normal than EG's (-0.0533 ± 0.0033)"
    assert ld.lognormality_verdict(both, layer=2) == (
        "further from log-normal than EG's (+0.0533 ± 0.0033)"
    )
    noisy = _final_table({"gd": [0.10, 0.20, 0.09], "eg": [0.15, 0.16, 0.15]}, "delta_cdf_log")
    assert ld.lognormality_verdict(noisy.assign(layer=1, population="excitatory")) == (
        "neither closer to log-normal than EG's nor further from it (-0.0233 ± 0.0318)"
    )
    assert ld.lognormality_verdict(both[both["seed"] == 0]) == (
        "0.0500 closer to log-normal than EG's (one seed, no verdict)"
    )
    assert ld.lognormality_verdict(dale_run.weights).endswith("(one seed, no verdict)")


def test_verdicts_read_the_stored_paper_tables():
    accuracy, _ = read_stored("lognormal_dale", "dale_accuracy")
    weights, _ = read_stored("lognormal_dale", "dale_weights")
    n_seeds = accuracy["seed"].nunique()
    assert n_seeds >= 2
    assert ld.paired_by_seed(accuracy, "test_acc", "eg", "gd").n_seeds == n_seeds
    words = ("lower than", "higher than", "not distinguishable from")
    assert ld.accuracy_verdict(accuracy).startswith(words)
    assert ld.lognormality_verdict(weights).startswith(
        ("*closer* to log-normal than", "further from log-normal than", "neither closer")
    )
