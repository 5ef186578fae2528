"""Figures of the chapter "Log-normal weights and Dale's law" (``book/lognormal_dale.md``).

Each function takes the tables of :mod:`mirrorlib.experiments.lognormal_dale` (as read back
from CSV) and draws on matplotlib axes; nothing is computed beyond grouping and averaging.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter

from mirrorlib.plotting import panel_grid, potential_color, potential_label

__all__ = [
    "method_color",
    "method_label",
    "plot_dale_distributions",
    "plot_dale_training",
    "plot_lognormality_vs_change",
    "plot_regression_distributions",
]

_METHOD_LABELS = {
    "eg": "exponentiated gradient",
    "gd": "gradient descent",
    "sign_constrained_gd": "sign-constrained GD",
}
_METHOD_POTENTIAL = {"eg": "negative_entropy", "gd": "2-norm"}
_INIT_LABELS = {"lognormal": "log-normal start", "normal": "Gaussian start"}
_BEFORE = "0.6"


def method_label(method: str) -> str:
    """A legend label for a Part 2 learning rule."""
    return _METHOD_LABELS.get(method, method)


def method_color(method: str) -> str:
    """EG and GD take their potential's colour; sign-constrained GD is red."""
    if method in _METHOD_POTENTIAL:
        return potential_color(_METHOD_POTENTIAL[method])
    return "C3" if method == "sign_constrained_gd" else "0.3"


def _hist(ax: Axes, part: pd.DataFrame, color, label: str, filled: bool) -> None:
    edges = np.append(part["left"].to_numpy(), part["right"].to_numpy()[-1])
    values = part["density"].to_numpy()
    if filled:
        ax.stairs(values, edges, fill=True, color=color, alpha=0.45, label=label)
    else:
        ax.stairs(values, edges, color=color, lw=1.6, label=label)


def _qq(ax: Axes, part: pd.DataFrame, color, label: str, style: str = "-") -> None:
    ax.plot(part["normal"], part["sample"], style, color=color, lw=1.5, label=label)


def _diagonal(ax: Axes) -> None:
    lim = 3.2
    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.6, ls=":")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-5, 5)
    ax.set_xlabel("normal quantile")


