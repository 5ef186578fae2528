"""Recover the geometry of plasticity from weights before and after learning.

If learning took weights ``w0 -> w`` by mirror descent with potential ``phi`` in the small-change
(linearised) regime, the dual change ``grad_phi(w) - grad_phi(w0)`` is close to Gaussian across
synapses, and for a wrong potential it is not. :func:`scan_geometry` computes the exact Delta-CDF
of the dual change for each candidate potential and ranks them, with a paired bootstrap over
synapses saying which candidates cannot be told apart from the best.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mirrorlib.potentials import NegativeEntropy, PNorm, Potential, potential
from mirrorlib.stats import _exact_numpy, _standardise, delta_cdf, delta_cdf_floor

__all__ = [
    "DEFAULT_CANDIDATES",
    "MIN_WEIGHTS",
    "InputError",
    "flatten_weights",
    "dual_change",
    "simulate_after",
    "scan_geometry",
]

DEFAULT_CANDIDATES: tuple[str, ...] = ("negative_entropy",) + tuple(
    f"{p / 10:.1f}-norm" for p in range(11, 31)
)
MIN_WEIGHTS = 100  # below this the finite-sample floor (>= 0.12) swamps the differences


class InputError(ValueError):
    """Bad weights given to the recovery functions; the message names the problem."""


def is_numeric(dtype: np.dtype) -> bool:
    """True for real integer or floating dtypes (what weights can be)."""
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)


def as_float64_array(x, name: str) -> np.ndarray:
    """``x`` (array, tensor of any real dtype, bfloat16 and float16 included, or sequence) as a
    writable float64 numpy array; anything else raises :class:`InputError` naming ``name``."""
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided:
            raise InputError(f"{name} is sparse ({x.layout}): save a dense tensor")
        if x.is_complex() or x.dtype == torch.bool or x.is_quantized:
            raise InputError(f"{name} has dtype {x.dtype}: weights must be real numbers")
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    arr = np.asarray(x)
    if not is_numeric(arr.dtype):
        raise InputError(f"{name} is not numeric (dtype {arr.dtype})")
    return np.require(arr, np.float64, ["W"])


def _select(named: Mapping, exclude: Sequence[str], min_ndim: int | None, which: str) -> dict:
    patterns = [re.compile(p) for p in exclude]
    arrays = {}
    for key, value in named.items():
        if any(p.search(str(key)) for p in patterns):
            continue
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            continue  # e.g. batch-norm's num_batches_tracked
        arrays[str(key)] = as_float64_array(value, f"{which}[{key!r}]")
    if min_ndim is None:
        min_ndim = 2 if any(v.ndim >= 2 for v in arrays.values()) else 0
    return {k: v for k, v in arrays.items() if v.ndim >= min_ndim}


def flatten_weights(
    w_before,
    w_after,
    exclude: str | Sequence[str] = (),
    min_ndim: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Turn two weight sets into matching flat float64 arrays.

    Accepts arrays/tensors of the same shape, or dicts of named tensors (state dicts). For dicts,
    keys matching any regular expression in ``exclude`` are dropped (e.g. ``"^fc\\."`` for the
    final classifier), then only entries with ``ndim >= min_ndim`` are kept; by default
    ``min_ndim`` is 2 when any entry is a matrix or kernel (so biases, norm parameters and
    buffers are skipped) and 0 otherwise. Returns ``(before, after, names_used)``.
    """
    if isinstance(exclude, str):
        exclude = [exclude]
    for pattern in exclude:
        try:
            re.compile(pattern)
        except re.error as err:
            raise InputError(f"bad --exclude pattern {pattern!r}: {err}") from None
    before_is_dict, after_is_dict = isinstance(w_before, Mapping), isinstance(w_after, Mapping)
    if before_is_dict != after_is_dict:
        raise InputError("one input is a set of named tensors and the other a single array")
    if before_is_dict:
        before = _select(w_before, exclude, min_ndim, "before")
        after = _select(w_after, exclude, min_ndim, "after")
        missing = sorted(set(before) ^ set(after))
        if missing:
            raise InputError(
                f"the weight sets name different tensors: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )
        if not before:
            raise InputError("no weights left to analyse after exclusions and the ndim filter")
        names = sorted(before)
        for k in names:
            if before[k].shape != after[k].shape:
                raise InputError(
                    f"tensor {k!r} has shape {before[k].shape} before and {after[k].shape} after"
                )
        flat_before = np.concatenate([before[k].reshape(-1) for k in names])
        flat_after = np.concatenate([after[k].reshape(-1) for k in names])
    else:
        array_before = as_float64_array(w_before, "before")
        array_after = as_float64_array(w_after, "after")
        flat_before, flat_after = array_before.reshape(-1), array_after.reshape(-1)
        names = []
        b_shape, a_shape = array_before.shape, array_after.shape
        if b_shape != a_shape:
            raise InputError(f"weights before have shape {b_shape} but after have {a_shape}")
    for label, arr in (("before", flat_before), ("after", flat_after)):
        n_bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise InputError(f"weights {label} contain {n_bad} non-finite value(s) (NaN or inf)")
    if flat_before.size < MIN_WEIGHTS:
        raise InputError(
            f"only {flat_before.size} weights: at least {MIN_WEIGHTS} are needed for Delta-CDF "
            "to tell potentials apart"
        )
    if np.array_equal(flat_before, flat_after):
        raise InputError("the weights before and after are identical: there is no change")
    return flat_before, flat_after, names


def _sign_problem(w_before: np.ndarray, w_after: np.ndarray) -> str | None:
    """Why negative entropy cannot have produced this change, or None."""
    flips = int(np.count_nonzero(np.sign(w_before) * np.sign(w_after) < 0))
    zeros = int(np.count_nonzero((w_before == 0) | (w_after == 0)))
    reasons = []
    if flips:
        reasons.append(f"{flips} weight(s) changed sign")
    if zeros:
        reasons.append(f"{zeros} weight(s) are exactly zero")
    if not reasons:
        return None
    return "excluded: " + " and ".join(reasons) + " (negative entropy keeps signs, 0 stays 0)"


def dual_change(w_before, w_after, potential_: str | Potential = "2-norm"):
    """The change in the dual space, ``grad_phi(w_after) - grad_phi(w_before)``.

    Arrays or tensors of the same shape (the result has that type and shape). For negative
    entropy a sign change or a zero weight raises ``InputError``: that potential cannot
    produce it.
    """
    pot = potential(potential_)
    if isinstance(w_before, torch.Tensor) and isinstance(w_after, torch.Tensor):
        if w_before.shape != w_after.shape:
            raise InputError(
                f"weights before have shape {tuple(w_before.shape)} but after have "
                f"{tuple(w_after.shape)}"
            )
        check_b, check_a = as_float64_array(w_before, "before"), as_float64_array(w_after, "after")
    else:
        w_before, w_after = as_float64_array(w_before, "before"), as_float64_array(w_after, "after")
        if w_before.shape != w_after.shape:
            raise InputError(
                f"weights before have shape {w_before.shape} but after have {w_after.shape}"
            )
        check_b, check_a = w_before, w_after
    if isinstance(pot, NegativeEntropy):
        problem = _sign_problem(check_b.reshape(-1), check_a.reshape(-1))
        if problem:
            raise InputError("negative entropy " + problem)
    return pot.to_dual(w_after) - pot.to_dual(w_before)


def simulate_after(w0, potential_: str | Potential, change: float, seed: int = 0):
    """Weights after a Gaussian change in the dual space: ``from_dual(grad_phi(w0) + change xi)``.

    ``xi ~ N(0, 1)`` per weight (numpy ``default_rng(seed)``); ``w0`` a numpy array.
    This is the model the theory predicts for learning in the small-change regime.
    """
    pot = potential(potential_)
    w0 = as_float64_array(w0, "w0")
    xi = np.random.default_rng(seed).standard_normal(w0.shape)
    return pot.from_dual(pot.to_dual(w0) + change * xi, np.sign(w0))


def _norm_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """``||a|| / ||b||`` (``inf`` when ``b = 0``), computed on ``a / s`` and ``b / s`` with ``s``
    the largest magnitude in either, so the squares neither overflow nor underflow."""
    s = max(float(np.abs(a).max()), float(np.abs(b).max()))
    norm_b = float(np.linalg.norm(b / s))
    return float(np.linalg.norm(a / s)) / norm_b if norm_b > 0 else math.inf


def _candidate_list(candidates: Iterable[str | Potential] | None) -> list[Potential]:
    names = DEFAULT_CANDIDATES if candidates is None else list(candidates)
    if not names:
        raise InputError("no candidate potentials given")
    pots = []
    for c in names:
        try:
            pots.append(potential(c))
        except (ValueError, TypeError) as err:
            raise InputError(str(err)) from None
    return pots


def _bootstrap(
    diffs: dict[int, np.ndarray],
    observed: dict[int, float],
    n_boot: int,
    max_size: int,
    seed: int,
    centered: bool,
) -> dict[int, np.ndarray]:
    """Bootstrap replicates of each candidate's Delta-CDF, resampling the same synapses for all.

    With ``n`` weights and ``m = min(n, max_size)``, each replicate resamples ``m`` synapses with
    replacement; replicates are re-centred on the observed value and their deviations scaled by
    ``sqrt(m / n)`` (an m-out-of-n bootstrap when ``m < n``; the plain paired bootstrap
    otherwise).

    A resample in which some candidate's dual change has no spread (when few weights changed,
    one that drew none of them) has no Delta-CDF for that candidate. Such a resample is left out
    for every candidate, so every comparison and every count of wins is over the same
    resamples, each scoring every candidate. Returns the replicates over the resamples kept
    (all of the same length, possibly 0).
    """
    n = next(iter(diffs.values())).size
    m = min(n, max_size)
    rng = np.random.default_rng(seed)
    reps = {k: np.empty(n_boot) for k in diffs}
    kept = np.ones(n_boot, dtype=bool)
    for b in range(n_boot):
        idx = rng.integers(0, n, m)
        for k, d in diffs.items():
            sample = np.sort(d[idx])
            if not sample[-1] > sample[0]:
                kept[b] = False
                break
            # The diffs were validated once in scan_geometry: skip delta_cdf's input checks.
            reps[k][b] = _exact_numpy(_standardise(sample, centered))
    scale = math.sqrt(m / n)
    if not kept.any():
        return {k: np.empty(0) for k in reps}
    return {k: observed[k] + scale * (r[kept] - r[kept].mean()) for k, r in reps.items()}


def scan_geometry(
    w_before,
    w_after,
    candidates: Iterable[str | Potential] | None = None,
    *,
    exclude: str | Sequence[str] = (),
    min_ndim: int | None = None,
    n_boot: int = 200,
    confidence: float = 0.95,
    max_boot_size: int = 100_000,
    centered: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Rank candidate potentials by how Gaussian they make the dual change.

    One row per candidate (default: negative entropy and p = 1.1, 1.2, ..., 3.0), best first:

    - ``potential``, ``p`` (NaN unless a p-norm), ``delta_cdf`` (exact, of the dual change),
      ``relative_change`` = ``||grad_phi(w) - grad_phi(w0)|| / ||grad_phi(w0)||``;
    - ``p_best``: fraction of the bootstrap replicates in which the candidate is best;
    - ``indistinguishable``: True for the best and for every candidate whose Delta-CDF excess
      over the best is not significantly positive: its paired bootstrap ``(1 - confidence)``
      quantile is <= 0. These are the candidates the data cannot rule out against the best;
    - ``excluded`` and ``note``: a candidate that cannot have produced the data (negative
      entropy with sign changes or zeros) is listed last with the count and the reason.

    The dual change is centred before it is standardised (``centered=True``, the default): a
    common shift of every synapse's dual value is not evidence about the geometry (it comes
    from the mean input, e.g. non-negative pixels), and removing the sample mean removes its
    sampling noise from the statistic. ``centered=False`` gives the paper's uncentred statistic.

    A bootstrap resample that leaves some candidate's dual change without spread (when few
    weights changed, a resample that drew none of them) cannot score that candidate; it is left
    out for all candidates, so both columns above come from the same resamples, and the verdict
    says how many were left out. A candidate that beats the best in at least ``1 - confidence``
    of those resamples is never called worse.

    ``df.attrs`` holds ``n_weights``, ``floor`` (the finite-sample floor for that many weights),
    ``best``, ``n_boot_kept`` (the resamples scored) and a one-line ``verdict``. Inputs as in
    :func:`flatten_weights`; ``seed`` is an integer >= 0. ``n_boot=0`` skips the bootstrap, and
    when no resample is kept there is none: ``p_best`` and ``indistinguishable`` are then
    NaN/None.
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0:
        raise InputError(f"n_boot must be >= 0, got {n_boot}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"the seed must be an integer >= 0, got {seed!r}")
    pots = _candidate_list(candidates)
    before, after, _ = flatten_weights(w_before, w_after, exclude=exclude, min_ndim=min_ndim)
    rows, diffs, observed = [], {}, {}
    sign_problem = _sign_problem(before, after)
    for i, pot in enumerate(pots):
        row = {
            "potential": pot.name,
            "p": pot.p if isinstance(pot, PNorm) else math.nan,
            "delta_cdf": math.nan,
            "relative_change": math.nan,
            "excluded": False,
            "note": "",
        }
        if pot.needs_sign and sign_problem:
            row.update(excluded=True, note=sign_problem)
            rows.append(row)
            continue
        dual0 = pot.to_dual(before)
        diff = pot.to_dual(after) - dual0
        note = ""
        if not np.all(np.isfinite(dual0) & np.isfinite(diff)):
            note = "excluded: the dual values overflow float64 (weights too large for it)"
        elif not np.any(diff):
            note = "excluded: the dual change underflows to 0 (weights too small for it)"
        elif np.ptp(diff) <= 1e-12 * np.abs(diff).max():
            note = "excluded: the dual change is the same for every weight (no spread to test)"
        if note:
            row.update(excluded=True, note=note)
            rows.append(row)
            continue
        row["delta_cdf"] = delta_cdf(diff, centered)
        row["relative_change"] = _norm_ratio(diff, dual0)
        diffs[i], observed[i] = diff, row["delta_cdf"]
        rows.append(row)
    if not diffs:
        reasons = dict.fromkeys(row["note"].removeprefix("excluded: ") for row in rows)
        raise InputError("every candidate potential was excluded: " + "; ".join(reasons))
    best = min(observed, key=observed.get)
    for row in rows:
        row["p_best"], row["indistinguishable"] = math.nan, None
    n_kept = 0
    if n_boot:
        reps = _bootstrap(diffs, observed, n_boot, max_boot_size, seed, centered)
        keys = list(reps)
        stacked = np.stack([reps[k] for k in keys])
        n_kept = stacked.shape[1]
        if n_kept:
            winners = np.bincount(np.argmin(stacked, axis=0), minlength=len(keys)) / n_kept
            for j, k in enumerate(keys):
                excess = reps[k] - reps[best]
                rows[k]["p_best"] = float(winners[j])
                rows[k]["indistinguishable"] = bool(
                    k == best or np.quantile(excess, 1 - confidence) <= 0
                )
    for row in rows:
        if not row["excluded"] and not row["note"]:
            if row["indistinguishable"] is False:
                row["note"] = f"worse than the best at {confidence:.0%} confidence"
            elif row["indistinguishable"]:
                row["note"] = "best" if row is rows[best] else "cannot be told apart from the best"
    df = pd.DataFrame(rows)
    df = df.sort_values(["excluded", "delta_cdf"], kind="stable").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    floor = delta_cdf_floor(before.size, centered)
    plausible = df.loc[df["indistinguishable"].fillna(False).astype(bool), "potential"].tolist()
    verdict = (
        f"best: {rows[best]['potential']} (Delta-CDF {observed[best]:.4f}, floor for "
        f"{before.size} weights {floor:.4f})"
    )
    if n_boot and n_kept:
        others = [p for p in plausible if p != rows[best]["potential"]]
        verdict += f"; cannot be told apart at {confidence:.0%}: " + (", ".join(others) or "none")
    if n_kept < n_boot:
        verdict += (
            f"; {n_boot - n_kept} of {n_boot} bootstrap resamples drew too few changed weights "
            "to score every candidate and were left out"
        )
    df.attrs.update(
        n_weights=int(before.size),
        floor=floor,
        best=rows[best]["potential"],
        n_boot_kept=n_kept,
    )
    df.attrs["verdict"] = verdict
    return df
