"""Fitting: maximum-likelihood fits of the model to volumes (:func:`fit`) or counts
(:func:`fit_counts`) from starting points built from the data's dual coordinates
(:func:`_starts`); a :class:`FitResult` holds one fit."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

from mirrorlib.potentials import HyperbolicEntropy, NegativeEntropy, PNorm, Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import InputError
from mirrorlib.synapse_law.data import _check_spread, _numeric, check_counts, check_volumes
from mirrorlib.synapse_law.model import (
    _COUNT_W0_MODELS,
    W0_MODELS,
    _check_w0_model,
    _count_log_likelihood,
    _log_density,
    _resolve_potential,
    _unpack,
    log_density,
    n_free_params,
)

_N_GRID_COARSE = 40
SEARCH_POINTS = 500
"""The log-normal models are first searched on at most this many order statistics."""


def _check_n_starts(n_starts: int) -> None:
    if not isinstance(n_starts, int | np.integer) or isinstance(n_starts, bool) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1, got {n_starts!r}")


def _check_fit_args(
    values: ArrayLike,
    potential: str | Potential,
    w0_model: str,
    n_starts: int,
    allowed: tuple[str, ...],
    check: Callable[[ArrayLike, str], np.ndarray],
    label: str,
) -> tuple[np.ndarray, str]:
    """The checked data (``check(values, label)``, with a spread) and the potential's table
    name, checked in that order: potential, ``w0_model`` (one of ``allowed``), ``n_starts``,
    data, spread."""
    name = _resolve_potential(potential)
    _check_w0_model(w0_model, allowed)
    _check_n_starts(n_starts)
    values = check(values, label)
    _check_spread(values, label)
    return values, name


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


def _starts(w: np.ndarray, name: str, w0_model: str, n_starts: int) -> list[np.ndarray]:
    """Up to ``n_starts`` starting points per scale ``beta`` of the hyperbolic entropy (1, 0.1
    and 10; one scale for the costly log-normal ``w0``), or per potential otherwise, from the
    data: moments / split means of ``theta = phi'(w)``, with ``log beta`` appended."""
    betas = [1.0, 0.1, 10.0] if name == "hypentropy" else [None]
    if name == "hypentropy" and w0_model == "lognormal":
        betas = [0.3]  # one scale: each start of the convolution model is costly
    starts = []
    for beta in betas:
        tail = [math.log(beta)] if beta is not None else []
        these = []
        pot = HyperbolicEntropy(beta) if beta is not None else make_potential(name)
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


def _bounds(name: str, w0_model: str) -> list[tuple[float | None, float | None]]:
    log_s = (-25.0, 10.0)
    shape = {
        "constant": [(None, None), log_s],
        "two_constants": [(None, None), (None, None), log_s, (-12.0, 12.0)],
        "lognormal": [(-30.0, 30.0), (-12.0, 3.0), (None, None), log_s],
    }[w0_model]
    return shape + ([(-14.0, 14.0)] if name == "hypentropy" else [])


def _natural(name: str, w0_model: str, x: np.ndarray, scale: float) -> dict:
    """Parameters in the data's units: the fit ran on ``w / scale``.

    Dual coordinates transform as ``phi'(c w) = c^(p-1) phi'(w)`` (p-norms; locations and
    spreads scale), ``phi'(w) + log c`` (negative entropy; locations shift) and not at all for
    hyperbolic entropy, whose ``beta`` scales instead. ``a = E log w0`` shifts by ``log c``.
    """
    out = {k: float(v) for k, v in _unpack(w0_model, x).items()}
    pot = make_potential(name) if name != "hypentropy" else None
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
    if name == "hypentropy":
        out["beta"] = float(math.exp(x[-1]) * scale)
    return out


