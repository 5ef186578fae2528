"""Read weight measurements from files: ``.npy``, ``.npz``, ``.csv`` and ``.pt``/``.pth``.

A file holds either one array of weights or a set of named tensors (a state dict, an ``.npz``
archive, a CSV with several numeric columns). Every problem raises
:class:`mirrorlib.recovery.InputError` with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import csv
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mirrorlib.recovery import InputError, as_float64_array, is_numeric

__all__ = ["load_weights", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".npy", ".npz", ".csv", ".pt", ".pth")


def _numeric(arr, path: Path, what: str = "the data") -> np.ndarray:
    arr = np.asarray(arr)
    if not is_numeric(arr.dtype):
        raise InputError(f"{path}: {what} is not numeric (dtype {arr.dtype})")
    return arr


def _one_line(err: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _empty_cell_problem(path: Path, width: int) -> str:
    """Why some cell read as empty: the first short row, trailing comma or empty value."""
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        for line, row in enumerate(csv.reader(file, skipinitialspace=True), start=1):
            if not row:
                continue
            if len(row) < width:
                return f"line {line} has {len(row)} value(s) but the first line has {width}"
            if row[-1].strip() == "" and width > 1:
                return f"line {line} ends with a comma (an empty last value)"
            empty = [j for j, cell in enumerate(row) if cell.strip() == ""]
            if empty:
                return f"line {line} has an empty value in column {empty[0] + 1}"
    return "a value is empty"


def _load_csv(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """Numeric columns; the first row is a header when none of its cells is a number (``nan``
    and ``inf`` are numbers, so a first value of ``nan`` is data, rejected later as NaN)."""
    try:
        table = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot parse as CSV ({_one_line(err)})") from None
    if not any(_is_number(cell) for cell in table.iloc[0]):  # a header row
        names = [cell.strip() for cell in table.iloc[0]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InputError(f"{path}: the header names column {repeated[0]!r} twice")
        table.columns = names
        table = table.iloc[1:]
    else:
        table.columns = [f"column_{i}" for i in range(table.shape[1])]
    if table.empty:
        raise InputError(f"{path}: no numeric data (only a header)")
    if (table.map(str.strip) == "").any(axis=None):
        raise InputError(f"{path}: {_empty_cell_problem(path, table.shape[1])}")
    columns = {}
    for name in table.columns:
        values = pd.to_numeric(table[name], errors="coerce")
        for cell in table[name][values.isna()]:
            if not _is_number(cell):
                raise InputError(f"{path}: column {name!r} has a non-numeric value {cell!r}")
        columns[name] = np.array(values, dtype=np.float64)  # a writable copy
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
        with warnings.catch_warnings():  # e.g. about the pickle protocol: the error says enough
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise InputError(f"{path}: cannot read as a PyTorch file ({_one_line(err)})") from None
    if isinstance(obj, torch.Tensor):
        return as_float64_array(obj, f"{path}: the tensor")
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
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a pipe, socket or device is not read)")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        if suffix == ".csv":
            return _load_csv(path)
        if suffix in (".pt", ".pth"):
            return _load_torch(path)
        return _load_numpy(path, suffix)
    except MemoryError:
        raise InputError(f"{path}: too large to read into memory") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def _load_numpy(path: Path, suffix: str) -> np.ndarray | dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # damaged headers or archives raise many types
        raise InputError(f"{path}: cannot read as {suffix} ({_one_line(err)})") from None
    if suffix == ".npy":
        if not isinstance(data, np.ndarray):
            data.close()
            raise InputError(f"{path}: holds an .npz archive, not one .npy array")
        return _numeric(data, path)
    if isinstance(data, np.ndarray):
        raise InputError(f"{path}: holds one .npy array, not an .npz archive")
    arrays = {}
    with data:
        for key in data.files:
            try:
                member = data[key]
            except Exception as err:  # a bad CRC, damaged compressed data, an object array
                raise InputError(f"{path}: cannot read array {key!r} ({_one_line(err)})") from None
            arrays[key] = _numeric(member, path, f"array {key!r}")
    if not arrays:
        raise InputError(f"{path}: the archive holds no arrays")
    return arrays
