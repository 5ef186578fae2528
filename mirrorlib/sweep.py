"""Sweeps of independent tasks, resumable, on this machine or on a Ray cluster.

A sweep is a list of :class:`Task` s. Each task's result is stored as one file in the sweep
folder (``<folder>/<key><suffix>``), so a sweep resumes where it stopped: a rerun runs only the
tasks whose file is missing or damaged (:func:`run_tasks`). A task may need the results of
others (``deps``, e.g. every seed of a network needs its learning-rate search); those run once,
before the tasks that need them, and a stored result is read back instead of rerun. A long
task may keep a checkpoint (``Task.checkpoint``) in ``<folder>/.checkpoints/``, so that an
interrupted run goes on from its last checkpoint rather than from the start.

**Files.** Every file starts with one line giving what the rest must be,
``#mirrorlib-sweep-file sha256=<hex> bytes=<n> rows=<r> columns=<c>``, followed by the data.
It is written to a temporary file beside its name, fsynced, renamed into place (atomic) and
its folder fsynced, so a crash or a kill leaves either the old state or the whole file. A file
whose data is truncated, extended, altered, or whose table has other rows or columns is
*damaged*: :func:`run_tasks` names it and runs its task again, :func:`read_file` raises
:class:`DamagedFile` naming it. Nothing is read without its checksum.

**Executors.** ``executor="local"`` runs the tasks one after the other in this process.
Several such processes may share one folder (the same sweep started twice, on one machine or on
machines that mount the folder; ``finetune --part`` slices that need the same learning-rate
search): each claims a task (a file lock in ``<folder>/.claims/``) before running it, so every
task runs once; a process passes over the tasks claimed by others and reads their results from
their files when they are done. A claim dies with its process, so a killed process blocks
nothing.
``executor="ray"`` (:class:`RayExecutor`) makes each task a Ray task with its resources
(``num_gpus`` on a GPU; ``num_cpus`` and as many torch threads on a CPU). A task whose worker
or node dies is retried by Ray (``max_retries``); a task that raises (its own failure: bad
data, say) is reported once and not retried; the tasks that need it are reported with it. The
results reach the folder in one of two modes:

- ``"driver"`` (default): each task's result travels back through Ray and the driver writes
  its file. The workers need no access to the sweep folder.
- ``"shared"``: each worker writes its own file into the sweep folder (a filesystem that every
  node mounts at the same path, e.g. NFS under SLURM), and the driver checks the file when the
  task finishes. Results then survive the loss of the driver.

In both modes results needed by other tasks travel to them through Ray, never through files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mirrorlib.recovery import InputError
from mirrorlib.threads import cpu_threads

__all__ = [
    "RESULT_MODES",
    "Codec",
    "DamagedFile",
    "RayExecutor",
    "SweepReport",
    "Task",
    "TaskOutcome",
    "cached",
    "is_stored",
    "json_codec",
    "read_file",
    "run_tasks",
    "table_codec",
    "torch_codec",
    "write_atomic",
    "write_file",
]

RESULT_MODES = ("driver", "shared")
_MAGIC = b"#mirrorlib-sweep-file"


class DamagedFile(InputError):
    """A sweep file that fails its own check (one line naming the file and what is wrong)."""


# --------------------------------------------------------------------------- files


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: a temporary file in the same folder,
    flushed and fsynced, renamed over ``path``, then the folder fsynced (so the rename itself
    survives a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@dataclass(frozen=True)
class Codec:
    """How a task's result becomes the data of its file and back: ``dump(result) -> (bytes,
    rows, columns)``, ``load(bytes) -> result`` (raising ``ValueError`` when the data does not
    parse), and ``check(result, rows, columns)`` (``ValueError`` when it disagrees with the
    header)."""

    suffix: str
    dump: Callable[[Any], tuple[bytes, int, int]]
    load: Callable[[bytes], Any]
    check: Callable[[Any, int, int], None] = lambda result, rows, columns: None


def table_codec(columns: Sequence[str]) -> Codec:
    """A :class:`pandas.DataFrame` with exactly ``columns``, stored as CSV."""
    columns = list(columns)

    def dump(table: pd.DataFrame) -> tuple[bytes, int, int]:
        if list(table.columns) != columns:
            raise ValueError(f"the table's columns {list(table.columns)} are not {columns}")
        return table.to_csv(index=False, lineterminator="\n").encode(), len(table), len(columns)

    def load(data: bytes) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(data))

    def check(table: pd.DataFrame, rows: int, n_columns: int) -> None:
        if list(table.columns) != columns or n_columns != len(columns):
            raise ValueError(f"columns {list(table.columns)}, expected {columns}")
        if len(table) != rows:
            raise ValueError(f"{len(table)} rows, expected {rows}")

    return Codec(".csv", dump, load, check)


def _dump_json(record: Any) -> tuple[bytes, int, int]:
    return json.dumps(record, indent=1, sort_keys=True, default=float).encode(), 1, 0


json_codec = Codec(".json", _dump_json, lambda data: json.loads(data.decode()))
"""A JSON record (one row, no columns)."""


def _dump_torch(obj: Any) -> tuple[bytes, int, int]:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue(), 1, 0


def _load_torch(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


torch_codec = Codec(".pt", _dump_torch, _load_torch)
"""A tensor or a dict of tensors (a state dict), stored with ``torch.save``."""


def write_file(path: str | os.PathLike, result: Any, codec: Codec) -> None:
    """Store ``result`` at ``path`` with its header line (checksum, size, rows, columns),
    atomically and durably (:func:`write_atomic`)."""
    data, rows, columns = codec.dump(result)
    digest = hashlib.sha256(data).hexdigest()
    header = f"{_MAGIC.decode()} sha256={digest} bytes={len(data)} rows={rows} columns={columns}\n"
    write_atomic(path, header.encode() + data)


def read_file(path: str | os.PathLike, codec: Codec) -> Any:
    """The result stored at ``path`` by :func:`write_file`, after checking its header.

    Raises :class:`DamagedFile` naming the file when it lacks the header, when its data has
    another size or checksum (truncated, cut after its header, altered), or when the result has
    other rows or columns than the header says."""
    path = Path(path)
    raw = path.read_bytes()
    line, _, data = raw.partition(b"\n")
    try:
        magic, *fields = line.split(b" ")
        meta = dict(f.decode().split("=", 1) for f in fields)
        if magic != _MAGIC or set(meta) != {"sha256", "bytes", "rows", "columns"}:
            raise ValueError("no mirrorlib header line")
        if len(data) != int(meta["bytes"]):
            raise ValueError(f"{len(data)} bytes of data, expected {meta['bytes']}")
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ValueError("checksum mismatch")
        result = codec.load(data)
        codec.check(result, int(meta["rows"]), int(meta["columns"]))
    except Exception as err:  # any failure to parse is damage, named in one line
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise DamagedFile(f"damaged sweep file {path}: {reason}") from None
    return result


def is_stored(path: str | os.PathLike, codec: Codec) -> bool:
    """True when ``path`` holds a whole, valid result (:func:`read_file` accepts it)."""
    try:
        read_file(path, codec)
    except (OSError, DamagedFile):
        return False
    return True


# --------------------------------------------------------------------------- claims

_CLAIMS = ".claims"
_POLL_SECONDS = 10.0


class _Claim:
    """The exclusive claim of this process on one task of a sweep folder: a lock (``flock``)
    on ``<folder>/.claims/<key>.lock``. The operating system drops the lock when the process
    ends, however it ends, so a killed process leaves no stale claim."""

    def __init__(self, path: Path | None, handle=None):
        self.path, self.handle = path, handle

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)  # while still locked: no one keeps a stale inode
            self.handle.close()

    def __enter__(self) -> _Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _claim(folder: Path, key: str) -> _Claim | None:
    """Claim the task ``key`` of the sweep in ``folder`` for this process, or None when another
    process (here, or on a machine that shares the folder) holds it.

    Every process running tasks of the same folder (the same sweep started twice, or
    ``finetune --part`` slices that need the same learning-rate search) claims a task before
    running it, so each runs once. Without file locks (Windows) every claim succeeds."""
    try:
        import fcntl
    except ImportError:
        return _Claim(None)
    path = folder / _CLAIMS / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        same = os.path.exists(path) and os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except BlockingIOError:
        same = False
    if not same:  # held, or released and removed by its holder after we opened it
        handle.close()
        return None
    return _Claim(path, handle)


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One unit of a sweep: ``fn(*args, **results of deps)``, stored at
    ``<folder>/<key><suffix>``.

    ``deps`` pairs a parameter of ``fn`` with the key of the task whose result it receives:
    ``fn(*args, **{name: result of key})``. ``fn`` must be a module-level function (Ray sends
    it to the workers by reference).
    ``is_run``: a run of the sweep (counted by the progress bar and the summary), as opposed to
    a step that runs only because runs need it (a learning-rate search, a pretraining).
    ``checkpoint``: ``fn`` also takes ``checkpoint=``, a file where it keeps its progress and
    from which it resumes when the task runs again after an interruption: the sweep gives
    ``<folder>/.checkpoints/<key>.pt`` wherever the worker writes into the folder (here, or on
    Ray in ``"shared"`` mode; None in ``"driver"`` mode) and removes it once the result is
    stored.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    deps: tuple[tuple[str, str], ...] = ()
    codec: Codec = json_codec
    num_cpus: int = 1
    num_gpus: float = 0.0
    is_run: bool = True
    checkpoint: bool = False

    def path(self, folder: str | os.PathLike) -> Path:
        """Where the task's result is stored under ``folder``."""
        return Path(folder) / f"{self.key}{self.codec.suffix}"

    def checkpoint_path(self, folder: str | os.PathLike) -> Path:
        """Where the task keeps its progress under ``folder`` (when ``checkpoint``)."""
        return Path(folder) / ".checkpoints" / f"{self.key}.pt"

    def call(self, folder: str | os.PathLike | None, **dep_results: Any) -> Any:
        """``fn(*args, **dep_results)``, with ``checkpoint=`` its file under ``folder`` (None
        without a folder) when the task keeps one."""
        if not self.checkpoint:
            return self.fn(*self.args, **dep_results)
        where = None if folder is None else self.checkpoint_path(folder)
        return self.fn(*self.args, checkpoint=where, **dep_results)

    def store(self, folder: str | os.PathLike, result: Any) -> None:
        """Write the result's file under ``folder``, then drop the task's checkpoint there."""
        write_file(self.path(folder), result, self.codec)
        if self.checkpoint:
            self.checkpoint_path(folder).unlink(missing_ok=True)

    @property
    def dep_keys(self) -> list[str]:
        return [key for _, key in self.deps]


