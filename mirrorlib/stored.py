"""Stored paper-scale results: compact tables with their provenance, shipped with the book.

A book built at ``ci`` scale reruns every experiment small and shows, beside it, what the
paper's protocol gave, read from ``results/paper/<chapter>/``. Each table is a gzip-compressed
CSV, ``<name>.csv.gz``, with per-seed values (nothing that can be recomputed from them, such
as raw histograms), and a provenance record ``<name>.json``: the git commit, the command that
wrote it, the device, the torch version, the date and the wall time. :func:`write_stored`
writes both (atomically) from a :class:`Provenance` (:meth:`Provenance.of_this_run` for a table
just computed); :func:`read_stored` returns the table and its :class:`Provenance`.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from mirrorlib.results import _check_name, _write_atomic
from mirrorlib.words import and_list, duration_in_words

__all__ = [
    "PaperScaleStore",
    "Provenance",
    "STORED_ROOT",
    "describe_device",
    "describe_together",
    "git_commit",
    "read_stored",
    "stored_tables",
    "write_stored",
]

STORED_ROOT = Path(__file__).resolve().parents[1] / "results" / "paper"
"""The folder of stored paper-scale results, ``results/paper/`` at the repository's root."""


@dataclass(frozen=True)
class Provenance:
    """Where a stored table comes from. ``commit`` ends in ``-dirty`` when the working tree
    had uncommitted changes; ``wall_time_s`` is the time the table's computation took;
    ``note`` says anything a reader needs to weigh it (a shared machine, say)."""

    commit: str
    command: str
    device: str
    torch_version: str
    date: str
    wall_time_s: float
    note: str = ""

    def describe(self, note: bool = True) -> str:
        """One line for a reader: when, at which commit, on what, how long it took, and (unless
        ``note`` is false) the record's note."""
        took = duration_in_words(self.wall_time_s)
        text = (
            f"on {self.date} at commit `{self.commit[:10]}` ({self.device}, torch "
            f"{self.torch_version}) in {took} of wall time"
        )
        return text + (f"; {self.note}" if note and self.note else "")

    @classmethod
    def of_this_run(
        cls,
        command: str,
        wall_time_s: float,
        device: str | torch.device = "cpu",
        note: str = "",
    ) -> Provenance:
        """The record of a computation that just ran here: this checkout's commit
        (:func:`git_commit`), ``device`` in words (:func:`describe_device`), this torch, now."""
        return cls(
            commit=git_commit(),
            command=command,
            device=describe_device(device),
            torch_version=torch.__version__,
            date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            wall_time_s=float(wall_time_s),
            note=note,
        )


def git_commit(folder: str | os.PathLike | None = None) -> str:
    """The commit checked out at ``folder`` (default: this package's repository), with
    ``-dirty`` if tracked files differ from it (the stored results themselves, which a run
    rewrites as it goes, do not count); ``"unknown"`` outside a git checkout."""
    cwd = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":/",
                ":(top,exclude)results/paper",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if status else "")


def describe_together(records: Mapping[str, Provenance]) -> str:
    """Several records, each named by its key, in one sentence; a note they all share is said
    once: ``"the regression on ... in 8 minutes of wall time and the network on ... in 31
    minutes of wall time, both run as ...: the wall time is an upper bound"``. Records with
    different notes are described one by one, separated by semicolons."""
    if not records:
        raise ValueError("describe_together needs at least one record")
    notes = {record.note for record in records.values()}
    if len(records) == 1 or len(notes) > 1 or notes == {""}:
        return "; ".join(f"{name} {record.describe()}" for name, record in records.items())
    each = and_list([f"{name} {record.describe(note=False)}" for name, record in records.items()])
    return f"{each}, {'both' if len(records) == 2 else 'all'} {notes.pop()}"


