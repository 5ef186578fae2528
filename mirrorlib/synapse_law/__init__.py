"""The law of synapse sizes after learning: the model, its likelihood and maximum-likelihood fits.

A user with their own measurements (spine volumes, synapse counts or any positive weights) needs
only this package: read them with :func:`load_volumes_csv` (or check an array with
:func:`check_volumes` / :func:`check_counts`), fit each candidate with :func:`fit` (or
:func:`fit_counts` for integer counts) and compare the fits with :func:`fits_table` and
:func:`delta_aic`. The experiments of ``book/synapse_data.md`` build on it
(:mod:`mirrorlib.experiments.synapse_data`).

The package has one module per idea, and every public name is imported here: :mod:`.data`
(samples from the published fit; checks and the CSV reader of measurements), :mod:`.model` (the
density and the count likelihood), :mod:`.fitting` (maximum likelihood, :class:`FitResult`) and
:mod:`.tables` (tables of fits, parameters, densities and count probabilities; :func:`delta_aic`).

**The model (paper Fig 5).** A weight after learning is
``w = (phi')^{-1}(phi'(w0) + xi)``, ``xi ~ N(mu, s^2)``, for a potential ``phi`` and a law of
the starting weight ``w0``. With ``theta = phi'(w)`` the dual coordinate, the density of ``w``
follows by a change of variables,

    p(w) = f(phi'(w)) phi''(w) / P(theta > theta_min),

where ``f`` is the density of ``theta = phi'(w0) + xi`` and ``phi''`` is
:meth:`~mirrorlib.potentials.Potential.hess_diag`. Volumes are positive: a positive weight has
``theta > theta_min = phi'(0+)``, which is ``-inf`` for negative entropy (no constraint) and 0
for the p-norms and hyperbolic entropy. For those, a Gaussian change can carry a weight below
zero; such a synapse would have vanished and could not be measured, so the model is the law of
the *surviving* synapses: ``f`` truncated to ``theta > theta_min`` and renormalised (the
division above).

Laws of ``w0`` (:data:`W0_MODELS`):

- ``constant`` ``w0 = c``: ``theta ~ N(m, s^2)`` with ``m = phi'(c) + mu`` (``c`` and ``mu``
  enter only through ``m``): 2 free parameters ``(m, s)``;
- ``two_constants`` (the paper's choice): ``theta ~ pi N(m1, s^2) + (1 - pi) N(m2, s^2)``:
  4 parameters ``(m1, m2, s, pi)``;
- ``lognormal`` ``log w0 ~ N(a, b^2)``: ``f`` is the convolution of the law of ``phi'(w0)``
  with ``N(mu, s^2)``, 4 parameters ``(a, b, mu, s)``; for negative entropy
  ``phi'(w0) = log w0 + 1`` is Gaussian and only ``a + mu`` and ``b^2 + s^2`` are identifiable:
  2 parameters, the same law as ``constant``.

Hyperbolic entropy's scale ``beta`` is fitted too (one more parameter).

**Fitting.** Maximum likelihood: ``scipy.optimize.minimize`` (L-BFGS-B, numerical gradients,
box bounds on the log-scales) from several starting points built from the data's dual
coordinates (:func:`fitting._starts`), then a Nelder-Mead polish of the best; the highest
likelihood wins. Volumes are divided by their geometric mean first (every model family is closed
under rescaling; the Jacobian is added back). The log-normal convolution is computed exactly for
a piecewise-linear ``phi'(w0(z))`` on a grid of ``z = (log w0 - a)/b``
(:func:`model._theta_lognormal`), accurate both when ``s`` is small and when it is large.

**Counts.** Synapse counts are integers: a count ``k >= 1`` is read as ``w in [k - 1/2,
k + 1/2)``, and the likelihood is the probability of that interval given ``w >= 1/2``
(:func:`count_log_likelihood`).
"""

from mirrorlib.synapse_law.data import (
    MIN_LOG_SPREAD,
    MIN_VOLUMES,
    N_DORKENWALD,
    PUBLISHED_FITS,
    check_counts,
    check_volumes,
    load_volumes_csv,
    sample_published_fit,
)
from mirrorlib.synapse_law.fitting import (
    SEARCH_POINTS,
    FitResult,
    fit,
    fit_counts,
)
from mirrorlib.synapse_law.model import (
    N_GRID,
    POTENTIALS,
    W0_MODELS,
    count_log_likelihood,
    log_density,
    n_free_params,
)
from mirrorlib.synapse_law.tables import (
    FIT_COLUMNS,
    count_pmf_table,
    delta_aic,
    density_table,
    fits_table,
    params_table,
)

__all__ = [
    "FIT_COLUMNS",
    "MIN_LOG_SPREAD",
    "MIN_VOLUMES",
    "N_DORKENWALD",
    "N_GRID",
    "POTENTIALS",
    "PUBLISHED_FITS",
    "SEARCH_POINTS",
    "W0_MODELS",
    "FitResult",
    "check_counts",
    "check_volumes",
    "count_log_likelihood",
    "count_pmf_table",
    "delta_aic",
    "density_table",
    "fit",
    "fit_counts",
    "fits_table",
    "load_volumes_csv",
    "log_density",
    "n_free_params",
    "params_table",
    "sample_published_fit",
]
