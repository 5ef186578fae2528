"""Log-normal weights and Dale's law: the experiments of the chapter "Log-normal weights and
Dale's law" (``book/lognormal_dale.md``). The code lives in three modules, all re-exported here:
:mod:`~mirrorlib.experiments.lognormal_dale.settings` (the settings both parts share),
:mod:`~mirrorlib.experiments.lognormal_dale.regression` (Part 1 and the statistics of
``log|w|``) and :mod:`~mirrorlib.experiments.lognormal_dale.dale` (Part 2).

Part 1 (``regression.py``), *does learning keep weights log-normal?* An underdetermined linear
regression (``N = int(D^alpha)`` points, ``D`` weights, i.i.d. Gaussian inputs scaled so that
``x . w0`` has unit variance, labels ``+-c`` at random) is trained to (near) zero loss by mirror
descent with the negative entropy (exponentiated gradient, EG) or the 2-norm (gradient descent,
GD), from signed log-normal or Gaussian starting weights of the same second moment. Mirror
descent moves the dual coordinate by ``X^T a``, close to Gaussian across synapses. For EG the
dual coordinate is ``sign(w) (log|w| + 1)`` and signs never change, so

    log|w_T| = log|w_0| + sign(w_0) (X^T a)_i,

a Gaussian plus a Gaussian: a log-normal start stays log-normal. For GD, ``w_T = w_0 + X^T a``:
a log-normal plus a Gaussian is not log-normal, and a Gaussian start stays Gaussian.
:func:`run_regression` measures, per run, the centred Delta-CDF of ``log|w|`` before and after
(:func:`log_weight_delta_cdf`), the fraction of sign flips and the relative change
``||w_T - w_0|| / ||w_0||``; the label scale ``c`` sets how far the weights move.
:func:`regression_summary` gives the medians over seeds that the chapter quotes from its table.

Part 2 (``dale.py``), *Dale's law in a trained network.* A ReLU MLP (:class:`DaleMLP`) whose
presynaptic neurons (input pixels, hidden units) are each excitatory or inhibitory (signed
log-normal initialisation with Dale's law, :func:`dale_init_`), trained on an image dataset with
EG, unconstrained GD and sign-constrained (projected) GD (:func:`make_optimizers`). Learning
rates come from a small search on a validation split (:func:`select_learning_rates`);
:func:`run_dale` then reports per method, seed and epoch the accuracies and, per layer and
population, the sign violations against the initial Dale signs, the fraction of weights that
are exactly zero and the Delta-CDF of ``log|w|``.

:func:`distribution_tables` (in ``regression.py``) turns weights into the histogram and QQ
tables the figures draw. All functions are deterministic: the same configuration gives the same
tables.
"""

from mirrorlib.experiments.lognormal_dale.dale import (
    DaleData,
    DaleMLP,
    DaleRun,
    PairedComparison,
    accuracy,
    accuracy_resolution,
    accuracy_verdict,
    dale_init_,
    load_data,
    lognormality_verdict,
    make_optimizers,
    paired_by_seed,
    run_dale,
    select_learning_rates,
    sign_statistics,
    train_dale,
)
from mirrorlib.experiments.lognormal_dale.regression import (
    REGRESSION_COLUMNS,
    RegressionProblem,
    RegressionRun,
    distribution_tables,
    log_weight_delta_cdf,
    regression_problem,
    regression_summary,
    run_regression,
    sample_w0,
)
from mirrorlib.experiments.lognormal_dale.settings import (
    DALE_METHODS,
    INITS,
    METHOD_LABELS,
    PRESETS,
    W0_SECOND_MOMENT,
    LognormalDaleConfig,
    config,
)

__all__ = [
    "DALE_METHODS",
    "INITS",
    "LognormalDaleConfig",
    "DaleMLP",
    "DaleRun",
    "PRESETS",
    "accuracy",
    "accuracy_resolution",
    "accuracy_verdict",
    "config",
    "dale_init_",
    "DaleData",
    "load_data",
    "distribution_tables",
    "log_weight_delta_cdf",
    "lognormality_verdict",
    "make_optimizers",
    "paired_by_seed",
    "regression_problem",
    "regression_summary",
    "run_dale",
    "run_regression",
    "sample_w0",
    "select_learning_rates",
    "sign_statistics",
    "train_dale",
    # public constants and return types, reachable as attributes of the former module
    "METHOD_LABELS",
    "REGRESSION_COLUMNS",
    "W0_SECOND_MOMENT",
    "RegressionProblem",
    "RegressionRun",
    "PairedComparison",
]
