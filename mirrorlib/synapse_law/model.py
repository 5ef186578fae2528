"""The model: the density ``p(w) = f(phi'(w)) phi''(w) / P(theta > theta_min)`` of the law of
synapse sizes for each potential and law of ``w0`` (:func:`log_density`), and the likelihood of
integer counts (:func:`count_log_likelihood`)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from mirrorlib.potentials import HyperbolicEntropy, NegativeEntropy, PNorm, Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.synapse_law.data import _numeric

POTENTIALS = ("negative_entropy", "1.5-norm", "2-norm", "3-norm", "hypentropy")
"""Candidate geometries of the book; ``hypentropy`` has its scale ``beta`` fitted. The model
takes any name :func:`~mirrorlib.potentials.potential` reads (:func:`fit`)."""

W0_MODELS = ("two_constants", "constant", "lognormal")
"""Laws of the starting weight ``w0`` (see the package docstring)."""

_Z_MAX = 6.0
N_GRID = 160
"""Bins of the log-normal convolution (Richardson-extrapolated with half as many)."""
_LOG_HALF = math.log(0.5)

_FITTED_BETA = "hypentropy"
_RAW_PARAMS = {
    "constant": ("m", "log s"),
    "two_constants": ("m1", "m2", "log s", "logit pi"),
    "lognormal": ("a", "log b", "mu", "log s"),
}
"""Names of the raw parameter vector ``x`` of each law of ``w0`` (:class:`FitResult`)."""
_COUNT_W0_MODELS = ("constant", "two_constants")


def _resolve_potential(name: str | Potential) -> str:
    """The name a model's potential is written with in result tables.

    ``name`` is anything :func:`~mirrorlib.potentials.potential` reads (``"ne"``,
    ``"2.5-norm"``, a :class:`~mirrorlib.potentials.Potential` ...); the result is
    ``"negative_entropy"``, ``"<p>-norm"`` or ``"hypentropy"`` (hyperbolic entropy with its
    scale ``beta`` fitted). A fixed ``beta`` is refused: the model fits it.
    """
    pot = make_potential(name)
    if isinstance(pot, HyperbolicEntropy):
        if isinstance(name, str) and name.strip().lower() == _FITTED_BETA:
            return _FITTED_BETA
        raise ValueError(
            f"{name!r}: the law of synapse sizes fits hyperbolic entropy's scale beta; "
            f"pass {_FITTED_BETA!r} (a fixed beta is not supported)"
        )
    if isinstance(pot, NegativeEntropy):
        return pot.name
    if isinstance(pot, PNorm):
        short = f"{pot.p:g}"
        return f"{short if float(short) == pot.p else repr(pot.p)}-norm"
    raise ValueError(
        f"the law of synapse sizes is defined for negative entropy, the p-norms and hyperbolic "
        f"entropy, not {type(pot).__name__}"
    )


def _check_w0_model(w0_model: str, allowed: tuple[str, ...] = W0_MODELS) -> None:
    if w0_model in allowed:
        return
    if allowed == _COUNT_W0_MODELS and w0_model in W0_MODELS:
        raise ValueError(
            f"counts are fitted with the {' or '.join(allowed)} law of w0, not {w0_model!r}"
        )
    raise ValueError(f"unknown w0 model {w0_model!r}; choose from {', '.join(allowed)}")


def _raw_names(name: str, w0_model: str) -> tuple[str, ...]:
    return _RAW_PARAMS[w0_model] + (("log beta",) if name == _FITTED_BETA else ())


def _check_params(x: ArrayLike, name: str, w0_model: str) -> np.ndarray:
    """The raw parameter vector ``x`` of the model ``(name, w0_model)`` as float64."""
    x = np.asarray(x, dtype=np.float64)
    names = _raw_names(name, w0_model)
    if x.shape != (len(names),):
        raise ValueError(
            f"the model ({name}, {w0_model}) takes {len(names)} raw parameters "
            f"({', '.join(names)}); got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"raw parameters of ({name}, {w0_model}) are not finite: {x.tolist()}")
    return x


def n_free_params(potential: str | Potential, w0_model: str) -> int:
    """Identifiable parameters of a model (see the package docstring): 2 (``constant``) or 4
    (``two_constants``, ``lognormal``; 2 for negative entropy with ``lognormal``), plus
    hyperbolic entropy's ``beta``. Unknown names raise ``ValueError``."""
    name = _resolve_potential(potential)
    _check_w0_model(w0_model)
    n = len(_RAW_PARAMS[w0_model])
    if w0_model == "lognormal" and name == "negative_entropy":
        n = 2
    return n + (1 if name == _FITTED_BETA else 0)


