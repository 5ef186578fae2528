"""The figure of "Why the 3-norm is read as the 2.5-norm" (chapter ``book/deep_networks.md``).

Drawn from the tables of :func:`mirrorlib.experiments.three_norm.run_three_norm` (``runs``: one
row per run; ``scans``: one row per run, analysis and candidate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mirrorlib.experiments.three_norm import read_p
from mirrorlib.plotting import figure_legend, page_axes, potential_color, potential_label

__all__ = ["plot_three_norm"]

_POTENTIALS = ("negative_entropy", "2-norm", "3-norm")
_TRAINED_P = {"negative_entropy": 1.0, "2-norm": 2.0, "3-norm": 3.0}
_MARKERS = "os^D"
_SLOPE_STYLES = ("--", "-.", ":", (0, (1, 3)))


def plot_three_norm(runs: pd.DataFrame, scans: pd.DataFrame) -> Figure:
    """Panels (a), one per network: the Delta-CDF of each p-norm of the grid minus the run's
    lowest, mean over seeds (band: min to max), one line per trained potential, at the chosen
    learning rate (dotted: the trained p). (b) The p read from the 3-norm runs by each analysis
    (all weights, per tensor, without sign changes, without the smallest ``|w0|``), mean and sd
    over seeds, and the p predicted by the scale slope (``3 - a``, grey). (c) The p read
    against the relative dual change, one point per run at every learning-rate factor. One
    legend below the panels; markers tell the networks apart."""
    nets = list(dict.fromkeys(runs["architecture"]))
    cols = max(len(nets), 2)
    axes = page_axes(2, cols, 2.6)
    for ax in axes[1, 2:]:
        ax.set_axis_off()
    base = scans[(scans["lr_factor"] == 1.0) & (scans["analysis"] == "all weights")]
    base = base.dropna(subset=["p"])
    base = base.assign(excess=base["delta_cdf"] - base.groupby(
        ["architecture", "trained_potential", "seed"])["delta_cdf"].transform("min"))  # fmt: skip
    for ax, net in zip(axes[0], nets, strict=False):
        for pot in _POTENTIALS:
            cell = base[(base["architecture"] == net) & (base["trained_potential"] == pot)]
            if cell.empty:
                continue
            g = cell.groupby("p")["excess"]
            colour = potential_color(pot)
            ax.plot(
                g.mean().index, g.mean(), color=colour, label=f"trained: {potential_label(pot)}"
            )
            ax.fill_between(g.min().index, g.min(), g.max(), color=colour, alpha=0.2, lw=0)
            ax.axvline(_TRAINED_P[pot], color=colour, ls=":", lw=1)
        ax.set(title=f"(a) {net}", xlabel="candidate p-norm (p)", ylabel="ΔCDF − run's lowest")
        ax.set_ylim(bottom=0)
    for ax in axes[0, len(nets) :]:
        ax.set_axis_off()

    read = read_p(scans)
    three = read[(read["trained_potential"] == "3-norm") & (read["lr_factor"] == 1.0)]
    ax = axes[1, 0]
    analyses = [a for a in dict.fromkeys(scans["analysis"]) if a in set(three["analysis"])]
    width = 0.8 / max(len(nets), 1)
    colour = potential_color("3-norm")
    for j, net in enumerate(nets):
        cell = three[three["architecture"] == net].groupby("analysis")["p_read"]
        y = np.arange(len(analyses)) + (j - (len(nets) - 1) / 2) * width
        mean = cell.mean().reindex(analyses)
        std = cell.std().reindex(analyses).fillna(0)
        ax.errorbar(mean, y, xerr=std, fmt=_MARKERS[j % 4], color=colour, ms=4, capsize=2,
                    mfc="white" if j else colour)  # fmt: skip
        own = runs[(runs["architecture"] == net) & (runs["trained_potential"] == "3-norm")]
        predicted = own.loc[own["lr_factor"] == 1.0, "predicted_p"].mean()
        ax.axvline(predicted, color="0.4", ls=_SLOPE_STYLES[j % 4], lw=1)
    ax.axvline(3.0, color=colour, ls=":", lw=1)
    ax.set_yticks(np.arange(len(analyses)), analyses, fontsize=7)
    ax.invert_yaxis()
    ax.set(title="(b) 3-norm runs", xlabel="p read (mean ± sd over seeds)")

    ax = axes[1, 1]
    every = read[read["analysis"] == "all weights"].merge(
        runs, on=["architecture", "trained_potential", "lr_factor", "seed"]
    )
    for pot in _POTENTIALS:
        colour = potential_color(pot)
        for j, net in enumerate(nets):
            cell = every[(every["trained_potential"] == pot) & (every["architecture"] == net)]
            if cell.empty:
                continue
            jitter = np.random.default_rng(j).uniform(-0.02, 0.02, len(cell))
            ax.scatter(cell["relative_change"], cell["p_read"] + jitter, s=12, color=colour,
                       marker=_MARKERS[j % 4], facecolors="none" if j else colour)  # fmt: skip
        ax.axhline(_TRAINED_P[pot], color=colour, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set(title="(c) every learning rate", xlabel="relative dual change", ylabel="p read")

    extra = [
        Line2D(
            [],
            [],
            color="0.3",
            marker=_MARKERS[j % 4],
            ls="none",
            mfc="white" if j else "0.3",
            label=net,
        )  # fmt: skip
        for j, net in enumerate(nets)
    ]
    extra += [
        Line2D([], [], color="0.4", ls=_SLOPE_STYLES[j % 4], lw=1, label=f"3 − a, {net}")
        for j, net in enumerate(nets)
    ]
    extra.append(Line2D([], [], color="0.3", ls=":", lw=1, label="trained p"))
    figure_legend(axes[0, 0], extra=extra, ncol=3, grey=("trained p",))
    return axes[0, 0].figure
