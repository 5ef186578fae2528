"""The ``python -m mirrorlib finetune`` command: the deep-network sweep of
:mod:`mirrorlib.experiments.deep_networks`, run by :mod:`mirrorlib.sweep` here or on Ray."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from mirrorlib import sweep
from mirrorlib.experiments.deep_networks import (
    PRESETS,
    DeepNetworksConfig,
    RunSpec,
    check_folder,
    collect,
    config,
    execute_sweep,
    recovery_table,
    restore_runs,
    search_seconds,
    select_specs,
    store_runs,
    stored_sweep,
    sweep_tasks,
)
from mirrorlib.recovery import InputError
from mirrorlib.results import _check_name
from mirrorlib.stored import Provenance

__all__ = ["COMMAND_HELP", "add_arguments", "main"]

COMMAND_HELP = """\
Run the deep-network finetuning sweep, or the part of it not yet done.

Each run finetunes one pretrained network with one trained potential and seed, scores every
candidate potential, and writes its rows to OUT/runs/<run id>.csv: a file that carries its
checksum, row and column counts, written atomically. A rerun runs only the runs whose file is
missing or damaged, and a run stopped part-way goes on from its last checkpoint (in
OUT/.checkpoints/, at most a minute apart); the pretrained networks and learning-rate searches
are stored in OUT too and shared by every seed. Processes started on the same OUT (here, or
on machines that mount it) share the work: each claims a run or search before running it, so
each runs once. At the end the recovery table is printed.

Examples:
  python -m mirrorlib finetune --scale ci --out sweep/
  python -m mirrorlib finetune --scale paper --device cuda --ray --out sweep/
  python -m mirrorlib finetune --scale paper --ray auto --out /shared/sweep/
  python -m mirrorlib finetune --scale paper --part 2/4 --out sweep/
  python -m mirrorlib finetune --scale paper --threads 1 --out sweep/ &   # twice: two cores
  python -m mirrorlib finetune --scale paper --from-stored --out sweep/   # a new machine
  python -m mirrorlib finetune --scale paper --networks mlp-32 --out sweep/ --store my_mlp
  python -m mirrorlib finetune --scale paper --out sweep/ --store my_sweep --no-run   # so far

