"""The deep-network sweep as tasks of :mod:`mirrorlib.sweep` (:func:`sweep_tasks`,
:func:`execute_sweep`, :func:`run_sweep`), its folder, and its results read back as tables
(:func:`collect`, :func:`summary`, :func:`recovery_table`, the stored CPU sweep)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mirrorlib import networks as nw
from mirrorlib import sweep
from mirrorlib.experiments.deep_networks.prose import runs_by_seed, runs_held
from mirrorlib.experiments.deep_networks.runs import (
    _lr_task,
    _pretrain_task,
    _resources,
    _state_dep,
    finetune_run,
    n_samples,
)
from mirrorlib.experiments.deep_networks.settings import (
    COLUMNS,
    RUN_KEYS,
    DeepNetworksConfig,
    RunSpec,
    run_specs,
)
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import InputError
from mirrorlib.stored import Provenance
from mirrorlib.words import duration_in_words

# --------------------------------------------------------------------------- the sweep


def select_specs(
    cfg: DeepNetworksConfig,
    part: tuple[int, int] = (0, 1),
    architectures: Sequence[str] | None = None,
) -> list[RunSpec]:
    """The runs of ``cfg`` in slice ``part=(i, k)`` (specs ``i, i + k, ...``, 0-based), of the
    networks in ``architectures`` (all when ``None``). An architecture that is not in the sweep
    raises :class:`InputError` listing those that are."""
    i, k = part
    if not (k >= 1 and 0 <= i < k):
        raise InputError(f"part must be (i, k) with 0 <= i < k, got {part}")
    specs = run_specs(cfg)
    if architectures is not None:
        known = list(dict.fromkeys(s.architecture for s in specs))
        unknown = [a for a in architectures if a not in known]
        if unknown:
            raise InputError(
                f"no network(s) {', '.join(unknown)} in this sweep; choose from {', '.join(known)}"
            )
        specs = [s for s in specs if s.architecture in set(architectures)]
    return specs[i::k]


def sweep_tasks(
    cfg: DeepNetworksConfig, specs: Sequence[RunSpec], device: str = "cpu"
) -> list[sweep.Task]:
    """The tasks of ``specs``: one run each (``runs/<run_id>.csv``), each needing its network's
    pretraining (``pretrained/<architecture>.pt``) and, when its grid has more than one
    learning rate, the search of its (network, objective, potential) (``lr/...json``): these
    run once, and every seed reuses them. A run keeps a checkpoint of its finetuning, so an
    interrupted run resumes from its last one (:func:`finetune_run`)."""
    tasks: dict[str, sweep.Task] = {}
    for spec in specs:
        setup = cfg.setup(spec.architecture)
        deps = _state_dep(setup)
        if deps:
            task = _pretrain_task(setup, cfg, device)
            tasks.setdefault(task.key, task)
        args = (spec, cfg, device)
        grid = cfg.lr_grid(spec.architecture, spec.trained_potential, spec.objective)
        if len(grid) == 1:
            args += (float(grid[0]),)
        else:
            task = _lr_task(setup, spec.trained_potential, spec.objective, cfg, device)
            tasks.setdefault(task.key, task)
            deps = (("lr", task.key), *deps)
        run = sweep.Task(
            f"runs/{spec.run_id}", finetune_run, args, deps, _RUN_CODEC,
            checkpoint=True, **_resources(cfg, device),
        )  # fmt: skip
        tasks[run.key] = run
    return list(tasks.values())


_RUN_CODEC = sweep.table_codec(COLUMNS)


def execute_sweep(
    cfg: DeepNetworksConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
    specs: Sequence[RunSpec] | None = None,
    executor: str | sweep.RayExecutor = "local",
    progress: bool = False,
) -> sweep.SweepReport:
    """Run every spec of ``specs`` (default: all of ``cfg``) whose run file in ``out_dir`` is
    missing or damaged, with the pretrainings and learning-rate searches they need
    (:func:`sweep_tasks`), on ``executor`` (``"local"``, or a :class:`mirrorlib.sweep.RayExecutor`);
    return the report. ``device`` is ``"cpu"`` or ``"cuda"``. Refuses a folder of other
    settings (:func:`check_folder`)."""
    check_folder(cfg, out_dir)
    specs = run_specs(cfg) if specs is None else specs
    threads = cfg.threads or None
    return sweep.run_tasks(sweep_tasks(cfg, specs, device), out_dir, executor, progress, threads)


def run_sweep(
    cfg: DeepNetworksConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
    part: tuple[int, int] = (0, 1),
    progress: bool = False,
    architectures: Sequence[str] | None = None,
    executor: str | sweep.RayExecutor = "local",
) -> pd.DataFrame:
    """Run the specs of ``cfg`` not yet done (:func:`execute_sweep`) and return the table of
    every finished run (:func:`collect`). ``part`` and ``architectures`` select the runs
    (:func:`select_specs`): ``k`` machines without Ray can share a sweep with ``part=(i, k)``.
    ``device``: ``"auto"`` picks CUDA when available. Raises :class:`RuntimeError` naming the
    runs that failed (after every other run has finished)."""
    from mirrorlib.book import resolve_device

    specs = select_specs(cfg, part, architectures)
    report = execute_sweep(cfg, out_dir, resolve_device(device), specs, executor, progress)
    if report.failed:
        failures = "; ".join(f"{o.key}: {o.error}" for o in report.failed)
        raise RuntimeError(f"{len(report.failed)} task(s) of the sweep failed: {failures}")
    return collect(out_dir, cfg)


def restore_runs(
    cfg: DeepNetworksConfig, out_dir: str | os.PathLike, table: pd.DataFrame, device: str = "cpu"
) -> tuple[int, int]:
    """Write into ``out_dir`` the finished runs of ``table`` (:func:`collect`'s columns, e.g.
    :func:`stored_sweep`'s) that are specs of ``cfg``, each as its run file, and for each
    (network, objective, trained potential) among them whose grid is searched, the search's
    choice as its learning-rate record: the largest rate among its seeds (a run that diverged
    is retried only at smaller rates), with no trials. A sweep started on ``out_dir`` then runs
    only the runs still missing, at the same rates: a new machine continues a stored sweep.
    Files already in ``out_dir`` are kept. Returns (runs written, records written)."""
    check_folder(cfg, out_dir)
    specs = {
        (s.architecture, s.objective, make_potential(s.trained_potential).name, s.seed): s
        for s in run_specs(cfg)
    }
    runs = written = 0
    chosen: dict[tuple[str, str, str], float] = {}
    for (arch, objective, pot, seed), rows in table.groupby(list(RUN_KEYS), sort=False):
        spec = specs.get((arch, objective, pot, seed))
        if spec is None:
            continue
        if len(rows) != len(cfg.candidates):
            raise InputError(
                f"run {spec.run_id} has {len(rows)} rows in the table, not one per candidate "
                f"({len(cfg.candidates)})"
            )
        path = Path(out_dir) / "runs" / f"{spec.run_id}.csv"
        if not path.exists():
            sweep.write_file(path, rows[list(COLUMNS)].reset_index(drop=True), _RUN_CODEC)
            runs += 1
        key = (arch, objective, pot)
        chosen[key] = max(chosen.get(key, 0.0), float(rows["lr"].max()))
    for (arch, objective, pot), lr in chosen.items():
        grid = cfg.lr_grid(arch, pot, objective)
        task = _lr_task(cfg.setup(arch), pot, objective, cfg, device)
        if len(grid) > 1 and not task.path(out_dir).exists():
            record = {"lr": lr, "grid": list(grid), "trials": [], "restored": "from the runs"}
            task.store(out_dir, record)
            written += 1
    return runs, written


def check_folder(cfg: DeepNetworksConfig, out_dir: str | os.PathLike) -> None:
    """Record ``cfg`` in ``out_dir/config.json``; refuse (:class:`InputError`, one line) a path
    that is not a folder, a damaged ``config.json``, or a folder holding another config's runs
    (their rows would silently mix with this one's). ``n_seeds`` and the lists of networks and
    objectives may grow: their runs are independent."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a folder: give a folder for the sweep")
    path = out_dir / "config.json"
    mine = _fingerprint(cfg)
    if path.is_file():
        try:
            theirs = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"damaged {path} ({err}): delete the folder to start again") from None
        if theirs != mine:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise InputError(
                f"{out_dir} holds a sweep with other settings ({', '.join(changed)}): use "
                "another folder, or delete it to start again"
            )
    else:
        sweep.write_atomic(path, json.dumps(mine, indent=1).encode())


