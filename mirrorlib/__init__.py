"""mirrorlib: learning under non-Euclidean synaptic geometry.

Potentials (the geometry), a mirror-descent optimiser, the exact Delta-CDF Gaussianity statistic
and recovery of the geometry from weights before and after learning, after Pogodin, Cornford et
al., "Synaptic Weight Distributions Depend on the Geometry of Plasticity" (ICLR 2024).
"""

from mirrorlib.init import lognormal_mu_sigma, random_signs, signed_lognormal_
from mirrorlib.io import load_weights
from mirrorlib.optim import MirrorDescent, SignConstrainedSGD, mirror_descent, mirror_step
from mirrorlib.potentials import (
    HyperbolicEntropy,
    NegativeEntropy,
    PNorm,
    Potential,
    available_potentials,
    potential,
    potential_in_words,
)
from mirrorlib.recovery import (
    DEFAULT_CANDIDATES,
    InputError,
    dual_change,
    flatten_weights,
    scan_geometry,
    simulate_after,
)
from mirrorlib.stats import delta_cdf, delta_cdf_floor, delta_cdf_grid

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CANDIDATES",
    "InputError",
    "delta_cdf",
    "delta_cdf_floor",
    "delta_cdf_grid",
    "dual_change",
    "flatten_weights",
    "load_weights",
    "MirrorDescent",
    "SignConstrainedSGD",
    "lognormal_mu_sigma",
    "mirror_descent",
    "mirror_step",
    "random_signs",
    "signed_lognormal_",
    "scan_geometry",
    "simulate_after",
    "HyperbolicEntropy",
    "NegativeEntropy",
    "PNorm",
    "Potential",
    "available_potentials",
    "potential",
    "potential_in_words",
]
