"""Figures of the chapter "What synapse measurements can tell us" (``book/synapse_data.md``).

Each function takes the tables written by :mod:`mirrorlib.experiments.synapse_data` and
:mod:`mirrorlib.synapse_law` (read back from disk) and draws on matplotlib axes; nothing is
computed beyond grouping and averaging.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from mirrorlib.plotting import PAGE_WIDTH, by_potential, figure_legend, page_axes, plot_floor

__all__ = [
    "plot_calibration",
    "plot_connectome_scan",
    "plot_count_fits",
    "plot_fig5_volume_fits",
    "plot_known_w0_power",
    "plot_profile_over_p",
]

_SHADES = ("0.7", "0.45", "0.15")  # sample sizes and data versions, light to dark
_W0_TITLES = {
    "two_constants": r"$w_0$: two constants",
    "constant": r"$w_0$: one constant",
    "lognormal": r"$w_0$: log-normal",
}


def plot_fig5_volume_fits(
    samples: pd.DataFrame, densities: pd.DataFrame, axes: np.ndarray | None = None
) -> np.ndarray:
    """Histogram of ``log10 volume`` (``samples``, column ``log10_volume``) with each fitted
    density of :func:`~mirrorlib.synapse_law.density_table`, one panel per law of ``w0``.
    Returns the axes."""
    models = list(dict.fromkeys(densities["w0_model"]))
    if axes is None:
        axes = page_axes(1, len(models), sharey=True)[0]
    bins = np.linspace(samples["log10_volume"].min(), samples["log10_volume"].max(), 45)
    data, hue = by_potential(densities)
    for ax, model in zip(axes, models, strict=True):
        ax.hist(samples["log10_volume"], bins=bins, density=True, color="0.85", label="samples")
        sns.lineplot(data[densities["w0_model"] == model], x="log10_w", y="density", ax=ax, **hue)
        ax.set_title(_W0_TITLES.get(model, model))
        ax.set_xlabel(r"$\log_{10}$ spine volume ($\mu$m$^3$)")
    figure_legend(axes[0], ncol=3)
    return axes


def plot_profile_over_p(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Profile log-likelihood (minus its maximum) against ``p`` for each sample size ``n``;
    negative entropy at ``p = 1`` as a filled marker. The grey band is the drop of 1.92 (a 95%
    likelihood-ratio interval for one parameter)."""
    if ax is None:
        ax = page_axes(width=0.7 * PAGE_WIDTH)[0, 0]
    for i, (n, sub) in enumerate(table.groupby("n", sort=True)):
        sub = sub.sort_values("p")
        rel = sub["log_likelihood"] - sub["log_likelihood"].max()
        ne = sub["potential"] == "negative_entropy"
        color = _SHADES[i % len(_SHADES)]
        ax.plot(sub["p"], rel, "o-", color=color, ms=3, label=f"n = {n}")
        ax.plot(sub.loc[ne, "p"], rel[ne], "s", color=color, ms=9 - 3 * i, mec="k")
    ax.axhspan(-1.92, 0, color="0.9", zorder=0)
    ax.set_yscale("symlog", linthresh=2)
    ax.set_xlabel(r"$p$ (square: negative entropy, at $p = 1$)")
    ax.set_ylabel(r"$\log L - \max \log L$")
    figure_legend(ax, below=False)
    return ax


def plot_known_w0_power(summary: pd.DataFrame, axes: np.ndarray | None = None) -> np.ndarray:
    """From :func:`~mirrorlib.experiments.synapse_data.summarise_power`: against the number of
    synapses, how often the truth is the best candidate (left) and the width in ``p`` of the
    set the bootstrap cannot rule out (right). Returns the axes."""
    if axes is None:
        axes = page_axes(1, 2)[0]
    data, hue = by_potential(summary, "truth")
    for ax, column in zip(axes, ("truth_best", "set_width"), strict=True):
        sns.lineplot(data, x="n", y=column, marker="o", ax=ax, **hue)
    axes[0].set_ylabel("fraction: truth ranked first")
    axes[0].set_ylim(-0.03, 1.03)
    axes[1].set_ylabel(r"width in $p$ of the set not ruled out")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("number of synapses")
    figure_legend(axes[0], below=False)
    return axes


