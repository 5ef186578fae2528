"""Figures of the chapter "Log-normal weights and Dale's law" (``book/lognormal_dale.md``).

Each function takes the tables of :mod:`mirrorlib.experiments.lognormal_dale` (as read back
from CSV) and draws them with seaborn; nothing is computed beyond grouping and averaging.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from mirrorlib.plotting import by_potential, figure_legend, page_axes, plot_floor, potential_color

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
_BEFORE = "0.75"


def method_label(method: str) -> str:
    """A legend label for a Part 2 learning rule."""
    return _METHOD_LABELS.get(method, method)


def method_color(method: str) -> str:
    """EG and GD take their potential's colour; sign-constrained GD (no potential) is black."""
    return (
        potential_color(_METHOD_POTENTIAL.get(method, method))
        if method != "sign_constrained_gd"
        else "k"
    )


def _by_method(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The table with readable method names and seaborn keywords colouring by method."""
    methods = [m for m in dict.fromkeys(table["method"]) if m != "-"]
    palette = {method_label(m): method_color(m) for m in methods}
    data = table.assign(method=table["method"].map(method_label))
    return data, {"hue": "method", "hue_order": list(palette), "palette": palette}


def _binned(ax, part: pd.DataFrame, **kwargs) -> None:
    """A histogram tabulated as ``left, right, density``, as a step line (filled: ``fill``)."""
    edges = np.union1d(part["left"], part["right"]).tolist()
    sns.histplot(
        part.assign(x=(part["left"] + part["right"]) / 2),
        x="x",
        weights="density",
        bins=edges,
        element="step",
        ax=ax,
        **kwargs,
    )


def _qq(ax, qq: pd.DataFrame, hue: dict) -> None:
    """QQ lines of the standardised ``log|w|`` (grey dashed: before learning) on the diagonal
    of an exact log-normal."""
    before = qq[qq["stage"] == "before"]
    ax.plot(before["normal"], before["sample"], "--", color=_BEFORE, lw=1.5, label="before")
    sns.lineplot(
        qq[qq["stage"] == "after"], x="normal", y="sample", sort=False, estimator=None, ax=ax, **hue
    )
    ax.plot([-3.2, 3.2], [-3.2, 3.2], color="k", lw=0.6, ls=":")
    ax.set(xlim=(-3.2, 3.2), ylim=(-5, 5), xlabel="normal quantile", title="QQ plot")
    ax.set_ylabel("standardised\n" r"$\log|w|$")


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
        axes = page_axes(len(inits), len(pots) + 1, 2.0, sharex="col")
    hist_data, hue = by_potential(hist[hist["potential"] != "-"])
    qq_data, _ = by_potential(qq)
    for i, init in enumerate(inits):
        h = hist[hist["init"] == init]
        for ax, pot in zip(axes[i], pots, strict=False):
            _binned(ax, h[h["stage"] == "before"], color=_BEFORE, label="before", fill=True, lw=0)
            _binned(
                ax,
                h[(h["stage"] == "after") & (h["potential"] == pot)],
                fill=False,
                lw=1.6,
                color=potential_color(pot),
            )
            ax.set(title=hue["hue_order"][pots.index(pot)], xlabel=r"$\log_{10}|w|$")
            ax.set_ylabel(f"{_INIT_LABELS.get(init, init)}\ndensity")
        _qq(axes[i, -1], qq_data[qq["init"] == init], hue)
    figure_legend(axes[0, -1], ncol=3)
    return axes


def plot_lognormality_vs_change(table: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """Part 1: Delta-CDF of ``log|w|`` after learning against the relative change.

    One panel per ``alpha``; one line per (potential: colour, start: marker and dashes), medians
    over seeds at each label scale; grey dashed: the finite-sample floor. Table from
    :func:`~mirrorlib.experiments.lognormal_dale.run_regression`. Returns the axes.
    """
    alphas = sorted(table["alpha"].unique())
    if axes is None:
        axes = page_axes(1, len(alphas), 2.6, sharey=True)[0]
    cells = table.groupby(["alpha", "potential", "init", "label_scale"], sort=False)
    medians = cells[["relative_change", "delta_cdf_log_after", "N", "floor"]].median().reset_index()
    data, hue = by_potential(medians.assign(start=medians["init"].map(_INIT_LABELS)))
    for ax, alpha in zip(axes, alphas, strict=True):
        sub = data[data["alpha"] == alpha]
        sns.lineplot(
            sub,
            x="relative_change",
            y="delta_cdf_log_after",
            style="start",
            units="init",
            estimator=None,
            markers=True,
            sort=True,
            ax=ax,
            **hue,
        )
        plot_floor(ax, None, sub["floor"].iloc[0])
        ax.set(xscale="log", yscale="log", xlabel=r"relative change $\|w_T - w_0\| / \|w_0\|$")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(rf"$N = D^{{{alpha:g}}}$ = {int(sub['N'].iloc[0])}")
        ax.set_ylabel(r"$\Delta$CDF of $\log|w_T|$")
    figure_legend(axes[0], ncol=3)
    return axes


def _pooled(weights: pd.DataFrame, column: str) -> pd.DataFrame:
    """Sum ``column`` and ``n`` over layers and populations, per method, seed and epoch: the
    fraction of all weights."""
    summed = weights.groupby(["method", "seed", "epoch"], sort=False)[[column, "n"]].sum()
    return (summed[column] / summed["n"]).rename(column).reset_index()


def plot_dale_training(
    accuracy: pd.DataFrame, weights: pd.DataFrame, axes: np.ndarray | None = None
) -> np.ndarray:
    """Part 2: per epoch, test accuracy, sign violations, exact zeros and log-normality.

    Panels: test accuracy (mean over seeds, thin lines: each seed); fraction of weights whose
    sign breaks Dale's law (all layers); fraction of weights exactly 0; Delta-CDF of
    ``log|w|`` of the first layer's excitatory synapses (grey: its floor); all but the seeds'
    lines are means over seeds. Tables from
    :func:`~mirrorlib.experiments.lognormal_dale.run_dale`. Returns the 4 axes.
    """
    if axes is None:
        axes = page_axes(2, 2, 2.1, sharex=True).ravel()
    acc, hue = _by_method(accuracy[accuracy["epoch"] > 0])
    sns.lineplot(
        acc,
        x="epoch",
        y="test_acc",
        units="seed",
        estimator=None,
        lw=0.5,
        alpha=0.5,
        legend=False,
        ax=axes[0],
        **hue,
    )
    sns.lineplot(acc, x="epoch", y="test_acc", errorbar=None, lw=1.8, ax=axes[0], **hue)
    data, _ = _by_method(weights)
    for ax, column in ((axes[1], "violations"), (axes[2], "zeros")):
        sns.lineplot(
            _pooled(data, column),
            x="epoch",
            y=column,
            errorbar=None,
            marker=".",
            legend=False,
            ax=ax,
            **hue,
        )
    first = data[(weights["layer"] == 1) & (weights["population"] == "excitatory")]
    sns.lineplot(
        first,
        x="epoch",
        y="delta_cdf_log",
        errorbar=None,
        marker=".",
        legend=False,
        ax=axes[3],
        **hue,
    )
    floor = first.groupby("epoch")["floor"].mean()
    plot_floor(axes[3], floor.index, floor.to_numpy())
    axes[3].set_yscale("log")
    labels = (
        "test accuracy",
        "fraction of weights\nwith the wrong sign",
        "fraction of weights\nexactly 0",
        r"$\Delta$CDF of $\log|w|$" + "\n(layer 1, excitatory)",
    )
    for ax, label in zip(axes, labels, strict=True):
        ax.set(xlabel="epoch", ylabel=label)
    figure_legend(axes[0], [axes[3].lines[-1]], ncol=4)
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
        axes = page_axes(len(layers), len(methods) + 1, 1.9)
    qq_data, hue = _by_method(qq)
    for i, layer in enumerate(layers):
        h = hist[hist["layer"] == layer]
        for ax, method in zip(axes[i], methods, strict=False):
            _binned(ax, h[h["stage"] == "before"], color=_BEFORE, label="before", fill=True, lw=0)
            _binned(
                ax,
                h[(h["stage"] == "after") & (h["method"] == method)],
                fill=False,
                lw=1.6,
                color=method_color(method),
            )
            ax.set(title=method_label(method), xlabel=r"$\log_{10}|w|$")
            ax.set_ylabel(f"layer {layer}\ndensity")
        _qq(axes[i, -1], qq_data[qq["layer"] == layer], hue)
    figure_legend(axes[0, -1], ncol=4)
    return axes
