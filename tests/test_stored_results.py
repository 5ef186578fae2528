"""CI check of the stored paper-scale results (results/paper/): the cheapest rows of each stored
table are recomputed from their seeds with the current code and compared with the stored values.
A stored table that the current code would no longer reproduce fails here."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.experiments import biology as bio
from mirrorlib.experiments import cpu_threads, geometry
from mirrorlib.experiments import deep_networks as dn
from mirrorlib.experiments import dual_gaussian as dg
from mirrorlib.experiments import linear_regression as linreg
from mirrorlib.experiments import lognormal_dale as ld
from mirrorlib.experiments import synapse_data as sd
from mirrorlib.experiments import wrong_potential as wp
from mirrorlib.stored import Provenance, read_stored

RTOL = 1e-8
"""Relative tolerance on recomputed values. Measured: recomputing a central-limit point (binary
and short-range inputs; 1 and 2 torch threads; three runs) gave bit-identical values, and the
CSV round trip is exact; the margin covers another BLAS build, whose float32 rounding changes
the Newton-CG path but not its converged point beyond ~4e-9 of the change in w (the fast
projection against the dense float64 one, benchmarks/bench_projection.py)."""


STORED_CPU_CAPABILITY = "AVX512"
"""torch's CPU kernels (``torch.backends.cpu.get_cpu_capability()``) of the machines that trained
the stored networks. Training amplifies the last bits in which kernels of another instruction
set round: measured at commit 6857248, MLP-32's stored finetuning run (2-norm, seed 0) ends at a
final loss of 0.02655 as stored, 0.02848 with AVX2 kernels and 0.02708 with the default ones;
the biology network's accuracy moves by 7e-4, the self-supervised run's loss by 2e-5 and the
batch-norm lag's by 2e-3. The records did not name the instruction set then; these tests passed on
those machines and fail on an AVX2-only one at the same commit, and torch's only other x86
capability above AVX2 is AVX512. Elsewhere the tests that retrain a network check what the
chapters read from the rows instead, to tolerances measured with AVX2 kernels
(:data:`OTHER_KERNELS_ATOL`, :data:`OTHER_KERNELS_BIOLOGY_RTOL`, :data:`OTHER_KERNELS_LAG_ATOL`);
the other rows here do not depend on the kernels (they pass with AVX2 kernels too)."""

SAME_KERNELS = torch.backends.cpu.get_cpu_capability() == STORED_CPU_CAPABILITY
"""Whether this machine's torch kernels are those that trained the stored networks."""

OTHER_KERNELS_ATOL = 0.02
"""Absolute tolerance on a stored sweep run's Delta-CDF columns recomputed with other CPU kernels
than :data:`STORED_CPU_CAPABILITY`. Measured at commit 8a9bbc2 with AVX2 kernels, MLP-32's seed-0
runs (2-norm, 3-norm, negative entropy; two threads) ended at the stored epochs and training
accuracy, with the stored best candidate, and Delta-CDF (centred and uncentred) within 0.0078 of
the stored values (3.1 % of them at most); their final losses moved by up to 13 %. The
self-supervised CNN's seed-0 runs (one thread) came within 1.4e-4. The check there is of the
run's verdict: the same epochs, accuracy and best candidate, Delta-CDF within this."""

OTHER_KERNELS_BIOLOGY_RTOL = 5e-3
"""Relative tolerance on the biology network's retrained statistics with other CPU kernels than
:data:`STORED_CPU_CAPABILITY`. Measured at commit f00aad6 with AVX2 kernels (the narrowest hidden
layer, seed 0, the three networks): every statistic within 7.4e-4 of the stored one, relative
(the Gaussian-initialised GD network's training accuracy 0.99026 against 0.98957 stored, its
skewness of log|w| -1.3930 against -1.3935); test accuracies, weight counts, signs and sign flips
equal."""

OTHER_KERNELS_LAG_ATOL = 0.05
"""Absolute tolerance on the batch-norm lag's accuracies with other CPU kernels than
:data:`STORED_CPU_CAPABILITY`. Measured at commit f00aad6 with AVX2 kernels (one thread): the
accuracy with the running statistics 0.1556 against 0.1288 stored, with recalibrated statistics
0.4740 against 0.4816, the training loss 2.0729 against 2.0705. The check there is of the lag's
verdict: each accuracy within this, the recalibrated one above the running one by at least half
the stored gap, and the loss within 1 % relative."""