def describe_device(device: str | torch.device = "cpu") -> str:
    """The device in words: the GPU's name, or the CPU's model, the instruction set of torch's
    CPU kernels (training rounds differently with each: ``AVX2``, ``AVX512``), and its core
    count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    kernels = torch.backends.cpu.get_cpu_capability()
    return (
        f"cpu: {model} (torch kernels: {kernels}), {os.cpu_count()} cores, {threads} torch "
        f"thread{'s' * (threads != 1)}"
    )


def _paths(root: Path, chapter: str, name: str) -> tuple[Path, Path]:
    _check_name(chapter)
    _check_name(name, ".csv", ".csv.gz", ".json")
    folder = root / chapter
    return folder / f"{name}.csv.gz", folder / f"{name}.json"


def write_stored(
    table: pd.DataFrame,
    chapter: str,
    name: str,
    provenance: Provenance,
    root: str | os.PathLike | None = None,
) -> Provenance:
    """Store ``table`` as ``root/chapter/name.csv.gz`` with ``provenance`` as ``name.json``
    (:meth:`Provenance.of_this_run` for a table just computed here; a :class:`Provenance`
    written out in full for one computed earlier, elsewhere or at another commit). The wall
    time is kept to 0.1 s. The gzip stream carries no file name or time stamp, so the same
    table gives the same bytes. Returns the provenance written."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"write_stored takes a pandas DataFrame, got {type(table).__name__}")
    if not isinstance(provenance, Provenance):
        raise TypeError(f"write_stored takes a Provenance, got {type(provenance).__name__}")
    csv_path, json_path = _paths(Path(root) if root is not None else STORED_ROOT, chapter, name)
    provenance = replace(provenance, wall_time_s=round(float(provenance.wall_time_s), 1))
    text = table.to_csv(index=False, lineterminator="\n").encode()

    def write_csv(tmp: Path) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
            gz.write(text)

    _write_atomic(csv_path, write_csv)
    record = json.dumps(asdict(provenance), indent=2) + "\n"
    _write_atomic(json_path, lambda tmp: tmp.write_text(record))
    return provenance


BOOK_COMMAND = "python -m mirrorlib book --scale paper --chapters {chapter}"
"""The command recorded for tables a chapter stores while the book is built at ``paper`` scale."""


class PaperScaleStore:
    """A chapter's stored tables: ``start()`` before computing a table, ``save(table, name)``
    after, and the table is stored (:func:`write_stored`, command :data:`BOOK_COMMAND`) with
    the wall time since ``start()`` when the book is built at ``scale == "paper"``; at other
    scales ``save`` writes nothing and returns None. A ``save`` without an earlier ``start()``
    raises ``RuntimeError`` at every scale, so that a ``ci`` build finds it.

        paper = PaperScaleStore(scale, "biology", ctx.device)
        paper.start()
        stats = ...
        paper.save(stats, "network_stats")
    """

    def __init__(self, scale: str, chapter: str, device: str | torch.device = "cpu") -> None:
        _check_name(chapter)
        self.scale, self.chapter, self.device = scale, chapter, device
        self._start: float | None = None

    def start(self) -> None:
        """Start timing the next table(s)."""
        self._start = time.perf_counter()

    def save(self, table: pd.DataFrame, name: str) -> Provenance | None:
        """Store ``table`` as ``name`` at ``paper`` scale; the wall time is since ``start()``."""
        if self._start is None:
            raise RuntimeError(f"{self.chapter}: call start() before computing the table {name!r}")
        if self.scale != "paper":
            return None
        wall = time.perf_counter() - self._start
        command = BOOK_COMMAND.format(chapter=self.chapter)
        record = Provenance.of_this_run(command, wall, self.device)
        return write_stored(table, self.chapter, name, record)


def read_stored(
    chapter: str, name: str, root: str | os.PathLike | None = None
) -> tuple[pd.DataFrame, Provenance]:
    """The stored table ``chapter/name`` and its :class:`Provenance` (see :func:`write_stored`)."""
    csv_path, json_path = _paths(Path(root) if root is not None else STORED_ROOT, chapter, name)
    if not csv_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(f"no stored table {chapter}/{name}: {csv_path} or its record")
    with gzip.open(csv_path, "rt") as f:
        table = pd.read_csv(f)
    return table, Provenance(**json.loads(json_path.read_text()))


def stored_tables(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per stored table under ``root`` (default :data:`STORED_ROOT`): its chapter, name
    and every field of its :class:`Provenance`, sorted by chapter and name."""
    folder = Path(root) if root is not None else STORED_ROOT
    rows = [
        {"chapter": record.parent.name, "name": record.stem, **json.loads(record.read_text())}
        for record in sorted(folder.glob("*/*.json"))
        if record.with_suffix(".csv.gz").is_file()
    ]
    columns = ["chapter", "name", *Provenance.__dataclass_fields__]
    return pd.DataFrame(rows, columns=columns)
