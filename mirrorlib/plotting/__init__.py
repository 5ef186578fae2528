"""Figures from result tables: each function takes a tidy table and draws on matplotlib axes.

Plotting computes nothing new: it reads the columns documented by the experiment that wrote
the table (see :mod:`mirrorlib.experiments`), draws, and returns the axes. Figures carry no
titles (the book's captions say what they show); short panel headings name the potential.

This module holds the shared helpers (labels and colours of the potentials) and the figures of
the first chapters; later chapters keep their figures in submodules, one per chapter
(``mirrorlib.plotting.<chapter>``), which import the shared helpers from here.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.lines import Line2D

__all__ = [
    "panel_grid",
    "plot_bregman_grid",
    "plot_bregman_slice",
    "plot_mirror_maps",
    "plot_trajectories",
    "potential_color",
    "potential_label",
]

_LABELS = {
    "2-norm": "2-norm (gradient descent)",
    "3-norm": "3-norm",
    "negative_entropy": "negative entropy (EG)",
}
_COLORS = {"2-norm": "C0", "3-norm": "C1", "negative_entropy": "C2"}
_HYPENTROPY = re.compile(r"^hypentropy\(beta=([^)]*)\)$")
_DIRECTION_LABELS = {
    "D(w,w_ref)": r"$D_\phi(\mathbf{w}, \mathbf{w}_{\mathrm{ref}})$",
    "D(w_ref,w)": r"$D_\phi(\mathbf{w}_{\mathrm{ref}}, \mathbf{w})$",
}


def potential_label(name: str) -> str:
    """A readable legend label for a potential's ``name`` (as written in result tables)."""
    match = _HYPENTROPY.match(name)
    if match:
        return rf"hyperbolic entropy, $\beta = {match.group(1)}$"
    return _LABELS.get(name, name)


def potential_color(name: str, betas=()) -> str | tuple:
    """The colour of a potential in every figure; hyperbolic entropies get shades of purple.

    ``betas`` lists the scales drawn together, so that each gets its own shade (smaller beta,
    darker).
    """
    match = _HYPENTROPY.match(name)
    if match:
        ordered = sorted(float(b) for b in betas) or [float(match.group(1))]
        k = ordered.index(float(match.group(1))) if float(match.group(1)) in ordered else 0
        return plt.get_cmap("Purples")(1.0 - 0.4 * k / max(len(ordered) - 1, 1))
    return _COLORS.get(name, "0.3")


def panel_grid(
    rows: int, cols: int, panel: tuple[float, float], margin: float = 0.0, **share: bool
) -> np.ndarray:
    """A ``rows x cols`` array of axes (constrained layout); ``panel`` is one panel's
    (width, height) in inches and ``margin`` the extra width kept for a legend.

    Shared by every chapter's figures (the submodules of :mod:`mirrorlib.plotting`).
    """
    _, axes = plt.subplots(
        rows,
        cols,
        figsize=(panel[0] * cols + margin, panel[1] * rows),
        squeeze=False,
        layout="constrained",
        **share,
    )
    return axes