def _fingerprint(cfg: DeepNetworksConfig) -> dict:
    """The settings a run's result depends on (JSON-ready)."""
    skip = {"n_seeds", "networks", "objectives", "ssl_networks", "threads"}
    out = {k: v for k, v in asdict(cfg).items() if k not in skip}
    return json.loads(json.dumps(out))


def sweep_folder(results_dir: str | os.PathLike, cfg: DeepNetworksConfig) -> Path:
    """``results_dir/deep_networks_<hash>``: a sweep folder named after the settings its runs
    depend on, so that a changed configuration never reuses another's runs."""
    import hashlib

    settings = {**_fingerprint(cfg), "networks": json.loads(json.dumps(asdict(cfg)["networks"]))}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return Path(results_dir) / f"deep_networks_{digest[:10]}"


def network_table(cfg: DeepNetworksConfig) -> pd.DataFrame:
    """One row per network of ``cfg``: analysed weights ``D``, examples ``N``, where its
    pretrained weights come from, and its finetuning data."""
    rows = []
    for s in cfg.networks:
        arch = nw.architecture(s.architecture)
        source = (
            f"checkpoint ({arch.package[0]})"
            if arch.pretrained_elsewhere
            else f"SGD here on {s.pretrain_data}"
        )
        rows.append({
            "architecture": s.architecture, "n_weights": nw.n_analysed(s.architecture),
            "n_samples": n_samples(s), "pretrained": source,
            "finetune_data": f"{s.finetune_data} ({s.finetune_split})"
            + (f", {s.image_size} px" if s.image_size else ""),
            "head": "new" if s.new_head else "kept",
        })  # fmt: skip
    return pd.DataFrame(rows)


