"""Every figure function of mirrorlib.plotting draws from a small table, in the book's palette.

The tables are made by hand with the columns each experiment documents (a few rows each), so
the figures are drawn in a second; the experiments' own tests draw them from real runs.
"""

from __future__ import annotations

import colorsys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from mirrorlib.experiments import biology as bio  # noqa: E402
from mirrorlib.experiments import geometry as G  # noqa: E402
from mirrorlib.experiments import wrong_potential as wp  # noqa: E402
from mirrorlib.plotting import (  # noqa: E402
    POTENTIAL_COLORS,
    biology,
    deep_networks,
    dual_gaussian,
    geometry,
    lognormal_dale,
    potential_color,
    synapse_data,
    wrong_potential,
)

RNG = np.random.default_rng(0)
POTS = ("negative_entropy", "2-norm", "3-norm")
EDGES = np.linspace(-5, 5, 11)


def grid(**columns) -> pd.DataFrame:
    """Every combination of the given column values (a tidy table's keys)."""
    index = pd.MultiIndex.from_product(list(columns.values()), names=list(columns))
    return index.to_frame(index=False)


def binned(keys: pd.DataFrame) -> pd.DataFrame:
    """A histogram table (``left, right, density``) for every row of ``keys``."""
    rows = keys.merge(pd.DataFrame({"left": EDGES[:-1], "right": EDGES[1:]}), how="cross")
    return rows.assign(density=RNG.random(len(rows)))


def qq_table(keys: pd.DataFrame) -> pd.DataFrame:
    normal = np.linspace(-2, 2, 5)
    rows = keys.merge(pd.DataFrame({"normal": normal}), how="cross")
    return rows.assign(sample=rows["normal"] + 0.1 * RNG.standard_normal(len(rows)))


def random(table: pd.DataFrame, *columns: str, low=0.01, high=1.0) -> pd.DataFrame:
    return table.assign(**{c: RNG.uniform(low, high, len(table)) for c in columns})


def fig2_table():
    t = grid(
        corr_power=[2.0, 1.0], alpha=[0.5, 0.75], D=[100, 200, 400], potential=POTS, seed=[0, 1]
    )
    t = random(t, "delta_cdf", "delta_cdf_floor", "delta_cdf_null", "relative_change")
    return t.assign(N=(t["D"] ** t["alpha"]).round())


def fig3_table():
    cands = pd.DataFrame(
        {
            "candidate": [
                "negative_entropy",
                "1.5-norm",
                "2-norm",
                "3-norm",
                "hypentropy(beta=0.1)",
            ],
            "family": ["negative_entropy", "p-norm", "p-norm", "p-norm", "hypentropy"],
            "p": [np.nan, 1.5, 2.0, 3.0, np.nan],
            "beta": [np.nan] * 4 + [0.1],
        }
    )
    t = grid(init=["normal", "lognormal"], true_potential=POTS, seed=[0, 1], centered=[False, True])
    t = random(t.merge(cands, how="cross"), "delta_cdf", "relative_change")
    t["excluded"] = (t["candidate"] == "negative_entropy") & (t["init"] == "normal")
    t.loc[t["excluded"], "delta_cdf"] = np.nan
    return t.assign(n=1000, floor_mean=0.03, floor_std=0.01)


def power_table():
    pairs = pd.DataFrame(
        {
            "true_potential": ["negative_entropy", "2-norm"],
            "alternative": ["3-norm", "negative_entropy"],
            "exponent_gap": [2.0, 1.0],
        }
    )
    pairs["pair"] = pairs["true_potential"] + " vs " + pairs["alternative"]
    t = grid(change_scale=[0.1, 0.3], n=[100, 1000]).merge(pairs, how="cross")
    return random(t, "p_correct", "ruled_out")


def deep_table():
    nets = pd.DataFrame({"architecture": ["mlp-32", "rnn-100"], "n_weights": [2000, 10000]})
    t = grid(
        objective=["supervised"],
        trained_potential=POTS,
        seed=[0, 1],
        candidate=["negative_entropy", "1.5-norm", "2-norm", "2.5-norm", "3-norm"],
    )
    return random(t.merge(nets, how="cross"), "delta_cdf", "floor", high=0.1)


def geometry_tables():
    return G.run(G.config("ci", grid_n=11, steps=50, n_record=10, map_n=10, check_n=5))


