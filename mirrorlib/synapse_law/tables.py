"""The tables: fits, fitted parameters, densities and count probabilities as tidy data frames
(one row per fit, or per fit and parameter or point), and the AIC difference of two potentials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mirrorlib.potentials import Potential
from mirrorlib.synapse_law.data import _numeric
from mirrorlib.synapse_law.fitting import FitResult
from mirrorlib.synapse_law.model import _resolve_potential, count_log_likelihood

FIT_COLUMNS = ("dataset", "w0_model", "potential", "n_params", "log_likelihood", "aic", "bic")
"""Columns of :func:`fits_table`."""


def _fit_row(r: FitResult, **columns) -> dict:
    """A table row of the fit ``r``: the columns that name it (``dataset, w0_model,
    potential``), then ``columns``."""
    return {"dataset": r.dataset, "w0_model": r.w0_model, "potential": r.potential, **columns}


def fits_table(results: list[FitResult]) -> pd.DataFrame:
    """One row per fit with the columns of :data:`FIT_COLUMNS`."""
    rows = [
        _fit_row(r, n_params=r.n_params, log_likelihood=r.log_likelihood, aic=r.aic, bic=r.bic)
        for r in results
    ]
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


def params_table(results: list[FitResult]) -> pd.DataFrame:
    """Fitted parameters, one row per (fit, parameter): ``dataset, w0_model, potential,
    parameter, value``."""
    rows = [_fit_row(r, parameter=k, value=v) for r in results for k, v in r.params.items()]
    return pd.DataFrame(rows)


def density_table(results: list[FitResult], w_grid: ArrayLike) -> pd.DataFrame:
    """Fitted densities on ``w_grid`` as densities of ``log10 w``: ``dataset, w0_model,
    potential, log10_w, density`` (``p(log10 w) = p(w) w ln 10``).

    The density is 0 at grid points ``w <= 0`` (where ``log10_w`` is ``-inf`` or NaN); no
    results give an empty table with these columns.
    """
    w_grid = _numeric(w_grid, "w_grid").reshape(-1)
    positive = w_grid > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_w = np.log10(w_grid)
    frames = []
    for r in results:
        dens = np.where(positive, np.exp(r.log_density(w_grid)) * w_grid * math.log(10), 0.0)
        frames.append(pd.DataFrame(_fit_row(r, log10_w=log10_w, density=dens)))
    if not frames:
        return pd.DataFrame(columns=["dataset", "w0_model", "potential", "log10_w", "density"])
    return pd.concat(frames, ignore_index=True)


def count_pmf_table(results: list[FitResult], k_max: int) -> pd.DataFrame:
    """Fitted probabilities of the counts ``1..k_max`` (from :func:`fit_counts` results):
    ``dataset, w0_model, potential, k, probability``."""
    if not isinstance(k_max, int | np.integer) or k_max < 1:
        raise ValueError(f"k_max must be an integer >= 1, got {k_max!r}")
    rows = []
    for r in results:
        for k in range(1, k_max + 1):
            logp = count_log_likelihood(np.array([float(k)]), r.potential, r.w0_model, r.x, r.scale)
            rows.append(
                {
                    "dataset": r.dataset,
                    "w0_model": r.w0_model,
                    "potential": r.potential,
                    "k": k,
                    "probability": math.exp(logp),
                }
            )
    return pd.DataFrame(rows)


def delta_aic(
    table: pd.DataFrame,
    dataset: str,
    w0_model: str = "two_constants",
    worse: str | Potential = "2-norm",
    better: str | Potential = "negative_entropy",
) -> float:
    """``AIC(worse) - AIC(better)`` in a :func:`fits_table` (positive: ``better`` wins).

    ``worse`` and ``better`` are potential names as :func:`fit` reads them (``"ne"`` finds
    the ``negative_entropy`` row). A dataset, law of ``w0`` or fit missing from ``table``, or
    a fit present twice, raises ``ValueError`` naming what the table holds.
    """
    names = [_resolve_potential(worse), _resolve_potential(better)]
    datasets = table["dataset"].unique().tolist()
    if dataset not in datasets:
        raise ValueError(f"no fits of dataset {dataset!r} in the table; datasets: {datasets}")
    of_dataset = table[table["dataset"] == dataset]
    models = of_dataset["w0_model"].unique().tolist()
    if w0_model not in models:
        raise ValueError(
            f"no fits of dataset {dataset!r} with w0 model {w0_model!r}; w0 models: {models}"
        )
    aic = of_dataset[of_dataset["w0_model"] == w0_model].set_index("potential")["aic"]
    for name in names:
        count = int(np.count_nonzero(aic.index == name))
        if count != 1:
            what = "no fit" if count == 0 else f"{count} fits"
            raise ValueError(
                f"{what} of {name} for dataset {dataset!r} with w0 model {w0_model!r}; "
                f"potentials fitted: {', '.join(map(str, aic.index))}"
            )
    return float(aic[names[0]] - aic[names[1]])