def _grid(table: pd.DataFrame, value: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W1, W2, Z)`` arrays for ``contour`` from a long table with columns w1, w2, value."""
    piv = table.pivot(index="w2", columns="w1", values=value).sort_index().sort_index(axis=1)
    w1, w2 = np.meshgrid(piv.columns.to_numpy(float), piv.index.to_numpy(float))
    return w1, w2, piv.to_numpy(float)


def plot_bregman_grid(
    table: pd.DataFrame,
    axes: np.ndarray | None = None,
    levels=(1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    colorbar: bool = True,
) -> np.ndarray:
    """Filled contours of the table of :func:`mirrorlib.experiments.geometry.bregman_grid`.

    One row of panels per ``direction``, one column per ``potential`` (in table order), on a
    shared logarithmic colour scale; white lines mark every other level. Where the divergence
    is infinite the panel is left hatched grey and marked "+inf". The reference point (where
    the divergence is 0) is a white star. Returns the 2-D array of axes.
    """
    pots = list(dict.fromkeys(table["potential"]))
    dirs = list(dict.fromkeys(table["direction"]))
    if axes is None:
        axes = panel_grid(len(dirs), len(pots), (3.1, 3.0), 1.2, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(len(dirs), len(pots))
    levels = np.asarray(levels, dtype=float)
    norm = BoundaryNorm(levels, plt.get_cmap("viridis").N, extend="both")
    filled = None
    for i, direction in enumerate(dirs):
        for j, name in enumerate(pots):
            ax = axes[i, j]
            sub = table[(table["potential"] == name) & (table["direction"] == direction)]
            w1, w2, z = _grid(sub, "divergence")
            infinite = ~np.isfinite(z)
            ax.set_facecolor("0.88")
            filled = ax.contourf(
                w1, w2, np.ma.masked_where(infinite, z), levels=levels, norm=norm, extend="both"
            )
            ax.contour(
                w1,
                w2,
                np.ma.masked_where(infinite, z),
                levels=levels[1::2],
                colors="w",
                linewidths=0.6,
            )
            if infinite.any():
                ax.contourf(
                    w1, w2, infinite.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"]
                )
                k = np.argmin(
                    (w1[infinite] - w1[infinite].mean()) ** 2
                    + (w2[infinite] - w2[infinite].mean()) ** 2
                )
                ax.text(
                    w1[infinite][k],
                    w2[infinite][k],
                    r"$D_\phi = +\infty$",
                    ha="center",
                    va="center",
                    fontsize=9,
                    bbox={"fc": "w", "ec": "none", "alpha": 0.8},
                )
            ref = np.unravel_index(np.nanargmin(np.where(infinite, np.inf, z)), z.shape)
            ax.plot(w1[ref], w2[ref], marker="*", color="w", mec="k", ms=11, ls="none")
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(potential_label(name), fontsize=10)
            if i == len(dirs) - 1:
                ax.set_xlabel(r"$w_1$")
            if j == 0:
                ax.set_ylabel(_DIRECTION_LABELS.get(direction, direction) + "\n" + r"$w_2$")
    if colorbar and filled is not None:
        bar = axes[0, 0].figure.colorbar(
            filled, ax=axes.ravel().tolist(), label="Bregman divergence", shrink=0.85
        )
        bar.set_ticks(levels, labels=[f"{v:g}" for v in levels])
    return axes


def plot_trajectories(
    trajectories: pd.DataFrame,
    ax: Axes | None = None,
    line: tuple | None = None,
    projections: pd.DataFrame | None = None,
    balls: pd.DataFrame | None = None,
    lims: tuple | None = None,
) -> Axes:
    """Paths of :func:`mirrorlib.experiments.geometry.trajectories` in the ``(w1, w2)`` plane.

    ``line=(x, y)`` draws the solutions ``x . w = y``; ``projections`` (a table of
    :func:`~mirrorlib.experiments.geometry.projections`) marks each potential's Bregman
    projection with an open circle; ``balls`` (a :func:`~mirrorlib.experiments.geometry.
    bregman_grid` table around ``w0``, direction ``"D(w,w_ref)"``) adds the Bregman ball
    ``D(w, w0) = D(w*, w0)`` that touches the line at the projection (dotted). The orthant of
    ``w0`` is shaded. ``lims=((w1_min, w1_max), (w2_min, w2_max))`` sets the frame (default:
    the paths and the origin, with a margin). Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 5.0), layout="constrained")
    start = trajectories.sort_values("step").groupby("potential", sort=False).first()
    w0 = start[["w1", "w2"]].to_numpy(float)[0]
    if lims is None:
        pad = 0.1
        lo = np.minimum(trajectories[["w1", "w2"]].min().to_numpy(float), 0.0) - pad
        hi = trajectories[["w1", "w2"]].max().to_numpy(float) + pad
    else:
        lo, hi = np.asarray(lims, dtype=float).T
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    quadrant_x = (0, hi[0]) if w0[0] > 0 else (lo[0], 0)
    quadrant_y = (0, hi[1]) if w0[1] > 0 else (lo[1], 0)
    ax.fill_between(
        quadrant_x, *quadrant_y, color="0.93", zorder=0, label=r"orthant of $\mathbf{w}_0$"
    )
    if balls is not None and projections is not None:
        primal = projections
        if "method" in projections:
            primal = projections[projections["method"] == "primal"]
        for name, sub in balls[balls["direction"] == "D(w,w_ref)"].groupby("potential"):
            level = primal.loc[primal["potential"] == name, "divergence"].iloc[0]
            w1, w2, z = _grid(sub, "divergence")
            ax.contour(
                w1,
                w2,
                np.ma.masked_invalid(z),
                levels=[level],
                colors=[potential_color(name)],
                linewidths=1.0,
                linestyles=":",
            )
    if line is not None:
        x, y = np.asarray(line[0], dtype=float), float(line[1])
        s = np.linspace(-3, 3, 2)
        point = x * y / (x @ x)
        direction = np.array([-x[1], x[0]])
        ax.plot(
            *(point[:, None] + direction[:, None] * s),
            color="k",
            ls="--",
            lw=1.0,
            label=r"solutions $\mathbf{x}\cdot\mathbf{w} = y$",
        )
    for name, run in trajectories.groupby("potential", sort=False):
        run = run.sort_values("step")
        color = potential_color(name)
        ax.plot(run["w1"], run["w2"], color=color, lw=1.8, label=potential_label(name))
        if projections is not None:
            proj = projections[projections["potential"] == name].iloc[0]
            ax.plot(proj["w1"], proj["w2"], "o", ms=10, mfc="none", mec=color, mew=1.5)
    ax.plot(*w0, "ks", ms=6, label=r"start $\mathbf{w}_0$")
    if projections is not None:
        ax.plot([], [], "o", ms=10, mfc="none", mec="0.3", mew=1.5, label="Bregman projection")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel(r"$w_1$")
    ax.set_ylabel(r"$w_2$")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return ax


