"""The ``paper`` preset of the dual-gaussian chapter, run and stored with provenance."""

from __future__ import annotations

import os
import time

from mirrorlib.experiments.dual_gaussian.deep import run_deep
from mirrorlib.experiments.dual_gaussian.linear import run_clt, run_implicit_bias, run_linearisation
from mirrorlib.experiments.dual_gaussian.settings import config
from mirrorlib.recovery import InputError

STORED_CHAPTER = "dual_gaussian"
"""The chapter's folder in :data:`mirrorlib.stored.STORED_ROOT`."""

STORE_COMMAND = (
    'python -c "from mirrorlib.experiments import dual_gaussian as dg; dg.store_paper()"'
)
"""The command that runs the ``paper`` preset and stores its tables (:func:`store_paper`)."""


def store_paper(
    checkpoint_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    note: str = "",
    command: str = STORE_COMMAND,
    tables: tuple[str, ...] = ("clt", "linearisation", "implicit_bias", "deep"),
    workers: int = 2,
) -> dict[str, float]:
    """Run the ``paper`` preset and store each table as soon as it is done, with its wall time
    (:func:`mirrorlib.stored.write_stored`; ``root`` defaults to ``results/paper/``): ``clt``
    (resumable through ``checkpoint_dir``, ``workers`` seeds at once; see :func:`run_clt`),
    ``linearisation``,
    ``implicit_bias``, ``deep`` and ``deep_histograms`` (those of ``tables``). Returns the wall
    time of each."""
    from mirrorlib.stored import Provenance, write_stored

    cfg = config("paper")
    runs = {
        "clt": lambda: run_clt(cfg, checkpoint_dir, workers),
        "linearisation": lambda: run_linearisation(cfg),
        "implicit_bias": lambda: run_implicit_bias(cfg),
        "deep": lambda: run_deep(cfg),
    }
    times = {}
    unknown = sorted(set(tables) - set(runs))
    if unknown:
        raise InputError(f"unknown table(s) {unknown}; choose from {list(runs)}")
    for name in tables:
        run = runs[name]
        start = time.perf_counter()
        result = run()
        times[name] = time.perf_counter() - start
        names = (name, f"{name}_histograms") if name == "deep" else (name,)
        results = result if name == "deep" else (result,)
        for table_name, table in zip(names, results, strict=True):
            wall = times[name]
            record = Provenance.of_this_run(command, wall, note=note)
            write_stored(table, STORED_CHAPTER, table_name, record, root=root)
    return times
