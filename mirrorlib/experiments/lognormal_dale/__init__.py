"""Log-normal weights and Dale's law: the experiments of the chapter "Log-normal weights and
Dale's law" (``book/lognormal_dale.md``), re-exported from :mod:`.dale` (split up next)."""

from mirrorlib.experiments.lognormal_dale.dale import *  # noqa: F403
from mirrorlib.experiments.lognormal_dale.dale import (  # noqa: F401
    METHOD_LABELS,
    REGRESSION_COLUMNS,
    W0_SECOND_MOMENT,
    RegressionProblem,
    RegressionRun,
    __all__,
)
