"""Figures of the chapter "Recovering the geometry of finetuned deep networks".

Each function takes the run table of :func:`mirrorlib.experiments.deep_networks.collect`
(one row per run and candidate) and draws on matplotlib axes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from mirrorlib.plotting import potential_color, potential_label

__all__ = ["plot_delta_cdf_vs_size", "plot_candidate_scan"]

_MARKERS = "osD^v<>pPX*h"
_CANDIDATE_X = {"negative_entropy": 1.0, "1.5-norm": 1.5, "2-norm": 2.0, "2.5-norm": 2.5}
_CANDIDATE_X["3-norm"] = 3.0


def _own(table: pd.DataFrame, objective: str) -> pd.DataFrame:
    sub = table[(table["objective"] == objective)]
    return sub[sub["candidate"] == sub["trained_potential"]]


def plot_delta_cdf_vs_size(
    table: pd.DataFrame,
    column: str = "delta_cdf",
    objective: str = "supervised",
    ax: Axes | None = None,
) -> Axes:
    """Fig 4 (a): the Delta-CDF (``column``) of the trained potential's dual change against the
    number of analysed weights; one marker per architecture, one colour per trained potential
    (mean over seeds, bars: min to max). Grey dashed: the finite-sample floor."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    own = _own(table, objective)
    archs = list(dict.fromkeys(own.sort_values("n_weights")["architecture"]))
    pots = list(dict.fromkeys(own["trained_potential"]))
    offsets = dict(zip(pots, np.linspace(-0.04, 0.04, len(pots)), strict=True))
    for i, arch in enumerate(archs):
        for pot in pots:
            cell = own[(own["architecture"] == arch) & (own["trained_potential"] == pot)]
            values = cell[column].dropna()
            if values.empty:
                continue
            x = cell["n_weights"].iloc[0] * 10 ** offsets[pot]
            mean = values.mean()
            err = [[mean - values.min()], [values.max() - mean]]
            ax.errorbar(x, mean, yerr=err, fmt=_MARKERS[i % len(_MARKERS)],
                        color=potential_color(pot), ms=6, capsize=2)  # fmt: skip
    floors = own.groupby("n_weights")["floor"].mean().sort_index()
    ax.plot(floors.index, floors.values, ls="--", color="0.5", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of analysed weights $D$")
    ax.set_ylabel(r"$\Delta$CDF of the trained potential")
    handles = [
        plt.Line2D([], [], ls="", marker=_MARKERS[i % len(_MARKERS)], color="0.3", label=a)
        for i, a in enumerate(archs)
    ]
    handles += [
        plt.Line2D([], [], color=potential_color(p), label=potential_label(p)) for p in pots
    ]
    handles.append(plt.Line2D([], [], ls="--", color="0.5", label="finite-sample floor"))
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2)
    return ax


def plot_candidate_scan(
    table: pd.DataFrame,
    column: str = "delta_cdf",
    objective: str = "supervised",
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Fig 4 (b): per architecture (panels, by size), the Delta-CDF (``column``) of each
    hypothesised potential (negative entropy at x = 1, then p), one line per trained potential
    (mean over seeds, band: min to max); the trained potential's own point is circled. Negative
    entropy is missing where finetuning changed a sign (it cannot have made the change)."""
    sub = table[table["objective"] == objective]
    if sub.empty:
        raise ValueError(f"no runs with objective {objective!r} in the table")
    archs = list(dict.fromkeys(sub.sort_values("n_weights")["architecture"]))
    if axes is None:
        cols = min(len(archs), 4)
        rows = int(np.ceil(len(archs) / cols))
        _, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    flat = np.asarray(axes).reshape(-1)
    for ax, arch in zip(flat, archs, strict=False):
        cell = sub[sub["architecture"] == arch]
        for pot, lines in cell.groupby("trained_potential", sort=False):
            stats = lines.groupby("candidate")[column].agg(["mean", "min", "max"])
            stats = stats.loc[[c for c in _CANDIDATE_X if c in stats.index]]
            x = np.array([_CANDIDATE_X[c] for c in stats.index])
            color = potential_color(pot)
            ax.plot(x, stats["mean"], marker="o", ms=3, color=color, label=potential_label(pot))
            ax.fill_between(x, stats["min"], stats["max"], color=color, alpha=0.2, lw=0)
            if pot in stats.index and np.isfinite(stats.at[pot, "mean"]):
                ax.plot(_CANDIDATE_X[pot], stats.at[pot, "mean"], "o", ms=9, mfc="none",
                        color=color)  # fmt: skip
        n = int(cell["n_weights"].iloc[0])
        ax.set_title(f"{arch} (D = {n:,})", fontsize=8)
        ax.set_xticks(list(_CANDIDATE_X.values()), ["NE", "1.5", "2", "2.5", "3"])
        ax.set_xlabel("hypothesised potential", fontsize=8)
    for ax in flat[len(archs) :]:
        ax.axis("off")
    flat[0].set_ylabel(r"$\Delta$CDF")
    flat[0].legend(fontsize=7, title="trained with", title_fontsize=7)
    return np.asarray(axes)
