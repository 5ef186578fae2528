"""The data: samples from Dorkenwald et al.'s published fit, and the checks and CSV reader of
a user's measurements (positive volumes or weights, whole-number counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mirrorlib.recovery import InputError

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

MIN_VOLUMES = 20
"""Fewest values :func:`check_volumes` accepts."""
MIN_LOG_SPREAD = 1e-6
"""Smallest standard deviation of ``log w`` (a relative spread) :func:`fit` and
:func:`fit_counts` accept: (near-)constant data have no law of sizes to fit."""


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
