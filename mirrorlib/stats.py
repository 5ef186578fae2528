"""How Gaussian is a change? The exact Delta-CDF statistic and its finite-sample floor.

For values ``x_1..x_n`` let ``z = x / std(x)`` (unbiased std; not centred, as in the paper) and
``F_n`` the empirical CDF of ``z``. Then

    Delta-CDF = integral over the real line of |F_n(t) - Phi(t)| dt,

the 1-Wasserstein distance between the empirical law of ``z`` and N(0, 1). It is computed here
exactly: between consecutive sorted samples ``F_n`` is a constant ``c = k/n`` and, with
``G(t) = t Phi(t) + phi(t)`` (an antiderivative of ``Phi``),

    integral_a^b (c - Phi(t)) dt = H_c(b) - H_c(a),   H_c(t) = c t - G(t).

``c - Phi`` is decreasing, so it changes sign at most once, at ``q = Phi^-1(c)``; splitting the
interval at ``m = clip(q, a, b)`` gives ``|integral| = (H_c(m) - H_c(a)) - (H_c(b) - H_c(m))``.
The two tails are ``G(z_1)`` and ``G(z_n) - z_n``. ``Phi^-1`` is only needed on the few
intervals where the empirical CDF crosses ``Phi`` (about sqrt(n) of them).
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import special
from scipy.stats import t as student_t

__all__ = [
    "delta_cdf",
    "delta_cdf_grid",
    "delta_cdf_floor",
    "difference_verdict",
    "paired_verdict",
    "paired_t_multiplier",
    "PAIRED_LEVEL",
    "ROUNDING_ULPS",
    "MIN_SAMPLES",
]

MIN_SAMPLES = 2
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _is_integer(value: object) -> bool:
    """True for Python and numpy integers (not bools, not floats such as ``3.0``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _prepare(x: ArrayLike | torch.Tensor, name: str = "x") -> np.ndarray | torch.Tensor:
    """Flatten, keeping float32 and float64 as they are (a CUDA tensor stays on its GPU) and
    bringing every other real dtype (float16, bfloat16, integers) to float64; reject non-real,
    non-finite or too few values."""
    if isinstance(x, torch.Tensor):
        flat = x.detach()
        if flat.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor, got layout {flat.layout}")
        if flat.is_complex() or flat.dtype == torch.bool:
            raise TypeError(f"{name} must be real-valued, got dtype {flat.dtype}")
        flat = flat.reshape(-1)
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.double()
        if not flat.is_cuda:
            flat = flat.cpu().numpy()
    else:
        flat = np.asarray(x).reshape(-1)
    if isinstance(flat, np.ndarray):
        if not (np.issubdtype(flat.dtype, np.floating) or np.issubdtype(flat.dtype, np.integer)):
            raise TypeError(f"{name} must be numeric, got dtype {flat.dtype}")
        if flat.dtype not in (np.float32, np.float64):
            flat = flat.astype(np.float64)
        n_bad = int(flat.size - np.count_nonzero(np.isfinite(flat)))
    else:
        n_bad = int((~torch.isfinite(flat)).sum())
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf)")
    if flat.shape[0] < MIN_SAMPLES:
        raise ValueError(f"{name} needs at least {MIN_SAMPLES} values, got {flat.shape[0]}")
    return flat


def _standardise(values: np.ndarray | torch.Tensor, centered: bool) -> np.ndarray | torch.Tensor:
    """``z = (values - mean) / std`` in float64 along the last axis (``mean = 0`` unless
    ``centered``; unbiased std), for values sorted or not (their order is kept).

    The values are first divided by their largest magnitude, so squaring inside the std can
    neither overflow nor underflow: the result is the same for data scaled by any factor that
    keeps them finite (1e-300 or 1e300 alike).
    """
    if isinstance(values, np.ndarray):
        scale = np.maximum(values.max(axis=-1, keepdims=True), -values.min(axis=-1, keepdims=True))
        if not np.all(scale > 0):
            raise ValueError("the values have zero variance: Delta-CDF is undefined")
        z = np.divide(values, scale, dtype=np.float64)
        std = np.std(z, axis=-1, ddof=1, keepdims=True)
        if not np.all(std > 0):
            raise ValueError("the values have zero variance: Delta-CDF is undefined")
        if centered:
            z -= np.mean(z, axis=-1, keepdims=True)
        z /= std
        return z
    z = values.double()
    scale = z.abs().max()
    if not scale > 0:
        raise ValueError("the values have zero variance: Delta-CDF is undefined")
    z = z / scale
    std, mean = torch.std_mean(z)
    if not std > 0:
        raise ValueError("the values have zero variance: Delta-CDF is undefined")
    return ((z - mean) if centered else z) / std


