"""The synapse-data chapter: the dual-Gaussian likelihood, its fits, the loaders and the scans."""

from __future__ import annotations

import importlib.util
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from mirrorlib import synapse_law
from mirrorlib.connectome import load_cook2019, load_witvliet, paired_counts
from mirrorlib.experiments import synapse_data as sd
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError

matplotlib.use("Agg")

HAS_CECT = importlib.util.find_spec("cect") is not None
needs_cect = pytest.mark.skipif(not HAS_CECT, reason="cect (C. elegans data files) not installed")

MODELS = {
    "constant": [0.3, math.log(0.4)],
    "two_constants": [0.2, 1.1, math.log(0.3), 0.5],
    "lognormal": [-0.2, math.log(0.5), 0.1, math.log(0.2)],
}


@pytest.mark.parametrize("w0_model", list(MODELS))
@pytest.mark.parametrize("name", synapse_law.POTENTIALS)
def test_density_integrates_to_one(name, w0_model):
    x = np.array(MODELS[w0_model] + ([math.log(0.5)] if name == "hypentropy" else []))
    log_w = np.linspace(-14, 6, 6001)
    w = np.exp(log_w)
    dens = np.exp(synapse_law.log_density(w, name, w0_model, x)) * w  # density of log w
    assert np.all(np.isfinite(dens))
    assert integrate.trapezoid(dens, log_w) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(("name", "s"), [("1.5-norm", 0.02), ("2-norm", 0.5), ("3-norm", 0.3)])
def test_lognormal_convolution_matches_quadrature(name, s):
    a, b, mu = 0.1, 0.5, 0.05
    pot = potential(name)
    w = np.array([0.4, 1.0, 2.5])
    got = synapse_law.log_density(w, name, "lognormal", np.array([a, math.log(b), mu, math.log(s)]))

    def f_theta(theta):
        def integrand(z):
            u = float(pot.to_dual(math.exp(a + b * z))) + mu
            return math.exp(-0.5 * z * z - 0.5 * ((theta - u) / s) ** 2) / (2 * math.pi * s)

        return integrate.quad(integrand, -9, 9, limit=400)[0]

    def survive(z):
        u = float(pot.to_dual(math.exp(a + b * z))) + mu
        return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) * special.ndtr(u / s)

    mass = integrate.quad(survive, -9, 9, limit=200)[0]
    ref = [math.log(f_theta(float(pot.to_dual(wi))) * float(pot.hess_diag(wi)) / mass) for wi in w]
    assert np.allclose(got, ref, atol=3e-3)


def test_negative_entropy_lognormal_w0_is_the_constant_law():
    w = synapse_law.sample_published_fit("all", 300, seed=1)
    a, b, mu, s = -3.0, 0.4, 0.2, 0.3
    grid = synapse_law.log_density(
        w, "negative_entropy", "lognormal", [a, math.log(b), mu, math.log(s)]
    )
    exact = synapse_law.log_density(
        w, "negative_entropy", "constant", [a + mu + 1.0, 0.5 * math.log(b**2 + s**2)]
    )
    assert np.allclose(grid, exact, atol=1e-4)
    assert synapse_law.n_free_params("negative_entropy", "lognormal") == 2
    assert synapse_law.n_free_params("2-norm", "lognormal") == 4
    assert synapse_law.n_free_params("hypentropy", "two_constants") == 5


@pytest.mark.parametrize("name", ["negative_entropy", "1.5-norm", "2-norm", "hypentropy"])
def test_count_probabilities_sum_to_one(name):
    x = np.array([0.5, 1.5, math.log(0.6), 0.3] + ([0.0] if name == "hypentropy" else []))
    k = np.arange(1, 20001, dtype=float)
    per_k = [synapse_law.count_log_likelihood([ki], name, "two_constants", x, 2.0) for ki in k[:50]]
    # the rest in one go: the log-likelihood of the whole vector is the sum of the singles
    total = np.exp(per_k).sum()
    tail = synapse_law.count_log_likelihood(k[50:], name, "two_constants", x, 2.0)
    assert synapse_law.count_log_likelihood(k[:50], name, "two_constants", x, 2.0) == pytest.approx(
        float(np.sum(per_k))
    )
    assert total <= 1 + 1e-9
    assert np.isfinite(tail)
    probs = np.exp(
        [synapse_law.count_log_likelihood([ki], name, "two_constants", x, 2.0) for ki in k[:2000]]
    )
    assert probs.sum() == pytest.approx(1.0, abs=2e-3)