def plot_mirror_maps(
    table: pd.DataFrame,
    axes: np.ndarray | None = None,
    w_max: float = 1.0,
    dual_lim: float = 6.0,
) -> np.ndarray:
    """Two panels from :func:`mirrorlib.experiments.geometry.mirror_maps`.

    Left: the mirror map ``grad_phi(w)`` for ``|w| <= w_max`` (each sign drawn separately, so
    negative entropy's two branches are not joined through zero), clipped to ``+-dual_lim``.
    Right: the local rate ``1 / phi''(w)`` against ``w > 0`` on log-log axes. Returns the axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), layout="constrained")
    ax_map, ax_rate = axes
    betas = table["beta"].dropna().unique()
    for name, sub in table.groupby("potential", sort=False):
        color = potential_color(name, betas)
        style = {"color": color, "lw": 1.8, "ls": "-" if name in _COLORS else "--"}
        for side in (
            sub[(sub["w"] < 0) & (sub["w"] >= -w_max)],
            sub[(sub["w"] > 0) & (sub["w"] <= w_max)],
        ):
            ax_map.plot(side["w"], side["dual"].clip(-dual_lim * 1.1, dual_lim * 1.1), **style)
        pos = sub[sub["w"] > 0]
        ax_rate.loglog(pos["w"], pos["rate"], label=potential_label(name), **style)
    ax_map.axhline(0, color="k", lw=0.5)
    ax_map.axvline(0, color="k", lw=0.5)
    ax_map.set_ylim(-dual_lim, dual_lim)
    ax_map.set_xlabel(r"weight $w$")
    ax_map.set_ylabel(r"dual coordinate $\phi'(w)$")
    ax_rate.set_xlabel(r"weight $w > 0$")
    ax_rate.set_ylabel(r"local rate $1/\phi''(w)$")
    ax_rate.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return np.asarray(axes)


def plot_bregman_slice(table: pd.DataFrame, ax: Axes | None = None, ymax: float = 1.0) -> Axes:
    """Divergence against ``w2`` from :func:`mirrorlib.experiments.geometry.bregman_slice`.

    One colour per potential; solid for ``D(w, w_ref)``, dashed for ``D(w_ref, w)``. Infinite
    values are not drawn; the range of ``w2`` where a potential's divergence is infinite in
    both orders is hatched in its colour. Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 3.5), layout="constrained")
    styles = {"D(w,w_ref)": "-", "D(w_ref,w)": "--"}
    handles = []
    for name, sub in table.groupby("potential", sort=False):
        color = potential_color(name)
        for direction, part in sub.groupby("direction", sort=False):
            part = part.sort_values("w2")
            d = part["divergence"].where(np.isfinite(part["divergence"]))
            ax.plot(part["w2"], d, color=color, ls=styles.get(direction, "-"), lw=1.6)
        handles.append(Line2D([], [], color=color, lw=1.6, label=potential_label(name)))
        infinite = sub.groupby("w2")["divergence"].apply(lambda v: bool(np.isinf(v).all()))
        if infinite.any():
            w2 = infinite.index.to_numpy(float)[infinite.to_numpy()]
            ax.axvspan(w2.min(), w2.max(), facecolor="none", edgecolor=color, hatch="//", lw=0)
            ax.text(
                (w2.min() + w2.max()) / 2,
                0.85 * ymax,
                r"$D_\phi = +\infty$",
                ha="center",
                va="center",
                fontsize=9,
                bbox={"fc": "w", "ec": "none", "alpha": 0.9},
            )
    for direction in dict.fromkeys(table["direction"]):
        label = _DIRECTION_LABELS.get(direction, direction)
        handles.append(Line2D([], [], color="k", ls=styles.get(direction, "-"), label=label))
    ax.axvline(0, color="k", lw=0.6)
    ax.set_ylim(0, ymax)
    ax.set_xlim(table["w2"].min(), table["w2"].max())
    ax.set_xlabel(r"$w_2$ (with $w_1 = w_{\mathrm{ref},1}$)")
    ax.set_ylabel("Bregman divergence")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return ax


