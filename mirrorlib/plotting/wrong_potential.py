"""Figures of the chapter "Linear regression and the wrong-potential test".

Tables of :mod:`mirrorlib.experiments.linear_regression` (the paper's Fig 2) and of
:mod:`mirrorlib.experiments.wrong_potential` (Fig 3, its centring check and the power study)
in, axes out.
"""

from __future__ import annotations

import re
from itertools import product

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from mirrorlib.plotting import (
    by_potential,
    figure_legend,
    page_axes,
    plot_floor,
    potential_color,
    potential_label,
)
from mirrorlib.potentials import potential_in_words

__all__ = [
    "candidate_positions",
    "plot_fig2_linear_regression",
    "plot_fig3_wrong_potential",
    "plot_recovery_power",
    "plot_truth_beats_candidate",
]

_CORR_LABELS = {2.0: "short-range", 1.0: "long-range"}
_W0_LABELS = {
    "normal": r"$w_0 \sim \mathcal{N}(0, 1/100)$",
    "lognormal": r"$w_0$ signed log-normal",
}
_W0_COLORS = {_W0_LABELS["normal"]: "0.6", _W0_LABELS["lognormal"]: "0.1"}
_STATISTIC_LABELS = {False: "uncentred (paper)", True: "centred"}
_LOG_TICKS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)