def lognormal_tables():
    keys = pd.concat(
        [
            grid(init=["lognormal", "normal"], stage=["before"], potential=["-"]),
            grid(init=["lognormal", "normal"], stage=["after"], potential=POTS[:2]),
        ]
    )
    regression = grid(
        alpha=[0.5],
        potential=POTS[:2],
        init=["lognormal", "normal"],
        label_scale=[0.1, 1.0],
        seed=[0, 1],
    )
    regression = random(regression, "relative_change", "delta_cdf_log_after").assign(
        N=10, floor=0.02
    )
    methods = ["eg", "gd", "sign_constrained_gd"]
    accuracy = random(grid(method=methods, seed=[0, 1], epoch=[0, 1, 2]), "test_acc")
    weights = grid(
        method=methods,
        seed=[0, 1],
        epoch=[0, 1, 2],
        layer=[1, 2],
        population=["excitatory", "inhibitory"],
    )
    weights = random(weights, "violations", "zeros", "delta_cdf_log", "floor").assign(n=10)
    dale_keys = pd.concat(
        [
            grid(stage=["before"], layer=[1, 2], population=["excitatory"], method=["-"]),
            grid(stage=["after"], layer=[1, 2], population=["excitatory"], method=methods),
        ]
    )
    return (
        binned(keys),
        qq_table(keys),
        regression,
        accuracy,
        weights,
        binned(dale_keys),
        qq_table(dale_keys),
    )


def synapse_tables():
    densities = grid(
        w0_model=["two_constants", "lognormal"],
        potential=["negative_entropy", "2-norm", "1.5-norm", "hypentropy"],
        log10_w=np.linspace(-1, 1, 5),
    )
    densities = random(densities, "density")
    profile = random(grid(n=[100, 1000], p=[1.0, 1.5, 2.0]), "log_likelihood")
    profile["potential"] = np.where(profile["p"] == 1.0, "negative_entropy", "p-norm")
    power = random(
        grid(truth=["negative_entropy", "2-norm"], n=[100, 1000]), "truth_best", "set_width"
    )
    pairs = pd.DataFrame({"before": [1, 2, 3, 1], "after": [2, 4, 3, 1]})
    scan = pd.DataFrame(
        {
            "p": [np.nan, 1.5, 2.0],
            "delta_cdf": [0.1, 0.05, 0.2],
            "indistinguishable": [True, True, False],
        }
    )
    calib = random(
        grid(data=["latent_all", "counts_kept"], truth=["2-norm", "3-norm"], rep=[0, 1]),
        "best_p",
        low=1.5,
        high=3.0,
    )
    pmf = random(
        grid(w0_model=["two_constants"], potential=["negative_entropy", "2-norm"], k=[1, 2, 4, 8]),
        "probability",
    )
    return densities, profile, power, pairs, scan, calib, pmf


def biology_table():
    rows = []
    for model in bio.MODELS if hasattr(bio, "MODELS") else biology.MODEL_LABELS:
        for layer in ("hidden", "output"):
            w = RNG.standard_normal((6, 5))
            post, pre = np.indices(w.shape)
            rows.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "layer": layer,
                        "pre": pre.ravel(),
                        "post": post.ravel(),
                        "w": w.ravel(),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def figures():
    """``(name, draw, potentials shown)`` for every figure function of every chapter."""
    geo = geometry_tables()
    cfg = G.config("ci")
    fig3 = fig3_table()
    hist, qq, regression, accuracy, weights, dale_hist, dale_qq = lognormal_tables()
    densities, profile, power, pairs, scan, calib, pmf = synapse_tables()
    lin = random(grid(ratio=[0.1, 0.5], potential=POTS, seed=[0, 1]), "lin_error", "delta_cdf")
    lin = lin.assign(converged=1.0, null=0.05)
    clt = random(
        grid(inputs=["binary", "short"], D=[100, 200], alpha=[0.5], potential=POTS, seed=[0, 1]),
        "delta_cdf",
        "relative_change",
        "prediction",
        "floor",
        "null",
    )
    clt = clt.assign(N=10)
    deep = random(
        grid(width=[64, 128], potential=POTS, seed=[0, 1]),
        "lin_error",
        "relative_change",
        "delta_cdf",
        "floor",
    )
    return [
        ("bregman_grid", lambda: geometry.plot_bregman_grid(geo["geometry_bregman_grid"]), ()),
        ("bregman_slice", lambda: geometry.plot_bregman_slice(geo["geometry_bregman_slice"]), POTS),
        (
            "trajectories",
            lambda: geometry.plot_trajectories(
                geo["geometry_trajectories"],
                line=(cfg.problem.x, cfg.problem.y),
                projections=geo["geometry_projections"],
                balls=geo["geometry_trajectory_balls"],
                lims=cfg.frame,
            ),
            POTS,
        ),
        (
            "mirror_maps",
            lambda: geometry.plot_mirror_maps(geo["geometry_mirror_maps"]),
            POTS + ("hypentropy(beta=0.1)",),
        ),
        ("fig2", lambda: wrong_potential.plot_fig2_linear_regression(fig2_table()), POTS),
        ("fig3", lambda: wrong_potential.plot_fig3_wrong_potential(fig3), POTS),
        (
            "truth_beats",
            lambda: wrong_potential.plot_truth_beats_candidate(wp.truth_beats_candidate(fig3)),
            (),
        ),
        (
            "power",
            lambda: wrong_potential.plot_recovery_power(power_table()),
            ("negative_entropy", "2-norm"),
        ),
        ("fig4a", lambda: deep_networks.plot_delta_cdf_vs_size(deep_table()), POTS),
        ("fig4b", lambda: deep_networks.plot_candidate_scan(deep_table()), POTS),
        (
            "bn_lag",
            lambda: deep_networks.plot_running_statistics_lag(
                grid(
                    epoch=[2, 4], bn_momentum=[0.01, 0.1], trained_potential=["negative_entropy"]
                ).assign(accuracy_running=0.5, accuracy_recalibrated=0.9)
            ),
            ("negative_entropy",),
        ),
        ("linearisation", lambda: dual_gaussian.plot_linearisation(lin), POTS),
        ("clt", lambda: dual_gaussian.plot_clt(clt), POTS),
        (
            "dual_histograms",
            lambda: dual_gaussian.plot_dual_histograms(
                binned(grid(N=[1, 30], D=[100], potential=POTS))
            ),
            POTS,
        ),
        (
            "deep",
            lambda: dual_gaussian.plot_deep(deep, binned(grid(width=[64, 128], potential=POTS))),
            POTS,
        ),
        (
            "regression_distributions",
            lambda: lognormal_dale.plot_regression_distributions(hist, qq),
            POTS[:2],
        ),
        (
            "lognormality_vs_change",
            lambda: lognormal_dale.plot_lognormality_vs_change(regression),
            POTS[:2],
        ),
        ("dale_training", lambda: lognormal_dale.plot_dale_training(accuracy, weights), POTS[:2]),
        (
            "dale_distributions",
            lambda: lognormal_dale.plot_dale_distributions(dale_hist, dale_qq),
            POTS[:2],
        ),
        (
            "fig5",
            lambda: synapse_data.plot_fig5_volume_fits(
                pd.DataFrame({"log10_volume": RNG.normal(size=50)}), densities
            ),
            ("negative_entropy", "2-norm", "1.5-norm", "hypentropy"),
        ),
        ("profile", lambda: synapse_data.plot_profile_over_p(profile), ()),
        ("known_w0_power", lambda: synapse_data.plot_known_w0_power(power), POTS[:2]),
        ("connectome_scan", lambda: synapse_data.plot_connectome_scan(pairs, scan, 0.02), ()),
        ("calibration", lambda: synapse_data.plot_calibration(calib, 1.6), ()),
        (
            "count_fits",
            lambda: synapse_data.plot_count_fits(pd.Series([1, 2, 2, 4, 8]), pmf),
            POTS[:2],
        ),
        (
            "weights_vs_synapses",
            lambda: biology.plot_weights_vs_synapses(biology_table(), bio.reference_table()),
            POTS[:2],
        ),
    ]


