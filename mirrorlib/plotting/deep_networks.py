"""Figures of the chapter "Recovering the geometry of finetuned deep networks".

The first two take the run table of :func:`mirrorlib.experiments.deep_networks.collect`
(one row per run and candidate) and draw it with seaborn: mean over seeds, bars or bands from
the smallest to the largest seed. :func:`plot_running_statistics_lag` takes the table of
:func:`mirrorlib.experiments.deep_networks.running_statistics_lag`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from mirrorlib.experiments.deep_networks.prose import network_name
from mirrorlib.plotting import (
    PAGE_WIDTH,
    by_potential,
    figure_legend,
    page_axes,
    plot_floor,
    potential_color,
)

__all__ = ["plot_delta_cdf_vs_size", "plot_candidate_scan", "plot_running_statistics_lag"]

_CANDIDATE_X = {"negative_entropy": 1.0, "1.5-norm": 1.5, "2-norm": 2.0, "2.5-norm": 2.5}
_CANDIDATE_X["3-norm"] = 3.0
_MIN_TO_MAX = ("pi", 100)


def _network_label(architecture: str) -> str:
    """A network's name for a legend or a panel title: the prose name without its article
    ("small ResNet", "MLP-32")."""
    return network_name(architecture).removeprefix("the ")


def _trained_with(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """:func:`~mirrorlib.plotting.by_potential` on the column ``trained_potential``, shown as
    "trained with"."""
    data, hue = by_potential(
        table.rename(columns={"trained_potential": "trained with"}), "trained with"
    )
    return data, hue


def plot_delta_cdf_vs_size(
    table: pd.DataFrame,
    column: str = "delta_cdf",
    objective: str = "supervised",
    ax: Axes | None = None,
) -> Axes:
    """Fig 4 (a): the Delta-CDF (``column``) of the trained potential's dual change against the
    number of analysed weights; one marker per network, one colour per trained potential
    (mean over seeds, bars: min to max; potentials nudged apart along x). Grey dashed: the
    finite-sample floor."""
    if ax is None:
        ax = page_axes(height=0.55 * PAGE_WIDTH, width=0.8 * PAGE_WIDTH)[0, 0]
    own = table[
        (table["objective"] == objective) & (table["candidate"] == table["trained_potential"])
    ]
    pots = list(dict.fromkeys(own["trained_potential"]))
    nudge = dict(zip(pots, 10 ** np.linspace(-0.04, 0.04, len(pots)), strict=True))
    own = own.assign(
        D=own["n_weights"] * own["trained_potential"].map(nudge),
        network=own["architecture"].map(_network_label),
    )
    data, hue = _trained_with(own.sort_values("n_weights"))
    sns.lineplot(
        data,
        x="D",
        y=column,
        style="network",
        markers=True,
        dashes=False,
        estimator="mean",
        errorbar=_MIN_TO_MAX,
        err_style="bars",
        markersize=7,
        ax=ax,
        **hue,
    )
    floors = own.groupby("n_weights")["floor"].mean()
    plot_floor(ax, floors.index, floors.to_numpy())
    ax.set(xscale="log", yscale="log", xlabel="number of analysed weights $D$")
    ax.set_ylabel(r"$\Delta$CDF of the trained potential")
    figure_legend(ax, below=False)
    return ax


def plot_candidate_scan(
    table: pd.DataFrame, column: str = "delta_cdf", objective: str = "supervised"
) -> np.ndarray:
    """Fig 4 (b): per architecture (panels, by size), the Delta-CDF (``column``) of each
    hypothesised potential (negative entropy at x = 1, then p), one line per trained potential
    (mean over seeds, band: min to max); the trained potential's own point is circled. Negative
    entropy is missing where finetuning changed a sign (it cannot have made the change).
    Returns the axes (one per architecture)."""
    sub = table[(table["objective"] == objective) & table["candidate"].isin(_CANDIDATE_X)]
    if sub.empty:
        raise ValueError(f"no runs with objective {objective!r} in the table")
    sub = sub.sort_values("n_weights").assign(
        network=lambda t: [
            f"{_network_label(a)}\n$D$ = {n:,}"
            for a, n in zip(t["architecture"], t["n_weights"], strict=True)
        ],
        x=lambda t: t["candidate"].map(_CANDIDATE_X),
    )
    data, hue = _trained_with(sub)
    cols = min(data["network"].nunique(), 3)
    grid = sns.relplot(
        data,
        x="x",
        y=column,
        col="network",
        col_wrap=cols,
        kind="line",
        estimator="mean",
        errorbar=_MIN_TO_MAX,
        marker="o",
        markersize=4,
        height=1.75,
        aspect=1.2,
        facet_kws={"sharey": False},
        **hue,
    )
    own = data[sub["candidate"] == sub["trained_potential"]]
    means = own.groupby(["network", "trained with"], sort=False)[["x", column]].mean()
    for (network, pot), point in means.iterrows():
        grid.axes_dict[network].plot(
            point["x"], point[column], "o", ms=9, mfc="none", color=hue["palette"][pot]
        )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("hypothesised potential", r"$\Delta$CDF")
    grid.set(xticks=list(_CANDIDATE_X.values()), xticklabels=["NE", "1.5", "2", "2.5", "3"])
    sns.move_legend(grid, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=4)
    grid.tight_layout()
    return grid.axes


_STATISTICS = {
    "accuracy_running": "running statistics (as measured)",
    "accuracy_recalibrated": "recalibrated on the training images",
}


def plot_running_statistics_lag(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Training accuracy against epoch, with the batch norm's running statistics (as the
    protocol measures it: in the trained potential's colour) and with statistics recalibrated
    on the training images (grey), for each batch-norm momentum (line style)."""
    if ax is None:
        ax = page_axes(height=0.5 * PAGE_WIDTH, width=0.8 * PAGE_WIDTH)[0, 0]
    long = table.melt(
        id_vars=["epoch", "bn_momentum"], value_vars=list(_STATISTICS),
        var_name="batch-norm statistics", value_name="training accuracy",
    )  # fmt: skip
    long["batch-norm statistics"] = long["batch-norm statistics"].map(_STATISTICS)
    long["momentum"] = long["bn_momentum"].map(lambda m: f"{m:g}")
    (trained,) = table["trained_potential"].unique()
    palette = dict(zip(_STATISTICS.values(), [potential_color(trained), "0.6"], strict=True))
    sns.lineplot(
        long, x="epoch", y="training accuracy", hue="batch-norm statistics", style="momentum",
        markers=True, palette=palette, ax=ax,
    )  # fmt: skip
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(ylim=(None, 1.02), xlabel="epoch of the finetuning")
    figure_legend(ax, below=False)
    return ax