def _exact_numpy(z: np.ndarray) -> np.ndarray | float:
    """Delta-CDF of standardised values sorted along the last axis (several rows at once when
    ``z`` is 2-D)."""
    n = z.shape[-1]
    cdf = special.ndtr(z)
    g = np.multiply(z, z)  # becomes G(z_k) = z Phi(z) + phi(z), built in place
    g *= -0.5
    np.exp(g, out=g)
    g *= 1.0 / _SQRT_2PI
    g += z * cdf
    c = np.arange(1, n, dtype=np.float64)
    c *= 1.0 / n
    # Integral of (c - Phi) over [z_k, z_k+1]; its absolute value unless Phi crosses c inside.
    total = np.diff(z)
    total *= c
    total -= np.diff(g)
    np.abs(total, out=total)
    cross = np.nonzero((cdf[..., :-1] < c) & (cdf[..., 1:] > c))
    if cross[-1].size:
        after = (*cross[:-1], cross[-1] + 1)
        cc, aa, bb = c[cross[-1]], z[cross], z[after]
        q = special.ndtri(cc)
        gq = q * cc + np.exp(-0.5 * q * q) / _SQRT_2PI
        h_a = cc * aa - g[cross]
        h_b = cc * bb - g[after]
        h_q = cc * q - gq
        total[cross] = (h_q - h_a) - (h_b - h_q)
    result = total.sum(axis=-1) + g[..., 0] + (g[..., -1] - z[..., -1])
    return float(result) if z.ndim == 1 else result


def _exact_torch(z: torch.Tensor) -> float:
    """:func:`_exact_numpy` for a sorted 1-D tensor on its device."""
    n = z.shape[0]
    cdf = torch.special.ndtr(z)
    g = z * cdf + torch.exp(-0.5 * z * z) / _SQRT_2PI
    a, b, ga, gb = z[:-1], z[1:], g[:-1], g[1:]
    c = torch.arange(1, n, dtype=z.dtype, device=z.device) / n
    total = (c * (b - a) - (gb - ga)).abs()
    crosses = (cdf[:-1] < c) & (cdf[1:] > c)
    q = torch.special.ndtri(torch.where(crosses, c, torch.full_like(c, 0.5)))
    gq = q * c + torch.exp(-0.5 * q * q) / _SQRT_2PI
    split = ((c * q - gq) - (c * a - ga)) - ((c * b - gb) - (c * q - gq))
    total = torch.where(crosses, split, total)
    return float(total.sum() + g[0] + (g[-1] - z[-1]))


def delta_cdf(x: ArrayLike | torch.Tensor, centered: bool = False) -> float:
    """Exact Delta-CDF: ``integral |F_n(t) - Phi(t)| dt`` for ``z = x / std(x)``.

    ``x``: numpy array or torch tensor of any shape (flattened). ``centered=True`` uses
    ``(x - mean) / std``. Exact (closed form between sorted samples, no grid, no truncation);
    O(n log n) time and O(n) memory; a CUDA tensor is processed on its GPU. The values are
    sorted in their own dtype (float32 stays float32: standardising keeps the order) and
    everything after the sort is float64; float16, bfloat16 and integers are read as float64.
    Invariant to scaling ``x`` by any factor that keeps it finite.
    Raises ``ValueError`` for non-finite values, fewer than 2 values or zero variance.

    Uncentred by default, as in the paper, while :func:`mirrorlib.scan_geometry` centres by
    default: for the weights it scores, its ``delta_cdf`` column for a candidate is
    ``delta_cdf(dual_change(w_before, w_after, candidate), centered=True)``, not this
    function's default (a dual change with a non-zero mean usually scores higher uncentred).
    """
    flat = _prepare(x)
    if isinstance(flat, np.ndarray):
        return _exact_numpy(_standardise(np.sort(flat), centered))
    return _exact_torch(_standardise(torch.sort(flat).values, centered))


