"""Figures of the chapter "Introduction — what synapses tell us" (``book/biology.md``).

Each function reads the tables written by :mod:`mirrorlib.experiments.biology` and draws, with the
reference curves and per-unit sign counts of that module; nothing else is computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from mirrorlib.experiments.biology import (
    gaussian_log_abs_density,
    mixture_density,
    sign_structure,
)
from mirrorlib.plotting import panel_grid, potential_color

__all__ = ["MODEL_LABELS", "model_style", "plot_weights_vs_synapses"]

MODEL_LABELS = {
    "gd_gaussian": "SGD, Gaussian init",
    "gd_lognormal_dale": "SGD, log-normal Dale init",
    "eg_lognormal_dale": "EG, log-normal Dale init",
}
"""Legend labels of the networks of :data:`mirrorlib.experiments.biology.MODELS`."""


def model_style(model: str) -> dict:
    """Colour and line style of a network: gradient descent blue, exponentiated gradient green
    (the colours of their potentials); dashed when SGD starts from the log-normal weights."""
    rule = "negative_entropy" if model.startswith("eg") else "2-norm"
    style = "--" if model == "gd_lognormal_dale" else "-"
    return {"color": potential_color(rule), "linestyle": style}


def _standard_normal(ax: Axes, lim: float) -> None:
    t = np.linspace(-lim, lim, 400)
    ax.plot(
        t,
        np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi),
        color="0.5",
        lw=1.2,
        ls="-.",
        label="standard normal",
    )


def plot_weights_vs_synapses(
    weights: pd.DataFrame,
    reference: pd.DataFrame,
    layer: str = "hidden",
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Three panels contrasting trained networks with synapses.

    (a) ``w / std(w)`` of ``layer`` for each model, against the standard normal density;
    (b) the standardised ``log|w|`` (centred), against the standard normal (log-normal
    ``|w|``), the exact density for Gaussian ``w`` and the standardised log-volume density of
    the published spine-volume fit ``reference`` (columns ``weight``, ``mean_log10``,
    ``sd_log10``); (c) for every presynaptic unit of every layer, the fraction of
    its outgoing weights that are positive (Dale's law puts every unit at 0 or 1).
    ``weights`` has the columns of :data:`mirrorlib.experiments.biology.WEIGHT_COLUMNS`.
    """
    if axes is None:
        axes = panel_grid(1, 3, (3.6, 3.0)).ravel()
    lim = 5.0
    bins = np.linspace(-lim, lim, 61)
    models = list(dict.fromkeys(weights["model"]))
    for model in models:
        style = model_style(model)
        sub = weights[(weights["model"] == model) & (weights["layer"] == layer)]
        w = sub["w"].to_numpy(float)
        axes[0].hist(
            w / w.std(ddof=1),
            bins=bins,
            density=True,
            histtype="step",
            lw=1.4,
            label=MODEL_LABELS.get(model, model),
            **style,
        )
        log_abs = np.log(np.abs(w[w != 0]))
        z = (log_abs - log_abs.mean()) / log_abs.std(ddof=1)
        axes[1].hist(
            z,
            bins=bins,
            density=True,
            histtype="step",
            lw=1.4,
            label=MODEL_LABELS.get(model, model),
            **style,
        )
        fractions = []
        for lay in dict.fromkeys(weights.loc[weights["model"] == model, "layer"]):
            part = weights[(weights["model"] == model) & (weights["layer"] == lay)]
            matrix = part.pivot(index="post", columns="pre", values="w").to_numpy()
            fractions.append(sign_structure(matrix)["fraction_positive"].to_numpy())
        frac = np.concatenate(fractions)
        frac = frac[np.isfinite(frac)]
        axes[2].hist(
            frac,
            bins=np.linspace(0, 1, 21),
            histtype="step",
            lw=1.4,
            weights=np.full(frac.size, 1.0 / frac.size),
            label=MODEL_LABELS.get(model, model),
            **style,
        )
    t = np.linspace(-lim, lim, 400)
    axes[1].plot(
        t,
        gaussian_log_abs_density(t),
        color=potential_color("2-norm"),
        lw=1,
        ls=":",
        label=r"$\log|w|$ of Gaussian $w$",
    )
    axes[1].plot(t, mixture_density(t, reference), color="k", lw=1.6, label="spine volumes (fit)")
    for ax in axes[:2]:
        _standard_normal(ax, lim)
        ax.set_xlim(-lim, lim)
        ax.set_ylabel("density")
    axes[0].set_xlabel(r"weight $w$ / std($w$)")
    axes[1].set_xlabel(r"standardised $\log|w|$ (spines: $\log$ volume)")
    axes[2].set_xlabel("fraction of positive outgoing weights")
    axes[2].set_ylabel("fraction of presynaptic units")
    axes[2].set_xlim(-0.02, 1.02)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.text(0.02, 0.97, f"({letter})", transform=ax.transAxes, va="top", fontweight="bold")
    handles, labels = axes[1].get_legend_handles_labels()
    axes[0].figure.legend(
        handles, labels, loc="outside lower center", ncol=3, frameon=False, fontsize=8
    )
    return axes
