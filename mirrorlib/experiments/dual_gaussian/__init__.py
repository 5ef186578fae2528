"""Why the change in the dual space looks Gaussian: the experiments of ``book/dual_gaussian.md``.

Underdetermined linear regression: inputs ``X`` (``N x D``, ``N < D``), labels ``y``, weights
started at ``w0`` and trained by mirror descent with a separable potential ``phi`` on the squared
loss. Every gradient is ``(2/N) X^T r``, so

    grad_phi(w_t) - grad_phi(w0) = X^T a_t        (row space of X, at every step t),

and a run that reaches ``X w = y`` has reached the *Bregman projection*
(Gunasekar et al. 2018)

    w* = argmin_w D_phi(w, w0)   subject to   X w = y.

The pieces, each a function here, checked by the chapter and the tests:

- :func:`row_space_residual`: the part of a dual change outside ``row(X)`` (a);
- :func:`fit_mirror_descent`: mirror descent to interpolation (the Fig 2 trainer
  :func:`mirrorlib.experiments.linear_regression.train_batched`, all learning rates at once);
- from :mod:`mirrorlib.projection` (imported here): :func:`bregman_projection`, ``w*`` by
  damped Newton on the dual problem in ``a`` (N unknowns), each step solved matrix-free by
  conjugate gradients in float32, and its dense float64 reference
  :func:`bregman_projection_dense`; :func:`bregman_projection_scipy`, ``w*`` by a generic
  constrained solver (SLSQP) (b); :func:`linearised_solution`, ``w*`` with the mirror map
  replaced by its tangent at ``w0``, ``w_lin = w0 + H0^-1 X^T (X H0^-1 X^T)^-1 (y - X w0)``,
  ``H0 = diag(phi''(w0))`` (c);
- :func:`sample_inputs`: iid signs, or the paper's correlated inputs (short/long range).

The experiments return tidy tables: :func:`run_implicit_bias` (a, b), :func:`run_linearisation`
(c, f), :func:`run_clt` and :func:`dual_change_histograms` (d, f), :func:`run_deep` (e);
:func:`gaussian_departure` reads from a :func:`run_clt` table which potential, if any, departs
clearly the most from Gaussian.

The code lives in four modules, all re-exported here: :mod:`.settings` (the presets, random
problems and histograms the others share), :mod:`.linear` (the linear model: (a) to (d) and
(f)), :mod:`.deep` (the wide network, (e)) and :mod:`.paper` (the ``paper`` preset, run and
stored with its provenance).
"""

from mirrorlib.experiments.dual_gaussian.deep import WideMLP, run_deep, width_summary
from mirrorlib.experiments.dual_gaussian.linear import (
    LIN_HIGH_RATIO,
    GaussianDeparture,
    MirrorDescentFit,
    clt_point,
    clt_seed_rows,
    departure_scales,
    dual_change_histograms,
    fit_mirror_descent,
    gaussian_departure,
    linearisation_summary,
    relative_change_prediction,
    row_space_residual,
    run_clt,
    run_implicit_bias,
    run_linearisation,
)
from mirrorlib.experiments.dual_gaussian.paper import STORE_COMMAND, STORED_CHAPTER, store_paper
from mirrorlib.experiments.dual_gaussian.settings import (
    HIST_EDGES,
    INPUT_KINDS,
    PRESETS,
    DualGaussianConfig,
    Problem,
    clt_problem,
    config,
    density_histogram,
    input_variance,
    random_problem,
    sample_inputs,
    seeded_generator,
)
from mirrorlib.projection import (
    Projection,
    bregman_projection,
    bregman_projection_dense,
    bregman_projection_scipy,
    linearised_solution,
    sign_feasible,
)

__all__ = [
    "HIST_EDGES",
    "INPUT_KINDS",
    "LIN_HIGH_RATIO",
    "PRESETS",
    "STORED_CHAPTER",
    "STORE_COMMAND",
    "DualGaussianConfig",
    "GaussianDeparture",
    "MirrorDescentFit",
    "Problem",
    "Projection",
    "WideMLP",
    "bregman_projection",
    "bregman_projection_dense",
    "bregman_projection_scipy",
    "clt_point",
    "clt_problem",
    "clt_seed_rows",
    "config",
    "density_histogram",
    "departure_scales",
    "dual_change_histograms",
    "fit_mirror_descent",
    "gaussian_departure",
    "input_variance",
    "linearisation_summary",
    "linearised_solution",
    "random_problem",
    "relative_change_prediction",
    "row_space_residual",
    "run_clt",
    "run_deep",
    "run_implicit_bias",
    "run_linearisation",
    "sample_inputs",
    "seeded_generator",
    "sign_feasible",
    "store_paper",
    "width_summary",
]
