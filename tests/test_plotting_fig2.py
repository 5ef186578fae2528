"""plot_fig2_linear_regression draws the paper's Fig 2 layout from a table made by run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirrorlib.experiments import linear_regression as linreg  # noqa: E402
from mirrorlib.plotting import wrong_potential as plotting  # noqa: E402


@pytest.fixture(scope="module")
def table():
    """A tiny run: two powers, two alphas, three potentials, three D, two seeds (large D: the
    finite-sample floor is simulated from fewer, longer draws, which is faster).

    The correlated null is simulated from few values (it is cached per process: the cache is
    cleared afterwards so that no other test sees these rough values).
    """
    saved = linreg.NULL_VALUES
    linreg.NULL_VALUES = 20_000
    linreg.delta_cdf_null.cache_clear()
    cfg = linreg.config(
        "ci",
        dims=(1000, 2000, 4000),
        n_seeds=2,
        lrs=(1e-3, 1e-2, 1e-1),
        min_steps=20,
        max_steps=20,
    )
    try:
        return linreg.run(cfg, progress=False)
    finally:
        linreg.NULL_VALUES = saved
        linreg.delta_cdf_null.cache_clear()


def test_one_row_per_potential_and_two_columns_per_power(table):
    axes = plotting.plot_fig2_linear_regression(table)
    try:
        assert axes.shape == (3, 4)
        assert axes.size == 12
        for ax in axes.ravel():
            assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
            assert ax.lines, "every panel draws the medians"
        # Delta-CDF panels: floor + null + one median per alpha; 2-norm relative change:
        # one median and one prediction per alpha.
        drawn = [[line for line in ax.lines if len(line.get_xdata())] for ax in axes.flat]
        assert len(drawn[0]) == 2 + 2
        two_norm = list(dict.fromkeys(table["potential"])).index("2-norm")
        assert len(drawn[4 * two_norm + 1]) == 2 * 2
        assert axes[0, 0].figure.legends, "one legend, outside the panels"
    finally:
        plt.close(axes.flat[0].figure)


def test_draws_on_given_axes_and_plots_the_medians(table):
    fig, given = plt.subplots(3, 4)
    try:
        axes = plotting.plot_fig2_linear_regression(table, axes=given)
        assert axes.shape == (3, 4) and axes[0, 0] is given[0, 0]
        pot, p = table["potential"].iloc[0], table["corr_power"].iloc[0]
        alpha = sorted(table["alpha"].unique())[0]
        cell = table[(table.potential == pot) & (table.corr_power == p) & (table.alpha == alpha)]
        median = cell.groupby("D")["delta_cdf"].median().sort_index()
        xs, ys = axes[0, 0].lines[2].get_data()
        np.testing.assert_allclose(xs, median.index)
        np.testing.assert_allclose(ys, median.to_numpy())
    finally:
        plt.close(fig)
