"""The law of synapse sizes after learning (see :mod:`mirrorlib.synapse_law`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, special

from mirrorlib.potentials import HyperbolicEntropy, NegativeEntropy, PNorm, Potential, potential
from mirrorlib.recovery import InputError

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

PUBLISHED_FITS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "all": ((-1.42, 0.24, 0.77), (-0.77, 0.22, 0.23)),
    "single": ((-1.41, 0.24, 0.81), (-0.76, 0.21, 0.19)),
    "dual": ((-1.44, 0.23, 0.64), (-0.77, 0.21, 0.36)),
}
"""Dorkenwald et al. (2022)'s two-Gaussian fits of log10 spine-head volume (um^3): per group
(all synapses, single and dual connections) the (mean, sd, weight) of the small (S) and large
(L) components."""

N_DORKENWALD = 1960
"""Number of L2/3 pyramidal-to-pyramidal synapses in Dorkenwald et al.'s data set."""

POTENTIALS = ("negative_entropy", "1.5-norm", "2-norm", "3-norm", "hypentropy")
"""Candidate geometries of the book; ``hypentropy`` has its scale ``beta`` fitted. The model
takes any name :func:`~mirrorlib.potentials.potential` reads (:func:`fit`)."""

W0_MODELS = ("two_constants", "constant", "lognormal")
"""Laws of the starting weight ``w0`` (see the module docstring)."""

FIT_COLUMNS = ("dataset", "w0_model", "potential", "n_params", "log_likelihood", "aic", "bic")
"""Columns of :func:`fits_table`."""

MIN_VOLUMES = 20
"""Fewest values :func:`check_volumes` accepts."""
MIN_LOG_SPREAD = 1e-6
"""Smallest standard deviation of ``log w`` (a relative spread) :func:`fit` and
:func:`fit_counts` accept: (near-)constant data have no law of sizes to fit."""
_Z_MAX = 6.0
N_GRID = 160
"""Bins of the log-normal convolution (Richardson-extrapolated with half as many)."""
_N_GRID_COARSE = 40
SEARCH_POINTS = 500
"""The log-normal models are first searched on at most this many order statistics."""
_LOG_HALF = math.log(0.5)


# ----------------------------------------------------------------------------- data


def sample_published_fit(group: str = "all", n: int = N_DORKENWALD, seed: int = 0) -> np.ndarray:
    """``n`` volumes (um^3) drawn from Dorkenwald et al.'s published fit for ``group``.

    These are *samples from a fitted model*, not measurements: ``log10 v`` is drawn from the
    two-Gaussian mixture of :data:`PUBLISHED_FITS` (numpy ``default_rng(seed)``).
    """
    if group not in PUBLISHED_FITS:
        raise ValueError(f"unknown group {group!r}; choose from {sorted(PUBLISHED_FITS)}")
    rng = np.random.default_rng(seed)
    (m1, s1, p1), (m2, s2, _) = PUBLISHED_FITS[group]
    small = rng.random(n) < p1
    log10_v = np.where(small, m1 + s1 * rng.standard_normal(n), m2 + s2 * rng.standard_normal(n))
    return 10.0**log10_v


def _numeric(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a float64 array of the same shape; :class:`InputError` for non-numeric or
    missing (NaN) values (positions in the flattened array)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        coerced = pd.to_numeric(pd.Series(arr.reshape(-1)), errors="coerce").to_numpy()
        arr = coerced.reshape(arr.shape)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} are not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    missing = np.flatnonzero(np.isnan(arr))
    if missing.size:
        raise InputError(
            f"{name}: {missing.size} missing value(s) (positions {missing[:5].tolist()}); "
            "drop them or fill them in"
        )
    return arr