def _model_potential(name: str, x: np.ndarray) -> Potential:
    """The potential of the model ``name`` at raw parameters ``x`` (``beta = exp(x[-1])`` for
    ``hypentropy``)."""
    if name == _FITTED_BETA:
        return HyperbolicEntropy(float(np.exp(x[-1])))
    return make_potential(name)


def _dual_floor(pot: Potential) -> float:
    return -math.inf if isinstance(pot, NegativeEntropy) else float(pot.to_dual(np.float64(0.0)))


def _theta_gauss_mix(theta, means, s, logw, floor):
    """Log-density of a Gaussian mixture with common ``s`` and its log mass above ``floor``."""
    comps = [lw - 0.5 * ((theta - m) / s) ** 2 for m, lw in zip(means, logw, strict=True)]
    logpdf = special.logsumexp(np.stack(comps), axis=0) - math.log(s) - 0.5 * math.log(2 * math.pi)
    if math.isinf(floor):
        return logpdf, 0.0
    mass = special.logsumexp(
        [lw + special.log_ndtr((m - floor) / s) for m, lw in zip(means, logw, strict=True)]
    )
    return logpdf, float(mass)


def _theta_lognormal(theta, pot, a, b, mu, s, floor, n_grid: int = N_GRID):
    """Log-density of ``theta = phi'(w0) + xi`` for ``log w0 ~ N(a, b^2)``, ``xi ~ N(mu, s^2)``.

    ``u = phi'(w0) + mu`` has density ``p_u = phi(z) / u'(z)`` at the nodes ``z_k`` of a grid
    on ``[-6, 6]``, with ``u'(z) = phi''(w0) w0 b``. Between nodes ``p_u`` is taken linear in
    ``u`` (normalised by the trapezoid rule), and its convolution with ``N(0, s^2)`` is then
    exact: with ``t = (x - u)/s`` and ``M = Phi(t_k) - Phi(t_{k+1})``, the bin contributes
    ``p_k M + (p_{k+1} - p_k)/(u_{k+1} - u_k) ((x - u_k) M - s (phi(t_{k+1}) - phi(t_k)))``.
    The error is second order in the grid step, whether ``s`` is large or small.
    """
    z = np.linspace(-_Z_MAX, _Z_MAX, n_grid + 1)
    w0 = np.exp(a + b * z)
    u = np.asarray(pot.to_dual(w0), dtype=np.float64) + mu  # increasing in z
    slope = np.asarray(pot.hess_diag(w0), dtype=np.float64) * w0 * b
    p_u = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) / slope
    du = np.diff(u)
    keep = du > 0  # bins squeezed to a point (overflow or underflow) carry no mass
    norm = float(np.sum(0.5 * (p_u[:-1] + p_u[1:]) * np.where(keep, du, 0.0)))
    x = np.asarray(theta, dtype=np.float64)[:, None]
    t = (x - u) / s  # decreasing along a row
    tail = special.ndtr(-np.abs(t))  # Phi(-|t|): accurate in both tails
    cdf = np.where(t < 0, tail, 1.0 - tail)
    both_upper = (t[:, :-1] > 0) & (t[:, 1:] > 0)
    mass = np.where(both_upper, tail[:, 1:] - tail[:, :-1], cdf[:, :-1] - cdf[:, 1:])
    dens = np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    first = (x - u[:-1]) * mass - s * (dens[:, 1:] - dens[:, :-1])
    gradient = np.where(keep, np.diff(p_u) / np.where(keep, du, 1.0), 0.0)
    per_bin = np.where(keep, p_u[:-1] * mass + gradient * first, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logpdf = np.log(np.clip(per_bin.sum(axis=1), 0.0, None) / norm)
    q = np.diff(special.ndtr(z))
    logq = np.log(q / q.sum())
    lo_u, hi_u = u[:-1], u[1:]
    flat = ~keep
    if math.isinf(floor):
        return logpdf, 0.0
    # P(u + xi' > floor) per bin, exact for linear u: E_t[Phi((u - floor)/s)].
    c_lo, c_hi = (lo_u - floor) / s, (hi_u - floor) / s
    g_hi = c_hi * special.ndtr(c_hi) + np.exp(-0.5 * c_hi**2) / math.sqrt(2 * math.pi)
    g_lo = c_lo * special.ndtr(c_lo) + np.exp(-0.5 * c_lo**2) / math.sqrt(2 * math.pi)
    mid = special.ndtr(0.5 * (c_lo + c_hi))
    bin_mass = np.where(flat, mid, (g_hi - g_lo) / np.where(flat, 1.0, c_hi - c_lo))
    mass = float(np.sum(np.exp(logq) * np.clip(bin_mass, 0.0, 1.0)))
    return logpdf, math.log(max(mass, 1e-300))


def _unpack(w0_model: str, x: np.ndarray) -> dict[str, float]:
    if w0_model == "constant":
        return {"m": x[0], "s": math.exp(x[1])}
    if w0_model == "two_constants":
        return {"m1": x[0], "m2": x[1], "s": math.exp(x[2]), "pi": special.expit(x[3])}
    return {"a": x[0], "b": math.exp(x[1]), "mu": x[2], "s": math.exp(x[3])}


def _theta_logpdf(theta, w0_model: str, pot: Potential, x: np.ndarray, n_grid: int | None = None):
    floor = _dual_floor(pot)
    q = _unpack(w0_model, x)
    if w0_model == "constant":
        return _theta_gauss_mix(theta, [q["m"]], q["s"], [0.0], floor)
    if w0_model == "two_constants":
        logw = [math.log(max(q["pi"], 1e-300)), math.log(max(1 - q["pi"], 1e-300))]
        return _theta_gauss_mix(theta, [q["m1"], q["m2"]], q["s"], logw, floor)
    if isinstance(pot, NegativeEntropy):  # log w0 + 1 + xi is Gaussian: exact
        spread = math.hypot(q["b"], q["s"])
        return _theta_gauss_mix(theta, [q["a"] + 1.0 + q["mu"]], spread, [0.0], floor)
    args = (theta, pot, q["a"], q["b"], q["mu"], q["s"], floor)
    if n_grid is not None:
        return _theta_lognormal(*args, n_grid)
    # Richardson extrapolation of the second-order grid error: (4 L(h) - L(2h)) / 3.
    coarse, _ = _theta_lognormal(*args, N_GRID // 2)
    fine, log_mass = _theta_lognormal(*args, N_GRID)
    with np.errstate(invalid="ignore"):
        extrapolated = (4.0 * fine - coarse) / 3.0
    return np.where(np.isfinite(extrapolated), extrapolated, fine), log_mass


def log_density(
    w: ArrayLike,
    potential: str | Potential,
    w0_model: str,
    x: ArrayLike,
    n_grid: int | None = None,
) -> np.ndarray:
    """``log p(w)`` of the model with raw parameter vector ``x`` (see :class:`FitResult`).

    ``log p(w) = log f(phi'(w)) + log phi''(w) - log P(theta > theta_min)`` for ``w > 0``, and
    ``-inf`` for ``w <= 0`` and ``w = inf``: the model is the law of positive, surviving
    synapse sizes. ``w`` keeps its shape; NaN raises :class:`~mirrorlib.recovery.InputError`.
    ``potential`` and ``w0_model`` as in :func:`fit`; ``x`` must have the length of the
    model's raw vector. ``n_grid`` bins for the log-normal convolution
    (:func:`_theta_lognormal`); by default the Richardson extrapolation of 80 and 160 bins
    (error below about 0.01 per thousand points, at most about 0.5 in the hardest case we
    checked against 3000 bins).
    """
    name = _resolve_potential(potential)
    _check_w0_model(w0_model)
    x = _check_params(x, name, w0_model)
    if n_grid is not None and (not isinstance(n_grid, int | np.integer) or n_grid < 2):
        raise ValueError(f"n_grid must be an integer >= 2, got {n_grid!r}")
    w = _numeric(w, "w")
    inside = (w > 0) & (w < math.inf)
    if inside.all():
        return _log_density(w, name, w0_model, x, n_grid)
    out = np.full(w.shape, -math.inf)
    if inside.any():
        out[inside] = _log_density(w[inside], name, w0_model, x, n_grid)
    return out


def _log_density(
    w: np.ndarray, name: str, w0_model: str, x: np.ndarray, n_grid: int | None = None
) -> np.ndarray:
    """:func:`log_density` for checked arguments and finite ``w > 0``."""
    pot = _model_potential(name, x)
    theta = np.asarray(pot.to_dual(w), dtype=np.float64)
    logpdf, log_mass = _theta_logpdf(theta, w0_model, pot, x, n_grid)
    return logpdf + np.log(np.asarray(pot.hess_diag(w), dtype=np.float64)) - log_mass


def _theta_log_sf(t, w0_model: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log P(theta > t), log P(theta <= t))`` for the constant-``w0`` models."""
    q = _unpack(w0_model, x)
    if w0_model == "constant":
        means, logw = [q["m"]], [0.0]
    elif w0_model == "two_constants":
        means = [q["m1"], q["m2"]]
        logw = [math.log(max(q["pi"], 1e-300)), math.log(max(1 - q["pi"], 1e-300))]
    else:
        _check_w0_model(w0_model, _COUNT_W0_MODELS)
    s = q["s"]
    log_sf = special.logsumexp(
        [lw + special.log_ndtr((m - t) / s) for m, lw in zip(means, logw, strict=True)], axis=0
    )
    log_cdf = special.logsumexp(
        [lw + special.log_ndtr((t - m) / s) for m, lw in zip(means, logw, strict=True)], axis=0
    )
    return log_sf, log_cdf


def count_log_likelihood(
    k: ArrayLike,
    potential: str | Potential,
    w0_model: str,
    x: ArrayLike,
    scale: float = 1.0,
) -> float:
    """Log-likelihood of integer counts ``k >= 1`` under a model of ``w`` (units of ``scale``).

    ``P(k) = P(k - 1/2 <= w < k + 1/2) / P(w >= 1/2)``; in the dual space, with
    ``theta = phi'(w / scale)`` increasing, ``P(k) = (S(t_lo) - S(t_hi)) / S(t_half)`` where
    ``S`` is the survival function of ``theta``. The truncation at ``theta_min`` cancels.
    The model's counts are the integers ``>= 1``: a value outside them (0, a negative or
    non-whole number, inf) has probability 0, so the log-likelihood is ``-inf``; NaN or
    non-numeric values raise :class:`~mirrorlib.recovery.InputError`. ``w0_model`` is
    ``constant`` or ``two_constants``; ``potential`` as in :func:`fit`.
    """
    name = _resolve_potential(potential)
    _check_w0_model(w0_model, _COUNT_W0_MODELS)
    x = _check_params(x, name, w0_model)
    if not (isinstance(scale, int | float | np.number) and 0 < scale < math.inf):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    k = _numeric(k, "counts").reshape(-1)
    if not np.all((k >= 1) & (k < math.inf) & (k == np.round(k))):
        return -math.inf
    return _count_log_likelihood(k, name, w0_model, x, scale)


def _count_log_likelihood(
    k: np.ndarray, name: str, w0_model: str, x: np.ndarray, scale: float
) -> float:
    """:func:`count_log_likelihood` for checked arguments and counts."""
    values, freq = np.unique(k, return_counts=True)
    k = values  # each distinct count once, weighted by its frequency
    pot = _model_potential(name, x)
    t_lo = np.asarray(pot.to_dual((k - 0.5) / scale), dtype=np.float64)
    t_hi = np.asarray(pot.to_dual((k + 0.5) / scale), dtype=np.float64)
    sf_lo, cdf_lo = _theta_log_sf(t_lo, w0_model, x)
    sf_hi, cdf_hi = _theta_log_sf(t_hi, w0_model, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_sf = sf_lo + np.log1p(-np.exp(np.minimum(sf_hi - sf_lo, 0.0)))
        by_cdf = cdf_hi + np.log1p(-np.exp(np.minimum(cdf_lo - cdf_hi, 0.0)))
    log_p = np.where(sf_lo < _LOG_HALF, by_sf, by_cdf)
    t_half = np.asarray(pot.to_dual(np.float64(0.5 / scale)), dtype=np.float64)
    log_norm = float(_theta_log_sf(t_half, w0_model, x)[0])
    return float(np.sum(freq * log_p) - freq.sum() * log_norm)