def delta_cdf_grid(
    x: ArrayLike | torch.Tensor, centered: bool = False, n_points: int = 1000, lim: float = 5.0
) -> float:
    """The paper's approximation: mean ``|F_n - Phi|`` on ``n_points`` points of ``[-lim, lim]``
    times ``2 lim`` (``lim > 0`` finite, ``n_points`` an integer >= 2; uncentred by default, as
    :func:`delta_cdf`). Kept as the reference the exact :func:`delta_cdf` is checked against."""
    if not _is_integer(n_points) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    if not (isinstance(lim, numbers.Real) and math.isfinite(lim) and lim > 0):
        raise ValueError(f"lim must be finite and > 0, got {lim!r}")
    flat = _prepare(x)
    flat = flat.cpu().numpy() if isinstance(flat, torch.Tensor) else flat
    z = np.sort(_standardise(flat, centered))
    grid = np.linspace(-lim, lim, n_points)
    ecdf = np.searchsorted(z, grid, side="right") / z.shape[0]
    return float(np.mean(np.abs(ecdf - special.ndtr(grid))) * 2 * lim)


_FLOOR_MAX_N = 200_000
_FLOOR_VALUES = 4_000_000  # Gaussian values simulated per floor estimate
_FLOOR_CHUNK = 1_000_000  # values simulated and scored at once


