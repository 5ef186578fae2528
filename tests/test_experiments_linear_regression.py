"""Tests of the linear-regression experiment (Fig 2) and its correlated inputs.

The per-run loop (``nn.Linear`` + ``MirrorDescent`` + ``CosineAnnealingLR``) is the ground truth
for the batched trainer; the dense Toeplitz matrix is the ground truth for the FFT sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib import delta_cdf_floor, potential
from mirrorlib.experiments import correlated_inputs as CI
from mirrorlib.experiments import linear_regression as LR

POTENTIALS = ("negative_entropy", "2-norm", "3-norm")
TINY = LR.config("ci", dims=(100, 150), n_seeds=2)


def problem(D: int, N: int, batch: int, p: float = 2.0, seed: int = 0):
    """Correlated float64 inputs ``(batch, N, D)``, labels ``+-1`` and ``w0 ~ N(0, I/D)``."""
    gen = torch.Generator().manual_seed(seed)
    emb = CI.circulant_embedding(D, p)
    X = torch.stack([CI.correlated_inputs(N, emb, gen, torch.float64) for _ in range(batch)])
    y = torch.randint(0, 2, (batch, N), generator=gen).double() * 2 - 1
    w0 = torch.randn(batch, D, generator=gen, dtype=torch.float64) / math.sqrt(D)
    return X, y, w0


# --- the batched trainer against the per-run loop -------------------------------------------


@pytest.mark.parametrize("name", POTENTIALS)
def test_batched_seeds_equal_per_run_loop(name):
    X, y, w0 = problem(D=40, N=9, batch=3)
    lr, steps = 0.05, 30
    w, loss = LR.train_batched(X, y, w0, name, lr, steps)
    for b in range(3):
        w_ref, loss_ref = LR.train_per_run(X[b], y[b], w0[b], name, lr, steps)
        torch.testing.assert_close(w[b], w_ref, rtol=1e-10, atol=1e-13)
        assert float(loss[b]) == pytest.approx(loss_ref, rel=1e-9)


@pytest.mark.parametrize("name", POTENTIALS)
def test_batched_learning_rates_on_shared_inputs_equal_per_run_loop(name):
    X, y, w0 = problem(D=40, N=9, batch=1)
    lrs = (1e-3, 1e-2, 5e-2)
    start = w0.expand(len(lrs), -1)
    w, loss = LR.train_batched(X[0], y[0], start, name, torch.tensor(lrs, dtype=torch.float64), 25)
    for k, lr in enumerate(lrs):
        w_ref, loss_ref = LR.train_per_run(X[0], y[0], w0[0], name, lr, 25)
        torch.testing.assert_close(w[k], w_ref, rtol=1e-10, atol=1e-13)
        assert float(loss[k]) == pytest.approx(loss_ref, rel=1e-9)


def test_a_diverging_run_leaves_the_others_untouched():
    X, y, w0 = problem(D=30, N=5, batch=1)
    lrs = torch.tensor([1e-2, 1e10], dtype=torch.float64)
    w, loss = LR.train_batched(X[0], y[0], w0.expand(2, -1), "2-norm", lrs, 40)
    alone, _ = LR.train_batched(X[0], y[0], w0, "2-norm", 1e-2, 40)
    assert not math.isfinite(float(loss[1]))
    torch.testing.assert_close(w[0], alone[0], rtol=1e-12, atol=1e-15)


# --- learning-rate search ---------------------------------------------------------------------


def test_select_lr_skips_diverged_runs_and_extends_the_budget():
    X, y, w0 = problem(D=30, N=5, batch=1)
    choice = LR.select_lr(X[0], y[0], w0[0], "2-norm", lrs=(1e-2, 1e10), min_steps=40)
    assert choice.lr == 1e-2 and math.isfinite(choice.loss)
    never = LR.select_lr(X[0], y[0], w0[0], "2-norm", (1e-3, 1e-2), 10, 10, 35, loss_target=1e-300)
    assert never.steps == 35
    with pytest.raises(RuntimeError, match="every learning rate diverged"):
        LR.select_lr(X[0], y[0], w0[0], "2-norm", lrs=(1e10, 1e11), min_steps=40, max_steps=40)


def test_select_lr_stops_at_the_first_budget_that_reaches_the_target():
    X, y, w0 = problem(D=60, N=7, batch=1)
    choice = LR.select_lr(X[0], y[0], w0[0], "2-norm")
    assert choice.steps == 100 and choice.loss < 1e-3 and choice.lr in LR.PAPER_LRS


# --- the dual change ------------------------------------------------------------------------


@pytest.mark.parametrize("name", POTENTIALS)
def test_dual_change_lies_in_the_row_space_of_x(name):
    X, y, w0 = problem(D=120, N=10, batch=1, p=1.0)
    choice = LR.select_lr(X[0], y[0], w0[0], name)
    w, loss = LR.train_batched(X, y, w0, name, choice.lr, choice.steps)
    assert float(loss[0]) < 1e-3
    pot = potential(name)
    diff = pot.to_dual(w[0]) - pot.to_dual(w0[0])
    coef = torch.linalg.lstsq(X[0].T, diff).solution
    residual = torch.linalg.norm(diff - X[0].T @ coef) / torch.linalg.norm(diff)
    assert float(residual) < 1e-10


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_correlated_null_lies_below_the_independent_floor(p):
    null = LR.delta_cdf_null(500, p)
    assert 0.6 * delta_cdf_floor(500) < null < 0.95 * delta_cdf_floor(500)


def test_dual_change_stats_mark_diverged_runs():
    w0 = torch.randn(3, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = w0 * 1.1 + 0.01 * torch.randn(3, 200, dtype=torch.float64)
    w[2, 5] = math.inf
    gaussianity, relative = LR.dual_change_stats("2-norm", w0, w)
    assert np.isfinite(gaussianity[:2]).all() and np.isnan(gaussianity[2])
    assert np.isnan(relative[2])
    expected = torch.linalg.norm(w[0] - w0[0]) / torch.linalg.norm(w0[0])
    assert relative[0] == pytest.approx(float(expected))


# --- correlated inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("p", [2.0, 1.0])
@pytest.mark.parametrize("size", [None, 40])
def test_circulant_construction_implies_exactly_c_for_every_nested_d(p, size):
    emb = CI.circulant_embedding(16, p, size=size)
    cov = emb.covariance()
    for D in range(1, 17):
        np.testing.assert_allclose(cov[:D, :D], CI.toeplitz_covariance(D, p), rtol=0, atol=1e-10)
    np.testing.assert_allclose(emb.cross_covariance(), 0.0, atol=1e-10)


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_embedding_eigenvalues_are_positive_at_every_paper_d(p):
    table = CI.embedding_table(LR.PAPER_DIMS, powers=(p,))
    assert (table["min_eigenvalue"] > 0.25).all()
    assert (table["size"] >= 2 * (table["D"] - 1)).all() and (table["size"] % 2 == 0).all()
    assert CI.fft_size(20000) == 40000


def test_negative_eigenvalues_and_short_embeddings_are_refused():
    with pytest.raises(ValueError, match="negative eigenvalue -1.000e-12"):
        CI._check_eigenvalues(np.array([1.0, -1e-12]), 2, 2.0, 2)
    with pytest.raises(ValueError, match="at least 2 \\(D - 1\\) = 18"):
        CI.circulant_embedding(10, 2.0, size=16)
    with pytest.raises(ValueError, match="power p must be a finite number > 0"):
        CI.circulant_embedding(10, 0.0)


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_sampled_inputs_have_covariance_c_plus_uniform_noise(p):
    """Empirical covariance of x = Lz + u within 5 Monte-Carlo standard errors of C + I/12,
    on the first and the last 6 coordinates of a D = 64 draw (nested and stationary)."""
    n = 60_000
    x = CI.correlated_inputs(
        n, CI.circulant_embedding(64, p), torch.Generator().manual_seed(1), torch.float64
    )
    target = CI.toeplitz_covariance(6, p) + np.eye(6) / 12
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target**2) / n)
    for block in (x[:, :6], x[:, -6:]):
        emp = np.cov(block.numpy().T)
        assert np.all(np.abs(emp - target) < 5 * se)


# --- presets, validation, the table ---------------------------------------------------------


def test_paper_preset_is_the_paper_protocol():
    cfg = LR.config("paper")
    assert cfg.dims == LR.PAPER_DIMS and cfg.dims[0] == 100 and cfg.dims[-1] == 20000
    assert [LR.n_samples(D, 0.5) for D in cfg.dims][-1] == 141
    assert [LR.n_samples(D, 0.75) for D in cfg.dims][-1] == 1681
    assert np.allclose(cfg.lrs, np.logspace(-7, -1, 16)) and cfg.n_seeds == 30
    assert (cfg.min_steps, cfg.step_increment, cfg.max_steps) == (100, 100, 500)
    assert set(cfg.corr_powers) == {1.0, 2.0} and set(cfg.alphas) == {0.5, 0.75}
    ci = LR.config("ci")
    assert max(ci.dims) == 2000 and 3 <= ci.n_seeds <= 5 and ci.alphas == cfg.alphas


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dims": ()}, "dims must be a non-empty sequence"),
        ({"dims": (1, 10)}, "dims must be integers >= 2"),
        ({"dims": (100, 100)}, "dims must be distinct"),
        ({"dims": (100.5,)}, "dims must be integers >= 2"),
        ({"alphas": (1.0,)}, r"alphas must lie in \(0, 1\)"),
        ({"corr_powers": (0.0,)}, "corr_powers must be finite numbers > 0"),
        ({"corr_powers": "2"}, "corr_powers must be a non-empty sequence"),
        ({"potentials": ("banana",)}, "unknown potential 'banana'"),
        ({"lrs": (0.1, 0.01)}, "lrs must be increasing"),
        ({"lrs": (0.1, 0.1)}, "lrs must be distinct"),
        ({"potentials": ("ne", "ne")}, "potentials must be distinct"),
        ({"lrs": (-1.0,)}, "lrs must be finite numbers > 0"),
        ({"n_seeds": 0}, "n_seeds must be an integer >= 1"),
        ({"max_steps": 50}, r"max_steps \(50\) must be at least min_steps \(100\)"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"loss_target": 0.0}, "loss_target must be > 0"),
        ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        LR.config("ci", **overrides)


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        LR.config("huge")


def test_run_is_deterministic_and_tidy():
    table = LR.run(TINY, progress=False)
    again = LR.run(TINY, progress=False)
    pd.testing.assert_frame_equal(table, again)
    assert list(table.columns) == list(LR.COLUMNS)
    assert len(table) == 2 * 2 * 2 * 3 * 2  # powers x D x alphas x potentials x seeds
    assert set(table["potential"]) == {"negative_entropy", "2-norm", "3-norm"}
    expected_n = [LR.n_samples(D, a) for D, a in zip(table["D"], table["alpha"], strict=True)]
    assert (table["N"] == expected_n).all()
    assert table["lr"].isin(LR.PAPER_LRS).all() and table["steps"].between(100, 500).all()
    cell = ["corr_power", "alpha", "D", "potential"]
    assert (table.groupby(cell)[["lr", "steps"]].nunique() == 1).all().all()
    assert table["converged"].mean() > 0.8
    assert (table["delta_cdf_floor"] == table["D"].map(delta_cdf_floor)).all()
    nulls = [LR.delta_cdf_null(D, p) for D, p in zip(table["D"], table["corr_power"], strict=True)]
    assert (table["delta_cdf_null"] == nulls).all()
    assert table["delta_cdf"].between(0, 1).all() and (table["relative_change"] > 0).all()


def test_cell_problems_are_the_problems_run_trains():
    cfg = LR.config("ci", dims=(40, 60), alphas=(0.5,), corr_powers=(1.0,), n_seeds=2)
    table = LR.run(cfg, progress=False)
    seeds, held = LR.cell_problems(cfg, 1.0, 40, 0.5)
    assert seeds.X.shape == (2, LR.n_samples(40, 0.5), 40) and held.w0.shape == (40,)
    for name in POTENTIALS:
        choice = LR.select_lr(held.X, held.y, held.w0, name, cfg.lrs)
        w, _ = LR.train_batched(seeds.X, seeds.y, seeds.w0, name, choice.lr, choice.steps)
        gaussianity, _ = LR.dual_change_stats(name, seeds.w0, w)
        cell = table[(table["D"] == 40) & (table["potential"] == potential(name).name)]
        np.testing.assert_allclose(gaussianity, cell["delta_cdf"].to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="not a cell"):
        LR.cell_problems(cfg, 1.0, 50, 0.5)


def test_run_cell_gives_runs_rows_bitwise():
    cfg = LR.config("ci", dims=(40, 60), alphas=(0.5, 0.75), corr_powers=(1.0,), n_seeds=3)
    table = LR.run(cfg, progress=False)
    cell = LR.run_cell(cfg, 1.0, 60, 0.75, potentials=("negative_entropy", "3-norm"))
    expected = table[(table["D"] == 60) & (table["alpha"] == 0.75)
                     & table["potential"].isin(["3-norm", "negative_entropy"])]  # fmt: skip
    pd.testing.assert_frame_equal(cell, expected.reset_index(drop=True), check_exact=True)
    assert len(LR.run_cell(cfg, 1.0, 40, 0.5)) == 3 * len(cfg.potentials)


def test_summarise_largest_d_reads_the_largest_cell():
    cfg = LR.config("ci", dims=(40, 60), corr_powers=(1.0,), n_seeds=3)
    table = LR.run(cfg, progress=False)
    ratio, values = LR.summarise_largest_d(table)
    big = table[(table["D"] == 60) & (table["alpha"] == 0.5) & (table["potential"] == "3-norm")]
    expected = big["delta_cdf"].median() / big["delta_cdf_null"].iloc[0]
    assert ratio.loc[("3-norm", 0.5), 1.0] == pytest.approx(expected)
    assert values["ratio_05_min"] <= expected <= values["ratio_05_max"]
    assert values["n_pairs"] == 3 and values["n_over_d"] == LR.n_samples(60, 0.75) / 60
    assert values["ne_vs_2"] in ("lower than", "higher than", "not distinguishable from")
