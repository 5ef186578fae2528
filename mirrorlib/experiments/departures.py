"""Where a chapter's protocol departs from the paper's, and what each departure changes.

Every chapter ends with a short table (:func:`departures_table`) with one row per aspect of
:data:`ASPECTS`: what the paper does, what the chapter does, and what the difference changes,
measured where that is cheap:

- the Delta-CDF on the paper's 1000-point grid over ``[-5, 5]`` against the exact integral
  (:func:`grid_error`, on simulated samples of the chapter's size);
- the centred against the paper's uncentred statistic, by rescoring stored runs
  (:func:`recovery_by_statistic`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirrorlib.stats import delta_cdf, delta_cdf_grid

__all__ = [
    "ASPECTS",
    "departures_table",
    "grid_error",
    "recovery_by_statistic",
]

ASPECTS: dict[str, str] = {
    "statistic": "centred or uncentred statistic",
    "delta_cdf": "exact or grid Delta-CDF",
    "learning_rate": "learning-rate rule",
    "subset": "examples per seed",
    "substitutes": "networks and data",
}
"""The aspects every departures table covers, with their row labels."""


def departures_table(rows: dict[str, tuple[str, str, str]]) -> pd.DataFrame:
    """The table of a chapter: ``rows[aspect] = (paper, this chapter, what it changes)`` for
    every aspect of :data:`ASPECTS` (in that order), indexed by the aspects' labels."""
    missing = sorted(set(ASPECTS) - set(rows))
    unknown = sorted(set(rows) - set(ASPECTS))
    if missing or unknown:
        raise ValueError(f"departures need every aspect once: missing {missing}, unknown {unknown}")
    table = pd.DataFrame(
        [rows[key] for key in ASPECTS],
        index=pd.Index(list(ASPECTS.values()), name="aspect"),
        columns=["paper", "this chapter", "what it changes"],
    )
    return table


def grid_error(n: int, seeds: int = 20, seed: int = 0, centered: bool = False) -> pd.DataFrame:
    """The paper's grid Delta-CDF against the exact one on ``seeds`` samples of size ``n``.

    Laws: ``gaussian`` (what the true potential's dual change should look like) and
    ``student_t3`` (heavy tails, as a wrong potential's; values beyond the grid's ``+-5``
    standard deviations are what the grid leaves out). One row per law: ``n``, the mean exact
    Delta-CDF ``exact``, the mean ``|grid - exact|`` ``abs_error`` and the largest
    ``max_abs_error``, and ``relative_error = abs_error / exact``.
    """
    rng = np.random.default_rng([int(seed), int(n)])
    draws = {"gaussian": rng.standard_normal, "student_t3": lambda size: rng.standard_t(3, size)}
    rows = []
    for law, draw in draws.items():
        exact, error = [], []
        for _ in range(seeds):
            x = draw(int(n))
            e = delta_cdf(x, centered=centered)
            exact.append(e)
            error.append(abs(delta_cdf_grid(x, centered=centered) - e))
        rows.append(
            {
                "law": law,
                "n": int(n),
                "exact": float(np.mean(exact)),
                "abs_error": float(np.mean(error)),
                "max_abs_error": float(np.max(error)),
                "relative_error": float(np.mean(error) / np.mean(exact)),
            }
        )
    return pd.DataFrame(rows)


def recovery_by_statistic(
    runs: pd.DataFrame, columns: tuple[str, ...] = ("delta_cdf", "delta_cdf_uncentred")
) -> pd.DataFrame:
    """How many (network, objective, trained potential) pairs of a finetuning runs table
    (:func:`mirrorlib.experiments.deep_networks.recovery_table`'s input) are recovered by the
    lowest mean of each column: one row per column with ``pairs``, ``correct`` and the pairs
    recovered by one column and not the first (``gained``) or the reverse (``lost``)."""
    from mirrorlib.experiments.deep_networks import recovery_table

    keys = ["architecture", "objective", "trained_potential"]
    tables = {c: recovery_table(runs, column=c).set_index(keys)["correct"] for c in columns}
    base = tables[columns[0]]
    rows = []
    for column, correct in tables.items():
        rows.append(
            {
                "column": column,
                "pairs": len(correct),
                "correct": int(correct.sum()),
                "gained": int((correct & ~base).sum()),
                "lost": int((~correct & base).sum()),
            }
        )
    return pd.DataFrame(rows)
