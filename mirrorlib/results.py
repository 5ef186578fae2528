"""Result tables and figure files for the book's chapters.

Every chapter follows the same path: run an experiment, :func:`write_table` its tidy result,
:func:`read_table` it back, plot from the table alone and :func:`save_figure`. Files are written
atomically (a temporary file in the same folder, then :func:`os.replace`), so an interrupted run
never leaves a half-written table or figure behind.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ChapterContext",
    "chapter_context",
    "glue",
    "note_substitution",
    "read_table",
    "register_requires_magic",
    "save_figure",
    "write_table",
]

FIGURE_DPI = 200
"""Resolution of the PNG figures: sharp in the HTML book and on paper."""


@dataclass(frozen=True)
class ChapterContext:
    """Where a chapter writes, what it runs on, and its numpy generator."""

    results_dir: Path
    figures_dir: Path
    seed: int
    device: torch.device
    rng: np.random.Generator


def chapter_context(
    results_dir: str | os.PathLike,
    figures_dir: str | os.PathLike,
    seed: int,
    device: str | torch.device = "cpu",
) -> ChapterContext:
    """Prepare a chapter run: create both folders, seed ``random`` and torch from ``seed``,
    and let pandas show every table cell whole.

    ``device="auto"`` means ``cuda`` when torch sees a GPU, else ``cpu``.

    Experiments should draw from explicit generators (``ctx.rng`` for numpy, a
    ``torch.Generator`` for torch); seeding torch's global generator makes what does not
    (``torch.nn`` default initialisation, say) repeatable as well.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    results = Path(results_dir).resolve()
    figures = Path(figures_dir).resolve()
    results.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    torch.manual_seed(seed)
    pd.set_option("display.max_colwidth", None)  # tables of words show whole, not cut at 50
    return ChapterContext(results, figures, seed, torch.device(device), np.random.default_rng(seed))


def _check_name(name: str, *suffixes: str) -> None:
    """Reject names that are paths or carry an extension the helper adds itself."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"a result name must be a plain file name without folders, got {name!r}")
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            raise ValueError(f"give the name without its extension: {name[: -len(suffix)]!r}")


def _write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_table(df: pd.DataFrame, results_dir: str | os.PathLike, name: str) -> Path:
    """Write ``df`` as the tidy CSV ``results_dir/name.csv`` and return its path.

    A meaningful index (named, or anything but the default ``0..n-1``) becomes ordinary
    columns, so the file holds every variable as a column. The same frame always gives the
    same bytes.
    """
    _check_name(name, ".csv")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_table takes a pandas DataFrame, got {type(df).__name__}")
    index = df.index
    default_index = (
        isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )
    if not default_index:
        df = df.reset_index()
    path = Path(results_dir) / f"{name}.csv"
    return _write_atomic(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n"))


def read_table(results_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read the table ``results_dir/name.csv`` written by :func:`write_table`."""
    _check_name(name, ".csv")
    path = Path(results_dir) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no result table {name!r}: {path} does not exist")
    return pd.read_csv(path)


def save_figure(
    fig: Figure, figures_dir: str | os.PathLike, name: str, dpi: int = FIGURE_DPI
) -> list[Path]:
    """Save ``fig`` as ``figures_dir/name.png`` and ``name.pdf``; return both paths.

    Name figures after the paper's figure they reproduce (``fig3_wrong_potential``). The PDF
    carries no creation date, so the same figure always gives the same file.
    """
    _check_name(name, ".png", ".pdf")
    folder = Path(figures_dir)
    return [
        _write_atomic(
            folder / f"{name}.{fmt}",
            partial(fig.savefig, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata),
        )
        for fmt, metadata in (("png", {}), ("pdf", {"CreationDate": None}))
    ]


def glue(name: str, value, display: bool = True) -> None:
    """Make ``value`` citable in the book's prose as ``{glue:}`name```.

    In the book build this is ``myst_nb.glue``; where myst-nb is not installed (Colab, Binder)
    the value is simply shown when ``display`` is true, so chapters run everywhere.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)


SUBSTITUTION_KEY = "mirrorlib/substitution"
"""Output metadata key under which a chapter records what it substituted or skipped; the book
runner reads it back from the executed notebook and prints it in its summary."""


def note_substitution(summary: str, explanation: str) -> None:
    """Tell the reader that something was substituted or skipped, and record it for the runner.

    ``summary`` is short, for the run summary (``"fallback: MNIST digits for Fashion-MNIST"``);
    ``explanation`` is the sentence the reader sees, in a note above the cell's other output.
    """
    from IPython.display import Markdown, display

    display(Markdown(f"**Note.** {explanation}"), metadata={SUBSTITUTION_KEY: summary})


def missing_packages(*modules: str) -> list[str]:
    """Those of ``modules`` (import names) that are not installed here."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def register_requires_magic() -> None:
    """Register the cell magic ``%%requires MODULE [MODULE ...] -- HINT``.

    The cell runs when every module is installed. Otherwise it is skipped with a visible note
    (once per missing module and notebook) recorded by :func:`note_substitution`, and the rest
    of the chapter runs. ``HINT``, after ``--``, says how to install what is missing.
    """
    from IPython import get_ipython
    from IPython.core.magic import register_cell_magic

    shell = get_ipython()
    if shell is None:
        return
    noted: set[str] = set()

    @register_cell_magic
    def requires(line: str, cell: str) -> None:
        modules, _, hint = line.partition("--")
        missing = missing_packages(*modules.split())
        if not missing:
            # IPython reads a trailing ";" from the stored input, which a nested run does not
            # store: end such a cell with a statement so that its last value is not shown.
            if shell.displayhook.semicolon_at_end_of_expression(cell):
                cell += "\npass"
            shell.run_cell(cell, store_history=False).raise_error()
            return
        new = [m for m in missing if m not in noted]
        noted.update(missing)
        if new:
            names = ", ".join(f"`{m}`" for m in new)
            how = f" ({hint.strip()})" if hint.strip() else ""
            note_substitution(
                f"skipped: {', '.join(new)} not installed",
                f"{names} is not installed here{how}: the cells that need it are skipped, "
                "and the rest of the chapter runs.",
            )