STORED_CHAPTER = "deep_networks"
"""The chapter folder of the stored tables: ``results/paper/deep_networks/``."""

STORED_SWEEPS = (
    "sweep_runs",
    "sweep_runs_simsiam",
    "sweep_runs_resnet_small",
    "sweep_runs_efficientnet",
)
"""The stored tables (``results/paper/deep_networks/``) of the CPU sweep at the ``paper``
protocol, in the order they were run; each has :func:`collect`'s columns."""


def stored_sweep(root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, list]:
    """The stored CPU sweep at the ``paper`` protocol: every table of :data:`STORED_SWEEPS`
    in one, and their :class:`mirrorlib.stored.Provenance` records."""
    from mirrorlib.stored import read_stored

    parts = [read_stored(STORED_CHAPTER, name, root) for name in STORED_SWEEPS]
    return pd.concat([t for t, _ in parts], ignore_index=True), [p for _, p in parts]


def store_runs(
    table: pd.DataFrame,
    name: str,
    record: Provenance,
    searches_s: float = 0.0,
    root: str | os.PathLike | None = None,
) -> tuple[Provenance, int]:
    """Store the finished runs ``table`` (:func:`collect`'s columns) as the paper-scale table
    ``deep_networks/<name>`` (:func:`mirrorlib.stored.write_stored`) with ``record``'s commit,
    command, device, torch and date; its wall time is the sum of the runs' own times
    (``seconds``) and ``searches_s`` (the learning-rate searches', :func:`search_seconds`),
    and its note says what the table holds (:func:`runs_held`), then ``record.note``.

    Where ``name`` is stored already, every stored run must be in ``table`` with the same
    values (:class:`InputError`, naming the first that is not: a stored result is never
    replaced silently). The new record then keeps the part of the old wall time beyond its
    runs' (the searches its runs used) in place of ``searches_s``, and its note names the
    runs added and quotes the old record. ``record`` describes the checkout and machine that
    store the table: where runs ran elsewhere or at another commit, say so in ``record.note``.
    Nothing is written when no run is new. Returns the record in force and the number of runs
    added."""
    from mirrorlib.stored import read_stored, write_stored

    if table.empty:
        raise InputError(f"no finished runs to store as {name}")
    keys = list(RUN_KEYS)
    runs = table.drop_duplicates(keys)
    seconds = float(runs["seconds"].sum())
    try:
        old, old_record = read_stored(STORED_CHAPTER, name, root)
    except FileNotFoundError:
        searches = (
            f" and the learning-rate searches' ({duration_in_words(searches_s)})"
            if searches_s
            else ""
        )
        history = f"The wall time is the sum of the runs' own times{searches}."
        wall, added = seconds + searches_s, runs
    else:
        _check_kept(old, table, name)
        old_runs = old.drop_duplicates(keys)
        added = runs.merge(old_runs[keys], on=keys, how="left", indicator=True)
        added = added[added.pop("_merge") == "left_only"]
        if added.empty:
            return old_record, 0
        wall = old_record.wall_time_s - float(old_runs["seconds"].sum()) + seconds
        history = (
            f"{len(added)} of them ({runs_by_seed(added)}) were stored at commit "
            f"{record.commit[:7]}, joining the {len(old_runs)} stored at commit "
            f"{old_record.commit[:7]} on {old_record.date}, whose record read: "
            f"\u201c{old_record.note}\u201d"
        )
    note = " ".join(part for part in (f"{runs_held(table)}.", history, record.note) if part)
    record = replace(record, wall_time_s=wall, note=note)
    return write_stored(table, STORED_CHAPTER, name, record, root), len(added)


