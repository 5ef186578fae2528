"""Figures of the chapter "Why the change in the dual space looks Gaussian".

Each function takes a table written by :mod:`mirrorlib.experiments.dual_gaussian` and draws it
with seaborn on matplotlib axes (created when not given); it returns the axes. Medians over
seeds are lines, bands span seaborn's ``errorbar`` (``("pi", 90)``: 5 % to 95 % of seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from scipy import stats

from mirrorlib.plotting import by_potential, figure_legend, page_axes, plot_floor

__all__ = [
    "plot_clt",
    "plot_deep",
    "plot_dual_histograms",
    "plot_linearisation",
]

_INPUT_LABELS = {
    "binary": "signs $\\pm 1$",
    "short": "$p = 2$ inputs",
    "long": "$p = 1$ inputs",
}
_NORMAL = Line2D([], [], color="k", ls=":", lw=1.3, label="standard normal")


def _medians(data, x: str, y: str, ax, errorbar, **kwargs) -> None:
    sns.lineplot(
        data,
        x=x,
        y=y,
        estimator="median",
        errorbar=errorbar,
        marker="o",
        markersize=4,
        ax=ax,
        **kwargs,
    )


def plot_linearisation(
    table: pd.DataFrame, axes: np.ndarray | None = None, errorbar=("pi", 90)
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_linearisation`, against ``N / D``:
    the linearisation error ``||w* - w_lin|| / ||w* - w0||`` (the 2-norm's, zero up to
    rounding, is left out), the Delta-CDF of the dual change with the Gaussian null (black
    dotted), and the share of problems with an interpolating solution. Returns 3 axes."""
    if axes is None:
        axes = page_axes(1, 3, 2.3)
    axes = np.asarray(axes).reshape(-1)
    data, hue = by_potential(table)
    _medians(
        data[table["potential"] != "2-norm"],
        "ratio",
        "lin_error",
        axes[0],
        errorbar,
        legend=False,
        **hue,
    )
    _medians(data, "ratio", "delta_cdf", axes[1], errorbar, **hue)
    sns.lineplot(
        data,
        x="ratio",
        y="converged",
        errorbar=None,
        marker="o",
        markersize=4,
        legend=False,
        ax=axes[2],
        **hue,
    )
    null = table.groupby("ratio")["null"].first()
    axes[1].plot(null.index, null.to_numpy(), color="k", ls=":", lw=1.5, label="Gaussian null")
    axes[0].set(yscale="log", ylabel=r"$\|w^* - w_{\mathrm{lin}}\| \,/\, \|w^* - w_0\|$")
    axes[1].set(yscale="log", ylabel=r"$\Delta$CDF of the dual change")
    axes[2].set(ylim=(-0.05, 1.05), ylabel="share where $w^*$ was found")
    for ax in axes:
        ax.set(xscale="log", xlabel="examples per weight $N / D$")
    figure_legend(axes[1])
    return axes


