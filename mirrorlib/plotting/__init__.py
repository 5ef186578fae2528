"""The book's figures: one submodule per chapter, tables in, axes out.

Plotting computes nothing new: each function reads the columns documented by the experiment
that wrote the table (see :mod:`mirrorlib.experiments`), draws with seaborn (plain matplotlib
only for the geometric diagrams) and returns the axes. Figures carry no titles; the book's
captions say what they show.

This module holds what every chapter shares: the theme (set on import), figures sized for the
page, the label and colour of each potential, the finite-sample floor, and legends placed
outside the panels.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

__all__ = [
    "PAGE_WIDTH",
    "POTENTIAL_COLORS",
    "by_potential",
    "figure_legend",
    "page_axes",
    "plot_floor",
    "potential_color",
    "potential_label",
]

PAGE_WIDTH = 7.0
"""Width in inches of a figure that spans the book's text column."""

sns.set_theme(
    context="paper",
    style="ticks",
    font_scale=1.1,
    rc={
        "figure.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 9,
        "legend.frameon": False,
        "legend.fontsize": 8,
        "legend.title_fontsize": 8,
    },
)

POTENTIAL_COLORS = {
    "negative_entropy": "#0072B2",
    "2-norm": "#009E73",
    "3-norm": "#D55E00",
    "1.5-norm": "#CC79A7",
    "2.5-norm": "#E69F00",
    "hypentropy": "#56B4E9",
}
"""The colour of each potential in every figure (Okabe-Ito, colour-blind safe); hyperbolic
entropies of every scale share sky blue."""

OTHER_COLOR = "0.25"
"""Anything that is not a potential: a learning rule without one, a measured sample."""

_LABELS = {
    "hypentropy": "hyperbolic entropy",
    "2-norm": "2-norm (gradient descent)",
    "negative_entropy": "negative entropy (EG)",
}
_HYPENTROPY = re.compile(r"^hypentropy\(beta=([^)]*)\)$")
FLOOR_COLOR = "0.55"


def page_axes(
    rows: int = 1, cols: int = 1, height: float = 2.6, width: float = PAGE_WIDTH, **share
) -> np.ndarray:
    """A ``rows x cols`` array of axes on a new constrained-layout figure ``width`` inches wide
    (the text column unless given) and ``height`` inches per row of panels."""
    size = (width, height * rows)
    _, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained", **share)
    return axes


def potential_label(name: str) -> str:
    """A readable legend label for a potential's ``name`` (as written in result tables)."""
    match = _HYPENTROPY.match(name)
    if match:
        return rf"hyperbolic entropy, $\beta = {match.group(1)}$"
    return _LABELS.get(name, name)


def potential_color(name: str) -> str:
    """The book's colour for the potential ``name`` (``OTHER_COLOR`` for one it does not know)."""
    if _HYPENTROPY.match(name):
        name = "hypentropy"
    return POTENTIAL_COLORS.get(name, OTHER_COLOR)


def by_potential(table: pd.DataFrame, column: str = "potential") -> tuple[pd.DataFrame, dict]:
    """The table with ``column`` relabelled for the legend, and the seaborn keywords (``hue``,
    ``hue_order``, ``palette``) that colour it by potential in table order."""
    names = list(dict.fromkeys(table[column]))
    labels = [potential_label(n) for n in names]
    data = table.assign(**{column: table[column].map(potential_label)})
    palette = {label: potential_color(n) for label, n in zip(labels, names, strict=True)}
    return data, {"hue": column, "hue_order": labels, "palette": palette}


def plot_floor(ax: Axes, x, mean, std=None, label: str = "finite-sample floor") -> None:
    """The finite-sample floor of the Delta-CDF: a grey dashed line at ``mean`` (a number, or
    values at ``x``), with a grey band of ``mean +- std`` when ``std`` is given."""
    if np.ndim(mean) == 0:
        ax.axhline(mean, color=FLOOR_COLOR, ls="--", lw=1, label=label, zorder=1)
        if std is not None:
            ax.axhspan(mean - std, mean + std, color=FLOOR_COLOR, alpha=0.2, lw=0, zorder=0)
        return
    ax.plot(x, mean, color=FLOOR_COLOR, ls="--", lw=1, label=label, zorder=1)
    if std is not None:
        ax.fill_between(x, mean - std, mean + std, color=FLOOR_COLOR, alpha=0.2, lw=0, zorder=0)


def figure_legend(ax: Axes, extra=(), ncol: int = 3, below: bool = True, grey=()) -> None:
    """Move the legend of ``ax`` (its handles, then the artists ``extra``) out of the axes to the
    figure's edge, below the panels or right of them, so that it never covers data; drop the
    legends of the other panels. Entries labelled in ``grey`` (line styles shared by every
    colour) are drawn grey. The figure must use constrained layout."""
    fig = ax.figure
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:  # seaborn's own entries (histplot's are not axes artists)
        handles += ax.get_legend().legend_handles
        labels += [text.get_text() for text in ax.get_legend().texts]
    entries = dict(zip(labels, handles, strict=True))
    entries.update({artist.get_label(): artist for artist in extra})
    for other in fig.axes:
        if other.get_legend() is not None:
            other.get_legend().remove()
    where = "outside lower center" if below else "outside right upper"
    legend = fig.legend(entries.values(), entries.keys(), loc=where, ncol=ncol if below else 1)
    for handle, text in zip(legend.legend_handles, legend.texts, strict=True):
        if text.get_text() in grey:
            handle.set_color("0.3")