Exit status: 0 every selected run is done, 1 a run failed (named in the summary), 2 bad
arguments (one line on stderr).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m mirrorlib finetune``."""
    parser.add_argument(
        "--scale", choices=sorted(PRESETS), default="ci",
        help="ci: minutes on two CPU cores; paper: the paper's protocol (default: ci)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default="_build/results/deep_networks", metavar="DIR",
        help="the sweep folder (default: _build/results/deep_networks)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"),
        help="auto (default): cuda when there is a GPU (with --ray: in the cluster), else cpu",
    )  # fmt: skip
    parser.add_argument(
        "--part", default="1/1", metavar="I/K",
        help="run only slice I of K (1-based, every K-th run), e.g. 2/4 on the second of four "
        "machines without Ray (default: 1/1)",
    )  # fmt: skip
    parser.add_argument(
        "--networks", nargs="+", metavar="NAME", help="only these networks (default: all)"
    )
    parser.add_argument(
        "--seeds", type=int, metavar="N", help="number of seeds, at least 1 (default: the scale's)"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help="torch CPU threads per run, and CPUs per Ray task (default: torch's own; 1 per "
        "Ray task)",
    )  # fmt: skip
    parser.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="run each run as a Ray task: without ADDRESS on a Ray started on this machine "
        "(all its cores and GPUs); with 'auto' or a cluster's address, on that cluster",
    )  # fmt: skip
    parser.add_argument(
        "--ray-results", choices=sweep.RESULT_MODES, default="driver",
        help="driver (default): results return through Ray and this process writes them; "
        "shared: each worker writes its own files (OUT on a filesystem every node mounts)",
    )  # fmt: skip
    parser.add_argument(
        "--from-stored", action="store_true",
        help="(paper scale) first copy the stored runs of results/paper/deep_networks/ and "
        "their learning rates into OUT, so that only the runs not stored yet run",
    )  # fmt: skip
    parser.add_argument(
        "--store", metavar="NAME",
        help="(paper scale) after the sweep, store its finished runs of the selected networks "
        "as results/paper/deep_networks/NAME.csv.gz with their provenance (this checkout's "
        "commit, the command, this device, the date, the runs' and searches' own times); an "
        "existing NAME must come back unchanged, and gains the new runs",
    )  # fmt: skip
    parser.add_argument(
        "--note", metavar="TEXT",
        help="with --store: a sentence for the stored record's note (say, where runs ran "
        "that this machine did not run)",
    )  # fmt: skip
    parser.add_argument(
        "--no-run", action="store_true",
        help="with --store: run nothing, and store the runs finished so far (the rest can be "
        "stored later, when they are done)",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="print the run ids and exit")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run (a slice of) the sweep; print the summary and the recovery table. Returns the exit
    status: 0 done, 1 a run failed, 2 bad arguments (one line on stderr)."""
    from mirrorlib.book import BookError

    if not isinstance(args, argparse.Namespace):
        from mirrorlib.cli import OneLineParser

        parser = OneLineParser(prog="python -m mirrorlib finetune")
        add_arguments(parser)
        args = parser.parse_args(args)
    try:
        return _main(args)
    except (InputError, BookError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from mirrorlib.book import resolve_device

    overrides = {"n_seeds": args.seeds} if args.seeds is not None else {}
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        overrides["threads"] = args.threads
    if args.from_stored and args.scale != "paper":
        raise InputError("--from-stored continues the stored paper-scale sweep: add --scale paper")
    _check_store(args)
    cfg = config(args.scale, **overrides)
    try:
        i, k = (int(v) for v in args.part.split("/"))
    except ValueError:
        i = k = 0
    if not 1 <= i <= k:
        raise InputError(f"--part must be i/k with 1 <= i <= k, got {args.part!r}")
    specs = select_specs(cfg, (i - 1, k), args.networks)
    if args.list:
        for spec in specs:
            print(spec.run_id)
        return 0
    if args.ray is None:
        executor, device = "local", resolve_device(args.device)
    check_folder(cfg, args.out)
    if args.from_stored:
        runs, rates = restore_runs(cfg, args.out, stored_sweep()[0])
        print(f"copied {runs} stored run(s) and {rates} learning rate(s) into {args.out}")
    if args.ray is not None:
        executor = sweep.RayExecutor(None if args.ray == "local" else args.ray, args.ray_results)
        device = _cluster_device(args.device, executor, cfg, specs, args.out)
    report = None
    if not args.no_run:
        report = execute_sweep(cfg, args.out, device, specs, executor, progress=True)
        print(report.format())
    every = collect(args.out, cfg)  # the whole sweep's finished runs, read once
    # --no-run and --store take whole networks (no --part): the selected networks' rows
    networks = {s.architecture for s in specs}
    table = every[every["architecture"].isin(networks)].reset_index(drop=True)
    if args.no_run:
        finished = len(table) // len(cfg.candidates)  # a row per candidate
        print(f"runs: {finished} of {len(specs)} finished; none run here (--no-run)")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(recovery_table(every).to_string(index=False))
    if args.store is not None:
        record = Provenance.of_this_run(_command(args), 0.0, device, args.note or "")
        if args.ray is not None:
            record = replace(record, device=f"Ray cluster ({args.ray}), {device}")
        searched = search_seconds(cfg, args.out, specs)
        stored, added = store_runs(table, args.store, record, searched)
        if added:
            print(f"stored as results/paper/deep_networks/{args.store} ({added} new run(s)): "
                  f"{stored.note}")  # fmt: skip
        else:
            print(f"nothing stored: results/paper/deep_networks/{args.store} holds these runs")
    return 1 if report is not None and report.failed else 0


def _check_store(args: argparse.Namespace) -> None:
    """``--store``, ``--note`` and ``--no-run``: refused before anything runs."""
    for flag, given in (("--note", args.note is not None), ("--no-run", args.no_run)):
        if given and args.store is None:
            raise InputError(f"{flag} goes with --store NAME")
    if args.no_run and args.ray is not None:
        raise InputError("--no-run runs nothing: leave out --ray")
    if args.store is None:
        return
    if args.scale != "paper":
        raise InputError("--store writes a stored paper-scale table: add --scale paper")
    if args.part != "1/1":
        raise InputError("--store takes the whole sweep: store once every --part is done")
    try:
        _check_name(args.store, ".csv", ".csv.gz", ".json")
    except ValueError as err:
        raise InputError(f"--store: {err}") from None


def _command(args: argparse.Namespace) -> str:
    """The command line that ``args`` stands for, as a stored record gives it."""
    words = ["python -m mirrorlib finetune", f"--scale {args.scale}"]
    if args.networks:
        words.append("--networks " + " ".join(args.networks))
    for flag, value in (("--seeds", args.seeds), ("--threads", args.threads),
                        ("--device", args.device), ("--ray", args.ray)):  # fmt: skip
        if value is not None:
            words.append(f"{flag} {value}")
    words += [flag for flag, on in (("--from-stored", args.from_stored),
                                    ("--no-run", args.no_run)) if on]  # fmt: skip
    return " ".join([*words, f"--out {args.out}", f"--store {args.store}"])


def _cluster_device(
    device: str,
    executor: sweep.RayExecutor,
    cfg: DeepNetworksConfig,
    specs: Sequence[RunSpec],
    out_dir,
) -> str:
    """``--device`` with ``--ray``: ``auto`` is cuda when the cluster has a GPU; ``cuda``
    needs one. Ray is not started when every run is done already."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'mirrorlib[cluster]'") from None
    runs = [t for t in sweep_tasks(cfg, specs) if t.is_run]
    if all(sweep.is_stored(t.path(out_dir), t.codec) for t in runs):
        return "cpu"  # nothing will run
    executor.connect()
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" and not gpus:
        raise InputError("--device cuda, but the Ray cluster has no GPU")
    return "cuda" if device == "cuda" or (device == "auto" and gpus) else "cpu"