# ---------------------------------------------------------------------------------------------
# The wrong-potential test (book/wrong_potential.md): tables of
# mirrorlib.experiments.wrong_potential in, axes out.
# ---------------------------------------------------------------------------------------------

__all__ += [
    "candidate_positions",
    "plot_fig3_wrong_potential",
    "plot_recovery_power",
    "plot_truth_beats_candidate",
]

_W0_LABELS = {
    "normal": r"$w_0 \sim \mathcal{N}(0, 1/100)$",
    "lognormal": r"$w_0$ signed log-normal",
}
_W0_COLORS = {"normal": "0.45", "lognormal": "C3"}
_STATISTIC_LABELS = {False: "uncentred (paper)", True: "centred"}
_DCDF_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _short_name(name: str) -> str:
    """``NE``, ``2-norm``, ``HE (beta=0.1)``: short names for crowded legends."""
    if name == "negative_entropy":
        return "NE"
    match = _HYPENTROPY.match(name)
    return rf"HE ($\beta = {match.group(1)}$)" if match else name


def candidate_positions(table: pd.DataFrame) -> tuple[dict, list, list]:
    """Where each candidate of a wrong-potential table goes on a shared x-axis.

    Negative entropy sits left of the p-norms (at ``min(p) - 0.3``), p-norms at ``p``, and
    hyperbolic entropies right of them (``max(p) + 0.3``, then every 0.2, smallest ``beta``
    first). Returns ``(position by candidate, tick positions, tick labels)``.
    """
    firsts = table.drop_duplicates("candidate")
    pnorms = firsts[firsts["family"] == "p-norm"].sort_values("p")
    hyper = firsts[firsts["family"] == "hypentropy"].sort_values("beta")
    p_lo = float(pnorms["p"].min()) if len(pnorms) else 1.0
    p_hi = float(pnorms["p"].max()) if len(pnorms) else 1.0
    where = {"negative_entropy": p_lo - 0.3}
    where.update(zip(pnorms["candidate"], pnorms["p"].astype(float), strict=True))
    where.update({c: p_hi + 0.3 + 0.2 * k for k, c in enumerate(hyper["candidate"])})
    ticks, labels = [where["negative_entropy"]], ["NE"]
    for p in np.arange(np.ceil(p_lo * 2) / 2, p_hi + 1e-9, 0.5):
        ticks.append(float(p))
        labels.append(f"{p:g}")
    for c, beta in zip(hyper["candidate"], hyper["beta"], strict=True):
        ticks.append(where[c])
        labels.append(rf"HE$_{{{beta:g}}}$")
    return where, ticks, labels