def search_seconds(
    cfg: DeepNetworksConfig, out_dir: str | os.PathLike, specs: Sequence[RunSpec]
) -> float:
    """The wall time of the learning-rate searches in ``out_dir`` that ``specs`` use, as their
    records give it (records without a time, such as :func:`restore_runs`', count 0)."""
    keys = {(s.architecture, make_potential(s.trained_potential).name, s.objective) for s in specs}
    total = 0.0
    for arch, pot, objective in keys:
        if len(cfg.lr_grid(arch, pot, objective)) > 1:
            task = _lr_task(cfg.setup(arch), pot, objective, cfg, "cpu")
            if sweep.is_stored(task.path(out_dir), task.codec):
                total += float(sweep.read_file(task.path(out_dir), task.codec).get("seconds", 0))
    return total


def _check_kept(old: pd.DataFrame, table: pd.DataFrame, name: str) -> None:
    """Every row of the stored table ``old`` is in ``table`` with the same values: strings and
    flags equal, numbers within 1e-12 of each other relative to the larger, NaN where NaN."""
    keys = [*RUN_KEYS, "candidate"]
    both = old.merge(table, on=keys, how="left", suffixes=("", "_now"), indicator=True)

    def run_of(row: pd.Series) -> str:
        return RunSpec(row["architecture"], row["trained_potential"], int(row["seed"]),
                       row["objective"]).run_id  # fmt: skip

    lacking = both[both["_merge"] == "left_only"]
    if not lacking.empty:
        raise InputError(
            f"the stored table {name} has run {run_of(lacking.iloc[0])}, which the sweep folder "
            "lacks: add --from-stored to copy the stored runs into it"
        )
    for column in old.columns.difference(keys):
        was, now = both[column], both[f"{column}_now"]
        numbers = all(
            pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v)
            for v in (was, now)
        )
        if numbers:
            same = (was - now).abs() <= 1e-12 * np.maximum(was.abs(), now.abs())
        else:
            same = was == now
        differs = ~(same | (was.isna() & now.isna()))
        if differs.any():
            i = differs.idxmax()
            raise InputError(
                f"run {run_of(both.loc[i])} differs from the stored table {name} ({column} "
                f"{now[i]!r}, stored {was[i]!r}): store it under another name, or delete the "
                "stored table"
            )