def test_published_fit_samples_follow_the_mixture():
    v = synapse_law.sample_published_fit("all", 100_000, seed=0)
    (m1, s1, p1), (m2, s2, p2) = synapse_law.PUBLISHED_FITS["all"]
    assert np.log10(v).mean() == pytest.approx(p1 * m1 + p2 * m2, abs=0.01)
    second_moment = p1 * (s1**2 + m1**2) + p2 * (s2**2 + m2**2)
    assert (np.log10(v) ** 2).mean() == pytest.approx(second_moment, abs=0.01)
    assert np.array_equal(
        synapse_law.sample_published_fit("dual", 50, 3),
        synapse_law.sample_published_fit("dual", 50, 3),
    )
    with pytest.raises(ValueError, match="unknown group"):
        synapse_law.sample_published_fit("triple")


def test_fits_reject_the_2_norm_on_the_published_fit():
    v = synapse_law.sample_published_fit("all", 400, seed=2)
    fits = [
        synapse_law.fit(v, p, "two_constants", 2, "all") for p in ("negative_entropy", "2-norm")
    ]
    table = synapse_law.fits_table(fits)
    assert tuple(table.columns) == synapse_law.FIT_COLUMNS
    assert (table["n_params"] == 4).all()
    assert np.allclose(table["aic"], 2 * 4 - 2 * table["log_likelihood"])
    assert np.allclose(table["bic"], 4 * math.log(400) - 2 * table["log_likelihood"])
    assert synapse_law.delta_aic(table, "all") > 10
    ne = fits[0].params  # the published components: log10 means -1.42 / -0.77, sd ~0.23
    lo, hi = sorted((ne["m1"], ne["m2"]))
    assert (hi - lo) / math.log(10) == pytest.approx(0.65, abs=0.1)
    assert ne["s"] / math.log(10) == pytest.approx(0.23, abs=0.04)


def test_fits_prefer_the_2_norm_on_2_norm_data():
    rng = np.random.default_rng(5)
    theta = rng.normal(1.0, 0.3, 3000)
    w = theta[theta > 0][:800]  # a Gaussian step in the 2-norm's dual space, survivors only
    two = synapse_law.fit(w, "2-norm", "constant")
    ne = synapse_law.fit(w, "negative_entropy", "constant")
    assert two.log_likelihood - ne.log_likelihood > 10
    assert two.params["m"] == pytest.approx(1.0, abs=0.05)
    assert two.params["s"] == pytest.approx(0.3, abs=0.03)


def test_lognormal_fit_and_density_table():
    v = synapse_law.sample_published_fit("all", 300, seed=4)
    r = synapse_law.fit(v, "2-norm", "lognormal", 1, "all")
    assert r.n_params == 4 and np.isfinite(r.log_likelihood)
    grid = np.logspace(-2.5, 0, 50)
    dens = synapse_law.density_table([r], grid)
    assert set(dens.columns) == {"dataset", "w0_model", "potential", "log10_w", "density"}
    assert (dens["density"] >= 0).all()
    params = synapse_law.params_table([r])
    assert set(params["parameter"]) == {"a", "b", "mu", "s"}


def test_profile_runs_into_negative_entropy_near_p_1():
    v = synapse_law.sample_published_fit("all", 300, seed=6)
    prof = sd.profile_over_p(v, (1.01, 2.0), dataset="x")
    ll = prof.set_index("p")["log_likelihood"]
    assert ll[1.01] == pytest.approx(ll[1.0], abs=1.0)
    assert ll[1.0] > ll[2.0]


# ----------------------------------------------------------------------------- bad data


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_loader_reads_a_single_numeric_column_or_a_named_one(tmp_path):
    values = synapse_law.sample_published_fit("all", 30, seed=0)
    one = write(tmp_path, "one.csv", "volume\n" + "\n".join(map(str, values)) + "\n")
    assert np.allclose(synapse_law.load_volumes_csv(one), values)
    text = "id,volume,label\n" + "".join(f"{i},{v},s\n" for i, v in enumerate(values))
    named = write(tmp_path, "named.csv", text)
    assert np.allclose(synapse_law.load_volumes_csv(named, column="volume"), values)


@pytest.mark.parametrize(
    ("content", "column", "message"),
    [
        (None, None, r"volume file not found"),
        ("", None, r"cannot read .* as CSV"),
        ("a,b\n" + "1,2\n" * 30, None, r"2 numeric columns .* name the volume column"),
        ("v\n" + "1\n" * 30, "w", r"has no column 'w'; columns: v"),
        ("v\n" + "1\n" * 29 + "big\n", None, r"0 numeric columns"),
        ("v\n" + "1\n" * 29 + "big\n", "v", r"1 non-numeric value\(s\) \(lines \[31\]\)"),
        ("id,v\n" + "a,1\n" * 29 + "b,\n", "v", r"1 missing value\(s\)"),
        ("v\n" + "1\n" * 29 + "0\n", None, r"1 non-positive value\(s\) \(1 zero, 0 negative"),
        ("v\n" + "1\n" * 29 + "-2\n", None, r"1 non-positive value\(s\) \(0 zero, 1 negative"),
        ("v\n" + "1\n" * 5, None, r"only 5 values"),
    ],
)
def test_csv_loader_errors(tmp_path, content, column, message):
    path = tmp_path / "missing.csv" if content is None else write(tmp_path, "v.csv", content)
    with pytest.raises(InputError, match=message):
        synapse_law.load_volumes_csv(path, column=column)