@dataclass
class TaskOutcome:
    """What became of one task: ``status`` is ``"done"`` (ran now), ``"stored"`` (its valid
    file was already there) or ``"failed"`` (``error`` says why)."""

    key: str
    status: str
    seconds: float = 0.0
    node: str = ""
    error: str = ""


@dataclass
class SweepReport:
    """The outcome of every task :func:`run_tasks` looked at, in the order of the tasks."""

    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    def ran(self) -> list[str]:
        """Keys of the tasks that ran in this call."""
        return [k for k, o in self.outcomes.items() if o.status == "done"]

    def table(self) -> pd.DataFrame:
        """One row per run: key, status, seconds, node (where it ran) and error."""
        rows = [vars(o) for k, o in self.outcomes.items() if k in self.runs]
        return pd.DataFrame(rows, columns=["key", "status", "seconds", "node", "error"])

    def format(self) -> str:
        """The summary printed after a sweep: runs per status, nodes used, and each failure."""
        table = self.table()
        counts = table["status"].value_counts()
        parts = [f"{counts.get(s, 0)} {s}" for s in ("done", "stored", "failed")]
        lines = [f"runs: {len(table)} ({', '.join(parts)})"]
        ran = table[table["status"] == "done"]
        if len(ran):
            per_node = ran.groupby("node")["seconds"].agg(["count", "sum"])
            for node, row in per_node.iterrows():
                name = f"node {node[:8]}" if node else "here"
                lines.append(f"  {name}: {int(row['count'])} runs, {row['sum']:.0f} s")
        lines += [f"FAILED {o.key}: {o.error}" for o in self.failed]
        return "\n".join(self.notes + lines)


