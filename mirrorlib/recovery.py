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
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from mirrorlib.potentials import NegativeEntropy, PNorm, Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.stats import _exact_numpy, _standardise, delta_cdf, delta_cdf_floor

__all__ = [
    "DEFAULT_CANDIDATES",
    "MIN_WEIGHTS",
    "FLOOR_SPREADS",
    "min_resamples",
    "LARGE_WEIGHT_CHANGE",
    "InputError",
    "flatten_weights",
    "dual_change",
    "simulate_after",
    "scan_geometry",
]

DEFAULT_CANDIDATES: tuple[str, ...] = ("negative_entropy",) + tuple(
    f"{p / 10:g}-norm" for p in range(11, 31)
)
MIN_WEIGHTS = 100  # changed weights; below this the finite-sample floor (>= 0.12) swamps them
FLOOR_SPREADS = 4.0
"""The best Delta-CDF is read as a Gaussian dual change only up to the floor plus this many
standard deviations of the Delta-CDF of Gaussian samples: exceeded by 0.1 to 0.2 % of them
(measured on 5000 to 20000 draws of 100, 1000 and 5000 values)."""
LARGE_WEIGHT_CHANGE = 0.5
"""``||w - w0|| / ||w0||`` above which the verdict says the change is not small: the Gaussian
dual change is a prediction of the linearised (small-change) regime."""
UNCHANGED_ATOM_BOUND = math.sqrt(2 * math.pi) / 4
"""``1 / (4 phi(0))``: a share ``f`` of identical values keeps the Delta-CDF at or above
``f^2 / (4 phi(0))`` whatever the rest (the normal CDF, of slope <= ``phi(0)``, passes the jump
of height ``f`` in the empirical CDF)."""
INTEGER_BUFFERS: tuple[str, ...] = ("num_batches_tracked",)
"""Last name components of integer buffers in state dicts that are counters, not weights."""


class InputError(ValueError):
    """Bad weights given to the recovery functions; the message names the problem."""


def is_numeric(dtype: np.dtype) -> bool:
    """True for real integer or floating dtypes (what weights can be)."""
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)


def as_float64_array(x: ArrayLike | torch.Tensor, name: str) -> np.ndarray:
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


def _refuse_model_objects(x: object, which: str) -> None:
    """A module, an iterator (``model.parameters()``, ``model.named_parameters()``) or a list of
    tensors is not a weight set: say what to pass instead."""
    hint = "pass model.state_dict() (or a dict of named tensors, or one array)"
    if isinstance(x, torch.nn.Module):
        raise InputError(f"{which} is a torch module ({type(x).__name__}): {hint}")
    if isinstance(x, Iterator):
        raise InputError(f"{which} is an iterator (such as model.parameters()): {hint}")
    if isinstance(x, (list, tuple)) and any(_holds_tensor(v) for v in x):
        raise InputError(f"{which} is a list of tensors (such as model.parameters()): {hint}")


def _holds_tensor(v: object) -> bool:
    """A tensor, or a ``(name, tensor)`` pair as ``named_parameters()`` yields."""
    return isinstance(v, torch.Tensor) or (
        isinstance(v, tuple) and any(isinstance(u, torch.Tensor) for u in v)
    )


def _shape(value: object) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _is_integer_buffer(key: str, value: object) -> bool:
    """A counter such as batch norm's ``num_batches_tracked``: an integer tensor so named."""
    integer = isinstance(value, torch.Tensor) and not (
        value.is_floating_point() or value.is_complex() or value.dtype == torch.bool
    )
    return integer and key.rsplit(".", 1)[-1] in INTEGER_BUFFERS