def _candidate_axis(ax: Axes, where: dict, ticks: list, labels: list) -> None:
    ax.set_xticks(ticks, labels, fontsize=8)
    for label in ax.get_xticklabels():
        if label.get_text().startswith("HE"):
            label.set_rotation(60)
    pnorm = [x for c, x in where.items() if c != "negative_entropy" and "hypentropy" not in c]
    if pnorm:
        for edge in (min(pnorm) - 0.15, max(pnorm) + 0.15):
            ax.axvline(edge, color="0.85", lw=0.8, zorder=0)


def plot_fig3_wrong_potential(
    table: pd.DataFrame, axes: np.ndarray | None = None, centered=(False, True)
) -> np.ndarray:
    """The paper's Fig 3 from :func:`mirrorlib.experiments.wrong_potential.run_fig3`.

    One row of panels per ``w0`` law, one column per true potential. In each, the mean Delta-CDF
    over seeds of every hypothesised potential (negative entropy at the left, p-norms, then
    hyperbolic entropies), with a band (p-norms) or error bars (the others) of one standard
    deviation: solid for the uncentred statistic, dashed for the centred one (``centered``
    picks which are drawn). Grey bands: the finite-sample floor (mean +- std) of each statistic.
    The true potential is marked by a vertical dotted line; a candidate excluded in every seed
    (negative entropy after sign changes) by a cross on the lower edge. Log y-axis. Returns
    the axes.
    """
    laws = list(dict.fromkeys(table["init"]))
    trues = list(dict.fromkeys(table["true_potential"]))
    if axes is None:
        axes = panel_grid(len(laws), len(trues), (3.3, 2.9), 2.2, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(len(laws), len(trues))
    where, ticks, labels = candidate_positions(table)
    styles = {False: {"ls": "-", "marker": "o"}, True: {"ls": "--", "marker": "s"}}
    for i, law in enumerate(laws):
        for j, true in enumerate(trues):
            ax = axes[i, j]
            color = potential_color(true)
            panel = table[(table["init"] == law) & (table["true_potential"] == true)]
            for stat in centered:
                sub = panel[panel["centered"] == stat]
                floor = sub.iloc[0]
                lo, hi = (
                    floor["floor_mean"] - floor["floor_std"],
                    floor["floor_mean"] + floor["floor_std"],
                )
                ax.axhspan(lo, hi, color="0.5", alpha=0.18 if not stat else 0.3, lw=0, zorder=0)
                ax.axhline(
                    floor["floor_mean"], color="0.4", lw=0.9, ls=styles[stat]["ls"], zorder=1
                )
                stats = sub.groupby(["candidate", "family"], sort=False)["delta_cdf"]
                summary = stats.agg(["mean", "std", "count"]).reset_index()
                summary["x"] = summary["candidate"].map(where)
                line = summary[summary["family"] == "p-norm"].sort_values("x")
                ax.plot(line["x"], line["mean"], color=color, lw=1.5, ls=styles[stat]["ls"])
                ax.fill_between(
                    line["x"],
                    (line["mean"] - line["std"]).clip(lower=1e-4),
                    line["mean"] + line["std"],
                    color=color,
                    alpha=0.25 if not stat else 0.12,
                    lw=0,
                )
                dots = summary[(summary["family"] != "p-norm") & (summary["count"] > 0)]
                ax.errorbar(
                    dots["x"],
                    dots["mean"],
                    yerr=dots["std"],
                    color=color,
                    ls="none",
                    marker=styles[stat]["marker"],
                    ms=4,
                    mfc="w" if stat else color,
                    capsize=2,
                    lw=1,
                )
            gone = panel.groupby("candidate")["excluded"].all()
            for name in gone[gone].index:
                ax.plot(
                    where[name],
                    0.0,
                    "x",
                    color="k",
                    ms=7,
                    mew=1.5,
                    clip_on=False,
                    transform=ax.get_xaxis_transform(),
                )
            ax.axvline(where[true], color=color, ls=":", lw=1.2)
            ax.set_yscale("log")
            ax.set_yticks(_DCDF_TICKS, [f"{t:g}" for t in _DCDF_TICKS])
            ax.yaxis.set_minor_formatter(plt.NullFormatter())
            _candidate_axis(ax, where, ticks, labels)
            if i == 0:
                ax.set_title(f"true: {potential_label(true)}", fontsize=10)
            if i == len(laws) - 1:
                ax.set_xlabel("hypothesised potential ($p$)")
            if j == 0:
                ax.set_ylabel(_W0_LABELS.get(law, law) + "\n" + r"$\Delta$CDF")
    handles = [
        Line2D(
            [],
            [],
            color="0.2",
            ls=styles[s]["ls"],
            marker=styles[s]["marker"],
            ms=4,
            mfc="w" if s else "0.2",
            label=_STATISTIC_LABELS[s],
        )
        for s in centered
    ]
    handles.append(
        Line2D([], [], color="0.5", alpha=0.35, lw=7, label="finite-sample floor (mean ± std)")
    )
    handles.append(Line2D([], [], color="0.2", ls=":", label="true potential"))
    handles.append(
        Line2D([], [], color="k", marker="x", ls="none", mew=1.5, label="excluded (signs changed)")
    )
    axes[0, -1].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8
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
        axes = panel_grid(1, len(trues), (3.3, 3.0), 2.2, sharey=True)
    axes = np.asarray(axes).reshape(-1)
    where, ticks, labels = candidate_positions(table)
    for ax, true in zip(axes, trues, strict=True):
        panel = table[table["true_potential"] == true]
        for (law, stat), sub in panel.groupby(["init", "centered"], sort=False):
            sub = sub.assign(x=sub["candidate"].map(where)).sort_values("x")
            color = _W0_COLORS.get(law, "0.3")
            ls = "--" if stat else "-"
            line = sub[sub["family"] == "p-norm"]
            ax.plot(line["x"], line["fraction"], color=color, ls=ls, lw=1.4)
            dots = sub[sub["family"] != "p-norm"]
            ax.plot(
                dots["x"],
                dots["fraction"],
                color=color,
                ls="none",
                marker="s" if stat else "o",
                mfc="w" if stat else color,
                ms=4,
            )
        ax.axhline(0.5, color="0.6", lw=0.8)
        ax.axvline(where[true], color=potential_color(true), ls=":", lw=1.2)
        ax.set_ylim(0.0, 1.04)
        _candidate_axis(ax, where, ticks, labels)
        ax.set_title(f"true: {potential_label(true)}", fontsize=10)
        ax.set_xlabel("hypothesised potential ($p$)")
    axes[0].set_ylabel("fraction of seeds with\ntruth below candidate")
    handles = [
        Line2D([], [], color=_W0_COLORS.get(law, "0.3"), lw=1.4, label=_W0_LABELS.get(law, law))
        for law in dict.fromkeys(table["init"])
    ]
    handles += [
        Line2D([], [], color="0.2", ls="--" if s else "-", label=_STATISTIC_LABELS[s])
        for s in dict.fromkeys(table["centered"])
    ]
    axes[-1].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8
    )
    return axes