def _log_ticks(axes) -> None:
    """Same y-limits on log-scaled ``axes`` (the union of theirs), with plain-number ticks."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    ticks = [t for t in _LOG_TICKS if min(lows) <= t <= max(highs)]
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_formatter(plt.NullFormatter())


def plot_fig2_linear_regression(
    table: pd.DataFrame, axes: np.ndarray | None = None, errorbar=("pi", 90)
) -> np.ndarray:
    """The paper's Fig 2 from :func:`mirrorlib.experiments.linear_regression.run`.

    One row of panels per trained potential; for each correlation power ``p`` (in table
    order) two columns: the Delta-CDF of the dual change, then its relative size
    ``||diff|| / ||grad_phi(w0)||``, both against ``D`` on log axes, in the row's potential's
    colour; one line style per ``alpha`` (``N = D^alpha``): the median over seeds, with a band
    given by seaborn's ``errorbar``. Delta-CDF panels also draw the finite-sample floor of
    ``D`` independent Gaussian values (``delta_cdf_floor``, grey dashed) and of ``D`` Gaussian
    values correlated like the inputs (``delta_cdf_null``, black dotted); the 2-norm's
    relative-change panels draw the prediction ``sqrt(2 N / D)`` (thin dotted). Returns the axes.
    """
    pots = list(dict.fromkeys(table["potential"]))
    powers = list(dict.fromkeys(table["corr_power"]))
    if axes is None:
        axes = page_axes(len(pots), 2 * len(powers), 1.9, sharex=True)
    axes = np.asarray(axes).reshape(len(pots), 2 * len(powers))
    data = table.assign(alpha=table["alpha"].map(lambda a: f"$N = D^{{{a:g}}}$"))
    alphas = sorted(data["alpha"].unique())
    for (i, pot), (j, p) in product(enumerate(pots), enumerate(powers)):
        cell = data[(data["potential"] == pot) & (data["corr_power"] == p)]
        ax_d, ax_r = axes[i, 2 * j], axes[i, 2 * j + 1]
        lines = {
            "x": "D",
            "style": "alpha",
            "style_order": alphas,
            "color": potential_color(pot),
            "estimator": "median",
            "errorbar": errorbar,
            "markers": True,
        }
        refs = cell.groupby("D")[["delta_cdf_floor", "delta_cdf_null", "N"]].first()
        plot_floor(ax_d, refs.index, refs["delta_cdf_floor"], label="floor, independent values")
        ax_d.plot(refs.index, refs["delta_cdf_null"], "k:", lw=1.3, label="floor, correlated")
        sns.lineplot(cell, y="delta_cdf", ax=ax_d, **lines)
        sns.lineplot(cell, y="relative_change", ax=ax_r, legend=False, **lines)
        if pot == "2-norm":
            for _, n in cell.groupby("alpha")[["D", "N"]]:
                n = n.groupby("D")["N"].first()
                ax_r.plot(n.index, np.sqrt(2 * n / n.index), color="0.2", lw=0.9, ls=":")
        ax_d.set_ylabel(r"$\Delta$CDF" if j else potential_in_words(pot) + "\n" + r"$\Delta$CDF")
        ax_r.set_ylabel("relative change")
        if i == 0:
            heading = f"$p = {p:g}$ ({_CORR_LABELS.get(float(p), 'correlated')})"
            ax_d.set_title(f"{heading}\n" + r"$\Delta$CDF of dual change")
            ax_r.set_title(f"{heading}\nrelative dual change")
    for ax in axes.flat:
        ax.set(xscale="log", yscale="log", xlabel="weights $D$")
    for row in axes:
        _log_ticks(row[0::2])
        _log_ticks(row[1::2])
    prediction = Line2D([], [], color="0.2", lw=0.9, ls=":", label=r"2-norm: $\sqrt{2N/D}$")
    figure_legend(ax_d, [prediction], grey=alphas)
    return axes


def candidate_positions(table: pd.DataFrame) -> tuple[dict, list, list]:
    """Where each candidate of a wrong-potential table goes on a shared x-axis.

    Negative entropy sits left of the p-norms (at ``min(p) - 0.3``), p-norms at ``p``, and
    hyperbolic entropies right of them (``max(p) + 0.3``, then every 0.3, smallest ``beta``
    first). Returns ``(position by candidate, tick positions, tick labels)``.
    """
    firsts = table.drop_duplicates("candidate")
    pnorms = firsts[firsts["family"] == "p-norm"].sort_values("p")
    hyper = firsts[firsts["family"] == "hypentropy"].sort_values("beta")
    p_lo = float(pnorms["p"].min()) if len(pnorms) else 1.0
    p_hi = float(pnorms["p"].max()) if len(pnorms) else 1.0
    where = {"negative_entropy": p_lo - 0.3}
    where.update(zip(pnorms["candidate"], pnorms["p"].astype(float), strict=True))
    where.update({c: p_hi + 0.3 + 0.3 * k for k, c in enumerate(hyper["candidate"])})
    ticks, labels = [where["negative_entropy"]], ["NE"]
    for p in np.arange(np.ceil(p_lo * 2) / 2, p_hi + 1e-9, 0.5):
        ticks.append(float(p))
        labels.append(f"{p:g}")
    for c, beta in zip(hyper["candidate"], hyper["beta"], strict=True):
        ticks.append(where[c])
        labels.append(rf"HE$_{{{beta:g}}}$")
    return where, ticks, labels


def _candidate_axis(ax: Axes, ticks: list, labels: list) -> None:
    ax.set_xticks(ticks, labels, rotation=90 if any("HE" in t for t in labels) else 0)
    ax.set_xlabel("hypothesised potential ($p$)")


def _with_positions(table: pd.DataFrame) -> tuple[pd.DataFrame, dict, list, list]:
    """The table with the candidates' x positions and readable labels, and
    :func:`candidate_positions`."""
    where, ticks, labels = candidate_positions(table)
    data = table.assign(
        x=table["candidate"].map(where),
        statistic=table["centered"].map(_STATISTIC_LABELS),
        line=np.where(table["family"] == "p-norm", "p-norm", table["candidate"]),
    )
    if "init" in data:
        data["init"] = data["init"].map(lambda law: _W0_LABELS.get(law, law))
    return data, where, ticks, labels


def plot_fig3_wrong_potential(
    table: pd.DataFrame, axes: np.ndarray | None = None, centered=(False, True)
) -> np.ndarray:
    """The paper's Fig 3 from :func:`mirrorlib.experiments.wrong_potential.run_fig3`.

    One row of panels per ``w0`` law, one column per true potential (in its colour). In each,
    the mean Delta-CDF over seeds of every hypothesised potential (negative entropy at the
    left, p-norms joined by a line, then hyperbolic entropies), with a band of one standard
    deviation: solid for the uncentred statistic, dashed for the centred one (``centered``
    picks which are drawn). Grey: the finite-sample floor (mean +- std) of each statistic. The
    true potential is marked by a vertical dotted line; a candidate excluded in every seed
    (negative entropy after sign changes) by a cross on the lower edge. Log y-axis. Returns
    the axes.
    """
    table = table[table["centered"].isin(centered)]
    laws = list(dict.fromkeys(table["init"]))
    trues = list(dict.fromkeys(table["true_potential"]))
    if axes is None:
        axes = page_axes(len(laws), len(trues), 2.3, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(len(laws), len(trues))
    data, where, ticks, labels = _with_positions(table)
    for (i, law), (j, true) in product(enumerate(laws), enumerate(trues)):
        ax = axes[i, j]
        panel = data[(table["init"] == law) & (table["true_potential"] == true)]
        for _, floor in panel.groupby("centered").first().iterrows():
            plot_floor(ax, None, floor["floor_mean"], floor["floor_std"])
        for others in (False, True):
            sns.lineplot(
                panel[(panel["line"] != "p-norm") == others],
                x="x",
                y="delta_cdf",
                style="statistic",
                style_order=[_STATISTIC_LABELS[c] for c in centered],
                errorbar="sd",
                err_style="bars" if others else "band",
                markers=others,
                dashes=not others,
                **({"linestyle": ""} if others else {}),
                color=potential_color(true),
                legend=not others,
                ax=ax,
            )
        gone = panel.groupby("x")["excluded"].all()
        if gone.any():
            ax.plot(
                gone.index[gone],
                np.zeros(gone.sum()),
                "x",
                color="k",
                ms=7,
                mew=1.5,
                clip_on=False,
                transform=ax.get_xaxis_transform(),
            )
        ax.axvline(where[true], color="k", ls=":", lw=1)
        ax.set(yscale="log", ylabel=f"{_W0_LABELS.get(law, law)}\n" + r"$\Delta$CDF")
        _candidate_axis(ax, ticks, labels)
        if i == 0:
            ax.set_title(f"true: {potential_label(true)}")
    _log_ticks(list(axes.flat))
    figure_legend(
        axes[0, 0],
        [
            Line2D([], [], color="k", ls=":", label="true potential"),
            Line2D([], [], color="k", marker="x", ls="none", label="excluded (signs changed)"),
        ],
        grey=_STATISTIC_LABELS.values(),
    )
    return axes


def plot_truth_beats_candidate(table: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """Fraction of seeds in which the truth beats each candidate, from
    :func:`mirrorlib.experiments.wrong_potential.truth_beats_candidate`.

    One panel per true potential; colour: law of ``w0``; solid: uncentred, dashed: centred.
    The line at 1/2 is a coin flip. Returns the axes.
    """
    trues = list(dict.fromkeys(table["true_potential"]))
    if axes is None:
        axes = page_axes(1, len(trues), 2.6, sharey=True)
    axes = np.asarray(axes).reshape(-1)
    data, where, ticks, labels = _with_positions(table)
    for ax, true in zip(axes, trues, strict=True):
        panel = data[table["true_potential"] == true]
        sns.lineplot(
            panel,
            x="x",
            y="fraction",
            hue="init",
            style="statistic",
            units="line",
            estimator=None,
            markers=True,
            palette=_W0_COLORS,
            ax=ax,
        )
        ax.axhline(0.5, color="0.6", lw=0.8)
        ax.axvline(where[true], color="k", ls=":", lw=1)
        ax.set(ylim=(0.0, 1.04), title=f"true: {potential_label(true)}")
        ax.set_ylabel("fraction of seeds with\ntruth below candidate")
        _candidate_axis(ax, ticks, labels)
    figure_legend(axes[0], ncol=4)
    return axes


def _short_name(name: str) -> str:
    """``NE``, ``2-norm``, ``HE (beta=0.1)``: short names for crowded legends."""
    match = re.match(r"^hypentropy\(beta=([^)]*)\)$", name)
    return "NE" if name == "negative_entropy" else (rf"HE $\beta={match[1]}$" if match else name)


def plot_recovery_power(
    table: pd.DataFrame, axes: np.ndarray | None = None, level: float = 0.9
) -> np.ndarray:
    """Identification rates against the number of synapses, from
    :func:`mirrorlib.experiments.wrong_potential.run_recovery_power`.

    Top row: fraction of repetitions in which the true potential scores lower than the
    alternative; bottom row: in which, in addition, the bootstrap rules the alternative out.
    One column per relative change. Colour: the true potential; line style: the alternative.
    A grey line marks ``level``. Returns the axes.
    """
    changes = sorted(table["change_scale"].unique())
    if axes is None:
        axes = page_axes(2, len(changes), 2.3, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(2, len(changes))
    data, hue = by_potential(table, "true_potential")
    data = data.rename(columns={"true_potential": "true"}).assign(
        alternative=table["alternative"].map(_short_name)
    )
    hue["hue"] = "true"
    rows = (("p_correct", "truth scores lower"), ("ruled_out", "alternative ruled out"))
    for (i, (column, label)), (j, change) in product(enumerate(rows), enumerate(changes)):
        ax = axes[i, j]
        sns.lineplot(
            data[data["change_scale"] == change],
            x="n",
            y=column,
            style="alternative",
            markers=True,
            ax=ax,
            **hue,
        )
        ax.axhline(level, color="0.6", lw=0.8)
        n_values = sorted(table["n"].unique())
        ax.set(xscale="log", ylim=(-0.02, 1.04), xlabel="synapses $n$")
        ax.set_xticks(n_values, [f"{n:g}" for n in n_values])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_ylabel(f"fraction of repetitions:\n{label}")
        if i == 0:
            ax.set_title(f"relative change {change:.0%}")
    figure_legend(axes[0, 0], ncol=4)
    return axes