def _select_named(
    before: Mapping, after: Mapping, exclude: Sequence[str], min_ndim: int | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The tensors of two state dicts that are analysed, as float64 arrays: names not matching
    ``exclude``, not integer buffers, with the same shape on both sides, and ``ndim >= min_ndim``
    (by default 2 when any tensor on either side is a matrix or kernel, else 0)."""
    patterns = [re.compile(p) for p in exclude]

    def kept(named: Mapping) -> dict:
        return {
            str(k): v
            for k, v in named.items()
            if not any(p.search(str(k)) for p in patterns) and not _is_integer_buffer(str(k), v)
        }

    raw_before, raw_after = kept(before), kept(after)
    missing = sorted(set(raw_before) ^ set(raw_after))
    if missing:
        raise InputError(
            f"the weight sets name different tensors: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    for k in sorted(raw_before):
        b_shape, a_shape = _shape(raw_before[k]), _shape(raw_after[k])
        if b_shape != a_shape:
            raise InputError(f"tensor {k!r} has shape {b_shape} before and {a_shape} after")
    if min_ndim is None:
        min_ndim = 2 if any(len(_shape(v)) >= 2 for v in raw_before.values()) else 0
    names = sorted(k for k, v in raw_before.items() if len(_shape(v)) >= min_ndim)
    return (
        {k: as_float64_array(raw_before[k], f"before[{k!r}]") for k in names},
        {k: as_float64_array(raw_after[k], f"after[{k!r}]") for k in names},
    )


def flatten_weights(
    w_before: ArrayLike | torch.Tensor | Mapping[str, ArrayLike | torch.Tensor],
    w_after: ArrayLike | torch.Tensor | Mapping[str, ArrayLike | torch.Tensor],
    exclude: str | Sequence[str] = (),
    min_ndim: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Turn two weight sets into matching flat float64 arrays.

    Accepts arrays/tensors of the same shape, or dicts of named tensors (state dicts). For dicts,
    keys matching any regular expression in ``exclude`` are dropped (e.g. ``"^fc\\."`` for the
    final classifier) and so are integer counters (``num_batches_tracked``); a name must have the
    same shape on both sides; then only entries with ``ndim >= min_ndim`` are kept; by default
    ``min_ndim`` is 2 when any entry is a matrix or kernel (so biases, norm parameters and
    buffers are skipped) and 0 otherwise. Integer weights are read as float64 and tensors that
    require grad are detached. A torch module, an iterator of parameters or a list of tensors is
    refused (pass ``model.state_dict()``). At least :data:`MIN_WEIGHTS` weights must change.
    Returns ``(before, after, names_used)``.
    """
    if isinstance(exclude, str):
        exclude = [exclude]
    for pattern in exclude:
        try:
            re.compile(pattern)
        except re.error as err:
            raise InputError(f"bad --exclude pattern {pattern!r}: {err}") from None
    _refuse_model_objects(w_before, "before")
    _refuse_model_objects(w_after, "after")
    before_is_dict, after_is_dict = isinstance(w_before, Mapping), isinstance(w_after, Mapping)
    if before_is_dict != after_is_dict:
        raise InputError("one input is a set of named tensors and the other a single array")
    if before_is_dict:
        before, after = _select_named(w_before, w_after, exclude, min_ndim)
        if not before:
            raise InputError("no weights left to analyse after exclusions and the ndim filter")
        names = sorted(before)
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
    n_changed = int(np.count_nonzero(flat_before != flat_after))
    if not n_changed:
        raise InputError("the weights before and after are identical: there is no change")
    if n_changed < MIN_WEIGHTS:
        raise InputError(
            f"only {n_changed} of {flat_before.size} weights changed: at least {MIN_WEIGHTS} "
            "changed weights are needed for Delta-CDF to tell potentials apart (the unchanged "
            "ones only add a spike at 0 to every dual change)"
        )
    return flat_before, flat_after, names


def _sign_problem(w_before: np.ndarray, w_after: np.ndarray) -> str | None:
    """Why negative entropy cannot have produced this change, or None: a sign flip or a weight
    that is 0 on one side only (a zero that stays zero is no evidence against it)."""
    flips = int(np.count_nonzero(np.sign(w_before) * np.sign(w_after) < 0))
    to_or_from_zero = int(np.count_nonzero((w_before == 0) != (w_after == 0)))
    reasons = []
    if flips:
        reasons.append(f"{flips} weight(s) changed sign")
    if to_or_from_zero:
        reasons.append(f"{to_or_from_zero} weight(s) went to or from exactly 0")
    if not reasons:
        return None
    return "excluded: " + " and ".join(reasons) + " (negative entropy keeps signs, 0 stays 0)"


def dual_change(
    w_before: ArrayLike | torch.Tensor,
    w_after: ArrayLike | torch.Tensor,
    potential: str | Potential = "2-norm",
) -> np.ndarray | torch.Tensor:
    """The change in the dual space, ``grad_phi(w_after) - grad_phi(w_before)``.

    Arrays or tensors of the same shape (the result has that type and shape). For negative
    entropy a sign change or a weight that is 0 before or after raises ``InputError``: that
    potential cannot produce the first two and has no dual value at 0 (drop the weights that
    are 0 before and after first; :func:`scan_geometry` does).
    """
    pot = make_potential(potential)
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
        stay_zero = int(np.count_nonzero((check_b == 0) & (check_a == 0)))
        if stay_zero:
            raise InputError(
                f"negative entropy has no dual value at 0: {stay_zero} weight(s) are 0 before "
                "and after (drop them first)"
            )
    return pot.to_dual(w_after) - pot.to_dual(w_before)


def simulate_after(
    w0: ArrayLike | torch.Tensor, potential: str | Potential, change: float, seed: int = 0
) -> np.ndarray:
    """Weights after a Gaussian change in the dual space: ``from_dual(grad_phi(w0) + change xi)``.

    ``xi ~ N(0, 1)`` per weight (numpy ``default_rng(seed)``); ``w0`` an array, tensor or
    sequence of finite numbers and ``change`` a finite number; the result is a float64 numpy
    array. This is the model the theory predicts for learning in the small-change regime.
    """
    pot = make_potential(potential)
    w0 = as_float64_array(w0, "w0")
    if not np.all(np.isfinite(w0)):
        raise InputError("w0 contains non-finite values (NaN or inf)")
    if not np.all(np.isfinite(change)):
        raise InputError(f"change must be finite, got {change}")
    xi = np.random.default_rng(seed).standard_normal(w0.shape)
    return pot.from_dual(pot.to_dual(w0) + change * xi, np.sign(w0))


def _norm_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """``||a|| / ||b||`` (``inf`` when ``b = 0``), computed on ``a / s`` and ``b / s`` with ``s``
    the largest magnitude in either, so the squares neither overflow nor underflow."""
    s = max(float(np.abs(a).max()), float(np.abs(b).max()))
    norm_b = float(np.linalg.norm(b / s))
    return float(np.linalg.norm(a / s)) / norm_b if norm_b > 0 else math.inf


def _candidate_list(
    candidates: str | Potential | Iterable[str | Potential] | None,
) -> list[Potential]:
    """The candidate potentials: one name or potential, or several; two that name the same
    potential (``"2-norm"`` and ``"2.0-norm"``) are refused."""
    if candidates is None:
        names = list(DEFAULT_CANDIDATES)
    elif isinstance(candidates, (str, Potential)):
        names = [candidates]
    else:
        names = list(candidates)
    if not names:
        raise InputError("no candidate potentials given")
    pots, given = [], {}
    for c in names:
        try:
            pot = make_potential(c)
        except (ValueError, TypeError) as err:
            raise InputError(str(err)) from None
        if pot.name in given:
            raise InputError(
                f"candidates {given[pot.name]!r} and {c!r} are the same potential ({pot.name})"
            )
        given[pot.name] = c
        pots.append(pot)
    return pots


def min_resamples(confidence: float) -> int:
    """The fewest bootstrap resamples, ``ceil(1 / (1 - confidence))`` (20 at 95 %), in which one
    resample is a share ``1 - confidence`` of them: with fewer, a candidate is called worse as
    soon as it loses every resample, which says nothing at that confidence."""
    return math.ceil(round(1 / (1 - confidence), 9))


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
    w_before: ArrayLike | torch.Tensor | Mapping[str, ArrayLike | torch.Tensor],
    w_after: ArrayLike | torch.Tensor | Mapping[str, ArrayLike | torch.Tensor],
    candidates: str | Potential | Iterable[str | Potential] | None = None,
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

    One row per candidate (default: negative entropy and p = 1.1, 1.2, ..., 3.0; one name is one
    candidate; two names of the same potential are refused), best first:

    - ``potential``, ``p`` (NaN unless a p-norm), ``delta_cdf`` (exact, of the dual change),
      ``relative_change`` = ``||grad_phi(w) - grad_phi(w0)|| / ||grad_phi(w0)||``. For a p-norm
      it does not depend on the units of the weights; for negative entropy it does:
      ``grad_phi(c w) = grad_phi(w) + sign(w) log c``, so the same data in other units (um^3 vs
      nm^3) give another value, and weights near ``|w| = 1/e`` make it large;
    - ``p_best``: share of the bootstrap replicates in which the candidate is best (an exact
      tie shares a replicate evenly);
    - ``indistinguishable``: True for the best and for every candidate whose Delta-CDF excess
      over the best is not significantly positive: its paired bootstrap ``(1 - confidence)``
      quantile (numpy's linear interpolation) is <= 0; False (``note``: worse than the best)
      otherwise. These are the candidates the data cannot rule out against the best. With
      ``n`` resamples and ``j = floor((1 - confidence) (n - 1))``, a candidate that does at
      least as well as the best (excess <= 0) in ``j + 2`` or more of them is never called
      worse, and one that does so in ``j`` or fewer always is (11 and 9 of 200 at 95 %); at
      ``j + 1`` (10 of 200, exactly ``1 - confidence``) the interpolation between the two
      excesses around 0 decides, so it can be called worse (the book's stored results use
      this rule);
    - ``excluded`` and ``note``: a candidate that cannot have produced the data (negative
      entropy with sign changes or weights that go to or from 0) or whose dual values overflow
      is listed last with the count and the reason; the verdict names it.

    Weights that are exactly 0 before and after (absent or pruned synapses) carry no
    information about any geometry and are left out of every candidate's analysis; at least
    :data:`MIN_WEIGHTS` weights must change. Unchanged weights stay in: their dual change is 0
    for every candidate, an atom of mass ``f`` (their share) that by itself keeps every
    Delta-CDF at or above ``f^2 / (4 phi(0)) = 0.627 f^2`` (``phi`` the normal density); the
    verdict states the share when that bound is above the floor.

    The dual change is centred before it is standardised (``centered=True``, the default): a
    common shift of every synapse's dual value is not evidence about the geometry (it comes
    from the mean input, e.g. non-negative pixels), and removing the sample mean removes its
    sampling noise from the statistic. ``centered=False`` gives the paper's uncentred statistic.

    ``n_boot`` is 0 (no bootstrap: ``p_best`` and ``indistinguishable`` are NaN/None) or at
    least :func:`min_resamples` (20 at 95 %). A bootstrap resample that leaves some candidate's
    dual change without spread (a resample that drew no changed weight) cannot score that
    candidate; it is left out for all candidates, so both columns come from the same
    resamples, and the verdict says how many were left out. When fewer than
    :func:`min_resamples` are kept, ``indistinguishable`` is None (no claim is made).
    Resamples hold ``min(n, max_boot_size)`` weights (an integer >= 2).

    The verdict reads as a recovery (``best: NAME (...)``) only when the best Delta-CDF is
    within :data:`FLOOR_SPREADS` standard deviations above the finite-sample floor (Gaussian
    samples exceed that about once in 1000); otherwise it starts "no candidate makes the change
    Gaussian" and says how many times the floor the best is. It also says when the weights changed
    by more than :data:`LARGE_WEIGHT_CHANGE` of their norm (``||w - w0|| / ||w0||``, which
    does not depend on units or candidates): outside the small-change regime of the theory.

    ``df.attrs`` holds ``n_weights`` (analysed), ``n_zero_dropped`` (0 before and after),
    ``n_unchanged`` and ``frac_unchanged``, ``floor`` (the finite-sample floor for
    ``n_weights``) and ``floor_std`` (its spread), ``best``, ``best_within_floor`` (the rule
    above), ``weight_change`` (``||w - w0|| / ||w0||``), ``n_boot_kept`` (the resamples scored)
    and a one-line ``verdict``. Inputs as in :func:`flatten_weights`; ``seed`` is an integer >= 0.
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"the seed must be an integer >= 0, got {seed!r}")
    fewest = min_resamples(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)):
        raise InputError(f"n_boot must be an integer, got {n_boot!r}")
    if n_boot != 0 and not n_boot >= fewest:
        raise InputError(
            f"n_boot must be 0 (no bootstrap) or at least {fewest} for claims at "
            f"{confidence:.0%} confidence (1 / (1 - confidence) resamples), got {n_boot}"
        )
    if (
        isinstance(max_boot_size, bool)
        or not isinstance(max_boot_size, (int, np.integer))
        or max_boot_size < 2
    ):
        raise InputError(f"max_boot_size must be an integer >= 2, got {max_boot_size!r}")
    pots = _candidate_list(candidates)
    before, after, _ = flatten_weights(w_before, w_after, exclude=exclude, min_ndim=min_ndim)
    stay_zero = (before == 0) & (after == 0)
    n_zero_dropped = int(np.count_nonzero(stay_zero))
    if n_zero_dropped:
        before, after = before[~stay_zero], after[~stay_zero]
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
        with np.errstate(all="ignore"):  # overflow and underflow are caught just below
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
            is_min = stacked == stacked.min(axis=0)
            winners = (is_min / is_min.sum(axis=0)).sum(axis=1) / n_kept
            for j, k in enumerate(keys):
                rows[k]["p_best"] = float(winners[j])
                if n_kept >= fewest:
                    excess = reps[k] - reps[best]
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
    floor, floor_std = delta_cdf_floor(before.size, centered, spread=True)
    n_unchanged = int(np.count_nonzero(before == after))
    weight_change = _norm_ratio(after - before, before)
    within_floor = bool(observed[best] <= floor + FLOOR_SPREADS * floor_std)
    best_name = rows[best]["potential"]
    plausible = df.loc[df["indistinguishable"].fillna(False).astype(bool), "potential"].tolist()
    verdict = _verdict(
        best_name,
        observed[best],
        before.size,
        floor,
        floor_std,
        plausible,
        [r for r in rows if r["excluded"]],
        confidence,
        n_boot,
        n_kept,
        n_zero_dropped,
        n_unchanged,
        weight_change,
    )
    df.attrs.update(
        n_weights=int(before.size),
        n_zero_dropped=n_zero_dropped,
        n_unchanged=n_unchanged,
        frac_unchanged=n_unchanged / before.size,
        floor=floor,
        floor_std=floor_std,
        best=best_name,
        best_within_floor=within_floor,
        weight_change=weight_change,
        n_boot_kept=n_kept,
    )
    df.attrs["verdict"] = verdict
    return df


