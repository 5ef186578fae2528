"""Why the 3-norm is read as the 2.5-norm: the investigation of ``book/deep_networks.md``.

At the paper's protocol the 3-norm is recovered as the 2.5-norm on the MLPs of widths 32 and
128 (and on MobileNetV2). This module reruns that finetuning (the same pretraining, learning-rate
choice and :func:`mirrorlib.experiments.finetuning.finetune` as the sweep), keeps the weights
before and after, and scores them several ways:

- a fine grid of p-norms (``grid``, default 1.1 ... 3.5 in steps of 0.1, and the negative
  entropy where no weight changed sign) with the exact, centred Delta-CDF;
- the same scan per tensor (layer), without the weights that changed sign, and without the
  smallest starting weights (``|w0|`` below its ``q``-quantile for each ``q`` of ``quantiles``);
- the paired bootstrap of :func:`mirrorlib.recovery.scan_geometry` on the p-norms 2.5 ... 3.5
  (is the 3-norm distinguishable from the best?);
- reruns at learning rates ``factor x`` the chosen one (``lr_factors``), to vary the size of
  the change;
- the *scale slope* ``a``: the slope of ``log std(dual change of the trained potential)`` against
  ``log |w0|`` over 20 quantile bins of the weights that moved. In the small-change regime a
  candidate ``q``'s dual change is ``|w0|^(q - p)`` times the trained potential ``p``'s, so a
  trained dual change whose spread grows like ``|w0|^a`` is made homoscedastic, and closest to
  Gaussian, by ``q = p - a`` (``p = 1`` for the negative entropy, whose mirror map has the slope
  ``1/|w|``). :func:`scale_slope` measures ``a``; ``p - a`` is the predicted reading.

:func:`run_three_norm` returns two tables (per-seed rows); :func:`store_three_norm` stores them
under ``results/paper/deep_networks/`` (:mod:`mirrorlib.stored`). Command::

    python -m mirrorlib.experiments.three_norm --cache sweep-three-norm

(``--networks mlp-32 --no-store`` runs one network into the cache, so that networks can run in
parallel processes before the command above gathers and stores them.)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mirrorlib import networks as nw
from mirrorlib.experiments import cpu_threads
from mirrorlib.experiments import deep_networks as dn
from mirrorlib.experiments import finetuning as ft
from mirrorlib.experiments.deep_networks import runs as dn_runs
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import scan_geometry
from mirrorlib.stats import delta_cdf
from mirrorlib.words import and_list, count_of

__all__ = [
    "BOOTSTRAP_GRID",
    "STORED_CHAPTER",
    "ThreeNormConfig",
    "analyse_weights",
    "config",
    "finetune_weights",
    "glue_values",
    "main",
    "read_p",
    "run_three_norm",
    "scale_slope",
    "store_three_norm",
    "summarise",
]

STORED_CHAPTER = "deep_networks"
BOOTSTRAP_GRID = tuple(f"{p / 10:.1f}-norm" for p in range(25, 36))
"""The p-norms 2.5, 2.6, ..., 3.5 of the bootstrap (runs trained with the 3-norm)."""


def _grid(lo: float, hi: float) -> tuple[float, ...]:
    return tuple(round(lo + 0.1 * i, 1) for i in range(round((hi - lo) / 0.1) + 1))


@dataclass(frozen=True)
class ThreeNormConfig:
    """The settings: ``sweep`` (the deep-network protocol: its pretraining, learning-rate
    search and finetuning), the ``networks`` and trained ``potentials`` rerun for ``n_seeds``
    seeds, the p ``grid``, the ``quantiles`` of ``|w0|`` left out, the reruns at ``lr_factors``
    times the chosen learning rate (``(potential, factors)`` pairs, ``lr_seeds`` seeds each) and
    ``n_boot`` bootstrap replicates."""

    sweep: dn.DeepNetworksConfig
    networks: tuple[str, ...] = ("mlp-32", "mlp-128")
    potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    n_seeds: int = 10
    grid: tuple[float, ...] = _grid(1.1, 3.5)
    quantiles: tuple[float, ...] = (0.01, 0.05, 0.10, 0.25)
    lr_factors: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("3-norm", (0.1, 0.3, 3.0)),
        ("2-norm", (0.3, 3.0)),
        ("negative_entropy", (0.3,)),
    )
    lr_seeds: int = 3
    n_boot: int = 50


def config(scale: str = "paper", **overrides) -> ThreeNormConfig:
    """``paper``: the deep-network sweep's paper protocol on MLP-32 and MLP-128, 10 seeds;
    ``ci``: its ``ci`` protocol on MLP-32, 2 seeds, a coarse grid, one learning-rate factor."""
    if scale == "paper":
        base = ThreeNormConfig(dn.config("paper"))
    elif scale == "ci":
        base = ThreeNormConfig(
            dn.config("ci"), networks=("mlp-32",), n_seeds=2, grid=_grid(2.0, 3.5),
            quantiles=(0.1,), lr_factors=(("3-norm", (0.3,)),), lr_seeds=1, n_boot=20,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown scale {scale!r}; choose ci or paper")
    return replace(base, **overrides)


def finetune_weights(
    setup: dn.NetworkSetup,
    cfg: dn.DeepNetworksConfig,
    trained_potential: str,
    seed: int,
    lrs: Sequence[float],
    state: dict[str, Tensor] | None,
    device: str = "cpu",
) -> tuple[dict[str, Tensor], dict[str, Tensor], ft.FinetuneResult, float]:
    """Finetune as :func:`~mirrorlib.experiments.deep_networks.finetune_run` does (the same
    data, seeds, model preparation and :func:`~mirrorlib.experiments.finetuning.finetune`),
    trying ``lrs`` in turn until the loss stays finite; return the analysed weights before and
    after, the result and the learning rate that finished."""
    n = dn.n_samples(setup)
    base = dn_runs._network(setup, state)
    before = nw.analysed_weights(base, setup.architecture)
    x, y = dn_runs._finetune_data(setup, n, seed)
    x, y = x.to(device), y.to(device)
    for lr in lrs:
        torch.manual_seed(seed)
        model, loss_fn = dn_runs._prepare_model(base, setup, "supervised", y, seed, device)
        res = ft.finetune(model, x, y, trained_potential, lr, cfg, seed, None, loss_fn)
        if math.isfinite(res.final_loss):
            break
    after = nw.analysed_weights(model.cpu(), setup.architecture)
    return before, after, res, float(lr)


def scale_slope(w0: np.ndarray, dual: np.ndarray, n_bins: int = 20) -> float:
    """Slope of ``log std(dual)`` against ``log median |w0|`` over ``n_bins`` quantile bins of
    ``|w0|`` (least squares): how the spread of a dual change grows with the starting weight."""
    a = np.abs(w0)
    edges = np.quantile(a, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, n_bins - 1)
    xs, ys = [], []
    for b in range(n_bins):
        sel = which == b
        if sel.sum() >= 10 and np.std(dual[sel]) > 0:
            xs.append(math.log(np.median(a[sel])))
            ys.append(math.log(np.std(dual[sel])))
    if len(xs) < 2:
        return math.nan
    return float(np.polyfit(xs, ys, 1)[0])


def _scan(w0: np.ndarray, w1: np.ndarray, grid: Sequence[float], signs_kept: bool) -> dict:
    """Centred exact Delta-CDF of each candidate's dual change: the p-norms of ``grid`` and,
    when ``signs_kept``, the negative entropy (key ``nan``)."""
    out = {}
    names = [f"{p}-norm" for p in grid] + (["negative_entropy"] if signs_kept else [])
    for name in names:
        pot = make_potential(name)
        diff = pot.to_dual(w1) - pot.to_dual(w0)
        key = getattr(pot, "p", math.nan)
        out[key] = delta_cdf(diff, centered=True) if np.ptp(diff) > 0 else math.nan
    return out


def analyse_weights(
    before: dict[str, Tensor],
    after: dict[str, Tensor],
    trained_potential: str,
    grid: Sequence[float],
    quantiles: Sequence[float],
    n_boot: int = 0,
    seed: int = 0,
    subsets: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Score the candidates of ``grid`` on the weights ``before -> after`` (weights exactly zero
    before are left out, as the sweep does), on all of them and, with ``subsets``, per tensor,
    without the weights that changed sign and without ``|w0|`` below each quantile.

    Returns a long table (``analysis``, ``p`` (NaN: negative entropy), ``delta_cdf``, and for
    3-norm runs on all weights the bootstrap's ``p_best`` and ``indistinguishable`` over
    :data:`BOOTSTRAP_GRID`) and a record of the run: weights, sign changes, unchanged share,
    relative changes (dual of the trained potential, and in weight space) and the scale slope.
    """
    names = sorted(before)
    w0 = np.concatenate([before[k].reshape(-1).double().numpy() for k in names])
    w1 = np.concatenate([after[k].reshape(-1).double().numpy() for k in names])
    tensor = np.concatenate([np.full(before[k].numel(), i) for i, k in enumerate(names)])
    keep = w0 != 0
    w0, w1, tensor = w0[keep], w1[keep], tensor[keep]
    flipped = np.sign(w0) != np.sign(w1)
    moved = w0 != w1
    pot = make_potential(trained_potential)
    dual = pot.to_dual(w1) - pot.to_dual(w0)
    p_trained = getattr(pot, "p", 1.0)
    slope = scale_slope(w0[moved], dual[moved])
    info = {
        "n_weights": int(w0.size),
        "n_sign_flips": int(flipped.sum()),
        "frac_unchanged": float(1 - moved.mean()),
        "relative_change": float(np.linalg.norm(dual) / np.linalg.norm(pot.to_dual(w0))),
        "weight_change": float(np.linalg.norm(w1 - w0) / np.linalg.norm(w0)),
        "scale_slope": slope,
        "predicted_p": p_trained - slope,
    }
    subsets_of = {"all weights": np.ones(w0.size, bool)}
    if subsets:
        for i, k in enumerate(names):
            subsets_of[f"tensor {k}"] = tensor == i
        subsets_of["no sign change"] = ~flipped
        for q in quantiles:
            subsets_of[f"|w0| above {q:.0%} quantile"] = np.abs(w0) >= np.quantile(np.abs(w0), q)
    rows = []
    for label, sel in subsets_of.items():
        signs_kept = not flipped[sel].any()
        for p, value in _scan(w0[sel], w1[sel], grid, signs_kept).items():
            rows.append({"analysis": label, "p": p, "delta_cdf": value,
                         "n_analysed": int(sel.sum())})  # fmt: skip
    table = pd.DataFrame(rows)
    table["p_best"], table["indistinguishable"] = math.nan, None
    if n_boot and pot.name == "3-norm":
        boot = scan_geometry(w0, w1, BOOTSTRAP_GRID, n_boot=n_boot, seed=seed)
        for r in boot.itertuples():
            at = (table["analysis"] == "all weights") & np.isclose(table["p"], r.p)
            table.loc[at, "p_best"] = r.p_best
            table.loc[at, "indistinguishable"] = bool(r.indistinguishable)
    return table, info