def _one_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[-1]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def cached(folder: str | os.PathLike, task: Task, **dep_results: Any) -> Any:
    """The stored result of ``task`` in ``folder``; when it is missing or damaged, run the task
    here (with ``dep_results`` as its dependencies' results) and store it."""
    path = task.path(folder)
    if path.is_file():
        try:
            return read_file(path, task.codec)
        except DamagedFile as err:
            print(f"{err}; running it again", file=sys.stderr, flush=True)
    result = task.call(folder, **dep_results)
    task.store(folder, result)
    return result


def _plan(tasks: Sequence[Task], folder: Path, report: SweepReport) -> tuple[list[Task], dict]:
    """The tasks to run, in dependency order, and the stored results they need.

    A run runs when its file is missing or damaged; another task runs when a task that runs
    needs it and its own file is missing or damaged."""
    by_key = {t.key: t for t in tasks}
    if len(by_key) != len(tasks):
        raise InputError("two tasks of the sweep have the same key")
    stored: dict[str, Any] = {}
    needed: dict[str, Task] = {}

    def load(task: Task) -> bool:
        path = task.path(folder)
        if not path.is_file():
            return False
        try:
            stored[task.key] = read_file(path, task.codec)
        except DamagedFile as err:
            report.notes.append(f"{err}; running it again")
            return False
        return True

    def need(task: Task) -> None:
        if task.key in needed:
            return
        for dep in task.dep_keys:
            if dep not in by_key:
                raise InputError(f"task {task.key} needs {dep}, which is not in the sweep")
            dep_task = by_key[dep]
            if dep not in stored and dep not in needed and not load(dep_task):
                need(dep_task)
        needed[task.key] = task

    for task in tasks:
        if task.is_run:
            report.runs.add(task.key)
            if load(task):
                report.outcomes[task.key] = TaskOutcome(task.key, "stored")
                stored.pop(task.key)  # a finished run's result is not needed again here
            else:
                need(task)
    return list(needed.values()), stored