def check_volumes(values: ArrayLike, name: str = "volumes") -> np.ndarray:
    """Validate positive measurements and return them as a float64 array.

    Raises :class:`~mirrorlib.recovery.InputError` for non-numeric, missing (NaN), infinite,
    zero or negative values (naming how many and the first positions), or fewer than
    ``MIN_VOLUMES`` values.
    """
    arr = _numeric(values, name).reshape(-1)
    infinite = np.flatnonzero(~np.isfinite(arr))
    if infinite.size:
        raise InputError(f"{name}: {infinite.size} infinite value(s) (positions {infinite[:5]})")
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        zeros = int(np.count_nonzero(arr[bad] == 0))
        raise InputError(
            f"{name}: {bad.size} non-positive value(s) ({zeros} zero, {bad.size - zeros} "
            f"negative; positions {bad[:5].tolist()}): a volume or weight must be > 0"
        )
    if arr.size < MIN_VOLUMES:
        raise InputError(f"{name}: only {arr.size} values; at least {MIN_VOLUMES} are needed")
    return arr


def load_volumes_csv(path: str | Path, column: str | None = None) -> np.ndarray:
    """Read spine volumes (or any positive weights) from a CSV file.

    ``column`` names the column; without it the file must have exactly one numeric column.
    Values are checked by :func:`check_volumes`. Unreadable files, unknown columns and bad
    values raise :class:`~mirrorlib.recovery.InputError` with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"volume file not found: {path}")
    try:
        table = pd.read_csv(path)
    except Exception as err:  # empty file, bad encoding, malformed rows ...
        raise InputError(f"cannot read {path} as CSV: {err}") from None
    if table.empty:
        raise InputError(f"{path} holds no rows")
    if column is None:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        if len(numeric) != 1:
            raise InputError(
                f"{path} has {len(numeric)} numeric columns ({', '.join(map(str, numeric))} "
                f"among {', '.join(map(str, table.columns))}): name the volume column"
            )
        column = numeric[0]
    elif column not in table.columns:
        raise InputError(
            f"{path} has no column {column!r}; columns: {', '.join(map(str, table.columns))}"
        )
    values = pd.to_numeric(table[column], errors="coerce")
    text = table[column].notna() & values.isna()
    if text.any():
        rows = (np.flatnonzero(text.to_numpy()) + 2).tolist()  # + header, 1-based lines
        raise InputError(
            f"{path}: column {column!r} has {int(text.sum())} non-numeric value(s) "
            f"(lines {rows[:5]})"
        )
    return check_volumes(values.to_numpy(), f"{path.name}[{column}]")


def check_counts(values: ArrayLike, name: str = "counts") -> np.ndarray:
    """Validate synapse counts: integers >= 1 (float64 out); else :class:`InputError`."""
    arr = check_volumes(values, name)
    frac = np.flatnonzero(arr != np.round(arr))
    if frac.size:
        raise InputError(f"{name}: {frac.size} value(s) are not whole numbers: not counts")
    return arr


def _check_spread(w: np.ndarray, name: str) -> None:
    """:class:`InputError` when ``log w`` varies by less than :data:`MIN_LOG_SPREAD`."""
    spread = float(np.std(np.log(w)))
    if spread < MIN_LOG_SPREAD:
        raise InputError(
            f"{name} barely vary (standard deviation of log {name} = {spread:.3g}, below "
            f"{MIN_LOG_SPREAD:g}): a law of sizes cannot be fitted to (near-)constant values"
        )


# ----------------------------------------------------------------------------- the model

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
    pot = potential(name)
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


def _check_n_starts(n_starts: int) -> None:
    if not isinstance(n_starts, int | np.integer) or isinstance(n_starts, bool) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1, got {n_starts!r}")


def n_free_params(potential_name: str | Potential, w0_model: str) -> int:
    """Identifiable parameters of a model (see the module docstring): 2 (``constant``) or 4
    (``two_constants``, ``lognormal``; 2 for negative entropy with ``lognormal``), plus
    hyperbolic entropy's ``beta``. Unknown names raise ``ValueError``."""
    name = _resolve_potential(potential_name)
    _check_w0_model(w0_model)
    n = len(_RAW_PARAMS[w0_model])
    if w0_model == "lognormal" and name == "negative_entropy":
        n = 2
    return n + (1 if name == _FITTED_BETA else 0)


