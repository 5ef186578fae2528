"""The figure of "Why the 3-norm is read as the 2.5-norm" (chapter ``book/deep_networks.md``).

Drawn from the tables of :func:`mirrorlib.experiments.three_norm.run_three_norm` (``runs``: one
row per run; ``scans``: one row per run, analysis and candidate).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirrorlib.experiments.three_norm import read_p

__all__ = ["COLOURS", "plot_three_norm"]

COLOURS = {"negative_entropy": "#0072B2", "2-norm": "#009E73", "3-norm": "#D55E00"}
"""One colour per trained potential (colour-blind safe)."""
_LABELS = {"negative_entropy": "negative entropy", "2-norm": "2-norm", "3-norm": "3-norm"}
_TRAINED_P = {"negative_entropy": 1.0, "2-norm": 2.0, "3-norm": 3.0}


def plot_three_norm(runs: pd.DataFrame, scans: pd.DataFrame) -> plt.Figure:
    """Three panels. (a) Per network, the Delta-CDF of each p-norm of the grid minus the run's
    lowest, mean over seeds (band: min to max), one line per trained potential, at the chosen
    learning rate. (b) The p read from the 3-norm runs by each analysis (all weights, per
    tensor, without sign changes, without the smallest ``|w0|``), mean and std over seeds, and
    the p predicted by the scale slope (``3 - a``). (c) The p read against the relative dual
    change, one point per run at every learning-rate factor, with the trained p dashed."""
    nets = list(dict.fromkeys(runs["architecture"]))
    fig, axes = plt.subplots(1, len(nets) + 2, figsize=(4.0 * (len(nets) + 2), 3.6))
    base = scans[(scans["lr_factor"] == 1.0) & (scans["analysis"] == "all weights")]
    base = base.dropna(subset=["p"])
    base = base.assign(excess=base["delta_cdf"] - base.groupby(
        ["architecture", "trained_potential", "seed"])["delta_cdf"].transform("min"))  # fmt: skip
    for ax, net in zip(axes[: len(nets)], nets, strict=True):
        for pot, colour in COLOURS.items():
            cell = base[(base["architecture"] == net) & (base["trained_potential"] == pot)]
            if cell.empty:
                continue
            g = cell.groupby("p")["excess"]
            ax.plot(g.mean().index, g.mean(), color=colour, label=_LABELS[pot])
            ax.fill_between(g.min().index, g.min(), g.max(), color=colour, alpha=0.2, lw=0)
            ax.axvline(_TRAINED_P[pot], color=colour, ls=":", lw=1)
        ax.set(title=f"(a) {net}: trained runs", xlabel="candidate p", ylabel="ΔCDF − run's lowest")
        ax.set_ylim(bottom=0)
    axes[0].legend(title="trained", fontsize=8)

    read = read_p(scans)
    three = read[(read["trained_potential"] == "3-norm") & (read["lr_factor"] == 1.0)]
    ax = axes[len(nets)]
    analyses = [a for a in dict.fromkeys(scans["analysis"]) if a in set(three["analysis"])]
    width = 0.8 / max(len(nets), 1)
    for j, net in enumerate(nets):
        cell = three[three["architecture"] == net].groupby("analysis")["p_read"]
        y = np.arange(len(analyses)) + (j - (len(nets) - 1) / 2) * width
        mean = cell.mean().reindex(analyses)
        std = cell.std().reindex(analyses).fillna(0)
        marker = "os^D"[j % 4]
        ax.errorbar(mean, y, xerr=std, fmt=marker, color=COLOURS["3-norm"], ms=5, capsize=2,
                    mfc="white" if j else COLOURS["3-norm"], label=net)  # fmt: skip
        own = runs[(runs["architecture"] == net) & (runs["trained_potential"] == "3-norm")]
        predicted = own.loc[own["lr_factor"] == 1.0, "predicted_p"].mean()
        ax.axvline(predicted, color="grey", ls="--" if j == 0 else "-.", lw=1,
                   label=f"{net}: 3 − a")  # fmt: skip
    ax.axvline(3.0, color=COLOURS["3-norm"], ls=":", lw=1)
    ax.set_yticks(np.arange(len(analyses)), analyses, fontsize=7)
    ax.invert_yaxis()
    ax.set(title="(b) 3-norm runs: p read", xlabel="p read (mean ± sd over seeds)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)

    ax = axes[len(nets) + 1]
    every = read[read["analysis"] == "all weights"].merge(
        runs, on=["architecture", "trained_potential", "lr_factor", "seed"]
    )
    for pot, colour in COLOURS.items():
        for j, net in enumerate(nets):
            cell = every[(every["trained_potential"] == pot) & (every["architecture"] == net)]
            if cell.empty:
                continue
            jitter = np.random.default_rng(j).uniform(-0.02, 0.02, len(cell))
            ax.scatter(cell["relative_change"], cell["p_read"] + jitter, s=14, color=colour,
                       marker="os^D"[j % 4], facecolors="none" if j else colour,
                       label=f"{_LABELS[pot]}, {net}")  # fmt: skip
        ax.axhline(_TRAINED_P[pot], color=colour, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set(title="(c) all learning rates", xlabel="relative dual change", ylabel="p read")
    ax.legend(fontsize=6, ncol=1)
    fig.tight_layout()
    return fig
