"""The 3-norm investigation, on synthetic weights and a tiny finetuning (sklearn digits)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.experiments import deep_networks as dn
from mirrorlib.experiments import three_norm as tn
from mirrorlib.potentials import potential

matplotlib.use("Agg")


def _weights(n: int = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], n) * rng.lognormal(-2.0, 0.8, n)


def _after(w0: np.ndarray, trained: str, spread: np.ndarray, seed: int = 1) -> np.ndarray:
    """Weights after a Gaussian dual change of per-weight spread ``spread``."""
    pot = potential(trained)
    xi = np.random.default_rng(seed).standard_normal(w0.shape)
    return pot.from_dual(pot.to_dual(w0) + spread * xi, np.sign(w0))


def _as_dict(w: np.ndarray) -> dict[str, torch.Tensor]:
    half = w.size // 2
    return {"a.weight": torch.from_numpy(w[:half]).view(10, -1),
            "b.weight": torch.from_numpy(w[half:]).view(10, -1)}  # fmt: skip


def test_scale_slope_measures_how_the_spread_grows_with_the_starting_weight():
    w0 = _weights()
    noise = np.random.default_rng(2).standard_normal(w0.size)
    assert tn.scale_slope(w0, noise) == pytest.approx(0.0, abs=0.05)
    assert tn.scale_slope(w0, np.abs(w0) ** 0.5 * noise) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(("slope", "expected"), [(0.0, 3.0), (0.5, 2.5)])
def test_a_dual_change_whose_spread_grows_with_w0_is_read_as_p_minus_the_slope(slope, expected):
    """The mechanism the chapter tests: a 3-norm dual change of spread ``|w0|^a`` is made
    homoscedastic, and so read, by ``p = 3 - a``; the scale slope predicts the reading."""
    w0 = _weights()
    spread = 0.02 * (np.abs(w0) / np.median(np.abs(w0))) ** slope * np.median(np.abs(w0)) ** 2
    w1 = _after(w0, "3-norm", spread)
    table, info = tn.analyse_weights(
        _as_dict(w0), _as_dict(w1), "3-norm", tn._grid(2.0, 3.5), (0.1,), n_boot=20
    )
    best = tn.read_p(table.assign(architecture="x", trained_potential="3-norm", lr_factor=1.0,
                                  seed=0))  # fmt: skip
    read = best.set_index("analysis")["p_read"]
    assert read["all weights"] == pytest.approx(expected, abs=0.15)
    assert info["predicted_p"] == pytest.approx(expected, abs=0.1)
    assert set(read.index) == {"all weights", "tensor a.weight", "tensor b.weight",
                               "no sign change", "|w0| above 10% quantile"}  # fmt: skip
    boot = table[table["p_best"].notna()]
    assert sorted(boot["p"]) == [float(c.split("-")[0]) for c in tn.BOOTSTRAP_GRID]
    assert bool(boot.loc[np.isclose(boot["p"], expected), "indistinguishable"].iloc[0])


def test_negative_entropy_is_scored_only_where_no_weight_changed_sign():
    w0 = _weights(4_000)
    w1 = w0.copy()
    w1[:10] = -w1[:10]
    w1[10:] *= np.exp(0.1 * np.random.default_rng(3).standard_normal(w0.size - 10))
    table, info = tn.analyse_weights(_as_dict(w0), _as_dict(w1), "2-norm", (2.0, 3.0), ())
    ne = table[table["p"].isna()]
    assert info["n_sign_flips"] == 10
    assert set(ne["analysis"]) == {"no sign change", "tensor b.weight"}  # the flips are in a


def _tiny(**overrides) -> tn.ThreeNormConfig:
    sweep = dn.config(
        "ci",
        networks=(dn.NetworkSetup("mlp-32", "digits", pretrain_data="digits", new_head=False,
                                  n_samples=150),),  # fmt: skip
        epochs=4, extra_epochs=4, max_epochs=8, stop_at_100=True, batch_size=32,
        lrs=(0.03,), lr_overrides=(("negative_entropy", (0.3,)), ("3-norm", (0.005,))),
        pretrain_epochs=2, pretrain_examples=None, objectives=("supervised",), ssl_networks=(),
    )  # fmt: skip
    settings = dict(
        networks=("mlp-32",), potentials=("2-norm", "3-norm"), n_seeds=1,
        grid=(2.0, 2.5, 3.0), quantiles=(0.25,), lr_factors=(("3-norm", (0.5,)),), lr_seeds=1,
        n_boot=20,
    )  # fmt: skip
    settings.update(overrides)
    return tn.ThreeNormConfig(sweep, **settings)


def test_the_rerun_keeps_the_sweeps_protocol_and_caches_each_network(tmp_path, monkeypatch):
    cfg = _tiny()
    runs, scans = tn.run_three_norm(cfg, tmp_path)
    assert len(runs) == 2 * 1 + 1
    assert set(runs["lr_factor"]) == {1.0, 0.5}
    factor = runs[runs["lr_factor"] == 0.5]
    assert factor["lr"].tolist() == [0.0025] and factor["trained_potential"].tolist() == ["3-norm"]
    assert runs.attrs["wall_time_s"] > 0
    # the same finetuning as the sweep's run: the same relative change of the trained potential
    spec = dn.RunSpec("mlp-32", "2-norm", 0)
    swept = dn.run_one(spec, cfg.sweep, tmp_path)
    own = swept[swept["candidate"] == "2-norm"]["relative_change"].iloc[0]
    mine = runs[(runs["trained_potential"] == "2-norm") & (runs["seed"] == 0)
                & (runs["lr_factor"] == 1.0)]["relative_change"].iloc[0]  # fmt: skip
    assert mine == pytest.approx(own, rel=1e-6)
    # only the chosen-lr runs carry the subset analyses; the factor runs are scored on all weights
    assert set(scans.loc[scans["lr_factor"] == 0.5, "analysis"]) == {"all weights"}
    # a second call reads the cached tables back instead of finetuning again
    monkeypatch.setattr(tn, "_run_network", lambda *a, **k: pytest.fail("ran again"))
    again, _ = tn.run_three_norm(cfg, tmp_path)
    pd.testing.assert_frame_equal(again, runs, check_dtype=False)
    summary = tn.summarise(runs, scans)
    assert {"p_read", "p_read_std", "seeds_correct", "predicted_p"} <= set(summary.columns)
    from mirrorlib.plotting.three_norm import plot_three_norm

    fig = plot_three_norm(runs, scans)
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == runs["architecture"].nunique() + 2
    assert fig.get_figwidth() <= 7 and not any(ax.get_legend() for ax in fig.axes)
    assert fig.legends, "one legend for the figure, below the panels"


def test_summarise_counts_the_seeds_that_read_the_trained_p():
    rows = []
    for seed, best in enumerate([3.0, 2.5, 2.5, 2.5]):
        for p in (2.5, 3.0):
            rows.append({"architecture": "m", "trained_potential": "3-norm", "lr_factor": 1.0,
                         "seed": seed, "analysis": "all weights", "p": p,
                         "delta_cdf": 0.1 if p == best else 0.2})  # fmt: skip
    runs = pd.DataFrame({"architecture": "m", "trained_potential": "3-norm", "lr_factor": 1.0,
                         "seed": range(4), "relative_change": 0.1, "weight_change": 0.2,
                         "scale_slope": 0.4, "predicted_p": 2.6, "lr": 0.01})  # fmt: skip
    out = tn.summarise(runs, pd.DataFrame(rows)).iloc[0]
    assert out["seeds_correct"] == 0.25
    assert out["p_read"] == pytest.approx((3.0 + 3 * 2.5) / 4)
    assert out["predicted_p"] == 2.6


def test_glue_values_quote_the_stored_reruns():
    from mirrorlib.stored import read_stored

    runs, prov = read_stored(tn.STORED_CHAPTER, "three_norm_runs")
    scans, _ = read_stored(tn.STORED_CHAPTER, "three_norm_scans")
    numbers, prose = tn.glue_values(runs, scans, 150, prov)
    ids = list(dict.fromkeys(runs["architecture"]))
    nets = [dn.network_name(n) for n in ids]
    # one entry per network in every sentence, in the order of the runs, named as in the prose
    for key, text in prose.items():
        if key in ("tn_boot", "tn_coarse", "tn_ne_ok"):  # "all 10 runs of MLP-32 and ..."
            assert [part.rsplit(" of ", 1)[1] for part in text.split(" and ")] == nets
        elif key != "tn_verdict_lr":
            assert [part.split(":")[0] for part in text.split("; ")] == nets, key
    assert numbers["tn_cap"] == 150 and numbers["tn_date"] == prov.date
    assert numbers["tn_seeds"] == runs.loc[runs["lr_factor"] == 1.0, "seed"].nunique()
    # the reading at the chosen rate, "mean ± sd", matches the summary
    summary = tn.summarise(runs, scans)
    chosen = summary[(summary["architecture"] == ids[0]) & (summary["lr_factor"] == 1.0)
                     & (summary["trained_potential"] == "3-norm")
                     & (summary["analysis"] == "all weights")].iloc[0]  # fmt: skip
    assert prose["tn_fine_3"].startswith(
        f"{nets[0]}: {chosen.p_read:.2f} ± {chosen.p_read_std:.2f}"
    )