def test_unreadable_binary_file_is_refused(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(InputError, match=r"cannot read|non-numeric|numeric columns"):
        synapse_law.load_volumes_csv(path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, 2.0, 2.5] * 10, r"not whole numbers"),
        ([1, 0, 2] * 10, r"10 non-positive value\(s\) \(10 zero"),
        ([1, np.nan, 2] * 10, r"10 missing value\(s\)"),
        (["a", "b"] * 15, r"not numeric"),
    ],
)
def test_counts_are_checked(values, message):
    with pytest.raises(InputError, match=message):
        synapse_law.check_counts(values)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("A,B,chemical,0\n", r"not a positive integer \(rows \[1\]\)"),
        ("A,B,chemical,\n", r"missing or non-numeric synapse count"),
        ("A,B,chemical,x\n", r"missing or non-numeric synapse count"),
        ("A,B,chemical,-1\n", r"not a positive integer"),
    ],
)
def test_connectome_file_errors(tmp_path, rows, message):
    path = write(tmp_path, "c.csv", "pre,post,type,synapses\nA,C,chemical,2\n" + rows)
    with pytest.raises(InputError, match=message):
        load_witvliet(path)


def test_connectome_loader_refuses_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_witvliet(tmp_path / "none.csv")
    with pytest.raises(InputError, match="lacks column"):
        load_witvliet(write(tmp_path, "c.csv", "pre,post,count\nA,B,1\n"))
    with pytest.raises(InputError, match="cannot read"):
        load_witvliet(write(tmp_path, "c.xlsx", "not a spreadsheet"))
    with pytest.raises(InputError, match="datasets 1-8"):
        load_witvliet(9)
    table = load_witvliet(write(tmp_path, "d.csv", "pre,post,type,synapses\nA,B,chemical,1\n"))
    with pytest.raises(InputError, match="share no connection"):
        paired_counts(table, table.assign(pre="Z"))


def test_paired_counts_keeps_shared_connections_and_counts_the_rest():
    before = pd.DataFrame({"pre": ["A", "A", "B"], "post": ["B", "C", "C"], "synapses": [1, 2, 3]})
    after = pd.DataFrame({"pre": ["A", "B", "D"], "post": ["B", "C", "E"], "synapses": [4, 5, 6]})
    out = paired_counts(before, after)
    assert out[["before", "after"]].to_numpy().tolist() == [[1, 4], [3, 5]]
    assert out.attrs == {"only_before": 1, "only_after": 1}


# ----------------------------------------------------------------------------- real data, scans


@needs_cect
def test_witvliet_l1_and_adult_share_634_chemical_connections():
    early, late = load_witvliet(1), load_witvliet(8)
    assert len(early) == 775 and len(late) == 2186
    pairs = paired_counts(early, late)
    assert len(pairs) == 634
    assert (pairs[["before", "after"]] >= 1).all().all()


@needs_cect
def test_cook2019_hermaphrodite_chemical_connections():
    table = load_cook2019()
    assert len(table) == 4879
    assert (table["weight"] >= 1).all() and (table["weight"] == table["weight"].round()).all()
    with pytest.raises(InputError, match="no sheet 'worm'"):
        load_cook2019("worm")


@needs_cect
def test_connectome_scan_on_the_real_files():
    pairs, scan = sd.run_connectome_scan(sd.config("ci", scan_boot=20))
    assert len(pairs) == 634 and scan.attrs["n_weights"] == 634
    assert not scan["excluded"].any()  # counts are >= 1: negative entropy is allowed
    ranked = scan.set_index("potential")
    assert ranked.at["2-norm", "delta_cdf"] > 2 * scan["delta_cdf"].min()


def test_known_w0_power_rules_out_the_2_norm():
    cfg = sd.config(
        "ci", power_truths=("negative_entropy",), power_n=(300,), power_reps=3, n_boot=20
    )
    table = sd.run_known_w0_power(cfg)
    assert len(table) == 3
    assert table["two_norm_out"].all()
    assert table["truth_in_set"].mean() >= 2 / 3
    summary = sd.summarise_power(table)
    assert summary.loc[0, "set_width"] < 0.5