@functools.lru_cache(maxsize=256)
def _simulated_floor(n: int, centered: bool, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = max(20, _FLOOR_VALUES // n)
    rows = max(1, _FLOOR_CHUNK // n)
    scores = []
    for start in range(0, draws, rows):
        sample = np.sort(rng.standard_normal((min(rows, draws - start), n)), axis=-1)
        scores.append(_exact_numpy(_standardise(sample, centered)))
    values = np.concatenate(scores)
    return float(values.mean()), float(values.std(ddof=1))


def delta_cdf_floor(
    n: int, centered: bool = False, seed: int = 0, spread: bool = False
) -> float | tuple[float, float]:
    """Finite-sample floor: the expected Delta-CDF of ``n`` exact Gaussian samples.

    ``n`` is an integer >= 2, ``seed`` (of the simulation) an integer >= 0. Uncentred by default
    like :func:`delta_cdf`; the floor for :func:`mirrorlib.scan_geometry`'s default scores is
    ``delta_cdf_floor(n, centered=True)``.

    Estimated by simulation (about 4e6 simulated values in all, at least 20 draws, scored many
    draws at a time; cached per process). Above ``n = 2e5`` the value at 2e5 is scaled by
    ``sqrt(2e5 / n)``: the floor falls like ``1/sqrt(n)`` with a constant that drifts down
    slowly, so this slightly overestimates it. ``spread=True`` returns ``(mean, std)`` over the
    simulated draws.

    Uncentred, ``z = x / std(x)`` is unbounded when the sample std is near 0, whose density
    there is positive for ``n = 2`` (``P(std < e) ~ e``) and ``~ e^2`` for ``n = 3``: the
    expected Delta-CDF is infinite for ``n = 2`` (returned as ``inf``, spread ``inf``) and its
    spread is infinite for ``n = 3`` (the mean is simulated, the spread returned as ``inf``).
    Centred, every ``n >= 2`` is finite (``n = 2`` always gives ``z = +-1/sqrt(2)``).
    """
    if not _is_integer(n) or n < MIN_SAMPLES:
        raise ValueError(f"n must be an integer >= {MIN_SAMPLES}, got {n!r}")
    if not _is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    n = int(n)
    if not centered and n == 2:
        return (math.inf, math.inf) if spread else math.inf
    m = min(n, _FLOOR_MAX_N)
    mean, std = _simulated_floor(m, bool(centered), int(seed))
    if not centered and n == 3:
        std = math.inf
    scale = math.sqrt(m / n)
    return (mean * scale, std * scale) if spread else mean * scale


def difference_verdict(
    difference: float,
    standard_error: float,
    z: float = 2.0,
    words: tuple[str, str, str] = ("lower than", "higher than", "not distinguishable from"),
    resolution: float = 0.0,
) -> str:
    """The word a verdict sentence may use for ``a - b = difference +- standard_error``:
    ``words[0]`` ("lower than") when ``difference + z se < 0``, ``words[1]`` ("higher than")
    when ``difference - z se > 0``, else ``words[2]`` ("not distinguishable from"). ``z = 2``
    is about a 95 % interval; ``z >= 0``.

    A standard error at or below ``resolution`` (0 by default, so a standard error of exactly
    0 included) gives ``words[2]`` whatever the difference: an interval of zero width, or one
    only as wide as rounding, is no evidence either way (:func:`paired_verdict` passes the
    rounding level of its values)."""
    if not (math.isfinite(difference) and math.isfinite(standard_error) and standard_error >= 0):
        raise ValueError(
            f"need a finite difference and se >= 0, got {difference}, {standard_error}"
        )
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"z must be finite and >= 0, got {z!r}")
    if not (math.isfinite(resolution) and resolution >= 0):
        raise ValueError(f"resolution must be finite and >= 0, got {resolution!r}")
    if standard_error <= resolution:
        return words[2]
    if difference + z * standard_error < 0:
        return words[0]
    if difference - z * standard_error > 0:
        return words[1]
    return words[2]


PAIRED_LEVEL = 0.95
"""The confidence of every paired verdict (:func:`paired_verdict`)."""

ROUNDING_ULPS = 16
"""Paired differences whose sample standard deviation is at most ``ROUNDING_ULPS`` machine
epsilons times the largest ``|a_i|, |b_i|`` agree to rounding (:func:`paired_verdict`)."""


def paired_t_multiplier(n_pairs: int, level: float = PAIRED_LEVEL) -> float:
    """``z``, the two-sided ``level`` quantile of Student's t with ``n_pairs - 1`` degrees of
    freedom: the paired t interval is ``mean +- z se`` (12.7 for 2 pairs, 4.3 for 3, 2.05 for
    30 at 95 %). ``n_pairs`` is an integer >= 2."""
    if not _is_integer(n_pairs) or n_pairs < 2:
        raise ValueError(f"need an integer count of at least two pairs, got {n_pairs!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(student_t.ppf((1 + level) / 2, n_pairs - 1))


def paired_verdict(
    a: ArrayLike, b: ArrayLike, level: float = PAIRED_LEVEL
) -> tuple[float, float, str]:
    """Compare paired values ``a_i`` and ``b_i`` (the same seeds): the mean of ``a - b``, its
    standard error ``se = sd / sqrt(n)`` and :func:`difference_verdict`'s word for them, with
    ``z`` = :func:`paired_t_multiplier` ``(n, level)`` (the paired t interval ``mean +- z
    se``).

    ``a`` and ``b`` are 1-D, of the same length ``n >= 2`` (one value of each per pair), and
    finite. Differences that agree to rounding (``sd <= ROUNDING_ULPS eps max_i(|a_i|, |b_i|)``,
    ``eps`` of float64) have no spread the data can measure: the t interval is degenerate (zero
    width), and the word is then "not distinguishable from" whatever the mean, since equal
    differences on ``n`` seeds say nothing about how much another seed's would differ. The
    mean and standard error are still returned as computed, so a caller can state an exact,
    constant difference in its own words.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(
            f"a and b must be 1-D (one value per pair), got shapes {a.shape} and {b.shape}"
        )
    if a.size != b.size:
        raise ValueError(f"a has {a.size} values and b has {b.size}: a pair needs one of each")
    if a.size < 2:
        raise ValueError(f"need at least two pairs, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("every paired value must be finite")
    d = a - b
    z = paired_t_multiplier(d.size, level)
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
    rounding = ROUNDING_ULPS * np.finfo(float).eps * scale / math.sqrt(d.size)
    return mean, se, difference_verdict(mean, se, z, resolution=rounding)