def plot_clt(
    table: pd.DataFrame, axes: np.ndarray | None = None, errorbar=("pi", 90)
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_clt`: one row of panels per input
    law; left, the Delta-CDF of the dual change against ``D`` with the floor of ``D``
    independent Gaussian values (grey dashed) and the correlated null (black dotted); right,
    ``||w* - w0|| / ||w0||`` with ``sqrt(2 N / D)`` (thick grey). Colour: potential; line style:
    ``alpha`` (``N = D^alpha``). Returns the ``(rows, 2)`` axes."""
    kinds = list(dict.fromkeys(table["inputs"]))
    if axes is None:
        axes = page_axes(len(kinds), 2, 1.9, sharex=True)
    axes = np.asarray(axes).reshape(len(kinds), 2)
    data, hue = by_potential(table.assign(alpha=table["alpha"].map(lambda a: f"$N = D^{{{a:g}}}$")))
    for (ax_d, ax_r), kind in zip(axes, kinds, strict=True):
        cell = data[table["inputs"] == kind]
        refs = cell.groupby("D")[["floor", "null"]].first()
        plot_floor(ax_d, refs.index, refs["floor"], label="floor, independent values")
        if not np.allclose(refs["floor"], refs["null"]):
            ax_d.plot(refs.index, refs["null"], color="k", ls=":", lw=1.5, label="null, correlated")
        _medians(cell, "D", "delta_cdf", ax_d, errorbar, style="alpha", **hue)
        _medians(cell, "D", "relative_change", ax_r, errorbar, style="alpha", legend=False, **hue)
        sns.lineplot(
            cell.groupby(["alpha", "D"])["prediction"].first().reset_index(),
            x="D",
            y="prediction",
            style="alpha",
            color="0.3",
            lw=2.5,
            alpha=0.35,
            ax=ax_r,
            legend=False,
        )
        ax_d.set_ylabel(_INPUT_LABELS.get(kind, kind) + "\n" + r"$\Delta$CDF")
        ax_r.set_ylabel(r"$\|w^* - w_0\| / \|w_0\|$")
    for ax in axes.flat:
        ax.set(xscale="log", yscale="log", xlabel="number of weights $D$")
    figure_legend(
        axes[-1, 0],
        [Line2D([], [], color="0.3", lw=2.5, alpha=0.35, label=r"$\sqrt{2N/D}$")],
        ncol=4,
    )
    return axes


def _binned(hists: pd.DataFrame, ax, **kwargs) -> None:
    """Histograms tabulated as ``left, right, density`` (the same edges in every group), drawn
    as steps."""
    edges = np.union1d(hists["left"], hists["right"]).tolist()
    sns.histplot(
        hists.assign(x=(hists["left"] + hists["right"]) / 2),
        x="x",
        weights="density",
        bins=edges,
        element="step",
        fill=False,
        ax=ax,
        **kwargs,
    )
    t = np.linspace(-5, 5, 400)
    ax.plot(t, stats.norm.pdf(t), color="k", ls=":", lw=1.3)
    ax.set(xlim=(-4.5, 4.5), ylabel="density")


def plot_dual_histograms(hists: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.dual_change_histograms`: one panel per
    number of examples ``N``, the histogram of the standardised dual change for each potential
    and the standard normal density (black dotted). Returns the axes."""
    ns = sorted(hists["N"].unique())
    if axes is None:
        axes = page_axes(1, len(ns), 2.2, sharey=True)[0]
    data, hue = by_potential(hists)
    for ax, n in zip(axes, ns, strict=True):
        _binned(data[hists["N"] == n], ax, **hue)
        ax.set_title(f"$N = {n}$, $D = {int(hists['D'].iloc[0])}$")
        ax.set_xlabel("dual change / its std")
    figure_legend(axes[0], [_NORMAL], ncol=4)
    return axes


def plot_deep(
    summary: pd.DataFrame,
    hists: pd.DataFrame,
    axes: np.ndarray | None = None,
    errorbar=("pi", 100),
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_deep`: against the hidden width,
    the linearisation error on held-out inputs, the middle layer's relative change and the
    Delta-CDF of its dual change (grey dashed: the floor); last panel, the histograms of the
    standardised dual change at the largest width with the standard normal density (black
    dotted). Bands: ``errorbar`` over seeds (default: min to max). Returns 4 axes."""
    if axes is None:
        axes = page_axes(2, 2, 2.3)
    axes = np.asarray(axes).reshape(-1)
    data, hue = by_potential(summary)
    labels = {
        "lin_error": r"$\|f - f_{\mathrm{lin}}\| \,/\, \|f - f_0\|$ (held out)",
        "relative_change": r"$\|W_2 - W_2^{0}\| / \|W_2^{0}\|$",
        "delta_cdf": r"$\Delta$CDF of the dual change of $W_2$",
    }
    for ax, (column, label) in zip(axes[:3], labels.items(), strict=True):
        _medians(data, "width", column, ax, errorbar, legend=ax is axes[0], **hue)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="hidden width", ylabel=label)
    floor = summary.groupby("width")["floor"].first()
    plot_floor(axes[2], floor.index, floor.to_numpy())
    widest = hists["width"].max()
    hist_data, hist_hue = by_potential(hists[hists["width"] == widest])
    _binned(hist_data, axes[3], legend=False, **hist_hue)
    axes[3].set_xlabel(f"dual change of $W_2$ / its std (width {widest})")
    figure_legend(axes[0], [axes[2].lines[-1], _NORMAL], ncol=3)
    return axes