class _Progress:
    """A bar over the runs, with the counts of done, failed and running ones."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="runs", unit="run", disable=not enabled, file=sys.stderr)
        self.done = self.failed = 0

    def update(self, outcome: TaskOutcome, running: int, is_run: bool) -> None:
        if is_run:
            if outcome.status == "failed":
                self.failed += 1
            else:
                self.done += 1
            self.bar.update(1)
        self.show(running)
        if outcome.status == "failed":
            self.bar.write(f"FAILED {outcome.key}: {outcome.error}", file=sys.stderr)

    def show(self, running: int) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed, running=running, refresh=True)

    def close(self) -> None:
        self.bar.close()


def _dependency_failed(task: Task, outcomes: dict[str, TaskOutcome]) -> str | None:
    for dep in task.dep_keys:
        if dep in outcomes and outcomes[dep].status == "failed":
            return f"needs {dep}, which failed"
    return None


def _run_local(
    todo: Sequence[Task],
    stored: dict,
    folder: Path,
    report: SweepReport,
    progress: _Progress,
    threads: int | None,
) -> None:
    """Run ``todo`` here, in order, each task under its claim (:func:`_claim`). A task claimed
    by another process is passed over and read back from its file once that process is done;
    a task that needs it waits meanwhile (polling every ``_POLL_SECONDS``)."""
    results = dict(stored)
    waiting = list(todo)
    told: set[str] = set()
    while waiting:
        held = []
        for task in waiting:
            step = _take(task, folder, results, report)
            if step == _HELD:
                held.append(task.key)
            elif step is not None:
                break
        else:
            for key in sorted(set(held) - told):
                progress.bar.write(f"waiting for {key}: another process runs it", file=sys.stderr)
            told.update(held)
            progress.show(running=0)
            time.sleep(_POLL_SECONDS)
            continue
        waiting.remove(task)
        if isinstance(step, TaskOutcome):
            outcome = step
        else:
            with step:
                outcome = _run_here(task, folder, results, threads, progress)
        report.outcomes[task.key] = outcome
        progress.update(outcome, 0, task.is_run)


_HELD = "held"


def _take(task: Task, folder: Path, results: dict, report: SweepReport) -> Any:
    """What to do with ``task`` now: its :class:`TaskOutcome` when it is settled without
    running it here (a dependency failed, or its file is whole: stored by another process);
    its :class:`_Claim` when this process is to run it; ``_HELD`` when another process holds
    its claim; None when a dependency is not done yet."""
    reason = _dependency_failed(task, report.outcomes)
    if reason is not None:
        return TaskOutcome(task.key, "failed", error=reason)
    if _read_if_stored(task, folder, results):
        return TaskOutcome(task.key, "stored")
    if any(dep not in results for dep in task.dep_keys):
        return None
    claim = _claim(folder, task.key)
    if claim is None:
        return _HELD
    if _read_if_stored(task, folder, results):  # finished elsewhere meanwhile
        claim.release()
        return TaskOutcome(task.key, "stored")
    return claim


def _read_if_stored(task: Task, folder: Path, results: dict) -> bool:
    """Read ``task``'s result into ``results`` when its file is whole."""
    path = task.path(folder)
    if not path.is_file():
        return False
    try:
        results[task.key] = read_file(path, task.codec)
    except DamagedFile:  # being rewritten by nobody yet: this process will run it
        return False
    return True


