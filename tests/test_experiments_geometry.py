"""Tests of mirrorlib.experiments.geometry: the chapter "Synaptic geometry and mirror descent"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from mirrorlib import potential
from mirrorlib.experiments import geometry as G

POTENTIALS = ("2-norm", "3-norm", "ne")
SMALL = G.config("ci", grid_n=21, steps=300, n_record=50, map_n=20, check_n=20)

PROBLEMS = [
    G.LineProblem(),
    G.LineProblem(x=(2.0, 0.5), y=1.0, w0=(0.3, 0.2)),
    G.LineProblem(x=(1.0, 2.0), y=0.5, w0=(-0.2, 0.4)),
]


def reference_projection(name: str, problem: G.LineProblem) -> np.ndarray:
    """argmin D(w, w0) on the line x . w = y, by a bounded scalar search along the line.

    Independent of the library's projection: the line is parametrised as p + t d and the
    divergence minimised over t with scipy; for negative entropy t is restricted to the
    part of the line inside the orthant of w0.
    """
    pot = potential(name)
    x, w0 = np.asarray(problem.x), np.asarray(problem.w0)
    p = x * problem.y / (x @ x)
    d = np.array([-x[1], x[0]]) / np.linalg.norm(x)
    lo, hi = -20.0, 20.0
    if pot.needs_sign:  # keep sign(p_i + t d_i) = sign(w0_i) for both coordinates
        for pi, di, si in zip(p, d, np.sign(w0), strict=True):
            edge = -pi / di
            if si * di > 0:
                lo = max(lo, edge)
            else:
                hi = min(hi, edge)

    def divergence(t):
        return float(pot.bregman(p + t * d, w0).sum())

    res = optimize.minimize_scalar(
        divergence, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    return p + res.x * d


def test_config_presets_and_overrides():
    assert G.config("ci") == G.PRESETS["ci"]
    assert G.config("paper").grid_n > G.config("ci").grid_n
    assert G.config("ci", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown scale"):
        G.config("huge")


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (
            lambda: G.check_mirror_step(n=10),
            [
                "potential",
                "n",
                "lr",
                "max_err_dual",
                "max_err_prox",
                "max_err_multiplicative",
                "sign_flips",
                "cross_talk",
            ],
        ),
        (lambda: G.local_rate_check(lrs=(1e-2,), n=10), ["potential", "lr", "max_rel_err"]),
        (
            lambda: G.bregman_grid(n=5),
            ["potential", "direction", "w1", "w2", "divergence"],
        ),
        (
            lambda: G.bregman_slice(n=9),
            ["potential", "direction", "w1", "w2", "divergence"],
        ),
        (lambda: G.trajectories(steps=10, n_record=5), ["potential", "step", "w1", "w2", "loss"]),
        (lambda: G.projections(), ["potential", "method", "w1", "w2", "divergence", "loss"]),
        (lambda: G.mirror_maps(n=5), ["potential", "beta", "w", "dual", "rate"]),
        (lambda: G.hypentropy_limits(n=5), ["beta", "regime", "max_rel_err"]),
        (
            lambda: G.adam_history_dependence(warmup=3),
            ["optimiser", "history_scale", "w", "g", "lr", "update"],
        ),
    ],
)
def test_tables_have_documented_columns(table, columns):
    df = table()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == columns
    assert len(df) > 0


def test_summary_columns_and_run_keys():
    tables = G.run(SMALL)
    assert set(tables) == {
        "geometry_step_check",
        "geometry_local_rate",
        "geometry_bregman_grid",
        "geometry_bregman_slice",
        "geometry_trajectories",
        "geometry_trajectory_balls",
        "geometry_projections",
        "geometry_trajectory_summary",
        "geometry_mirror_maps",
        "geometry_hypentropy_limits",
        "geometry_adam",
    }
    assert list(tables["geometry_trajectory_summary"].columns) == [
        "potential",
        "final_loss",
        "dist_primal",
        "dist_dual",
        "row_space_residual",
        "left_orthant",
        "min_abs_w",
    ]


def test_run_is_deterministic():
    first, second = G.run(SMALL), G.run(SMALL)
    for name, table in first.items():
        pd.testing.assert_frame_equal(table, second[name], check_exact=True, obj=name)
        assert table.to_csv(index=False) == second[name].to_csv(index=False)


def test_mirror_step_matches_dual_composition_and_proximal_step():
    table = G.check_mirror_step(n=40, lr=0.5, seed=3).set_index("potential")
    assert (table["max_err_dual"] < 1e-12).all()
    assert (table["max_err_prox"] < 1e-6).all()
    assert (table["cross_talk"] < 1e-15).all()
    ne = table.loc["negative_entropy"]
    assert ne["max_err_multiplicative"] < 1e-12
    assert ne["sign_flips"] == 0
    assert table["max_err_multiplicative"].drop("negative_entropy").isna().all()
    assert table.loc["2-norm", "sign_flips"] > 0  # a large Euclidean step does flip signs


def test_small_steps_follow_the_local_flow():
    table = G.local_rate_check(lrs=(1e-3, 1e-4, 1e-5), n=50)
    for name, rows in table.groupby("potential"):
        err = rows.sort_values("lr")["max_rel_err"].to_numpy()
        if name == "2-norm":  # exact for every lr, up to rounding
            assert (err < 1e-8).all()
            continue
        assert err[0] < 1e-3
        assert err[0] < err[-1] / 50
    ne = table[table["potential"] == "negative_entropy"].set_index("lr")["max_rel_err"]
    assert ne[1e-4] / ne[1e-5] == pytest.approx(10.0, rel=0.05)  # first order in lr


def test_bregman_grid_negative_entropy_is_infinite_across_axes():
    table = G.bregman_grid(w_ref=(0.5, 0.25), n=41)
    ne = table[table["potential"] == "negative_entropy"]
    crossing = (ne["w1"] < 0) | (ne["w2"] < 0)
    assert np.isinf(ne.loc[crossing, "divergence"]).all()
    on_axis = (ne["w1"] == 0) & (ne["w2"] > 0)
    first = ne["direction"] == "D(w,w_ref)"
    assert np.isfinite(ne.loc[on_axis & first, "divergence"]).all()  # reachable up to the axis
    assert np.isinf(ne.loc[on_axis & ~first, "divergence"]).all()
    inside = ne[~crossing & (ne["w1"] > 0) & (ne["w2"] > 0)]
    assert (inside["divergence"] >= 0).all() and np.isfinite(inside["divergence"]).all()
    for _, sub in table.groupby(["potential", "direction"]):
        best = sub.loc[sub["divergence"].idxmin()]
        assert (best["w1"], best["w2"]) == pytest.approx((0.5, 0.25))
        assert best["divergence"] == pytest.approx(0.0, abs=1e-12)
    euclid = table[table["potential"] == "2-norm"]
    a, b = (euclid[euclid["direction"] == d]["divergence"].to_numpy() for d in G.DIRECTIONS)
    np.testing.assert_allclose(a, b, atol=1e-15)


def test_bregman_slice_negative_entropy_blows_up_at_the_axis():
    table = G.bregman_slice(potentials=("ne",), w_ref=(0.5, 0.25))
    proximal = table[table["direction"] == "D(w,w_ref)"].set_index("w2")["divergence"]
    reverse = table[table["direction"] == "D(w_ref,w)"].set_index("w2")["divergence"]
    assert proximal[0.0] == pytest.approx(0.25)  # D(w, w_ref) -> w_ref,2 at the axis
    tiny = proximal.index[(proximal.index > 0) & (proximal.index < 1e-8)]
    assert (reverse[tiny] > 4.0).all()  # ~ 0.25 log(0.25 / w2)
    assert np.isinf(reverse[reverse.index < 0]).all()
    assert np.isinf(proximal[proximal.index < 0]).all()


def test_eg_trajectory_stays_in_its_orthant():
    for problem in PROBLEMS:
        run = G.trajectories(("ne",), problem, lr=0.05, steps=2000)
        signs = np.sign(run[["w1", "w2"]].to_numpy())
        assert (signs == np.sign(problem.w0)).all()
    default = G.trajectories(POTENTIALS, G.LineProblem(), lr=0.02, steps=2000)
    summary = G.summarise_trajectories(default, G.projections(POTENTIALS)).set_index("potential")
    assert not summary.loc["negative_entropy", "left_orthant"]
    assert summary.loc["2-norm", "left_orthant"]  # the Euclidean solution lies outside it


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name", POTENTIALS)
def test_mirror_descent_converges_to_the_bregman_projection(name, problem):
    expected = reference_projection(name, problem)
    both = G.projections((name,), problem)
    assert list(both["method"]) == ["primal", "dual"]
    np.testing.assert_allclose(both[["w1", "w2"]].to_numpy(float), [expected] * 2, atol=1e-6)
    run = G.trajectories((name,), problem, lr=0.05, steps=3000)
    final = run.sort_values("step").iloc[-1][["w1", "w2"]].to_numpy(float)
    np.testing.assert_allclose(final, expected, atol=1e-6)
    assert run["loss"].iloc[-1] < 1e-20


def test_projections_differ_between_geometries_and_dual_change_is_in_row_space():
    proj = G.projections(POTENTIALS)
    primal = proj[proj["method"] == "primal"][["w1", "w2"]].to_numpy()
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(primal) for b in primal[i + 1 :]]
    assert min(gaps) > 0.05
    assert (proj["loss"] < 1e-20).all()
    traj = G.trajectories(POTENTIALS, lr=0.02, steps=3000)
    summary = G.summarise_trajectories(traj, proj)
    assert (summary["row_space_residual"] < 1e-10).all()
    assert (summary[["dist_primal", "dist_dual"]] < 1e-8).to_numpy().all()


def test_mirror_maps_rates():
    table = G.mirror_maps(betas=(0.1,), n=30)
    ne = table[table["potential"] == "negative_entropy"]
    np.testing.assert_allclose(ne["rate"], ne["w"].abs(), rtol=1e-12)
    hyp = table[table["beta"] == 0.1]
    np.testing.assert_allclose(hyp["rate"], np.sqrt(hyp["w"] ** 2 + 0.01), rtol=1e-12)
    np.testing.assert_allclose(hyp["dual"], np.arcsinh(hyp["w"] / 0.1), rtol=1e-12)
    assert table.loc[table["potential"] != hyp["potential"].iloc[0], "beta"].isna().all()


def test_hypentropy_limits_are_close():
    table = G.hypentropy_limits(betas=(0.01, 1.0), n=50)
    assert set(table["regime"]) == {"large", "small"}
    assert (table["max_rel_err"] < 1e-3).all()


def test_adam_update_depends_on_history_but_mirror_descent_does_not():
    table = G.adam_history_dependence(scales=(1.0, 0.01), warmup=100)
    by = table.set_index(["optimiser", "history_scale"])["update"]
    plain = by["adam(beta1=0)"]
    assert plain[0.01] / plain[1.0] > 10.0
    for name in ("2-norm", "3-norm", "negative_entropy"):
        assert by[name][1.0] == by[name][0.01]
    assert by["2-norm"][1.0] == pytest.approx(-1e-3 * 0.1)
    assert by["negative_entropy"][1.0] == pytest.approx(0.5 * np.expm1(-1e-3 * 0.1))


def test_plotting_draws_every_table():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    from mirrorlib import plotting
    from mirrorlib.plotting import geometry as geo_plots

    tables = G.run(SMALL)
    axes = geo_plots.plot_bregman_grid(tables["geometry_bregman_grid"])
    assert axes.shape == (2, 3)
    ax = geo_plots.plot_bregman_slice(tables["geometry_bregman_slice"])
    assert ax.get_xlabel()
    ax = geo_plots.plot_trajectories(
        tables["geometry_trajectories"],
        line=(SMALL.problem.x, SMALL.problem.y),
        projections=tables["geometry_projections"],
        balls=tables["geometry_trajectory_balls"],
        lims=SMALL.frame,
    )
    assert ax.get_legend() is not None
    axes = geo_plots.plot_mirror_maps(tables["geometry_mirror_maps"])
    assert len(axes) == 2
    assert plotting.potential_label("hypentropy(beta=0.1)") == r"hyperbolic entropy, $\beta = 0.1$"
    plt.close("all")