FIGURES = figures()


def _colours(fig) -> set[str]:
    """Hex colours of every line, marker, patch and collection drawn in the figure's panels
    (not the colour map of filled contours and its colour bar)."""
    found = []
    for ax in (ax for ax in fig.axes if ax.get_label() != "<colorbar>"):
        for line in ax.lines:
            if line.get_linestyle() not in ("None", ""):
                found.append(line.get_color())
            if line.get_marker() not in ("None", "", None):
                found += [line.get_markerfacecolor(), line.get_markeredgecolor()]
        for patch in ax.patches:
            found += [patch.get_facecolor(), patch.get_edgecolor()]
        for coll in ax.collections:
            if not isinstance(coll, ContourSet):
                found += list(coll.get_facecolor()) + list(coll.get_edgecolor())
    return {to_hex(c, keep_alpha=False) for c in found if not (isinstance(c, str) and c == "none")}


def _chromatic(colour: str) -> bool:
    _, saturation, value = colorsys.rgb_to_hsv(*to_rgb(colour))
    return saturation > 0.2 and value > 0.1


@pytest.mark.parametrize("name, draw, shown", FIGURES, ids=[f[0] for f in FIGURES])
def test_every_figure_draws_in_the_books_palette(name, draw, shown):
    out = draw()
    fig = np.asarray(out).flat[0].figure
    try:
        colours = _colours(fig)
        for pot in shown:
            assert to_hex(potential_color(pot)) in colours, f"{name}: {pot} not in its colour"
        palette = {to_hex(c) for c in POTENTIAL_COLORS.values()}
        stray = {c for c in colours if _chromatic(c)} - palette
        assert not stray, f"{name}: colours outside the book's palette: {sorted(stray)}"
        assert all(fig.get_size_inches() <= [7.01, 9.0]), f"{name}: wider than the page"
    finally:
        plt.close(fig)


def test_each_potential_has_its_own_colour_and_the_papers_three_are_kept():
    assert len(set(POTENTIAL_COLORS.values())) == len(POTENTIAL_COLORS)
    assert POTENTIAL_COLORS["negative_entropy"] == "#0072B2"
    assert POTENTIAL_COLORS["2-norm"] == "#009E73"
    assert POTENTIAL_COLORS["3-norm"] == "#D55E00"
    assert potential_color("hypentropy(beta=0.1)") == potential_color("hypentropy(beta=1)")