def _verdict(
    best: str,
    best_delta_cdf: float,
    n: int,
    floor: float,
    floor_std: float,
    plausible: list[str],
    excluded_rows: list[dict],
    confidence: float,
    n_boot: int,
    n_kept: int,
    n_zero_dropped: int,
    n_unchanged: int,
    weight_change: float,
) -> str:
    """The one-line verdict of :func:`scan_geometry` (its docstring gives the rules)."""
    floor_words = f"floor for {n} weights {floor:.4f}"
    if best_delta_cdf <= floor + FLOOR_SPREADS * floor_std:
        verdict = f"best: {best} (Delta-CDF {best_delta_cdf:.4f}, {floor_words})"
    else:
        verdict = (
            f"no candidate makes the change Gaussian; best: {best} (Delta-CDF "
            f"{best_delta_cdf:.4f}, {best_delta_cdf / floor:.1f} times the {floor_words}; "
            f"Gaussian samples stay below {floor + FLOOR_SPREADS * floor_std:.4f})"
        )
    if n_kept >= min_resamples(confidence):
        others = [p for p in plausible if p != best]
        verdict += f"; cannot be told apart at {confidence:.0%}: " + (", ".join(others) or "none")
    elif n_kept:
        verdict += (
            f"; only {n_kept} bootstrap resamples scored every candidate: too few for a claim "
            f"at {confidence:.0%} (at least {min_resamples(confidence)})"
        )
    if n_kept < n_boot:
        verdict += (
            f"; {n_boot - n_kept} of {n_boot} bootstrap resamples drew too few changed weights "
            "to score every candidate and were left out"
        )
    by_reason: dict[str, list[str]] = {}
    for row in excluded_rows:
        by_reason.setdefault(row["note"].removeprefix("excluded: "), []).append(row["potential"])
    for reason, names in by_reason.items():
        verdict += f"; {', '.join(names)} excluded: {reason}"
    if n_zero_dropped:
        verdict += (
            f"; {n_zero_dropped} weight(s) exactly 0 before and after were left out (no "
            "information about the geometry)"
        )
    atom_bound = UNCHANGED_ATOM_BOUND * (n_unchanged / n) ** 2
    if atom_bound > floor:
        verdict += (
            f"; {n_unchanged / n:.1%} of the weights did not change: their dual change is 0 "
            f"for every candidate, which alone keeps every Delta-CDF above {atom_bound:.4f}"
        )
    if weight_change > LARGE_WEIGHT_CHANGE:
        verdict += (
            f"; the weights changed by {weight_change:.2f} of their norm (above "
            f"{LARGE_WEIGHT_CHANGE}): outside the small-change regime the scan assumes"
        )
    return verdict