def plot_recovery_power(
    table: pd.DataFrame, axes: np.ndarray | None = None, level: float = 0.9
) -> np.ndarray:
    """Identification rates against the number of synapses, from
    :func:`mirrorlib.experiments.wrong_potential.run_recovery_power`.

    Top row: fraction of repetitions in which the true potential scores lower than the
    alternative; bottom row: in which, in addition, the bootstrap rules the alternative out.
    One column per relative change. Colour: the exponent gap between the two potentials
    (darker, closer); solid lines for a negative-entropy truth, dashed for a 2-norm truth
    (others dotted). A grey line marks ``level``. Returns the axes.
    """
    changes = sorted(table["change_scale"].unique())
    if axes is None:
        axes = panel_grid(2, len(changes), (3.2, 2.8), 2.6, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(2, len(changes))
    gaps = sorted(table["exponent_gap"].abs().unique())
    cmap = plt.get_cmap("viridis")
    shade = {g: cmap(0.85 * k / max(len(gaps) - 1, 1)) for k, g in enumerate(gaps)}
    truth_style = {"negative_entropy": "-", "2-norm": "--"}
    rows = (("p_correct", "truth scores lower"), ("ruled_out", "alternative ruled out"))
    for j, change in enumerate(changes):
        for i, (column, label) in enumerate(rows):
            ax = axes[i, j]
            for _pair, sub in table[table["change_scale"] == change].groupby("pair", sort=False):
                sub = sub.sort_values("n")
                first = sub.iloc[0]
                ax.plot(
                    sub["n"],
                    sub[column],
                    marker="o",
                    ms=3.5,
                    lw=1.5,
                    color=shade[abs(first["exponent_gap"])],
                    ls=truth_style.get(first["true_potential"], ":"),
                )
            ax.axhline(level, color="0.6", lw=0.8)
            ax.set_xscale("log")
            n_values = sorted(table["n"].unique())
            ax.set_xticks(n_values, [f"{n:g}" for n in n_values], fontsize=8)
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_ylim(-0.02, 1.04)
            if i == 0:
                ax.set_title(f"relative change {change:.0%}", fontsize=10)
            if i == 1:
                ax.set_xlabel("number of synapses $n$")
            if j == 0:
                ax.set_ylabel(f"fraction of repetitions:\n{label}")
    handles = []
    for _pair, sub in table.groupby("pair", sort=False):
        first = sub.iloc[0]
        true, alt = _short_name(first["true_potential"]), _short_name(first["alternative"])
        handles.append(
            Line2D(
                [],
                [],
                color=shade[abs(first["exponent_gap"])],
                lw=1.5,
                ls=truth_style.get(first["true_potential"], ":"),
                marker="o",
                ms=3.5,
                label=f"{true} vs {alt} (gap {abs(first['exponent_gap']):g})",
            )
        )
    handles.append(Line2D([], [], color="0.6", lw=0.8, label=f"{level:.0%}"))
    axes[0, -1].legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
        fontsize=8,
        title="true vs alternative",
        title_fontsize=8,
    )
    return axes