def _run_here(
    task: Task, folder: Path, results: dict, threads: int | None, progress: _Progress
) -> TaskOutcome:
    start = time.perf_counter()
    progress.show(running=1)
    try:
        with cpu_threads(threads):
            result = task.call(folder, **{n: results[k] for n, k in task.deps})
        task.store(folder, result)
        results[task.key] = result
        error = ""
    except Exception as err:  # the task's own failure: reported, the sweep goes on
        error = _one_line(err)
    status = "failed" if error else "done"
    return TaskOutcome(task.key, status, time.perf_counter() - start, "", error)


def _execute_remote(
    task: Task, folder: str | None, **dep_results: Any
) -> tuple[Any, tuple[str, float]]:
    """The body of every Ray task: run ``task`` on as many torch threads as it has CPUs
    (on a CPU); with ``folder`` (shared mode) write its file there. Returns (as two Ray objects)
    the result, and the node it ran on with the seconds it took."""
    import ray
    import torch

    start = time.perf_counter()
    if task.num_gpus == 0:
        torch.set_num_threads(max(1, int(task.num_cpus)))
    result = task.call(folder, **dep_results)
    if folder is not None:
        task.store(folder, result)
    node = ray.get_runtime_context().get_node_id()
    return result, (node, time.perf_counter() - start)


