"""Figures of the chapter "Synaptic geometry and mirror descent" (``book/geometry.md``).

Tables of :mod:`mirrorlib.experiments.geometry` in, axes out. The Bregman balls, paths and
mirror-map diagrams are drawn with plain matplotlib (seaborn has no contour or path plot); the
divergence along a line is a seaborn line plot.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm

from mirrorlib.plotting import PAGE_WIDTH, by_potential, page_axes, potential_color, potential_label

__all__ = ["plot_bregman_grid", "plot_bregman_slice", "plot_mirror_maps", "plot_trajectories"]

_DIRECTION_LABELS = {
    "D(w,w_ref)": r"$D_\phi(\mathbf{w}, \mathbf{w}_{\mathrm{ref}})$",
    "D(w_ref,w)": r"$D_\phi(\mathbf{w}_{\mathrm{ref}}, \mathbf{w})$",
}


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
        width, height = PAGE_WIDTH * len(pots) / 3, 0.3 * PAGE_WIDTH
        axes = page_axes(len(dirs), len(pots), height, width, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(len(dirs), len(pots))
    levels = np.asarray(levels, dtype=float)
    cmap = plt.get_cmap("viridis")
    norm = BoundaryNorm(levels, cmap.N, extend="both")
    filled = None
    for i, direction in enumerate(dirs):
        for j, name in enumerate(pots):
            ax = axes[i, j]
            sub = table[(table["potential"] == name) & (table["direction"] == direction)]
            w1, w2, z = _grid(sub, "divergence")
            infinite = ~np.isfinite(z)
            ax.set_facecolor("0.88")
            filled = ax.contourf(
                w1,
                w2,
                np.ma.masked_where(infinite, z),
                levels=levels,
                cmap=cmap,
                norm=norm,
                extend="both",
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
                    fontsize=8,
                    bbox={"fc": "w", "ec": "none", "alpha": 0.8},
                )
            ref = np.unravel_index(np.nanargmin(np.where(infinite, np.inf, z)), z.shape)
            ax.plot(w1[ref], w2[ref], marker="*", color="w", mec="k", ms=11, ls="none")
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(potential_label(name))
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
        ax = page_axes(height=0.55 * PAGE_WIDTH, width=0.75 * PAGE_WIDTH)[0, 0]
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
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
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
    Right: the local rate ``1 / phi''(w)`` against ``w > 0`` on log-log axes. Hyperbolic
    entropies share a colour and differ in dashes. Returns the axes.
    """
    if axes is None:
        axes = page_axes(1, 2, 0.4 * PAGE_WIDTH)[0]
    ax_map, ax_rate = axes
    table = table[(table["w"] != 0) & (table["w"].abs() <= w_max)]
    data, hue = by_potential(table.assign(sign=np.sign(table["w"])))
    betas = iter([(1, 1), (3, 1.5), (7, 2), (7, 2, 1, 2)] * 3)
    dashes = {label: next(betas) if "hyperbolic" in label else "" for label in hue["hue_order"]}
    lines = {"x": "w", "style": "potential", "dashes": dashes, "estimator": None, **hue}
    sns.lineplot(
        data.assign(dual=data["dual"].clip(-1.1 * dual_lim, 1.1 * dual_lim)),
        y="dual",
        units="sign",
        ax=ax_map,
        legend=False,
        **lines,
    )
    sns.lineplot(data[data["w"] > 0], y="rate", ax=ax_rate, **lines)
    ax_rate.set(xscale="log", yscale="log")
    ax_map.axhline(0, color="k", lw=0.5)
    ax_map.axvline(0, color="k", lw=0.5)
    ax_map.set_ylim(-dual_lim, dual_lim)
    ax_map.set(xlabel=r"weight $w$", ylabel=r"dual coordinate $\phi'(w)$")
    ax_rate.set(xlabel=r"weight $w > 0$", ylabel=r"local rate $1/\phi''(w)$")
    sns.move_legend(ax_rate, "upper left", bbox_to_anchor=(1.02, 1.0), title=None)
    return np.asarray(axes)


def plot_bregman_slice(table: pd.DataFrame, ax: Axes | None = None, ymax: float = 1.0) -> Axes:
    """Divergence against ``w2`` from :func:`mirrorlib.experiments.geometry.bregman_slice`.

    One colour per potential; solid for ``D(w, w_ref)``, dashed for ``D(w_ref, w)``. Infinite
    values are not drawn; the range of ``w2`` where a potential's divergence is infinite in
    both orders is hatched in its colour. Returns the axes.
    """
    if ax is None:
        ax = page_axes(height=0.45 * PAGE_WIDTH)[0, 0]
    finite = table[np.isfinite(table["divergence"])]
    data, hue = by_potential(finite.assign(direction=finite["direction"].map(_DIRECTION_LABELS)))
    sns.lineplot(data, x="w2", y="divergence", style="direction", estimator=None, ax=ax, **hue)
    for name, sub in table.groupby("potential", sort=False):
        infinite = sub.groupby("w2")["divergence"].apply(lambda v: bool(np.isinf(v).all()))
        if infinite.any():
            w2 = infinite.index.to_numpy(float)[infinite.to_numpy()]
            color = potential_color(name)
            ax.axvspan(w2.min(), w2.max(), facecolor="none", edgecolor=color, hatch="//", lw=0)
            ax.text(
                (w2.min() + w2.max()) / 2,
                0.85 * ymax,
                r"$D_\phi = +\infty$",
                ha="center",
                va="center",
                fontsize=8,
                bbox={"fc": "w", "ec": "none", "alpha": 0.9},
            )
    ax.axvline(0, color="k", lw=0.6)
    ax.set(ylim=(0, ymax), xlim=(table["w2"].min(), table["w2"].max()))
    ax.set(xlabel=r"$w_2$ (with $w_1 = w_{\mathrm{ref},1}$)", ylabel="Bregman divergence")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0))
    return ax