def plot_regression_distributions(
    hist: pd.DataFrame, qq: pd.DataFrame, axes: np.ndarray | None = None
) -> np.ndarray:
    """Part 1: ``log10|w|`` before and after learning, for each start (rows).

    Columns: histogram after EG, histogram after GD (grey: before), and QQ plot of the
    standardised ``log|w|`` against the normal (on the dotted diagonal: log-normal). Tables from
    :func:`~mirrorlib.experiments.lognormal_dale.distribution_tables` with keys
    ``(init, stage, potential)``. Returns the ``(n_inits, 3)`` axes.
    """
    inits = list(dict.fromkeys(hist["init"]))
    pots = [p for p in dict.fromkeys(hist["potential"]) if p != "-"]
    if axes is None:
        axes = panel_grid(len(inits), len(pots) + 1, (3.2, 2.6), sharex="col")
    for i, init in enumerate(inits):
        h, q = hist[hist["init"] == init], qq[qq["init"] == init]
        before_h, before_q = h[h["stage"] == "before"], q[q["stage"] == "before"]
        for j, pot in enumerate(pots):
            ax = axes[i, j]
            _hist(ax, before_h, _BEFORE, "before", True)
            after = h[(h["stage"] == "after") & (h["potential"] == pot)]
            _hist(ax, after, potential_color(pot), f"after {potential_label(pot)}", False)
            if i == 0:
                ax.set_title(potential_label(pot), fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{_INIT_LABELS.get(init, init)}\ndensity")
            if i == len(inits) - 1:
                ax.set_xlabel(r"$\log_{10}|w|$")
        ax = axes[i, -1]
        _qq(ax, before_q, _BEFORE, "before", "--")
        for pot in pots:
            after = q[(q["stage"] == "after") & (q["potential"] == pot)]
            _qq(ax, after, potential_color(pot), potential_label(pot))
        _diagonal(ax)
        ax.set_ylabel(r"quantile of standardised $\log|w|$")
        if i == 0:
            ax.set_title("QQ plot", fontsize=10)
            ax.legend(fontsize=7, loc="upper left")
    return axes


def plot_lognormality_vs_change(table: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """Part 1: Delta-CDF of ``log|w|`` after learning against the relative change.

    One panel per ``alpha``; one line per (potential: colour, start: marker), medians over
    seeds at each label scale; grey dashed: the finite-sample floor. Table from
    :func:`~mirrorlib.experiments.lognormal_dale.run_regression`. Returns the axes.
    """
    alphas = sorted(table["alpha"].unique())
    if axes is None:
        axes = panel_grid(1, len(alphas), (3.6, 3.0), 1.8, sharey=True)[0]
    markers = {"lognormal": "o", "normal": "s"}
    for ax, alpha in zip(axes, alphas, strict=True):
        sub = table[table["alpha"] == alpha]
        cells = sub.groupby(["potential", "init", "label_scale"], sort=False)
        med = cells[["relative_change", "delta_cdf_log_after"]].median().reset_index()
        for (pot, init), line in med.groupby(["potential", "init"], sort=False):
            ax.plot(
                line["relative_change"],
                line["delta_cdf_log_after"],
                marker=markers.get(init, "^"),
                ls="-" if init == "lognormal" else "--",
                color=potential_color(pot),
                label=f"{potential_label(pot)}, {_INIT_LABELS.get(init, init)}",
            )
        ax.axhline(sub["floor"].iloc[0], color="0.5", ls="--", lw=1, label="floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"relative change $\|w_T - w_0\| / \|w_0\|$")
        ax.set_title(rf"$N = D^{{{alpha:g}}}$ = {int(sub['N'].iloc[0])}", fontsize=10)
    axes[0].set_ylabel(r"$\Delta$CDF of $\log|w_T|$")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return axes


def _pooled(weights: pd.DataFrame, column: str, layer: int | None = None) -> pd.DataFrame:
    """Sum ``column`` and ``n`` over populations (and layers unless ``layer``), per method,
    seed and epoch, then average the ratio over seeds."""
    sub = weights if layer is None else weights[weights["layer"] == layer]
    summed = sub.groupby(["method", "seed", "epoch"], sort=False)[[column, "n"]].sum()
    ratio = (summed[column] / summed["n"]).rename("value").reset_index()
    return ratio.groupby(["method", "epoch"], sort=False)["value"].mean().reset_index()


def plot_dale_training(
    accuracy: pd.DataFrame, weights: pd.DataFrame, axes: np.ndarray | None = None
) -> np.ndarray:
    """Part 2: per epoch, test accuracy, sign violations, exact zeros and log-normality.

    Panels: test accuracy (mean over seeds, thin lines: each seed); fraction of weights whose
    sign breaks Dale's law (all layers); fraction of weights exactly 0; Delta-CDF of
    ``log|w|`` of the first layer's excitatory synapses (grey: its floor). Tables from
    :func:`~mirrorlib.experiments.lognormal_dale.run_dale`. Returns the 4 axes.
    """
    if axes is None:
        axes = panel_grid(1, 4, (3.0, 2.7), 1.6)[0]
    methods = list(dict.fromkeys(accuracy["method"]))
    for method in methods:
        color, label = method_color(method), method_label(method)
        acc = accuracy[(accuracy["method"] == method) & (accuracy["epoch"] > 0)]
        for _, seed_rows in acc.groupby("seed"):
            axes[0].plot(seed_rows["epoch"], seed_rows["test_acc"], color=color, lw=0.5, alpha=0.5)
        mean = acc.groupby("epoch")["test_acc"].mean()
        axes[0].plot(mean.index, mean.to_numpy(), color=color, lw=1.8, label=label)
        for ax, column in ((axes[1], "violations"), (axes[2], "zeros")):
            pooled = _pooled(weights[weights["method"] == method], column)
            ax.plot(pooled["epoch"], pooled["value"], color=color, lw=1.8, marker=".")
        sub = weights[
            (weights["method"] == method)
            & (weights["layer"] == 1)
            & (weights["population"] == "excitatory")
        ]
        dcdf = sub.groupby("epoch")["delta_cdf_log"].mean()
        axes[3].plot(dcdf.index, dcdf.to_numpy(), color=color, lw=1.8, marker=".")
    floor = weights[(weights["layer"] == 1) & (weights["population"] == "excitatory")]
    axes[3].plot(
        *zip(*sorted(floor.groupby("epoch")["floor"].mean().items()), strict=True),
        color="0.5",
        ls="--",
        lw=1,
        label="floor",
    )
    axes[3].set_yscale("log")
    axes[3].legend(fontsize=7)
    labels = (
        "test accuracy",
        "fraction of weights\nwith the wrong sign",
        "fraction of weights\nexactly 0",
        r"$\Delta$CDF of $\log|w|$" + "\n(layer 1, excitatory)",
    )
    for ax, label in zip(axes, labels, strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, loc="lower right")
    return axes


def plot_dale_distributions(
    hist: pd.DataFrame,
    qq: pd.DataFrame,
    population: str = "excitatory",
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Part 2: ``log10|w|`` of one population before (grey) and after each method.

    Rows: layers; columns: one histogram per method, then a QQ plot of the standardised
    ``log|w|`` of every method against the normal. Tables from
    :func:`~mirrorlib.experiments.lognormal_dale.distribution_tables` with keys
    ``(stage, layer, population, method)``. Returns the axes.
    """
    hist, qq = hist[hist["population"] == population], qq[qq["population"] == population]
    layers = sorted(hist["layer"].unique())
    methods = [m for m in dict.fromkeys(hist["method"]) if m != "-"]
    if axes is None:
        axes = panel_grid(len(layers), len(methods) + 1, (2.9, 2.4))
    for i, layer in enumerate(layers):
        h, q = hist[hist["layer"] == layer], qq[qq["layer"] == layer]
        before_h, before_q = h[h["stage"] == "before"], q[q["stage"] == "before"]
        for j, method in enumerate(methods):
            ax = axes[i, j]
            _hist(ax, before_h, _BEFORE, "before", True)
            after = h[(h["stage"] == "after") & (h["method"] == method)]
            _hist(ax, after, method_color(method), "after", False)
            if i == 0:
                ax.set_title(method_label(method), fontsize=10)
            if j == 0:
                ax.set_ylabel(f"layer {layer}\ndensity")
            ax.set_xlabel(r"$\log_{10}|w|$")
        ax = axes[i, -1]
        _qq(ax, before_q, _BEFORE, "before", "--")
        for method in methods:
            after = q[(q["stage"] == "after") & (q["method"] == method)]
            _qq(ax, after, method_color(method), method_label(method))
        _diagonal(ax)
        ax.set_ylabel(r"standardised $\log|w|$")
        if i == 0:
            ax.set_title("QQ plot", fontsize=10)
            ax.legend(fontsize=7, loc="upper left")
    return axes