def collect(
    out_dir: str | os.PathLike,
    cfg: DeepNetworksConfig | None = None,
    specs: Sequence[RunSpec] | None = None,
) -> pd.DataFrame:
    """Every finished run under ``out_dir/runs/`` as one table (only those of ``specs``, or
    else of ``cfg``'s specs, when given), sorted by network size, objective, trained potential,
    seed and candidate. Each file is checked (:func:`mirrorlib.sweep.read_file`): a damaged one
    raises :class:`mirrorlib.sweep.DamagedFile` naming it."""
    folder = Path(out_dir) / "runs"
    if specs is None and cfg is not None:
        specs = run_specs(cfg)
    wanted = {s.run_id for s in specs} if specs is not None else None
    frames = [
        sweep.read_file(f, _RUN_CODEC)
        for f in sorted(folder.glob("*.csv"))
        if wanted is None or f.stem in wanted
    ]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    keys = ["n_weights", *RUN_KEYS, "candidate"]
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each candidate's Delta-CDF, per (network, objective, trained
    potential), with the number of seeds and the mean epochs and training accuracy."""
    keys = ["architecture", "n_weights", "objective", "trained_potential", "candidate"]
    g = table.groupby(keys, sort=False)
    out = g.agg(
        delta_cdf=("delta_cdf", "mean"),
        delta_cdf_std=("delta_cdf", "std"),
        delta_cdf_uncentred=("delta_cdf_uncentred", "mean"),
        delta_cdf_moved=("delta_cdf_moved", "mean"),
        delta_cdf_per_tensor=("delta_cdf_per_tensor", "mean"),
        frac_unchanged=("frac_unchanged", "mean"),
        relative_change=("relative_change", "mean"),
        n_seeds=("seed", "nunique"),
        epochs=("epochs", "mean"),
        train_accuracy=("train_accuracy", "mean"),
        excluded=("excluded", "mean"),
        floor=("floor", "mean"),
    )
    return out.reset_index()


def recovery_table(table: pd.DataFrame, column: str = "delta_cdf") -> pd.DataFrame:
    """Trained vs recovered geometry, one row per (network, objective, trained potential).

    ``recovered``: the candidate with the lowest mean of ``column`` (default ``delta_cdf``)
    over seeds; ``correct``: it is
    the trained one; ``seeds_correct``: fraction of seeds whose own best is the trained one;
    ``relative_change``: mean over seeds of the trained potential's relative dual change
    ``||grad_phi(w) - grad_phi(w0)|| / ||grad_phi(w0)||``, each in its own dual space;
    ``weight_change``: mean over seeds of ``||w - w0|| / ||w0||``, the same units for every
    potential (the 2-norm candidate's relative dual change, its dual map being the identity;
    NaN when the 2-norm is not a candidate);
    ``p_best``: mean over seeds of the bootstrap probability that the trained potential is
    best (:func:`mirrorlib.recovery.scan_geometry`); ``ruled_out``: fraction of seeds in which
    every other non-excluded candidate is worse than the trained one at the bootstrap's
    confidence; ``margin``: the runner-up's mean Delta-CDF minus the recovered one's.
    """
    rows = []
    keys = ["architecture", "n_weights", "objective", "trained_potential"]
    for key, sub in table.groupby(keys, sort=False):
        means = sub.groupby("candidate")[column].mean().dropna().sort_values()
        trained = key[3]
        own = sub[sub["candidate"] == trained]
        two_norm = sub.loc[sub["candidate"] == "2-norm", "relative_change"]
        per_seed = sub.groupby("seed")
        others_out = per_seed.apply(
            lambda s, t=trained: bool(
                (s.loc[s["candidate"] != t, "indistinguishable"].astype(str) != "True").all()
                and (s.loc[s["candidate"] == t, "best"] == t).all()
            ),
            include_groups=False,
        )
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "n_samples": int(sub["n_samples"].iloc[0]),
            "n_seeds": int(sub["seed"].nunique()),
            "epochs": float(own["epochs"].mean()),
            "train_accuracy": float(own["train_accuracy"].mean()),
            "relative_change": float(own["relative_change"].mean()),
            "weight_change": float(two_norm.mean()) if len(two_norm) else math.nan,
            "recovered": means.index[0] if len(means) else "none",
            "correct": bool(len(means) and means.index[0] == trained),
            "delta_cdf_trained": float(means.get(trained, math.nan)),
            "margin": float(means.iloc[1] - means.iloc[0]) if len(means) > 1 else math.nan,
            "seeds_correct": float((own["best"] == trained).mean()),
            "p_best": float(own["p_best"].mean()),
            "ruled_out": float(others_out.mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)