@pytest.mark.parametrize("seed", [0, 29])  # the two stretches of the stored run
def test_a_stored_central_limit_point_is_reproduced(seed):
    # the largest D at N = D^0.5 for iid sign inputs: paper scale, about 3 s
    stored, provenance = read_stored(dg.STORED_CHAPTER, "clt")
    assert isinstance(provenance, Provenance) and provenance.commit and provenance.wall_time_s > 0
    D = int(stored["D"].max())
    cell = stored[(stored["inputs"] == "binary") & (stored["D"] == D) & (stored["alpha"] == 0.5)
                  & (stored["seed"] == seed)].reset_index(drop=True)  # fmt: skip
    assert len(cell) == len(dg.PRESETS["paper"].potentials)
    again = pd.DataFrame(dg.clt_point(dg.config("paper"), "binary", D, 0.5, seed))
    pd.testing.assert_frame_equal(again[cell.columns], cell, check_exact=False, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", ["clt"])
def test_stored_tables_hold_the_paper_preset(name):
    stored, _ = read_stored(dg.STORED_CHAPTER, name)
    cfg = dg.PRESETS["paper"]
    assert set(stored["D"]) == set(cfg.clt_dims)
    assert set(stored["inputs"]) == set(cfg.clt_inputs)
    assert set(stored["alpha"]) == set(cfg.clt_alphas)
    seeds = sorted(set(stored["seed"]))
    assert seeds == list(range(len(seeds)))  # whole seeds, from 0


def _assert_rows_equal(
    again: pd.DataFrame, stored: pd.DataFrame, atol: float = 0.0, rtol: float = RTOL
) -> None:
    # through CSV as the stored table went (None becomes NaN, dtypes are read back)
    again = pd.read_csv(io.StringIO(again.to_csv(index=False)))[list(stored.columns)]
    pd.testing.assert_frame_equal(again, stored.reset_index(drop=True), check_exact=False,
                                  check_dtype=False, rtol=rtol, atol=atol)  # fmt: skip


def test_a_stored_biology_network_is_retrained():
    # the narrowest hidden layer, seed 0, all three networks: about 10 s. With other CPU kernels
    # than the stored run's, to OTHER_KERNELS_BIOLOGY_RTOL
    stored, provenance = read_stored("biology", "network_stats")
    assert provenance.wall_time_s > 0
    cfg = bio.config("paper")
    assert set(stored["hidden_units"]) == set(cfg.hidden_sizes)
    assert set(stored["seed"]) == set(cfg.seeds)
    width = min(cfg.hidden_sizes)
    again = bio.run(bio.config("paper", hidden_sizes=(width,), n_seeds=1)).stats
    cell = stored[(stored["hidden_units"] == width) & (stored["seed"] == cfg.seed)]
    _assert_rows_equal(again, cell, rtol=RTOL if SAME_KERNELS else OTHER_KERNELS_BIOLOGY_RTOL)


def test_the_stored_geometry_checks_are_reproduced():
    # deterministic, no seeds; values near machine precision are compared to 1e-12 absolute
    cfg = geometry.config("paper")
    stored, _ = read_stored("geometry", "trajectory_summary")
    problem = cfg.problem
    paths = geometry.trajectories(cfg.potentials, problem, cfg.lr, cfg.steps, cfg.n_record)
    proj = geometry.projections(cfg.potentials, problem)
    _assert_rows_equal(geometry.summarise_trajectories(paths, proj, problem), stored, atol=1e-12)
    stored, _ = read_stored("geometry", "step_check")
    again = geometry.check_mirror_step(cfg.check_potentials, cfg.check_n, cfg.check_lr, cfg.seed)
    _assert_rows_equal(again, stored, atol=1e-12)


def test_two_stored_fig2_runs_at_the_largest_d_are_reproduced():
    # one cell at D = 20,000 (alpha 0.5, short-range inputs), negative entropy and the 3-norm,
    # every seed: the draws need ~4 GB and about a minute (float32; bitwise on one device)
    stored, _ = read_stored("wrong_potential", "fig2")
    cfg = linreg.config("paper")
    D = int(stored["D"].max())
    names = ("negative_entropy", "3-norm")
    again = linreg.run_cell(cfg, 2.0, D, 0.5, potentials=names)
    cell = stored[(stored["D"] == D) & (stored["alpha"] == 0.5) & (stored["corr_power"] == 2.0)
                  & stored["potential"].isin(names)]  # fmt: skip
    _assert_rows_equal(again, cell)


def test_a_stored_neighbour_seed_is_reproduced():
    stored, _ = read_stored("wrong_potential", "neighbours")
    cfg = wp.config("paper")
    assert stored["seed"].nunique() == cfg.neighbour_seeds
    again = wp.neighbour_rows(wp.run_neighbours(wp.config("paper", neighbour_seeds=2)))
    _assert_rows_equal(again, stored[stored["seed"].isin(set(again["seed"]))])


def test_a_stored_lognormal_regression_seed_is_reproduced():
    # seed 0 at the smallest label scale, every alpha, start and potential: a few minutes
    stored, _ = read_stored("lognormal_dale", "regression")
    c = min(ld.PRESETS["paper"].label_scales)
    again = ld.run_regression(ld.config("paper", n_seeds_regression=1, label_scales=(c,),
                                        example_scale=c)).table  # fmt: skip
    _assert_rows_equal(again, stored[(stored["seed"] == 0) & (stored["label_scale"] == c)])


def test_stored_synapse_data_repetitions_are_reproduced():
    cfg = sd.config("paper")
    stored, _ = read_stored("synapse_data", "delta_aic_vs_n")
    n = min(cfg.aic_n)
    again = sd.run_aic_vs_n(sd.config("paper", aic_n=(n,), aic_reps=2))
    _assert_rows_equal(again, stored[(stored["n"] == n) & (stored["rep"] < 2)])
    stored, _ = read_stored("synapse_data", "known_w0_power")
    n = min(cfg.power_n)
    again = sd.run_known_w0_power(sd.config("paper", power_n=(n,), power_reps=1))
    _assert_rows_equal(again, stored[(stored["n"] == n) & (stored["rep"] == 0)])


def _reproduce_sweep_run(spec, cfg, threads: int, folder) -> None:
    """Pretrain the network again, finetune ``spec`` at its stored learning rate (the search is
    not rerun) on ``threads`` torch threads, and compare with the stored rows: float32 rounding
    depends on the thread count, so it must be the sweep's. With other CPU kernels than the
    stored run's (not :data:`SAME_KERNELS`), compares the run's verdict instead
    (:data:`OTHER_KERNELS_ATOL`)."""
    stored, _ = dn.stored_sweep()
    cell = stored[(stored["architecture"] == spec.architecture) & (stored["seed"] == spec.seed)
                  & (stored["trained_potential"] == spec.trained_potential)
                  & (stored["objective"] == spec.objective)]  # fmt: skip
    with cpu_threads(threads):
        setup = cfg.setup(spec.architecture)
        state = dn.pretrained_network(setup, cfg, folder, "cpu").state_dict()
        again = dn.finetune_run(spec, cfg, "cpu", float(cell["lr"].iloc[0]), state)
    again = again.sort_values("candidate").drop(columns=["seconds"])
    cell = cell.sort_values("candidate").drop(columns=["seconds"])
    if SAME_KERNELS:
        _assert_rows_equal(again, cell)
        return
    for column in ("epochs", "train_accuracy", "n_weights", "n_samples", "lr"):
        np.testing.assert_array_equal(again[column], cell[column], err_msg=column)
    best = [rows.set_index("candidate")["delta_cdf"].idxmin() for rows in (again, cell)]
    assert best[0] == best[1]
    for column in ("delta_cdf", "delta_cdf_uncentred"):
        np.testing.assert_allclose(again[column], cell[column], rtol=0, atol=OTHER_KERNELS_ATOL)


def test_the_stored_sweeps_hold_runs_of_the_paper_configuration():
    # runs too long to recompute here (EfficientNet-Lite0: 20-50 min each on one core) are at
    # least runs of the current paper sweep: its run ids and numbers of examples, collect's
    # columns, one row per candidate, no run stored twice
    cfg = dn.config("paper", objectives=("supervised", "simsiam"))
    specs = {s.run_id: s for s in dn.run_specs(cfg)}
    n_candidates = len(cfg.candidates)
    seen: set[str] = set()
    for name in dn.STORED_SWEEPS:
        table, provenance = read_stored("deep_networks", name)
        assert list(table.columns) == list(dn.COLUMNS) and provenance.wall_time_s > 0
        keys = ["architecture", "trained_potential", "seed", "objective"]
        for key, rows in table.groupby(keys):
            run_id = dn.RunSpec(*key).run_id
            assert run_id in specs and run_id not in seen, (name, run_id)
            seen.add(run_id)
            assert sorted(rows["candidate"]) == sorted(set(rows["candidate"]))
            assert len(rows) == n_candidates, (name, run_id)
            assert set(rows["n_samples"]) == {dn.n_samples(cfg.setup(key[0]))}, (name, run_id)


def test_a_stored_mlp32_finetuning_run_is_reproduced(tmp_path):
    # two torch threads, as in the sweep, whatever earlier tests left set: one thread gives
    # pretrained weights up to 0.15 apart after 5 epochs, and a finetuning run whose final loss
    # differs by 3e-7 (relative); seconds on two idle cores. With other CPU kernels than the
    # stored run's, its verdict is compared instead (OTHER_KERNELS_ATOL)
    spec = dn.RunSpec("mlp-32", "2-norm", 0, "supervised")
    _reproduce_sweep_run(spec, dn.config("paper"), 2, tmp_path)


def test_a_stored_self_supervised_run_is_reproduced(tmp_path):
    # the SimSiam CNN, 3-norm, seed 0, on one thread as the stored sweep ran: about 35 s. With
    # other CPU kernels than the stored run's, its verdict is compared instead
    spec = dn.RunSpec("mnist-cnn", "3-norm", 0, "simsiam")
    cfg = dn.config("paper", objectives=("simsiam",), threads=1)
    _reproduce_sweep_run(spec, cfg, 1, tmp_path)


def test_the_stored_running_statistics_lag_is_reproduced():
    # EfficientNet-Lite0's first look (2 epochs of the 30-epoch cosine) at its checkpoint's
    # batch-norm momentum, on one thread as stored: about a minute. With other CPU kernels than
    # the stored run's, its verdict (OTHER_KERNELS_LAG_ATOL)
    from mirrorlib import networks as nw
    from mirrorlib.experiments.deep_networks import batch_norm as bn

    try:
        nw.find_checkpoint(bn.PAPER_LAG["architecture"])
    except nw.NetworkUnavailable as err:
        pytest.skip(str(err))
    stored, provenance = read_stored("deep_networks", bn.STORED_NAME)
    assert provenance.wall_time_s > 0 and set(stored["bn_momentum"]) == {
        nw.TF_BATCH_NORM_MOMENTUM, 0.1
    }  # fmt: skip
    first = stored[(stored["bn_momentum"] == nw.TF_BATCH_NORM_MOMENTUM) & (stored["epoch"] == 2)]
    settings = {**bn.PAPER_LAG, "momenta": (None,)}
    again = dn.running_statistics_lag(
        dn.config("paper", threads=1), lr=bn.paper_lag_lr(), stop_after=2, **settings
    )
    if SAME_KERNELS:
        _assert_rows_equal(again.drop(columns="seconds"), first.drop(columns="seconds"))
        return
    (was,), (now,) = first.to_dict("records"), again.to_dict("records")
    assert now["epoch"] == was["epoch"] and now["train_loss"] == pytest.approx(
        was["train_loss"], rel=0.01
    )
    for column in ("accuracy_running", "accuracy_recalibrated"):
        assert now[column] == pytest.approx(was[column], abs=OTHER_KERNELS_LAG_ATOL), column
    gap = was["accuracy_recalibrated"] - was["accuracy_running"]
    assert now["accuracy_recalibrated"] - now["accuracy_running"] >= gap / 2


def test_a_stored_linearisation_point_is_reproduced():
    # the smallest N / D, seed 0, every potential: under a second
    stored, _ = read_stored(dg.STORED_CHAPTER, "linearisation")
    ratio = min(dg.PRESETS["paper"].lin_ratios)
    again = dg.run_linearisation(dg.config("paper", lin_ratios=(ratio,), lin_seeds=1))
    _assert_rows_equal(again, stored[(stored["ratio"] == ratio) & (stored["seed"] == 0)])
