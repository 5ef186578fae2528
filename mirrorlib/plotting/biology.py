"""Figures of the chapter "Introduction — what synapses tell us" (``book/biology.md``).

Each function reads the tables written by :mod:`mirrorlib.experiments.biology` and draws them
with seaborn, with the reference curves and per-unit sign counts of that module; nothing else is
computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from mirrorlib.experiments.biology import (
    gaussian_log_abs_density,
    mixture_density,
    sign_structure,
)
from mirrorlib.plotting import figure_legend, page_axes, potential_color

__all__ = ["MODEL_LABELS", "plot_stats_vs_width", "plot_weights_vs_synapses"]

MODEL_LABELS = {
    "gd_gaussian": "SGD, Gaussian init",
    "gd_lognormal_dale": "SGD, log-normal Dale init",
    "eg_lognormal_dale": "EG, log-normal Dale init",
}
"""Legend labels of the networks of :data:`mirrorlib.experiments.biology.MODELS`."""


def _model_style(model: str) -> dict:
    """Gradient descent in the 2-norm's colour, exponentiated gradient in negative entropy's;
    dashed when SGD starts from the log-normal weights."""
    rule = "negative_entropy" if model.startswith("eg") else "2-norm"
    style = "--" if model == "gd_lognormal_dale" else "-"
    return {
        "color": potential_color(rule),
        "linestyle": style,
        "label": MODEL_LABELS.get(model, model),
    }


def _standardised(w: pd.Series) -> pd.Series:
    return (w - w.mean()) / w.std(ddof=1)


def _fraction_positive(weights: pd.DataFrame) -> pd.DataFrame:
    """Per model, the fraction of positive outgoing weights of every presynaptic unit of every
    layer (NaN for a unit whose weights are all zero)."""
    rows = [
        pd.DataFrame(
            {
                "model": model,
                "fraction": sign_structure(
                    part.pivot(index="post", columns="pre", values="w").to_numpy()
                )["fraction_positive"],
            }
        )
        for (model, _), part in weights.groupby(["model", "layer"], sort=False)
    ]
    return pd.concat(rows).dropna()


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
        axes = page_axes(1, 3, 2.7)[0]
    lim = 5.0
    hidden = weights[weights["layer"] == layer]
    log_abs = np.log(hidden["w"].abs().where(hidden["w"] != 0))  # zeros left out
    hidden = hidden.assign(
        scaled=hidden["w"] / hidden.groupby("model")["w"].transform("std"),
        log_abs=log_abs.groupby(hidden["model"]).transform(_standardised),
    )
    fractions = _fraction_positive(weights)
    steps = {"element": "step", "fill": False, "lw": 1.4}
    for model in dict.fromkeys(weights["model"]):
        style = _model_style(model)
        sub = hidden[hidden["model"] == model]
        sns.histplot(
            sub,
            x="scaled",
            stat="density",
            bins=np.linspace(-lim, lim, 61),
            ax=axes[0],
            **steps,
            **style,
        )
        sns.histplot(
            sub,
            x="log_abs",
            stat="density",
            bins=np.linspace(-lim, lim, 61),
            ax=axes[1],
            **steps,
            **style,
        )
        sns.histplot(
            fractions[fractions["model"] == model],
            x="fraction",
            stat="probability",
            bins=np.linspace(0, 1, 21),
            ax=axes[2],
            **steps,
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
        ax.plot(
            t,
            np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi),
            color="0.5",
            lw=1.2,
            ls="-.",
            label="standard normal",
        )
        ax.set(xlim=(-lim, lim), ylabel="density")
    axes[0].set_xlabel(r"weight $w$ / std($w$)")
    axes[1].set_xlabel("standardised $\\log|w|$\n(spines: $\\log$ volume)")
    axes[2].set(
        xlabel="fraction of outgoing\nweights that are positive", ylabel="fraction of units"
    )
    axes[2].set_xlim(-0.02, 1.02)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter})", loc="left", fontweight="bold")
    figure_legend(axes[1])
    return axes


STATS_PANELS = {
    "skew_log_abs": r"skewness of $\log|w|$",
    "sign_flip_fraction": "share of weights\nthat changed sign",
    "same_sign_fraction": "share of one-sign units",
}
"""The columns of :func:`plot_stats_vs_width`'s panels, with their axis labels."""


def plot_stats_vs_width(
    stats: pd.DataFrame, layer: str = "hidden", axes: np.ndarray | None = None
) -> np.ndarray:
    """The trained networks' weight statistics (:data:`STATS_PANELS`) of ``layer`` against the
    number of hidden units: per model, the median over seeds with a 90 % interval.
    ``stats`` has the columns of :data:`mirrorlib.experiments.biology.STATS_COLUMNS`."""
    if axes is None:
        axes = page_axes(1, len(STATS_PANELS), 2.6)[0]
    trained = stats[(stats["stage"] == "trained") & (stats["layer"] == layer)]
    for ax, (column, label) in zip(axes, STATS_PANELS.items(), strict=True):
        for model in dict.fromkeys(trained["model"]):
            sns.lineplot(
                trained[trained["model"] == model],
                x="hidden_units",
                y=column,
                estimator="median",
                errorbar=("pi", 90),
                marker="o",
                ax=ax,
                **_model_style(model),
            )
        ax.set(xscale="log", xlabel="hidden units $H$", ylabel=label)
        ax.set_xticks(sorted(trained["hidden_units"].unique()))
        ax.xaxis.set_major_formatter("{x:.0f}")
        ax.xaxis.set_minor_formatter("")
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter})", loc="left", fontweight="bold")
    figure_legend(axes[0])
    return axes
