"""Figures of the chapter "Why the change in the dual space looks Gaussian".

Each function takes a table written by :mod:`mirrorlib.experiments.dual_gaussian` and draws on
matplotlib axes (created when not given); it returns the axes. Medians over seeds are lines,
bands span the ``band`` quantiles.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats

from mirrorlib.plotting import potential_color, potential_label

__all__ = [
    "plot_clt",
    "plot_deep",
    "plot_dual_histograms",
    "plot_linearisation",
]

_INPUT_LABELS = {
    "binary": "iid signs $\\pm 1$",
    "short": "paper's inputs, $p = 2$ (short range)",
    "long": "paper's inputs, $p = 1$ (long range)",
}
_ALPHA_STYLES = ("-", "--", ":", "-.")


def _summary(sub: pd.DataFrame, x: str, column: str, band: tuple[float, float]) -> pd.DataFrame:
    """Median and ``band`` quantiles of ``column`` per value of ``x`` (NaN rows dropped)."""
    grouped = sub.dropna(subset=[column]).groupby(x)[column]
    return pd.DataFrame(
        {
            "median": grouped.median(),
            "lo": grouped.quantile(band[0]),
            "hi": grouped.quantile(band[1]),
        }
    ).sort_index()


def _line_band(ax, s: pd.DataFrame, color, ls: str = "-", label: str | None = None) -> None:
    ax.plot(s.index, s["median"], color=color, ls=ls, marker="o", ms=3, lw=1.5, label=label)
    ax.fill_between(s.index, s["lo"], s["hi"], color=color, alpha=0.15, lw=0)


def _potential_legend(ax, pots: list[str], **kwargs) -> None:
    handles = [
        Line2D([], [], color=potential_color(p), marker="o", ms=3, label=potential_label(p))
        for p in pots
    ]
    ax.legend(handles=handles, frameon=False, fontsize=8, **kwargs)


def plot_linearisation(
    table: pd.DataFrame, axes: np.ndarray | None = None, band: tuple[float, float] = (0.05, 0.95)
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_linearisation`, against ``N / D``:
    the linearisation error ``||w* - w_lin|| / ||w* - w0||`` (the 2-norm's, zero up to
    rounding, is left out), the Delta-CDF of the dual change with the Gaussian null (black
    dotted), and the share of problems with an interpolating solution. Returns 3 axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11.5, 3.2), layout="constrained")
    axes = np.asarray(axes).reshape(-1)
    pots = list(dict.fromkeys(table["potential"]))
    for pot in pots:
        sub = table[table["potential"] == pot]
        color = potential_color(pot)
        if pot != "2-norm":
            _line_band(axes[0], _summary(sub, "ratio", "lin_error", band), color)
        _line_band(axes[1], _summary(sub, "ratio", "delta_cdf", band), color)
        share = sub.groupby("ratio")["converged"].mean()
        axes[2].plot(share.index, share.to_numpy(), color=color, marker="o", ms=3, lw=1.5)
    null = table.groupby("ratio")["null"].first()
    axes[1].plot(null.index, null.to_numpy(), color="k", ls=":", lw=1.5)
    axes[0].set_ylabel(r"$\|w^* - w_{\mathrm{lin}}\| \,/\, \|w^* - w_0\|$")
    axes[1].set_ylabel(r"$\Delta$CDF of the dual change")
    axes[2].set_ylabel("share where $w^*$ was found")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("$N / D$")
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].set_ylim(-0.05, 1.05)
    _potential_legend(axes[2], pots, loc="lower left")
    return axes


def plot_clt(
    table: pd.DataFrame, axes: np.ndarray | None = None, band: tuple[float, float] = (0.05, 0.95)
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_clt`: one row of panels per input
    law; left, the Delta-CDF of the dual change against ``D`` with the floor of ``D``
    independent Gaussian values (grey dashed) and the correlated null (black dotted); right,
    ``||w* - w0|| / ||w0||`` with ``sqrt(2 N / D)`` (grey). Colour: potential; line style:
    ``alpha`` (``N = D^alpha``). Returns the ``(rows, 2)`` axes."""
    kinds = list(dict.fromkeys(table["inputs"]))
    pots = list(dict.fromkeys(table["potential"]))
    alphas = sorted(table["alpha"].unique())
    if axes is None:
        _, axes = plt.subplots(
            len(kinds),
            2,
            figsize=(9.5, 2.6 * len(kinds) + 0.3),
            sharex=True,
            squeeze=False,
            layout="constrained",
        )
    axes = np.asarray(axes).reshape(len(kinds), 2)
    for i, kind in enumerate(kinds):
        cell = table[table["inputs"] == kind]
        ax_d, ax_r = axes[i]
        refs = cell.groupby("D")[["floor", "null"]].first().sort_index()
        ax_d.plot(refs.index, refs["floor"], color="0.55", ls="--", lw=1.2)
        if not np.allclose(refs["floor"], refs["null"]):
            ax_d.plot(refs.index, refs["null"], color="k", ls=":", lw=1.5)
        for k, alpha in enumerate(alphas):
            ls = _ALPHA_STYLES[k % len(_ALPHA_STYLES)]
            sub_a = cell[cell["alpha"] == alpha]
            for pot in pots:
                sub = sub_a[sub_a["potential"] == pot]
                color = potential_color(pot)
                _line_band(ax_d, _summary(sub, "D", "delta_cdf", band), color, ls)
                _line_band(ax_r, _summary(sub, "D", "relative_change", band), color, ls)
            pred = sub_a.groupby("D")["prediction"].first().sort_index()
            ax_r.plot(pred.index, pred.to_numpy(), color="0.3", ls=ls, lw=2.5, alpha=0.35)
        ax_d.set_ylabel(_INPUT_LABELS.get(kind, kind) + "\n" + r"$\Delta$CDF", fontsize=9)
        ax_r.set_ylabel(r"$\|w^* - w_0\| / \|w_0\|$")
        for ax in (ax_d, ax_r):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(plt.NullFormatter())
    for ax in axes[-1]:
        ax.set_xlabel("number of weights $D$")
    handles = [
        Line2D([], [], color=potential_color(p), marker="o", ms=3, label=potential_label(p))
        for p in pots
    ]
    handles += [
        Line2D([], [], color="k", ls=_ALPHA_STYLES[k % 4], label=f"$N = D^{{{a:g}}}$")
        for k, a in enumerate(alphas)
    ]
    handles += [
        Line2D([], [], color="0.55", ls="--", label="floor, independent values"),
        Line2D([], [], color="k", ls=":", label="null, correlated like inputs"),
        Line2D([], [], color="0.3", lw=2.5, alpha=0.35, label=r"$\sqrt{2N/D}$"),
    ]
    axes[0, 1].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8
    )
    return axes