def _run_network(
    cfg: ThreeNormConfig, arch: str, cache_dir: str, device: str, progress: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    sweep_cfg = cfg.sweep
    factors = dict(cfg.lr_factors)
    run_rows, scan_rows = [], []
    setup = sweep_cfg.setup(arch)
    state = dn_runs._pretrained_state(setup, sweep_cfg, cache_dir, device)
    for pot_name in cfg.potentials:
        pot = make_potential(pot_name).name
        chosen = dn.choose_lr(setup, pot, sweep_cfg, cache_dir, device)
        grid = sweep_cfg.lr_grid(arch, pot)
        plan = [(1.0, s) for s in range(cfg.n_seeds)]
        plan += [(f, s) for f in factors.get(pot, ()) for s in range(cfg.lr_seeds)]
        for factor, s in plan:
            seed = sweep_cfg.seed + s
            if factor == 1.0:
                lrs = [chosen, *sorted((v for v in grid if v < chosen), reverse=True)]
            else:
                lrs = [chosen * factor]
            start = time.perf_counter()
            before, after, res, lr = finetune_weights(
                setup, sweep_cfg, pot, seed, lrs, state, device
            )
            if not math.isfinite(res.final_loss):
                continue
            table, info = analyse_weights(
                before, after, pot, cfg.grid, cfg.quantiles,
                n_boot=cfg.n_boot if factor == 1.0 else 0, seed=seed, subsets=factor == 1.0,
            )  # fmt: skip
            key = {"architecture": arch, "trained_potential": pot, "lr_factor": factor,
                   "seed": seed}  # fmt: skip
            run_rows.append({**key, "lr": lr, "epochs": res.epochs,
                             "train_accuracy": res.train_accuracy, **info,
                             "seconds": time.perf_counter() - start})  # fmt: skip
            for col, value in reversed(key.items()):
                table.insert(0, col, value)
            scan_rows.append(table)
            if progress:
                print(f"{arch} {pot} x{factor} seed {seed}: lr {lr:g}, {res.epochs} epochs, "
                      f"a = {info['scale_slope']:.2f}", flush=True)  # fmt: skip
    return pd.DataFrame(run_rows), pd.concat(scan_rows, ignore_index=True)


def run_three_norm(
    cfg: ThreeNormConfig, cache_dir: str, device: str = "cpu", progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rerun the finetuning of ``cfg`` and analyse it (:func:`analyse_weights`).

    Pretraining and the learning-rate choice come from
    :func:`~mirrorlib.experiments.deep_networks.choose_lr` and the sweep's pretraining task,
    stored in ``cache_dir`` as the sweep stores them. The runs at the chosen learning rate
    (``lr_factor`` 1) retry at the grid's smaller values on divergence, as the sweep's do; the
    reruns at other factors do not (a diverged one is left out). Each network's tables are kept
    in ``cache_dir/three_norm/<architecture>__{runs,scans}.csv`` and read back on a rerun (so
    networks can run in separate processes; delete them after changing ``cfg``). Returns
    ``(runs, scans)``: one row per run, and one per run x analysis x candidate;
    ``runs.attrs["wall_time_s"]`` is the networks' wall time, pretraining and learning-rate
    search included (kept in ``<architecture>__wall_s.txt``).
    """
    folder = Path(cache_dir) / "three_norm"
    runs, scans, wall = [], [], 0.0
    for arch in cfg.networks:
        paths = [folder / f"{arch}__{kind}.csv" for kind in ("runs", "scans")]
        wall_path = folder / f"{arch}__wall_s.txt"
        if all(p.is_file() for p in [*paths, wall_path]):
            tables = [pd.read_csv(p) for p in paths]
            seconds = float(wall_path.read_text())
        else:
            start = time.perf_counter()
            tables = _run_network(cfg, arch, cache_dir, device, progress)
            seconds = time.perf_counter() - start
            folder.mkdir(parents=True, exist_ok=True)
            for table, path in zip(tables, paths, strict=True):
                table.to_csv(path, index=False)
            wall_path.write_text(f"{seconds:.1f}\n")
        runs.append(tables[0])
        scans.append(tables[1])
        wall += seconds
    runs = pd.concat(runs, ignore_index=True)
    runs.attrs["wall_time_s"] = wall
    return runs, pd.concat(scans, ignore_index=True)


def read_p(scans: pd.DataFrame) -> pd.DataFrame:
    """Per run and analysis, the row of the candidate with the lowest Delta-CDF, with its p as
    ``p_read`` (the negative entropy counted as p = 1, the limit its mirror map's slope
    ``1/|w|`` shares with ``|w|^(p - 2)``)."""
    keys = ["architecture", "trained_potential", "lr_factor", "seed", "analysis"]
    best = scans.loc[scans.dropna(subset=["delta_cdf"]).groupby(keys)["delta_cdf"].idxmin()]
    return best.assign(p_read=best["p"].fillna(1.0))


def summarise(runs: pd.DataFrame, scans: pd.DataFrame) -> pd.DataFrame:
    """Per (network, trained potential, learning-rate factor, analysis): the p read per seed
    (:func:`read_p`), its mean and standard deviation over seeds, the share of seeds reading
    the trained p (within 0.05), and the run records' mean relative change and predicted p
    (``p - a``)."""
    best = read_p(scans)
    trained_p = best["trained_potential"].map(lambda n: getattr(make_potential(n), "p", 1.0))
    best["correct"] = (best["p_read"] - trained_p).abs() < 0.05
    group = ["architecture", "trained_potential", "lr_factor", "analysis"]
    out = best.groupby(group, sort=False).agg(
        p_read=("p_read", "mean"), p_read_std=("p_read", "std"), seeds=("seed", "nunique"),
        seeds_correct=("correct", "mean"),
    ).reset_index()  # fmt: skip
    per_run = runs.groupby(group[:3], sort=False)[
        ["relative_change", "weight_change", "scale_slope", "predicted_p", "lr"]
    ].mean()
    return out.join(per_run, on=group[:3])


def glue_values(
    runs: pd.DataFrame,
    scans: pd.DataFrame,
    max_epochs: int,
    provenance,
) -> tuple[dict[str, object], dict[str, str]]:
    """The numbers and sentences that ``book/deep_networks.md`` quotes from the stored reruns.

    ``runs`` and ``scans``: the stored tables of :func:`run_three_norm`; ``max_epochs``: the
    ``paper`` protocol's epoch cap; ``provenance``: the runs' record
    (:class:`mirrorlib.stored.Provenance`). Returns ``(numbers, prose)``: plain values (glued
    as text) and Markdown strings with one entry per network, ``"net: ...; net: ..."``.
    """
    summary = summarise(runs, scans)
    nets = list(dict.fromkeys(runs["architecture"]))

    def row(net: str, pot: str, factor: float = 1.0, analysis: str = "all weights"):
        s = summary
        return s[(s["architecture"] == net) & (s["trained_potential"] == pot)
                 & (s["lr_factor"] == factor) & (s["analysis"] == analysis)].iloc[0]  # fmt: skip

    def each(text) -> str:
        return "; ".join(f"{dn.network_name(net)}: {text(net)}" for net in nets)

    def read(net: str, pot: str, analysis: str = "all weights") -> str:
        r = row(net, pot, analysis=analysis)
        return f"{r.p_read:.2f} ± {r.p_read_std:.2f}"

    def runs_of(selected: pd.Series, network: pd.Series) -> str:
        """``"all 10 runs of MLP-32 and 7 of the 10 runs of MLP-128"``: how many of each
        network's runs (rows, with their ``network``) are ``selected``."""
        return and_list([
            f"{count_of(int((selected & (network == n)).sum()), int((network == n).sum()))} "
            f"runs of {dn.network_name(n)}"
            for n in nets
        ])  # fmt: skip

    numbers: dict[str, object] = {
        "tn_cap": max_epochs,
        "tn_date": provenance.date,
        "tn_wall_min": provenance.wall_time_s / 60,
        "tn_device": provenance.device,
        "tn_note": provenance.note,
        "tn_seeds": int(runs.loc[runs["lr_factor"] == 1.0, "seed"].nunique()),
        "tn_lr_seeds": int(runs.loc[runs["lr_factor"] != 1.0, "seed"].nunique()),
    }
    prose: dict[str, str] = {}
    # The sweep's coarse grid (negative entropy, p = 1.5, 2, 2.5, 3) on the reruns.
    coarse = scans[scans["p"].isna() | scans["p"].isin([1.5, 2.0, 2.5, 3.0])]
    coarse_read = read_p(
        coarse[(coarse["lr_factor"] == 1.0) & (coarse["analysis"] == "all weights")]
    )
    three = coarse_read[coarse_read["trained_potential"] == "3-norm"]
    prose["tn_coarse"] = runs_of(three["p_read"] == 2.5, three["architecture"])
    prose["tn_fine_3"] = each(lambda n: read(n, "3-norm"))
    prose["tn_fine_2"] = each(lambda n: read(n, "2-norm"))
    ne_rows = [row(n, "negative_entropy") for n in nets]
    prose["tn_ne_ok"] = and_list([
        f"{count_of(round(r.seeds_correct * r.seeds), r.seeds)} seeds of {dn.network_name(n)}"
        for n, r in zip(nets, ne_rows, strict=True)
    ])  # fmt: skip
    boot = scans[scans["p_best"].notna() & (scans["p"] == 3.0)]
    apart = boot["indistinguishable"].astype(str) == "False"
    prose["tn_boot"] = runs_of(apart, boot["architecture"])
    prose["tn_nosign"] = each(lambda n: read(n, "3-norm", analysis="no sign change"))
    three_rows = summary[summary["trained_potential"] == "3-norm"]
    quantiles = three_rows[three_rows["analysis"].str.startswith("|w0|")]
    prose["tn_quantiles"] = each(lambda n: "{:.2f} to {:.2f}".format(
        *quantiles.loc[quantiles["architecture"] == n, "p_read"].agg(["min", "max"])))  # fmt: skip
    tensors = three_rows[three_rows["analysis"].str.startswith("tensor")]
    prose["tn_tensors"] = each(lambda n: ", ".join(
        f"{r.p_read:.2f}" for r in tensors[tensors["architecture"] == n].itertuples()))  # fmt: skip

    def slope(net: str, pot: str, p: int) -> str:
        r = row(net, pot)
        return f"a = {r.scale_slope:.2f}, {p} − a = {r.predicted_p:.2f}"

    prose["tn_slope_3"] = each(lambda n: slope(n, "3-norm", 3))
    prose["tn_slope_2"] = each(lambda n: slope(n, "2-norm", 2))
    all_weights = summary[summary["analysis"] == "all weights"]

    def by_lr(pot: str, text) -> str:
        def one(net: str) -> str:
            rows = all_weights[(all_weights["architecture"] == net)
                               & (all_weights["trained_potential"] == pot)]  # fmt: skip
            return ", ".join(text(r) for r in rows.sort_values("lr_factor").itertuples())

        return each(one)

    def read_at(r) -> str:
        return f"×{r.lr_factor:g}: {r.p_read:.2f} ({r.relative_change:.3f}, {r.weight_change:.2f})"

    prose["tn_lr_3"] = by_lr("3-norm", read_at)
    prose["tn_lr_2"] = by_lr("2-norm", read_at)
    prose["tn_lr_ne"] = by_lr(
        "negative_entropy", lambda r: f"×{r.lr_factor:g}: {r.seeds_correct:.0%}"
    )
    # Verdicts, from the numbers: does the 3-norm's reading approach 3 as the learning rate
    # falls, and does the smallest learning rate reach the reading the scale slope predicts?
    lr3 = all_weights[all_weights["trained_potential"] == "3-norm"]
    rises = all(g.sort_values("lr_factor")["p_read"].is_monotonic_decreasing
                for _, g in lr3.groupby("architecture"))  # fmt: skip
    smallest = lr3.loc[lr3.groupby("architecture")["lr_factor"].idxmin()]
    numbers["tn_gap"] = float((smallest["p_read"] - smallest["predicted_p"]).abs().max())
    lr2 = all_weights[all_weights["trained_potential"] == "2-norm"]
    up_to_chosen = lr2[lr2["lr_factor"] <= 1.0]
    numbers["tn_spread_2"] = float(
        up_to_chosen.groupby("architecture")["p_read"].agg(lambda v: v.max() - v.min()).max()
    )
    prose["tn_verdict_lr"] = (
        "on every network the reading rises toward 3 as the learning rate falls"
        if rises
        else "the reading does not rise steadily toward 3 as the learning rate falls"
    )
    small_runs = runs[(runs["trained_potential"] == "3-norm")
                      & (runs["lr_factor"] == runs["lr_factor"].min())]  # fmt: skip
    prose["tn_acc_small"] = each(lambda n: "{:.2f}".format(
        small_runs.loc[small_runs["architecture"] == n, "train_accuracy"].mean()))  # fmt: skip
    big = runs[(runs["trained_potential"] == "2-norm") & (runs["lr_factor"] > 1.0)]
    top = big["lr_factor"].max()

    def two_big(net: str) -> str:
        r = row(net, "2-norm", top)
        accuracy = big.loc[big["architecture"] == net, "train_accuracy"].mean()
        return (f"×{r.lr_factor:g}: relative change {r.relative_change:.2f}, training accuracy "
                f"{accuracy:.2f}, read {r.p_read:.2f}")  # fmt: skip

    prose["tn_2_big"] = each(two_big)

    def matched(net: str) -> str:
        """The 3-norm's factor whose change in the weights is closest to the 2-norm's at its
        chosen learning rate, and how far each reading lies below the scale slope's one."""
        two = row(net, "2-norm")
        own = lr3[lr3["architecture"] == net]
        m = own.loc[(own["weight_change"] - two.weight_change).abs().idxmin()]
        return (f"the 3-norm at ×{m.lr_factor:g} (weights changed by {m.weight_change:.2f}) "
                f"reads {m.p_read:.2f} against 3 − a = {m.predicted_p:.2f}, the 2-norm at ×1 "
                f"(weights changed by {two.weight_change:.2f}) reads {two.p_read:.2f} against "
                f"2 − a = {two.predicted_p:.2f}")  # fmt: skip

    prose["tn_matched"] = each(matched)
    return numbers, prose


def store_three_norm(
    cfg: ThreeNormConfig,
    cache_dir: str,
    device: str = "cpu",
    threads: int | None = None,
    note: str = "",
) -> None:
    """Run :func:`run_three_norm` and store its tables ``three_norm_runs`` and
    ``three_norm_scans`` in ``results/paper/deep_networks/`` with their provenance (wall time:
    the networks' wall times added; ``note`` is appended to the provenance's note)."""
    from mirrorlib.stored import Provenance, write_stored

    with cpu_threads(threads):
        runs, scans = run_three_norm(cfg, cache_dir, device, progress=True)
    wall = runs.attrs["wall_time_s"]
    command = f"python -m mirrorlib.experiments.three_norm --cache {cache_dir}"
    note = " ".join([
        "Wall time: the networks' wall times added, pretraining and learning-rate search",
        "included. Run under nice on a 2-core machine shared with other jobs (load average",
        "10 to 15): the wall time is not a benchmark.", note,
    ]).strip()  # fmt: skip
    for name, table in (("three_norm_runs", runs), ("three_norm_scans", scans)):
        record = Provenance.of_this_run(command, wall, device, note)
        write_stored(table, STORED_CHAPTER, name, record)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", required=True, help="folder for pretrained weights and lrs")
    parser.add_argument("--scale", default="paper", choices=("ci", "paper"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--networks", nargs="+", default=None, help="only these networks")
    parser.add_argument("--no-store", action="store_true", help="run (and cache) only")
    parser.add_argument("--note", default="", help="appended to the stored provenance's note")
    args = parser.parse_args(argv)
    cfg = config(args.scale)
    if args.no_store:
        cfg = replace(cfg, networks=tuple(args.networks or cfg.networks))
        with cpu_threads(args.threads):
            run_three_norm(cfg, args.cache, args.device, progress=True)
        return 0
    store_three_norm(cfg, args.cache, args.device, args.threads, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