def _make_potential(name: str, x: np.ndarray) -> Potential:
    if name == _FITTED_BETA:
        return HyperbolicEntropy(float(np.exp(x[-1])))
    return potential(name)


def _dual_floor(pot: Potential) -> float:
    return -math.inf if isinstance(pot, NegativeEntropy) else float(pot.to_dual(np.float64(0.0)))


def _log_ndtr_diff(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``log(Phi(hi) - Phi(lo))`` for ``hi >= lo``, accurate in both tails."""
    upper = np.minimum(hi, lo) > 0  # both in the upper tail: use the survival function
    a = np.where(upper, -lo, hi)
    b = np.where(upper, -hi, lo)
    la, lb = special.log_ndtr(a), special.log_ndtr(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return la + np.log1p(-np.exp(np.minimum(lb - la, 0.0)))


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
    potential_name: str | Potential,
    w0_model: str,
    x: ArrayLike,
    n_grid: int | None = None,
) -> np.ndarray:
    """``log p(w)`` of the model with raw parameter vector ``x`` (see :class:`FitResult`).

    ``log p(w) = log f(phi'(w)) + log phi''(w) - log P(theta > theta_min)`` for ``w > 0``, and
    ``-inf`` for ``w <= 0`` and ``w = inf``: the model is the law of positive, surviving
    synapse sizes. ``w`` keeps its shape; NaN raises :class:`~mirrorlib.recovery.InputError`.
    ``potential_name`` and ``w0_model`` as in :func:`fit`; ``x`` must have the length of the
    model's raw vector. ``n_grid`` bins for the log-normal convolution
    (:func:`_theta_lognormal`); by default the Richardson extrapolation of 80 and 160 bins
    (error below about 0.01 per thousand points, at most about 0.5 in the hardest case we
    checked against 3000 bins).
    """
    name = _resolve_potential(potential_name)
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
    pot = _make_potential(name, x)
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
    potential_name: str | Potential,
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
    ``constant`` or ``two_constants``; ``potential_name`` as in :func:`fit`.
    """
    name = _resolve_potential(potential_name)
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
    pot = _make_potential(name, x)
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


# ----------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class FitResult:
    """One maximum-likelihood fit (from :func:`fit` or :func:`fit_counts`).

    ``potential`` is the table name of the potential (``"negative_entropy"``, ``"<p>-norm"``,
    ``"hypentropy"``); ``log_likelihood`` is the maximised ``L`` in the data's units, with
    ``n_params`` free parameters (:func:`n_free_params`) and ``n`` values. ``x`` is the raw
    parameter vector on the optimiser's scale, for volumes divided by ``scale`` (their
    geometric mean): ``constant (m, log s)``, ``two_constants (m1, m2, log s, logit pi)``,
    ``lognormal (a, log b, mu, log s)``, then ``log beta`` for hyperbolic entropy. ``params``
    holds the same in natural form (``a`` and ``beta`` in the data's units).
    """

    dataset: str
    potential: str
    w0_model: str
    x: tuple[float, ...]
    scale: float
    log_likelihood: float
    n_params: int
    n: int
    params: dict[str, float] = field(default_factory=dict)

    @property
    def aic(self) -> float:
        """Akaike's information criterion ``2 k - 2 L`` (``k = n_params``); lower is better."""
        return 2 * self.n_params - 2 * self.log_likelihood

    @property
    def bic(self) -> float:
        """The Bayesian information criterion ``k ln n - 2 L``; lower is better."""
        return self.n_params * math.log(self.n) - 2 * self.log_likelihood

    def log_density(self, w: ArrayLike) -> np.ndarray:
        """Fitted ``log p(w)`` in the data's units; ``-inf`` where ``w <= 0``."""
        w = _numeric(w, "w")
        return log_density(w / self.scale, self.potential, self.w0_model, self.x) - math.log(
            self.scale
        )


def _starts(w: np.ndarray, potential_name: str, w0_model: str, n_starts: int) -> list[np.ndarray]:
    """Up to ``n_starts`` starting points per scale ``beta`` of the hyperbolic entropy (1, 0.1
    and 10; one scale for the costly log-normal ``w0``), or per potential otherwise, from the
    data: moments / split means of ``theta = phi'(w)``, with ``log beta`` appended."""
    betas = [1.0, 0.1, 10.0] if potential_name == "hypentropy" else [None]
    if potential_name == "hypentropy" and w0_model == "lognormal":
        betas = [0.3]  # one scale: each start of the convolution model is costly
    starts = []
    for beta in betas:
        tail = [math.log(beta)] if beta is not None else []
        these = []
        pot = HyperbolicEntropy(beta) if beta is not None else potential(potential_name)
        theta = np.sort(np.asarray(pot.to_dual(w), dtype=np.float64))
        sd = float(theta.std()) or 1.0
        if w0_model == "constant":
            these.append([theta.mean(), math.log(sd)])
            these.append([np.median(theta), math.log(0.7 * sd)])
        elif w0_model == "two_constants":
            for frac in (0.75, 0.5, 0.9):
                cut = int(frac * theta.size)
                lo, hi = theta[:cut], theta[cut:]
                within = math.sqrt(0.5 * (lo.var() + hi.var())) or sd
                these.append([lo.mean(), hi.mean(), math.log(within), special.logit(frac)])
        else:
            logw = np.log(w)
            for spread, noise in ((0.8, 0.3), (0.3, 0.8), (0.95, 0.05)):
                these.append(
                    [logw.mean(), math.log(spread * logw.std()), 0.0, math.log(noise * sd)]
                )
        starts += [np.array(s + tail, dtype=np.float64) for s in these[: max(n_starts, 1)]]
    return starts


def _bounds(potential_name: str, w0_model: str) -> list[tuple[float | None, float | None]]:
    log_s = (-25.0, 10.0)
    shape = {
        "constant": [(None, None), log_s],
        "two_constants": [(None, None), (None, None), log_s, (-12.0, 12.0)],
        "lognormal": [(-30.0, 30.0), (-12.0, 3.0), (None, None), log_s],
    }[w0_model]
    return shape + ([(-14.0, 14.0)] if potential_name == "hypentropy" else [])


def _natural(potential_name: str, w0_model: str, x: np.ndarray, scale: float) -> dict:
    """Parameters in the data's units: the fit ran on ``w / scale``.

    Dual coordinates transform as ``phi'(c w) = c^(p-1) phi'(w)`` (p-norms; locations and
    spreads scale), ``phi'(w) + log c`` (negative entropy; locations shift) and not at all for
    hyperbolic entropy, whose ``beta`` scales instead. ``a = E log w0`` shifts by ``log c``.
    """
    out = {k: float(v) for k, v in _unpack(w0_model, x).items()}
    pot = potential(potential_name) if potential_name != "hypentropy" else None
    locations = [k for k in ("m", "m1", "m2") if k in out]
    if isinstance(pot, PNorm):
        factor = scale ** (pot.p - 1.0)
        for k in [*locations, "s", "mu"]:
            if k in out:
                out[k] *= factor
    elif isinstance(pot, NegativeEntropy):
        for k in locations:
            out[k] += math.log(scale)
    if w0_model == "lognormal":
        out["a"] += math.log(scale)
    if potential_name == "hypentropy":
        out["beta"] = float(math.exp(x[-1]) * scale)
    return out


def _optimise(negll, starts, bounds, polish: bool = True, maxiter: int = 15000) -> np.ndarray:
    best_x, best_f = None, math.inf
    for x0 in starts:
        if not np.isfinite(negll(x0)):
            continue
        res = optimize.minimize(
            negll, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter}
        )
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    if best_x is None:
        raise InputError("the likelihood is not finite at any starting point")
    if not polish:
        return np.asarray(best_x)
    polish = optimize.minimize(
        negll, best_x, method="Nelder-Mead", options={"maxiter": 100 * len(best_x), "xatol": 1e-6}
    )
    if polish.fun < best_f and all(
        (lo is None or v >= lo) and (hi is None or v <= hi)
        for v, (lo, hi) in zip(polish.x, bounds, strict=True)
    ):
        best_x = polish.x
    return np.asarray(best_x)


def _safe(fn):
    def wrapped(x):
        with np.errstate(all="ignore"):
            value = fn(x)
        return value if np.isfinite(value) else 1e300

    return wrapped


def fit(
    w: ArrayLike,
    potential_name: str | Potential,
    w0_model: str = "two_constants",
    n_starts: int = 3,
    dataset: str = "",
) -> FitResult:
    """Fit the law of positive sizes ``w`` for one potential and one law of ``w0`` by maximum
    likelihood.

    The model (module docstring): ``phi'(w) = phi'(w0) + xi`` with ``xi ~ N(mu, s^2)``, so
    ``p(w) = f(phi'(w)) phi''(w) / P(theta > theta_min)``, the law of the surviving
    (positive) synapses, with ``f`` the density of ``theta = phi'(w0) + xi``.

    - ``w``: at least :data:`MIN_VOLUMES` finite values ``> 0`` (:func:`check_volumes`) whose
      ``log`` has a standard deviation of at least :data:`MIN_LOG_SPREAD`; else
      :class:`~mirrorlib.recovery.InputError`.
    - ``potential_name``: any name :func:`~mirrorlib.potentials.potential` reads, or a
      :class:`~mirrorlib.potentials.Potential`: ``"negative_entropy"`` (``"ne"``),
      ``"<p>-norm"`` for any ``p > 1`` (``"2-norm"``, ``"2.5-norm"``, ...), or ``"hypentropy"``,
      hyperbolic entropy with its scale ``beta`` fitted (one more parameter); a fixed ``beta``
      (``"hypentropy(beta=0.1)"``, a ``HyperbolicEntropy`` object) raises ``ValueError``.
      The result names it as tables do: ``"negative_entropy"``, ``"2-norm"``, ``"hypentropy"``.
    - ``w0_model``: one of :data:`W0_MODELS`: ``"two_constants"`` (the paper's),
      ``"constant"`` or ``"lognormal"``.
    - ``n_starts``: how many starting points the optimiser runs from, built from the data's
      dual coordinates by :func:`_starts` (at most 2 for ``constant`` and 3 for the other laws
      of ``w0``; three times as many for ``hypentropy``, whose ``beta`` starts at several
      scales, except with ``lognormal``); the highest likelihood wins.
    - ``dataset``: a label copied to the result's table rows.

    Returns a :class:`FitResult`: the maximised log-likelihood ``L``, ``k = n_params`` and
    ``n``, so ``aic = 2 k - 2 L`` and ``bic = k ln n - 2 L``; the parameters (``x``, ``params``)
    and the fitted density (``log_density``).
    """
    name = _resolve_potential(potential_name)
    _check_w0_model(w0_model)
    _check_n_starts(n_starts)
    w = check_volumes(w)
    _check_spread(w, "volumes")
    return _fit(w, name, w0_model, n_starts, dataset)


def _fit(
    w: np.ndarray, potential_name: str, w0_model: str, n_starts: int, dataset: str
) -> FitResult:
    """:func:`fit` for checked arguments."""
    scale = float(np.exp(np.mean(np.log(w))))
    ws = w / scale

    def negll(x, n_grid=None):
        return -float(np.sum(_log_density(ws, potential_name, w0_model, x, n_grid)))

    if w0_model == "lognormal" and potential_name == "negative_entropy":
        # phi'(w0) + xi is Gaussian: the constant-w0 law, N(a + mu + 1, b^2 + s^2). Fit that
        # and split the variance evenly (only the sum is identifiable).
        const = _fit(w, potential_name, "constant", n_starts, dataset)
        m, sd = const.x[0], math.exp(const.x[1])
        x = np.array([m - 1.0, math.log(sd / math.sqrt(2)), 0.0, math.log(sd / math.sqrt(2))])
    else:
        starts = _starts(ws, potential_name, w0_model, n_starts)
        bounds = _bounds(potential_name, w0_model)
        if w0_model == "lognormal":
            # The convolution is costly: search on SEARCH_POINTS evenly spaced order statistics
            # with a coarse grid, then refine on all the data with the accurate density.
            n_sub = min(ws.size, SEARCH_POINTS)
            sub = np.sort(ws)[np.linspace(0, ws.size - 1, n_sub).astype(int)]

            def coarse(x):
                return -float(
                    np.sum(_log_density(sub, potential_name, w0_model, x, _N_GRID_COARSE))
                )

            x = _optimise(_safe(coarse), starts, bounds, False)
            x = _optimise(_safe(negll), [x], bounds, False, maxiter=30)
        else:
            x = _optimise(_safe(negll), starts, bounds)
    loglik = -negll(x) - w.size * math.log(scale)
    return FitResult(
        dataset,
        potential_name,
        w0_model,
        tuple(float(v) for v in x),
        scale,
        float(loglik),
        n_free_params(potential_name, w0_model),
        int(w.size),
        _natural(potential_name, w0_model, x, scale),
    )


def fit_counts(
    k: ArrayLike,
    potential_name: str | Potential,
    w0_model: str = "constant",
    n_starts: int = 3,
    dataset: str = "",
) -> FitResult:
    """Fit synapse counts ``k`` by maximum likelihood with the discretised law of sizes.

    The model is :func:`fit`'s law of ``w``, read at integers: a count ``k`` is
    ``w in [k - 1/2, k + 1/2)`` given ``w >= 1/2`` (:func:`count_log_likelihood`), with ``w``
    in units of the counts' geometric mean during the fit.

    - ``k``: at least :data:`MIN_VOLUMES` whole numbers ``>= 1`` (:func:`check_counts`), not
      all equal; else :class:`~mirrorlib.recovery.InputError`.
    - ``potential_name``, ``n_starts``, ``dataset``: as in :func:`fit`.
    - ``w0_model``: ``"constant"`` (default) or ``"two_constants"``; the log-normal law of
      ``w0`` is not available for counts.

    Returns a :class:`FitResult` (``aic = 2 k - 2 L``, ``bic = k ln n - 2 L``).
    """
    name = _resolve_potential(potential_name)
    _check_w0_model(w0_model, _COUNT_W0_MODELS)
    _check_n_starts(n_starts)
    k = check_counts(k)
    _check_spread(k, "counts")
    return _fit_counts(k, name, w0_model, n_starts, dataset)


def _fit_counts(
    k: np.ndarray, potential_name: str, w0_model: str, n_starts: int, dataset: str
) -> FitResult:
    """:func:`fit_counts` for checked arguments."""
    scale = float(np.exp(np.mean(np.log(k))))

    def negll(x):
        return -_count_log_likelihood(k, potential_name, w0_model, x, scale)

    starts = _starts(k / scale, potential_name, w0_model, n_starts)
    x = _optimise(_safe(negll), starts, _bounds(potential_name, w0_model))
    return FitResult(
        dataset,
        potential_name,
        w0_model,
        tuple(float(v) for v in x),
        scale,
        float(-negll(x)),
        n_free_params(potential_name, w0_model),
        int(k.size),
        _natural(potential_name, w0_model, x, scale),
    )


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