def _step_histogram(ax, hist: pd.DataFrame, color, label: str | None = None) -> None:
    edges = np.append(hist["left"].to_numpy(), hist["right"].iloc[-1])
    ax.stairs(hist["density"].to_numpy(), edges, color=color, lw=1.4, label=label)


def _normal_density(ax) -> None:
    t = np.linspace(-5, 5, 400)
    ax.plot(t, stats.norm.pdf(t), color="k", ls=":", lw=1.3)


def plot_dual_histograms(hists: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.dual_change_histograms`: one panel per
    number of examples ``N``, the histogram of the standardised dual change for each potential
    and the standard normal density (black dotted). Returns the axes."""
    ns = sorted(hists["N"].unique())
    pots = list(dict.fromkeys(hists["potential"]))
    if axes is None:
        _, axes = plt.subplots(
            1, len(ns), figsize=(3.3 * len(ns), 2.8), sharey=True, layout="constrained"
        )
    axes = np.atleast_1d(axes)
    for ax, n in zip(axes, ns, strict=True):
        for pot in pots:
            sub = hists[(hists["N"] == n) & (hists["potential"] == pot)]
            if len(sub):
                _step_histogram(ax, sub, potential_color(pot))
        _normal_density(ax)
        ax.set_title(f"$N = {n}$, $D = {int(hists['D'].iloc[0])}$", fontsize=9)
        ax.set_xlabel("dual change / its std")
        ax.set_xlim(-4.5, 4.5)
    axes[0].set_ylabel("density")
    _potential_legend(axes[-1], pots, loc="upper right")
    return axes


def plot_deep(
    summary: pd.DataFrame,
    hists: pd.DataFrame,
    axes: np.ndarray | None = None,
    band: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.dual_gaussian.run_deep`: against the hidden width,
    the linearisation error on held-out inputs, the middle layer's relative change and the
    Delta-CDF of its dual change (grey dashed: the floor); last panel, the histograms of the
    standardised dual change at the largest width with the standard normal density (black
    dotted). Returns 4 axes."""
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(14, 3.1), layout="constrained")
    axes = np.asarray(axes).reshape(-1)
    pots = list(dict.fromkeys(summary["potential"]))
    columns = ("lin_error", "relative_change", "delta_cdf")
    for pot in pots:
        sub = summary[summary["potential"] == pot]
        for ax, column in zip(axes[:3], columns, strict=True):
            _line_band(ax, _summary(sub, "width", column, band), potential_color(pot))
    floor = summary.groupby("width")["floor"].first()
    axes[2].plot(floor.index, floor.to_numpy(), color="0.55", ls="--", lw=1.2)
    labels = (
        r"$\|f - f_{\mathrm{lin}}\| \,/\, \|f - f_0\|$ (held out)",
        r"$\|W_2 - W_2^{0}\| / \|W_2^{0}\|$",
        r"$\Delta$CDF of the dual change of $W_2$",
    )
    for ax, label in zip(axes[:3], labels, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden width")
        ax.set_ylabel(label)
    widest = hists["width"].max()
    for pot in pots:
        sub = hists[(hists["width"] == widest) & (hists["potential"] == pot)]
        _step_histogram(axes[3], sub, potential_color(pot))
    _normal_density(axes[3])
    axes[3].set_xlim(-4.5, 4.5)
    axes[3].set_xlabel(f"dual change of $W_2$ / its std (width {widest})")
    axes[3].set_ylabel("density")
    _potential_legend(axes[0], pots, loc="lower left")
    return axes
