"""Read weight measurements from files: ``.npy``, ``.npz``, ``.csv`` and ``.pt``/``.pth``.

A file holds either one array of weights or a set of named tensors (a state dict, an ``.npz``
archive, a CSV with several numeric columns). Every problem raises
:class:`mirrorlib.recovery.InputError` with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mirrorlib.recovery import InputError, is_numeric

__all__ = ["load_weights", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".npy", ".npz", ".csv", ".pt", ".pth")


def _numeric(arr: np.ndarray, path: Path, what: str = "the data") -> np.ndarray:
    if not is_numeric(arr.dtype):
        raise InputError(f"{path}: {what} is not numeric (dtype {arr.dtype})")
    return arr


def _load_csv(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    try:
        table = pd.read_csv(path, header=None, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot parse as CSV ({err})") from None
    first = pd.to_numeric(table.iloc[0], errors="coerce")
    if first.isna().all():  # a header row
        table.columns = [str(c).strip() for c in table.iloc[0]]
        table = table.iloc[1:]
    else:
        table.columns = [f"column_{i}" for i in range(table.shape[1])]
    columns = {}
    for name in table.columns:
        values = pd.to_numeric(table[name], errors="coerce")
        bad = values.isna() & table[name].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{path}: column {name!r} has a non-numeric value {table[name].iloc[row]!r}"
            )
        columns[name] = values.to_numpy(dtype=np.float64)
    if not columns or all(v.size == 0 for v in columns.values()):
        raise InputError(f"{path}: no numeric data")
    if len(columns) == 1:
        return next(iter(columns.values()))
    return columns


def _flatten_state(obj: Mapping, prefix: str = "") -> dict[str, torch.Tensor]:
    """Nested dicts of tensors (e.g. ``{"state_dict": {...}}``) -> ``{"a.b": tensor}``."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(_flatten_state(value, prefix=f"{name}."))
    return out


def _load_torch(path: Path) -> np.ndarray | dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot read as a PyTorch file ({first_line})") from None
    if isinstance(obj, torch.Tensor):
        if obj.is_complex():
            raise InputError(f"{path}: the tensor is not real-valued")
        return obj.detach().cpu().numpy()
    if isinstance(obj, Mapping):
        tensors = _flatten_state(obj)
        if not tensors:
            raise InputError(f"{path}: the file holds no tensors")
        return tensors
    raise InputError(f"{path}: expected a tensor or a state dict, found {type(obj).__name__}")


def load_weights(path: str | Path) -> np.ndarray | dict[str, np.ndarray | torch.Tensor]:
    """Load weights from ``path``: an array, or a dict of named arrays/tensors.

    - ``.npy``: one array; ``.npz``: a dict of its arrays;
    - ``.csv``: one numeric column (with or without a header) gives an array, several give a
      dict by column name;
    - ``.pt``/``.pth``: a tensor, or a (possibly nested) state dict, read with
      ``torch.load(weights_only=True)`` so no code in the file is run.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if suffix == ".csv":
        return _load_csv(path)
    if suffix in (".pt", ".pth"):
        return _load_torch(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: cannot read as {suffix} ({err})") from None
    if suffix == ".npy":
        return _numeric(np.asarray(data), path)
    with data:
        arrays = {k: _numeric(data[k], path, f"array {k!r}") for k in data.files}
    if not arrays:
        raise InputError(f"{path}: the archive holds no arrays")
    return arrays