def plot_connectome_scan(
    pairs: pd.DataFrame, scan: pd.DataFrame, floor: float, axes: np.ndarray | None = None
) -> np.ndarray:
    """Left: synapse counts of each shared connection, early against adult (marker area by the
    number of connections with that pair of counts). Right: the scan's Delta-CDF per candidate
    (negative entropy at ``p = 1``), filled where the bootstrap cannot tell it from the best,
    with the finite-sample ``floor``. Returns the axes."""
    if axes is None:
        axes = page_axes(1, 2)[0]
    grouped = pairs.groupby(["before", "after"]).size().rename("n").reset_index()
    axes[0].scatter(grouped["before"], grouped["after"], s=6 * grouped["n"], color="0.3", alpha=0.6)
    top = max(grouped["before"].max(), grouped["after"].max())
    axes[0].plot([0.8, top], [0.8, top], color="0.5", lw=0.8, ls="--")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("synapses, L1 larva")
    axes[0].set_ylabel("synapses, adult")
    ax = axes[1]
    p = scan["p"].fillna(1.0)
    order = np.argsort(p.to_numpy())
    p, dcdf = p.to_numpy()[order], scan["delta_cdf"].to_numpy()[order]
    kept = scan["indistinguishable"].fillna(False).astype(bool).to_numpy()[order]
    ax.plot(p, dcdf, color="0.4", lw=0.8)
    ax.plot(p[~kept], dcdf[~kept], "o", mfc="w", mec="0.3", ms=5, label="ruled out")
    ax.plot(p[kept], dcdf[kept], "o", color="k", ms=6, label="not ruled out")
    plot_floor(ax, None, floor, label="floor (Gaussian)")
    ax.set_xlabel(r"candidate $p$ (negative entropy at $p = 1$)")
    ax.set_ylabel(r"$\Delta$CDF of the dual change")
    figure_legend(ax, below=False)
    return axes


def plot_calibration(table: pd.DataFrame, observed_p: float, ax: Axes | None = None) -> Axes:
    """From :func:`~mirrorlib.experiments.synapse_data.run_count_calibration`: the best
    candidate's ``p`` (mean and range over repetitions) against the true one, for each version
    of the simulated data; the dotted line marks the best ``p`` on the real counts."""
    if ax is None:
        ax = page_axes(width=0.7 * PAGE_WIDTH)[0, 0]
    truth_p = {
        t: (1.0 if t == "negative_entropy" else float(t.split("-")[0])) for t in table["truth"]
    }
    labels = {
        "latent_all": "continuous, all pairs",
        "latent_kept": "continuous, pairs seen in both",
        "counts_kept": "counts, pairs seen in both",
    }
    versions = list(dict.fromkeys(table["data"]))
    nudge = {v: 0.04 * (i - (len(versions) - 1) / 2) for i, v in enumerate(versions)}
    data = table.assign(
        true_p=table["truth"].map(truth_p) + table["data"].map(nudge),
        data=table["data"].map(lambda v: labels.get(v, v)),
    )
    sns.lineplot(
        data,
        x="true_p",
        y="best_p",
        hue="data",
        palette=list(_SHADES[: len(versions)]),
        estimator="mean",
        errorbar=("pi", 100),
        err_style="bars",
        marker="o",
        linestyle="",
        ax=ax,
    )
    lims = [0.9, max(truth_p.values()) + 0.1]
    ax.plot(lims, lims, color="0.6", lw=0.8)
    ax.axhline(observed_p, color="k", ls=":", lw=1, label="best on the real counts")
    ax.set_xlabel(r"true $p$ (negative entropy at 1)")
    ax.set_ylabel(r"best candidate's $p$")
    figure_legend(ax, below=False)
    return ax


def plot_count_fits(
    counts: pd.Series, pmf: pd.DataFrame, ax: Axes | None = None, w0_model: str = "two_constants"
) -> Axes:
    """Observed frequency of each synapse count with the fitted probabilities of each
    potential (table of :func:`~mirrorlib.synapse_law.count_pmf_table`) for one law of
    ``w0``. Log axes."""
    if ax is None:
        ax = page_axes(width=0.7 * PAGE_WIDTH)[0, 0]
    freq = counts.value_counts(normalize=True).sort_index()
    ax.plot(freq.index, freq.to_numpy(), "o", color="0.3", ms=4, label="adult counts")
    data, hue = by_potential(pmf[pmf["w0_model"] == w0_model])
    dashes = {label: (3, 2) if "hyperbolic" in label else "" for label in hue["hue_order"]}
    sns.lineplot(data, x="k", y="probability", style="potential", dashes=dashes, ax=ax, **hue)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.5 / counts.size, 1)
    ax.set_xlabel("synapses per connection")
    ax.set_ylabel("fraction of connections")
    figure_legend(ax, below=False)
    return ax
