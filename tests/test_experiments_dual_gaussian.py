"""The chapter "Why the change in the dual space looks Gaussian": its theory and experiments."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.experiments import dual_gaussian as dg
from mirrorlib.plotting import dual_gaussian as dgplot
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError
from mirrorlib.results import read_table, write_table
from mirrorlib.stats import delta_cdf

matplotlib.use("Agg")

POTENTIALS = ("negative_entropy", "2-norm", "3-norm")


def problem(N: int = 6, D: int = 30, kind: str = "short", seed: int = 0):
    return dg.random_problem(kind, N, D, 123, N, D, seed)


# The theory's objects


def test_row_space_residual_separates_row_space_from_its_complement():
    X, _, _ = problem()
    a = torch.randn(X.shape[0], dtype=torch.float64)
    assert dg.row_space_residual(X, X.T @ a) < 1e-13
    q, _ = torch.linalg.qr(X.T, mode="complete")
    outside = q[:, X.shape[0]]  # orthogonal to every row
    assert dg.row_space_residual(X, outside) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match="X must be"):
        dg.row_space_residual(X, torch.ones(X.shape[1] + 1))


@pytest.mark.parametrize("name", POTENTIALS)
def test_projection_satisfies_the_optimality_conditions(name):
    X, y, w0 = problem(N=8, D=60)
    pot = potential(name)
    proj = dg.bregman_projection(X, y, w0, pot)
    assert proj.converged
    assert float((X @ proj.w - y).abs().max()) < 1e-7
    dual = pot.to_dual(proj.w) - pot.to_dual(w0)
    assert torch.allclose(dual, X.T @ proj.a, atol=1e-9)
    assert dg.row_space_residual(X, dual) < 1e-10
    if name == "negative_entropy":
        assert bool((torch.sign(proj.w) == torch.sign(w0)).all())


@pytest.mark.parametrize("name", POTENTIALS)
def test_mirror_descent_newton_and_scipy_agree(name):
    X, y, w0 = problem(N=5, D=20)
    fit = dg.fit_mirror_descent(X, y, w0, name, dg.PRESETS["ci"].md_lrs, 2000)
    proj = dg.bregman_projection(X, y, w0, name)
    w_sp = dg.bregman_projection_scipy(X, y, w0, name)
    scale = float((proj.w - w0).abs().max())
    assert fit.loss < 1e-20
    assert float((fit.w - proj.w).abs().max()) / scale < 1e-8
    assert np.abs(w_sp - proj.w.numpy()).max() / scale < 1e-5
    # the projection is the closest solution: any other solution is farther in D_phi
    pot = potential(name)
    null = torch.linalg.svd(X, full_matrices=True).Vh[X.shape[0] :]
    other = proj.w + 1e-3 * null[0] * (proj.w.abs().max())
    assert float(pot.bregman(other, w0).sum()) > float(pot.bregman(proj.w, w0).sum())


@pytest.mark.parametrize("name", POTENTIALS)
@pytest.mark.parametrize(("kind", "N", "D", "seed"), [("binary", 31, 300, 0), ("short", 60, 400, 1),
                                                      ("long", 20, 500, 2)])  # fmt: skip
def test_newton_cg_projection_matches_the_dense_reference(name, kind, N, D, seed):
    # float32 products in the conjugate gradients; a, w(a) and the stopping test in float64:
    # the same point as the dense float64 Newton, to rounding (measured: at most 4.4e-9 of the
    # change in w and 9e-14 in the Delta-CDF, up to D = 5000 and N = D^0.75)
    X, y, w0 = problem(N=N, D=D, kind=kind, seed=seed)
    pot = potential(name)
    fast = dg.bregman_projection(X, y, w0, pot)
    dense = dg.bregman_projection_dense(X, y, w0, pot)
    assert fast.converged and dense.converged
    assert fast.residual <= 1e-11
    scale = float((dense.w - w0).abs().max())
    assert float((fast.w - dense.w).abs().max()) / scale < 1e-8

    def dual_change(w):
        return pot.to_dual(w) - pot.to_dual(w0)

    assert float((dual_change(fast.w) - dual_change(dense.w)).abs().max()) < 1e-8 * float(
        dual_change(dense.w).abs().max()
    )
    assert delta_cdf(dual_change(fast.w)) == pytest.approx(
        delta_cdf(dual_change(dense.w)), abs=1e-10
    )


def test_newton_cg_reaches_the_3_norm_projection_where_tangent_newton_stalls():
    # the 3-norm's w = sign(theta) |theta|^(1/2): a tangent Newton step sends every theta_i near 0
    # to about -theta_i, so the dense reference creeps (here 44 steps) and, with a budget of 40,
    # stops short; the secant curvature of the fast path lands on them (here in 19)
    X, y, w0 = problem(N=100, D=600, kind="short", seed=0)
    assert not dg.bregman_projection_dense(X, y, w0, "3-norm", max_iter=40).converged
    fast = dg.bregman_projection(X, y, w0, "3-norm", max_iter=40)
    assert fast.converged and fast.residual <= 1e-11
    dense = dg.bregman_projection_dense(X, y, w0, "3-norm")
    assert float((fast.w - dense.w).abs().max()) < 1e-9 * float((dense.w - w0).abs().max())


def test_linearised_solution_is_exact_for_the_2_norm_and_close_for_small_changes():
    X, y, w0 = problem(N=5, D=400)
    exact = dg.bregman_projection(X, y, w0, "2-norm").w
    assert torch.allclose(dg.linearised_solution(X, y, w0, "2-norm"), exact, atol=1e-12)
    # negative entropy: a tiny change (labels near X w0) is linear to second order
    y_small = X @ w0 + 1e-3 * y
    w_star = dg.bregman_projection(X, y_small, w0, "ne").w
    w_lin = dg.linearised_solution(X, y_small, w0, "ne")
    assert float((w_star - w_lin).norm() / (w_star - w0).norm()) < 1e-2
    # and the error grows with the change
    w_star = dg.bregman_projection(X, y, w0, "ne").w
    w_lin = dg.linearised_solution(X, y, w0, "ne")
    assert float((w_star - w_lin).norm() / (w_star - w0).norm()) > 1e-2


def test_negative_entropy_has_no_solution_when_the_signs_forbid_it():
    # one example, all inputs and weights positive: X w > 0 can never reach y = -1
    X = torch.ones(1, 10, dtype=torch.float64)
    w0 = torch.full((10,), 0.1, dtype=torch.float64)
    y = torch.tensor([-1.0], dtype=torch.float64)
    assert not dg.bregman_projection(X, y, w0, "ne").converged
    assert not dg.sign_feasible(X, y, w0)
    assert dg.bregman_projection(X, y, w0, "3-norm").converged
    assert dg.sign_feasible(X, -y, w0)


def test_relative_change_prediction_matches_sqrt_2n_over_d_for_the_2_norm():
    w0 = torch.randn(10_000, dtype=torch.float64)
    w0 /= w0.norm()
    assert dg.relative_change_prediction(w0, "2-norm", 100, 1.0) == pytest.approx(
        math.sqrt(2 * 100 / 10_000)
    )
    ratio = dg.relative_change_prediction(w0, "ne", 100, 1.0) / math.sqrt(0.02)
    assert ratio == pytest.approx(math.sqrt(math.pi / 2), rel=0.03)


def test_binary_inputs_are_signs_and_paper_inputs_have_the_stated_variance():
    gen = torch.Generator().manual_seed(0)
    X = dg.sample_inputs("binary", 50, 40, gen)
    assert set(X.unique().tolist()) == {-1.0, 1.0}
    X = dg.sample_inputs("short", 4000, 30, gen)
    assert float(X.var()) == pytest.approx(dg.input_variance("short"), rel=0.05)
    with pytest.raises(InputError, match="unknown inputs"):
        dg.sample_inputs("pixels", 2, 3, gen)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"small_shapes": ((5, 5),)}, "1 <= N < D"),
        ({"lin_ratios": (0.5, 1.0)}, "lin_ratios"),
        ({"clt_alphas": (1.0,)}, "clt_alphas"),
        ({"clt_inputs": ("pixels",)}, "unknown inputs"),
        ({"clt_seeds": 0}, "clt_seeds"),
        ({"nope": 1}, "unknown setting"),
    ],
)
def test_bad_settings_raise(overrides, message):
    with pytest.raises(InputError, match=message):
        dg.config("ci", **overrides)


# The experiments, at small settings

SMALL = dg.config(
    "ci",
    small_shapes=((4, 16),),
    small_seeds=1,
    md_steps=1500,
    lin_dim=150,
    lin_ratios=(0.02, 0.2, 0.8),
    lin_seeds=2,
    clt_dims=(100, 1000),
    clt_alphas=(0.5,),
    clt_inputs=("binary", "short"),
    clt_seeds=2,
    widths=(16, 64),
    deep_n=20,
    deep_seeds=1,
    pretrain_epochs=2,
)


def test_implicit_bias_table():
    table = dg.run_implicit_bias(SMALL)
    assert len(table) == len(POTENTIALS)
    assert (table["row_residual"] < 1e-12).all()
    assert (table[["md_vs_newton", "md_vs_scipy", "scipy_vs_newton"]] < 1e-4).all().all()


def test_implicit_bias_flags_problems_negative_entropy_cannot_fit():
    # seed 11 of a 5 x 20 problem has no solution with the signs of w0: mirror descent with the
    # negative entropy cannot fit it, and the table says so instead of reporting a failure
    cfg = dg.config("ci", small_shapes=((5, 20),), small_seeds=12,
                    potentials=("negative_entropy", "2-norm"))  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):
        table = dg.run_implicit_bias(cfg)
    unsolvable = table[~table["solvable"]]
    pairs = zip(unsolvable["seed"], unsolvable["potential"], strict=True)
    assert list(pairs) == [(11, "negative_entropy")]
    assert unsolvable["md_loss"].iloc[0] > 1e-3 and not unsolvable["newton_converged"].iloc[0]
    solvable = table[table["solvable"]]
    assert (solvable["row_residual"] < 1e-12).all() and solvable["newton_converged"].all()


def test_linearisation_table():
    table = dg.run_linearisation(SMALL)
    assert len(table) == 3 * 2 * len(POTENTIALS)
    ne = table[table["potential"] == "negative_entropy"].groupby("ratio")
    errors = ne["lin_error"].median()
    assert errors[0.02] < errors[0.2]
    assert not ne["converged"].any()[0.8]  # too many equations for fixed signs
    last = table[(table["potential"] == "negative_entropy") & (table["ratio"] == 0.8)]
    assert last["sign_feasible"].eq(False).all()  # certified by the linear programme
    two = table[table["potential"] == "2-norm"]
    assert two["converged"].all() and (two["lin_error"] < 1e-10).all()


def test_clt_table_delta_cdf_falls_and_change_follows_sqrt_2n_over_d():
    table = dg.run_clt(SMALL)
    assert table["converged"].all()
    by_d = table.groupby("D")["delta_cdf"].median()
    assert by_d[1000] < by_d[100]
    two = table[(table["potential"] == "2-norm") & (table["D"] == 1000)]
    ratio = two["relative_change"] / two["prediction"]
    assert ratio.between(0.85, 1.2).all()
    null = table[table["inputs"] == "short"].groupby("D")["null"].first()
    floor = table[table["inputs"] == "short"].groupby("D")["floor"].first()
    assert (null < floor).all()  # alternating correlations: below the independent floor


def test_clt_scan_resumes_from_its_checkpoints_and_runs_seeds_in_parallel(tmp_path):
    cfg = dg.config("ci", clt_dims=(100, 180), clt_seeds=2, potentials=("2-norm", "3-norm"))
    table = dg.run_clt(cfg, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[1].endswith("_seed1.csv")
    (tmp_path / files[1]).unlink()  # interrupted after seed 0: seed 1 is recomputed
    seed0 = read_table(tmp_path, files[0][:-4]).assign(delta_cdf=-1.0)
    write_table(seed0, tmp_path, files[0][:-4])  # a checkpoint is read, not recomputed
    resumed = dg.run_clt(cfg, tmp_path)
    assert (resumed.loc[resumed["seed"] == 0, "delta_cdf"] == -1.0).all()
    pd.testing.assert_frame_equal(resumed[resumed["seed"] == 1], table[table["seed"] == 1])
    pd.testing.assert_frame_equal(dg.run_clt(cfg, workers=2), table)


KINDS = ("binary", "short", "long")


def clt_like_table(ratio_of, dims=(100, 1000), alphas=(0.5, 0.75), seeds=4) -> pd.DataFrame:
    """A :func:`dg.run_clt`-shaped table whose ``delta_cdf / null`` is ``ratio_of(k, D, alpha,
    seed, potential)`` for input law ``KINDS[k]``; the null differs per input law."""
    nulls = (0.02, 0.01, 0.03)
    rows = [
        {"inputs": kind, "D": D, "alpha": alpha, "N": int(D**alpha), "seed": s,
         "potential": pot, "converged": True, "null": nulls[k],
         "delta_cdf": nulls[k] * ratio_of(k, D, alpha, s, pot)}
        for k, kind in enumerate(KINDS)
        for D in dims
        for alpha in alphas
        for s in range(seeds)
        for pot in POTENTIALS
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_gaussian_departure_reads_the_largest_d_and_the_given_alpha():
    jitter = np.random.default_rng(0).normal(0, 0.05, (3, 4, 3))

    def ratio_of(k, D, alpha, s, pot):
        # 3-norm far above the others at D = 1000, alpha = 0.75; elsewhere negative entropy
        top = "3-norm" if (D, alpha) == (1000, 0.75) else "negative_entropy"
        return (1.6 if pot == top else 1.0) + jitter[k, s, POTENTIALS.index(pot)]

    table = clt_like_table(ratio_of)
    found = dg.gaussian_departure(table, 0.75)
    assert found.most == found.leader == "3-norm"
    assert found.words == {"2-norm": "higher than", "negative_entropy": "higher than"}
    gap = found.ratios["3-norm"] - found.ratios["2-norm"]
    assert found.differences["2-norm"] == pytest.approx((gap.mean(), gap.sem()))
    assert found.ratios.shape == (12, 3)  # 3 input laws x 4 seeds, paired
    expected = ratio_of(KINDS.index("short"), 1000, 0.75, 2, "3-norm")
    assert found.ratios.loc[("short", 2), "3-norm"] == pytest.approx(expected)
    assert dg.gaussian_departure(table, 0.5).most == "negative_entropy"
    with pytest.raises(InputError, match="no alpha"):
        dg.gaussian_departure(table, 0.9)


def test_gaussian_departure_pairs_by_inputs_and_seed():
    # Each pair has its own level (0.5 to 2.7): unpaired, a lead of 0.1 would be lost in it.
    jitter = np.random.default_rng(2).normal(0, 0.01, (3, 4, 3))
    lead = {"negative_entropy": 0.1, "2-norm": 0.0, "3-norm": 0.01}

    def ratio_of(k, D, alpha, s, pot):
        return 0.5 + 0.2 * (3 * s + k) + lead[pot] + jitter[k, s, POTENTIALS.index(pot)]

    assert dg.gaussian_departure(clt_like_table(ratio_of), 0.75).most == "negative_entropy"

    # Two potentials clearly above the 2-norm, with a lead over each other that is noise.
    noise = np.random.default_rng(1).normal(0, 0.3, (3, 4))

    def close_race(k, D, alpha, s, pot):
        return 1.0 + {"negative_entropy": 0.5 + noise[k, s], "3-norm": 0.5}.get(pot, 0.0)

    found = dg.gaussian_departure(clt_like_table(close_race), 0.75)
    assert found.most is None
    rival = ({"negative_entropy", "3-norm"} - {found.leader}).pop()
    assert found.words == {rival: "not distinguishable from", "2-norm": "higher than"}


def test_departure_scales_reads_an_unresolved_order_as_no_contradiction():
    def found(most, leader="3-norm"):
        return dg.GaussianDeparture(pd.DataFrame(), most or leader, {}, {}, most)

    assert dg.departure_scales(found("3-norm"), found("3-norm")) == "the two scales agree"
    assert dg.departure_scales(found(None), found("3-norm")).startswith(
        "this build's run leaves the order unresolved, which does not contradict"
    )
    other_first = dg.departure_scales(found(None, "negative_entropy"), found("3-norm"))
    assert other_first.startswith("this build's run leaves the order unresolved, and its point")
    assert "the negative entropy first, not the 3-norm" in other_first
    assert dg.departure_scales(found("3-norm"), found(None)).startswith(
        "the stored table, at the paper's protocol, does not resolve"
    )
    assert dg.departure_scales(found("2-norm"), found("3-norm")) == "the two scales disagree"
    assert dg.departure_scales(found(None), found(None)) == "neither scale resolves the order"


def test_gaussian_departure_drops_pairs_with_an_unsolved_potential():
    table = clt_like_table(lambda k, D, a, s, pot: 2.0 if pot == "3-norm" else 1.0 + 0.01 * s)
    failed = (table["inputs"] == "long") & (table["seed"] == 0) & (table["potential"] == "2-norm")
    table.loc[failed, ["converged", "delta_cdf"]] = (False, np.nan)
    found = dg.gaussian_departure(table, 0.75)
    assert ("long", 0) not in found.ratios.index and len(found.ratios) == 11
    assert found.most == "3-norm"
    two_pairs = table[(table["seed"] < 2) & (table["inputs"] == "long")]
    with pytest.raises(InputError, match="at least two"):
        dg.gaussian_departure(two_pairs, 0.75)


def test_histograms_become_gaussian_with_n():
    hists = dg.dual_change_histograms(SMALL, "binary", D=500, ns=(1, 40))
    scores = hists.groupby(["N", "potential"])["delta_cdf"].first().unstack()
    assert (scores.loc[1] > 0.4).all()  # two values: far from Gaussian
    assert (scores.loc[40] < 0.1).all()
    widths = hists["right"] - hists["left"]
    mass = (hists["density"] * widths).groupby([hists["N"], hists["potential"]]).sum()
    assert np.allclose(mass, 1.0, atol=0.01)
    with pytest.raises(InputError, match="1 <= N < D"):
        dg.dual_change_histograms(SMALL, "binary", D=100, ns=(100,))


def test_deep_table_and_figures(tmp_path):
    summary, hists = dg.run_deep(SMALL)
    assert len(summary) == 2 * len(POTENTIALS)
    assert (summary["train_accuracy"] >= 0.9).all()
    assert set(summary["D"]) == {16**2, 64**2}
    lin = summary.groupby("width")["lin_error"].median()
    assert lin[64] < lin[16]  # wider stays closer to its linearisation
    assert set(hists["width"]) == {16, 64}
    axes = dgplot.plot_deep(summary, hists)
    assert len(axes) == 4
    axes = dgplot.plot_linearisation(
        dg.run_linearisation(dg.config("ci", lin_dim=60, lin_ratios=(0.1,), lin_seeds=1))
    )
    assert len(axes) == 3


def test_plots_read_the_tables():
    clt = pd.DataFrame(
        {
            "inputs": ["binary"] * 4,
            "D": [100, 100, 1000, 1000],
            "alpha": 0.5,
            "N": [10, 10, 31, 31],
            "seed": 0,
            "potential": ["2-norm", "ne", "2-norm", "ne"],
            "delta_cdf": [0.1, 0.12, 0.04, 0.05],
            "relative_change": [0.45, 0.5, 0.25, 0.3],
            "prediction": [0.45, 0.45, 0.25, 0.25],
            "floor": [0.12, 0.12, 0.04, 0.04],
            "null": [0.12, 0.12, 0.04, 0.04],
        }
    )
    axes = dgplot.plot_clt(clt)
    assert axes.shape == (1, 2)


def test_linearisation_and_width_summaries_quote_medians_over_seeds():
    rows = [
        {"potential": pot, "ratio": ratio, "seed": s, "lin_error": base * ratio + s}
        for pot, base in (("negative_entropy", 1.0), ("3-norm", 10.0), ("2-norm", 0.0))
        for ratio in (0.01, 0.5, 0.7)
        for s in range(3)
    ]
    values = dg.linearisation_summary(pd.DataFrame(rows))
    assert values == pytest.approx({"lin_ne_lo": 1.01, "lin_ne_hi": 1.5, "lin_p3_lo": 1.1,
                                    "lin_p3_hi": 6.0})  # fmt: skip
    with pytest.raises(InputError, match="no N / D = 0.3"):
        dg.linearisation_summary(pd.DataFrame(rows), high_ratio=0.3)
    deep = pd.DataFrame({"width": [64, 64, 64, 256], "seed": [0, 1, 2, 0],
                         "lin_error": [0.1, 0.3, 0.2, 0.05], "relative_change": 1.0,
                         "delta_cdf": 0.02, "floor": 0.01, "train_accuracy": 1.0})  # fmt: skip
    by_width = dg.width_summary(deep)
    assert list(by_width.index) == [64, 256]
    assert list(by_width.columns) == ["lin_error", "relative_change", "delta_cdf", "floor"]
    assert by_width.loc[64, "lin_error"] == pytest.approx(0.2)