def _result(
    dataset: str,
    name: str,
    w0_model: str,
    x: np.ndarray,
    scale: float,
    loglik: float,
    n: int,
) -> FitResult:
    """The :class:`FitResult` of the raw optimum ``x`` (fitted on data divided by ``scale``)
    with maximised log-likelihood ``loglik`` over ``n`` values."""
    return FitResult(
        dataset,
        name,
        w0_model,
        tuple(float(v) for v in x),
        scale,
        float(loglik),
        n_free_params(name, w0_model),
        int(n),
        _natural(name, w0_model, x, scale),
    )


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
    potential: str | Potential,
    w0_model: str = "two_constants",
    n_starts: int = 3,
    dataset: str = "",
) -> FitResult:
    """Fit the law of positive sizes ``w`` for one potential and one law of ``w0`` by maximum
    likelihood.

    The model (package docstring): ``phi'(w) = phi'(w0) + xi`` with ``xi ~ N(mu, s^2)``, so
    ``p(w) = f(phi'(w)) phi''(w) / P(theta > theta_min)``, the law of the surviving
    (positive) synapses, with ``f`` the density of ``theta = phi'(w0) + xi``.

    - ``w``: at least :data:`MIN_VOLUMES` finite values ``> 0`` (:func:`check_volumes`) whose
      ``log`` has a standard deviation of at least :data:`MIN_LOG_SPREAD`; else
      :class:`~mirrorlib.recovery.InputError`.
    - ``potential``: any name :func:`~mirrorlib.potentials.potential` reads, or a
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
    w, name = _check_fit_args(w, potential, w0_model, n_starts, W0_MODELS, check_volumes, "volumes")
    return _fit(w, name, w0_model, n_starts, dataset)


def _fit(w: np.ndarray, name: str, w0_model: str, n_starts: int, dataset: str) -> FitResult:
    """:func:`fit` for checked arguments."""
    scale = float(np.exp(np.mean(np.log(w))))
    ws = w / scale

    def negll(x, n_grid=None):
        return -float(np.sum(_log_density(ws, name, w0_model, x, n_grid)))

    if w0_model == "lognormal" and name == "negative_entropy":
        # phi'(w0) + xi is Gaussian: the constant-w0 law, N(a + mu + 1, b^2 + s^2). Fit that
        # and split the variance evenly (only the sum is identifiable).
        const = _fit(w, name, "constant", n_starts, dataset)
        m, sd = const.x[0], math.exp(const.x[1])
        x = np.array([m - 1.0, math.log(sd / math.sqrt(2)), 0.0, math.log(sd / math.sqrt(2))])
    else:
        starts = _starts(ws, name, w0_model, n_starts)
        bounds = _bounds(name, w0_model)
        if w0_model == "lognormal":
            # The convolution is costly: search on SEARCH_POINTS evenly spaced order statistics
            # with a coarse grid, then refine on all the data with the accurate density.
            n_sub = min(ws.size, SEARCH_POINTS)
            sub = np.sort(ws)[np.linspace(0, ws.size - 1, n_sub).astype(int)]

            def coarse(x):
                return -float(np.sum(_log_density(sub, name, w0_model, x, _N_GRID_COARSE)))

            x = _optimise(_safe(coarse), starts, bounds, False)
            x = _optimise(_safe(negll), [x], bounds, False, maxiter=30)
        else:
            x = _optimise(_safe(negll), starts, bounds)
    loglik = -negll(x) - w.size * math.log(scale)
    return _result(dataset, name, w0_model, x, scale, loglik, w.size)


def fit_counts(
    k: ArrayLike,
    potential: str | Potential,
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
    - ``potential``, ``n_starts``, ``dataset``: as in :func:`fit`.
    - ``w0_model``: ``"constant"`` (default) or ``"two_constants"``; the log-normal law of
      ``w0`` is not available for counts.

    Returns a :class:`FitResult` (``aic = 2 k - 2 L``, ``bic = k ln n - 2 L``).
    """
    k, name = _check_fit_args(
        k, potential, w0_model, n_starts, _COUNT_W0_MODELS, check_counts, "counts"
    )
    return _fit_counts(k, name, w0_model, n_starts, dataset)


def _fit_counts(k: np.ndarray, name: str, w0_model: str, n_starts: int, dataset: str) -> FitResult:
    """:func:`fit_counts` for checked arguments."""
    scale = float(np.exp(np.mean(np.log(k))))

    def negll(x):
        return -_count_log_likelihood(k, name, w0_model, x, scale)

    starts = _starts(k / scale, name, w0_model, n_starts)
    x = _optimise(_safe(negll), starts, _bounds(name, w0_model))
    return _result(dataset, name, w0_model, x, scale, -negll(x), k.size)