@dataclass(frozen=True)
class RayExecutor:
    """Run a sweep's tasks as Ray tasks.

    ``address``: ``None`` starts Ray on this machine with all its cores and GPUs; ``"auto"`` or
    a cluster's address (``host:port``, ``ray://host:10001``) joins a running cluster.
    ``results``: ``"driver"`` or ``"shared"`` (see the module's docstring). ``max_retries``:
    how often a task whose worker or node died is started again."""

    address: str | None = None
    results: str = "driver"
    max_retries: int = 3

    def __post_init__(self):
        if self.results not in RESULT_MODES:
            raise InputError(f"results must be one of {RESULT_MODES}, got {self.results!r}")

    def connect(self) -> None:
        """Start or join Ray (a no-op when this process is connected already)."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=True, configure_logging=False)

    def run(
        self,
        todo: Sequence[Task],
        stored: dict,
        folder: Path,
        report: SweepReport,
        progress: _Progress,
    ) -> None:
        import ray

        self.connect()
        remote = ray.remote(_execute_remote)
        shared = str(folder.resolve()) if self.results == "shared" else None
        refs: dict[str, Any] = {key: ray.put(value) for key, value in stored.items()}
        pending: dict[Any, Task] = {}
        started: dict[str, float] = {}
        for task in todo:
            result_ref, info_ref = remote.options(
                num_returns=2,
                num_cpus=task.num_cpus,
                num_gpus=task.num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
                name=f"mirrorlib:{task.key}",
            ).remote(task, shared, **{n: refs[k] for n, k in task.deps})
            refs[task.key] = result_ref
            pending[info_ref] = task
            started[task.key] = time.perf_counter()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                task = pending.pop(ref)
                outcome = self._finish(task, refs[task.key], ref, folder, started)
                reason = _dependency_failed(task, report.outcomes)
                if outcome.status == "failed" and reason is not None:
                    outcome.error = reason
                report.outcomes[task.key] = outcome
                progress.update(outcome, self._running(pending), task.is_run)
            if not ready:
                progress.show(self._running(pending))

    def _finish(self, task: Task, result_ref, info_ref, folder: Path, started: dict) -> TaskOutcome:
        import ray
        from ray.exceptions import RayTaskError

        try:
            node, seconds = ray.get(info_ref)
            if self.results == "driver":
                result = ray.get(result_ref)
                task.store(folder, result)
            else:
                read_file(task.path(folder), task.codec)  # the worker's file must be whole
            return TaskOutcome(task.key, "done", seconds, node)
        except RayTaskError as err:  # the task (or one it needs) raised: not retried
            reason = _one_line(err.cause) if err.cause is not None else _one_line(err)
            return TaskOutcome(task.key, "failed", error=reason)
        except Exception as err:  # its worker died more than max_retries times, a bad file, ...
            seconds = time.perf_counter() - started[task.key]
            return TaskOutcome(task.key, "failed", seconds, error=_one_line(err))

    @staticmethod
    def _running(pending: dict) -> int:
        """Runs whose inputs are ready and whose results are not, up to the number the
        cluster's CPUs (GPUs for GPU runs) can hold at once: running, or about to."""
        import ray

        waiting = {t.key for t in pending.values()}
        ready = [t for t in pending.values() if t.is_run and not waiting.intersection(t.dep_keys)]
        if not ready:
            return 0
        capacity = ray.cluster_resources()
        first = ready[0]
        slots = (
            capacity.get("GPU", 0) / first.num_gpus
            if first.num_gpus
            else capacity.get("CPU", 0) / max(first.num_cpus, 1)
        )
        return min(len(ready), int(slots))


def run_tasks(
    tasks: Sequence[Task],
    folder: str | os.PathLike,
    executor: str | RayExecutor = "local",
    progress: bool = False,
    threads: int | None = None,
) -> SweepReport:
    """Run every run of ``tasks`` whose file in ``folder`` is missing or damaged, with the tasks
    they need (:class:`Task`), and store each result as it arrives; return the report.

    ``executor``: ``"local"`` (one after the other here, on ``threads`` torch threads when
    given; other local processes may run the same folder at the same time, each task running
    once) or a :class:`RayExecutor`. When nothing needs to run, nothing starts (not even Ray).
    A task that fails is reported in the outcome; the others go on (a task that failed in
    another process is tried again here)."""
    folder = Path(folder)
    report = SweepReport()
    todo, stored = _plan(tasks, folder, report)
    for note in report.notes:
        print(note, file=sys.stderr, flush=True)
    if not todo:
        return report
    bar = _Progress(sum(t.is_run for t in todo), progress)
    try:
        if executor == "local":
            _run_local(todo, stored, folder, report, bar, threads)
        elif isinstance(executor, RayExecutor):
            executor.run(todo, stored, folder, report, bar)
        else:
            raise InputError(f"unknown executor {executor!r}")
    finally:
        bar.close()
        order = [t.key for t in tasks if t.key in report.outcomes]  # not the order they ended
        report.outcomes = {key: report.outcomes[key] for key in order}
    return report