# ---------------------------------------------------------------------------------------------
# Linear regression (book/wrong_potential.md, the paper's Fig 2): the table of
# mirrorlib.experiments.linear_regression.run in, axes out.
# ---------------------------------------------------------------------------------------------

__all__ += ["plot_fig2_linear_regression"]

_CORR_LABELS = {2.0: "short-range", 1.0: "long-range"}
_ROW_LABELS = {"negative_entropy": "negative entropy"}


def _median_band(sub: pd.DataFrame, column: str, band: tuple[float, float]) -> pd.DataFrame:
    """Median and ``band`` quantiles of ``column`` over seeds, one row per ``D`` (sorted)."""
    stats = sub.groupby("D")[column]
    return pd.DataFrame(
        {
            "median": stats.median(),
            "lo": stats.quantile(band[0]),
            "hi": stats.quantile(band[1]),
            "N": sub.groupby("D")["N"].first(),
        }
    ).sort_index()


def plot_fig2_linear_regression(
    table: pd.DataFrame,
    axes: np.ndarray | None = None,
    band: tuple[float, float] = (0.05, 0.95),
) -> np.ndarray:
    """The paper's Fig 2 from :func:`mirrorlib.experiments.linear_regression.run`.

    One row of panels per trained potential; for each correlation power ``p`` (in table
    order) two columns: the Delta-CDF of the dual change, then its relative size
    ``||diff|| / ||grad_phi(w0)||``, both against ``D`` on log axes. One colour per ``alpha``
    (``N = D^alpha``): the median over seeds, with a band between the ``band`` quantiles.
    Delta-CDF panels also draw the finite-sample floor of ``D`` independent Gaussian values
    (``delta_cdf_floor``, grey dashed) and of ``D`` Gaussian values correlated like the inputs
    (``delta_cdf_null``, black dotted); the 2-norm's relative-change panels draw the
    prediction ``sqrt(2 N / D)`` (dashed, in each alpha's colour). Returns the axes.
    """
    pots = list(dict.fromkeys(table["potential"]))
    powers = list(dict.fromkeys(table["corr_power"]))
    alphas = sorted(table["alpha"].unique())
    if axes is None:
        _, axes = plt.subplots(
            len(pots),
            2 * len(powers),
            figsize=(2.7 * 2 * len(powers) + 1.8, 2.3 * len(pots) + 0.4),
            sharex=True,
            squeeze=False,
            layout="constrained",
        )
    axes = np.asarray(axes).reshape(len(pots), 2 * len(powers))
    colors = {
        a: plt.get_cmap("viridis")(0.15 + 0.6 * k / max(len(alphas) - 1, 1))
        for k, a in enumerate(alphas)
    }
    for i, pot in enumerate(pots):
        for j, p in enumerate(powers):
            cell = table[(table["potential"] == pot) & (table["corr_power"] == p)]
            ax_d, ax_r = axes[i, 2 * j], axes[i, 2 * j + 1]
            refs = cell.groupby("D")[["delta_cdf_floor", "delta_cdf_null"]].first().sort_index()
            ax_d.plot(refs.index, refs["delta_cdf_floor"], color="0.55", ls="--", lw=1.2)
            ax_d.plot(refs.index, refs["delta_cdf_null"], color="k", ls=":", lw=1.5)
            for alpha in alphas:
                sub = cell[cell["alpha"] == alpha]
                for ax, column in ((ax_d, "delta_cdf"), (ax_r, "relative_change")):
                    s = _median_band(sub, column, band)
                    ax.plot(s.index, s["median"], color=colors[alpha], marker="o", ms=3, lw=1.5)
                    ax.fill_between(s.index, s["lo"], s["hi"], color=colors[alpha], alpha=0.2, lw=0)
                    if column == "relative_change" and pot == "2-norm":
                        pred = np.sqrt(2 * s["N"] / s.index.to_numpy(float))
                        ax.plot(s.index, pred, color=colors[alpha], ls="--", lw=1.2)
            for ax in (ax_d, ax_r):
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(plt.NullFormatter())
                if i == len(pots) - 1:
                    ax.set_xlabel("number of weights $D$")
            if i == 0:
                heading = f"$p = {p:g}$ ({_CORR_LABELS.get(float(p), 'correlated')})"
                ax_d.set_title(heading + "\n" + r"$\Delta$CDF of dual change", fontsize=9)
                ax_r.set_title(heading + "\nrelative dual change", fontsize=9)
            if j == 0:
                ax_d.set_ylabel(f"trained with {_ROW_LABELS.get(pot, pot)}")
    for i in range(len(pots)):
        _shared_y(axes[i, 0::2])
        _shared_y(axes[i, 1::2])
    handles = [
        Line2D([], [], color=colors[a], marker="o", ms=3, lw=1.5, label=f"$N = D^{{{a:g}}}$")
        for a in alphas
    ]
    handles.append(
        Line2D([], [], color="0.5", alpha=0.4, lw=7, label=f"{band[0]:.0%}–{band[1]:.0%} of seeds")
    )
    handles.append(Line2D([], [], color="0.55", ls="--", lw=1.2, label="floor, independent values"))
    handles.append(Line2D([], [], color="k", ls=":", lw=1.5, label="floor, correlated like inputs"))
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1.2, label=r"2-norm: $\sqrt{2N/D}$"))
    axes[0, -1].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8
    )
    return axes


_LOG_TICKS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)


def _shared_y(axes: np.ndarray) -> None:
    """Give log-scaled ``axes`` the same y-limits (the union of theirs) and readable ticks."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    lo, hi = min(lows), max(highs)
    ticks = [t for t in _LOG_TICKS if lo <= t <= hi]
    for ax in axes:
        ax.set_ylim(lo, hi)
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