def test_count_calibration_recovers_p_without_selection():
    pairs = pd.DataFrame(
        {"before": np.tile([1, 1, 2, 3], 100), "after": np.tile([2, 4, 5, 9], 100)}
    )
    cfg = sd.config("ci", calib_truths=("2-norm",), calib_reps=1, n_boot=20)
    table = sd.run_count_calibration(pairs, cfg)
    assert set(table["data"]) == {"latent_all", "latent_kept", "counts_kept"}
    latent = table.set_index("data").loc["latent_all"]
    assert abs(latent["best_p"] - 2.0) <= 0.2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"groups": ("triple",)}, r"unknown group"),
        ({"potentials": ("4-norm",)}, r"unknown potential"),
        ({"w0_models": ("uniform",)}, r"unknown w0 model"),
        ({"power_n": (50,)}, r"each power_n must be >= 100"),
        ({"profile_n": (5000,)}, r"profile_n must be <= n_volumes"),
        ({"colour": 1}, r"unknown setting"),
    ],
)
def test_bad_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        sd.config("ci", **overrides)


def test_plots_draw_from_tables():
    from mirrorlib.plotting import synapse_data as plot

    v = synapse_law.sample_published_fit("all", 200, seed=0)
    fits = [synapse_law.fit(v, p, "constant", 1, "all") for p in ("negative_entropy", "hypentropy")]
    dens = synapse_law.density_table(fits, np.logspace(-2.5, 0, 40))
    axes = plot.plot_fig5_volume_fits(pd.DataFrame({"log10_volume": np.log10(v)}), dens)
    assert len(axes) == 1 and axes[0].get_title() == r"$w_0$: one constant"
    prof = pd.DataFrame(
        {
            "potential": ["negative_entropy", "2-norm"],
            "p": [1.0, 2.0],
            "log_likelihood": [0.0, -5.0],
            "n": [100, 100],
        }
    )
    assert plot.plot_profile_over_p(prof).get_xlabel().startswith("$p$")
    pmf = synapse_law.count_pmf_table(
        [synapse_law.fit_counts([1, 2, 3, 1, 5] * 10, "2-norm", "constant", 1)], 6
    )
    assert len(pmf) == 6
    plot.plot_count_fits(pd.Series([1, 2, 3, 1, 5] * 10), pmf, w0_model="constant")
    matplotlib.pyplot.close("all")


def test_smallest_n_is_where_the_level_holds_from_then_on():
    import pandas as pd

    table = pd.DataFrame({"truth": "a", "n": [100, 300, 1000, 3000], "x": [0.9, 0.5, 0.95, 1.0]})
    assert sd.smallest_n(table, "x", 0.9, truth="a") == 1000
    assert sd.smallest_n(table, "x", 0.99) == 3000
    assert sd.smallest_n(table, "x", 1.01) is None
    assert sd.smallest_n(table, "x", 0.6, below=True) is None
    assert sd.smallest_n(table.iloc[:2], "x", 0.6, below=True) == 300


def test_secondary_maxima_are_the_lower_interior_peaks():
    profile = pd.DataFrame(
        {
            "p": [3.0, 1.0, 1.5, 2.0, 2.5, 1.2],  # unsorted: sorted by p before looking
            "log_likelihood": [-5.0, 0.0, -8.0, -9.0, -4.0, -3.0],
        }
    )
    peaks = sd.secondary_maxima(profile)
    assert peaks["p"].tolist() == [2.5]  # 1.0 is the global maximum, 3.0 an end of the grid
    assert peaks["drop"].tolist() == [4.0]
    falling = profile.assign(log_likelihood=-profile["p"])
    assert sd.secondary_maxima(falling).empty
    with pytest.raises(ValueError, match="one row per p"):
        sd.secondary_maxima(pd.concat([profile, profile]))


def test_sample_size_words_say_when_the_smallest_size_already_sufficed():
    sizes = [100, 300, 1000]
    assert sd.sample_size_words(300, sizes) == "300 synapses"
    assert sd.sample_size_words(100, sizes) == "at most 100 synapses (the fewest simulated)"
    assert sd.sample_size_words(None, sizes) == "more than the largest size simulated (1000)"


def test_at_both_scales_says_both_only_when_the_sizes_agree():
    assert sd.at_both_scales("300 synapses", "300 synapses") == "300 synapses in both"
    assert sd.at_both_scales("1000 synapses", "300 synapses") == (
        "1000 synapses in this build and 300 synapses in the stored run"
    )


def test_secondary_maxima_words_list_every_peak():
    assert sd.secondary_maxima_words(pd.DataFrame({"p": [], "drop": []})) == (
        "no other local maximum"
    )
    one = pd.DataFrame({"p": [2.4], "drop": [3.2]})
    assert sd.secondary_maxima_words(one) == (
        "one more local maximum, at 2.4, lower by 3 in log-likelihood"
    )
    two = pd.DataFrame({"p": [1.8, 2.4], "drop": [3.0, 5.4]})
    assert sd.secondary_maxima_words(two) == (
        "2 more local maxima, at 1.8 and 2.4, lower by 3 and 5 in log-likelihood"
    )
