"""The sweep machinery (mirrorlib.sweep): validated run files, resuming after damage and after a
SIGKILL, the finetune command's argument errors, and the Ray executor on a real two-node Ray
cluster started here on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from tiny_settings import tiny_deep_networks_config

from mirrorlib import cli, sweep
from mirrorlib.experiments import deep_networks as dn
from mirrorlib.experiments import finetuning as ft

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def _table() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", "y", "z"]})


CODEC = sweep.table_codec(["a", "b"])


def _tiny(**overrides) -> dn.DeepNetworksConfig:
    """One MLP on sklearn's digits, trained in the 2-norm only: two runs of a few seconds each."""
    return tiny_deep_networks_config(
        **{"lr_overrides": (), "trained_potentials": ("2-norm",), **overrides}
    )


# --------------------------------------------------------------------------- files


def test_a_run_file_reads_back_exactly_and_keeps_its_nans(tmp_path):
    path = tmp_path / "runs" / "r.csv"
    sweep.write_file(path, _table(), CODEC)
    pd.testing.assert_frame_equal(sweep.read_file(path, CODEC), _table())
    assert path.read_bytes().startswith(b"#mirrorlib-sweep-file sha256=")
    assert [p.name for p in path.parent.iterdir()] == ["r.csv"]  # no temporary file left


def _damage(data: bytes, how: str) -> bytes:
    header, _, body = data.partition(b"\n")
    return {
        "truncated": data[:-7],
        "header only": header + b"\n" + body.split(b"\n")[0] + b"\n",
        "nan written over a value": data.replace(b"3.0,z", b"nan,z"),
        "a row added": data + b"4.0,w\n",
        "no header line": body,
        "empty": b"",
    }[how]


@pytest.mark.parametrize(
    "how",
    ["truncated", "header only", "nan written over a value", "a row added", "no header line",
     "empty"],
)  # fmt: skip
def test_a_damaged_run_file_is_named_in_one_line(tmp_path, how):
    path = tmp_path / "r.csv"
    sweep.write_file(path, _table(), CODEC)
    path.write_bytes(_damage(path.read_bytes(), how))
    with pytest.raises(sweep.DamagedFile) as err:
        sweep.read_file(path, CODEC)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not sweep.is_stored(path, CODEC)


def test_a_table_whose_rows_disagree_with_the_header_is_damaged(tmp_path):
    path = tmp_path / "r.csv"
    sweep.write_file(path, _table(), sweep.table_codec(["a", "b"]))
    with pytest.raises(sweep.DamagedFile, match="columns"):
        sweep.read_file(path, sweep.table_codec(["a", "b", "c"]))


# --------------------------------------------------------------------------- the local sweep


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    cfg = _tiny()
    report = dn.execute_sweep(cfg, out)
    return cfg, out, report, dn.collect(out, cfg)


def test_the_pretraining_runs_once_and_every_run_is_stored(local_sweep):
    cfg, out, report, table = local_sweep
    assert report.ran() == ["pretrained/mlp-32", *(f"runs/{s.run_id}" for s in dn.run_specs(cfg))]
    assert len(table) == 2 * len(dn.CANDIDATES) and not report.failed
    assert "2 done" in report.format()


def test_damaged_run_files_are_rerun_and_collect_names_them(local_sweep, capsys):
    cfg, out, _, table = local_sweep
    victim = out / "runs" / f"{dn.run_specs(cfg)[1].run_id}.csv"
    victim.write_bytes(_damage(victim.read_bytes(), "truncated"))
    with pytest.raises(sweep.DamagedFile, match=victim.name):
        dn.collect(out, cfg)
    report = dn.execute_sweep(cfg, out)
    assert report.ran() == [f"runs/{victim.stem}"]  # the pretraining is read back, not rerun
    assert "damaged sweep file" in capsys.readouterr().err
    again = dn.collect(out, cfg)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), table.drop(columns="seconds"))
    assert dn.execute_sweep(cfg, out).ran() == []


def test_a_run_that_fails_on_its_own_is_reported_and_the_others_finish(tmp_path):
    bad = dn.NetworkSetup("rnn-100", "no-such-data", pretrain_data="digits", new_head=False)
    cfg = _tiny(networks=(*_tiny().networks, bad), n_seeds=1, pretrain_epochs=1)
    report = dn.execute_sweep(cfg, tmp_path)
    failed = {o.key: o.error for o in report.failed}
    assert list(failed) == ["runs/rnn-100__supervised__2-norm__seed0"]
    assert "no-such-data" in failed["runs/rnn-100__supervised__2-norm__seed0"]
    assert report.outcomes["runs/mlp-32__supervised__2-norm__seed0"].status == "done"
    assert "FAILED runs/rnn-100" in report.format()
    with pytest.raises(RuntimeError, match="1 task"):
        dn.run_sweep(cfg, tmp_path)


def _halting_task(total: int, checkpoint: Path | None = None) -> dict:
    """Counts to ``total``, one step per call, keeping its count in ``checkpoint``, and raises
    (an interruption) after each step short of ``total``."""
    count = int(checkpoint.read_text()) + 1 if checkpoint.is_file() else 1
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(str(count))
    if count < total:
        raise RuntimeError(f"interrupted at {count}")
    return {"count": count}


def test_a_task_keeping_a_checkpoint_goes_on_from_it_and_the_file_goes_with_the_result(tmp_path):
    task = sweep.Task("steps/count", _halting_task, (3,), checkpoint=True)
    kept = tmp_path / ".checkpoints" / "steps" / "count.pt"
    assert task.checkpoint_path(tmp_path) == kept
    for count in (1, 2):
        report = sweep.run_tasks([task], tmp_path)
        assert report.failed[0].error == f"RuntimeError: interrupted at {count}"
        assert kept.read_text() == str(count)
    assert sweep.run_tasks([task], tmp_path).ran() == ["steps/count"]
    assert sweep.read_file(task.path(tmp_path), task.codec) == {"count": 3}
    assert not kept.exists()


def test_an_interrupted_run_of_the_sweep_resumes_from_its_checkpoint(
    local_sweep, tmp_path, monkeypatch, capsys
):
    cfg, _, _, table = local_sweep
    spec = dn.run_specs(cfg)[0]
    whole = table[table["seed"] == spec.seed].reset_index(drop=True)
    assert (whole["epochs"] > 2).all()
    real = ft.batches
    monkeypatch.setattr(ft._Checkpoint, "due", lambda self: True)  # after every epoch

    def two_epochs(*args, started=[]):  # noqa: B006 (counts the calls)
        started.append(1)
        if len(started) > 2:
            raise KeyboardInterrupt  # what a stop looks like to the run: it ends mid-epoch
        return real(*args)

    monkeypatch.setattr(ft, "batches", two_epochs)
    with pytest.raises(KeyboardInterrupt):
        dn.execute_sweep(cfg, tmp_path, specs=[spec])
    kept = tmp_path / ".checkpoints" / "runs" / f"{spec.run_id}.pt"
    assert kept.is_file()
    monkeypatch.setattr(ft, "batches", real)
    assert dn.execute_sweep(cfg, tmp_path, specs=[spec]).ran() == [f"runs/{spec.run_id}"]
    assert "resuming after epoch 2" in capsys.readouterr().err
    assert not kept.exists()
    again = dn.collect(tmp_path, cfg)
    pd.testing.assert_frame_equal(
        again.drop(columns="seconds"), whole.drop(columns="seconds"), check_exact=True
    )


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "-1"], "n_seeds must be >= 1, got -1"),
        (["--seeds", "0"], "n_seeds must be >= 1, got 0"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--part", "3/2"], "--part must be i/k"),
        (["--networks", "rnn-10000"], "no network(s) rnn-10000"),
        (["--from-stored"], "--from-stored continues the stored paper-scale sweep"),
        (["--store", "x"], "--store writes a stored paper-scale table: add --scale paper"),
        (["--note", "n"], "--note goes with --store NAME"),
        (["--scale", "paper", "--store", "x", "--part", "1/2"], "--store takes the whole sweep"),
        (["--scale", "paper", "--store", "a/b"], "--store: a result name must be a plain file"),
        (["--no-run"], "--no-run goes with --store NAME"),
        (["--scale", "paper", "--store", "x", "--no-run", "--ray"], "--no-run runs nothing"),
    ],
)
def test_finetune_argument_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert cli.main(["finetune", "--out", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_finetune_refuses_a_file_a_folder_of_other_settings_and_an_absent_gpu(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert cli.main(["finetune", "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    dn.check_folder(dn.config("ci", seed=1), tmp_path / "other")
    assert cli.main(["finetune", "--out", str(tmp_path / "other"), "--device", "cpu"]) == 2
    assert "holds a sweep with other settings (seed)" in capsys.readouterr().err
    (tmp_path / "other" / "config.json").write_text('{"seed": ')
    assert cli.main(["finetune", "--out", str(tmp_path / "other")]) == 2
    assert "damaged" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert cli.main(["finetune", "--out", str(tmp_path / "gpu"), "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "--device cuda" in err and err.count("\n") == 1
        assert not (tmp_path / "gpu").exists()


def test_finetune_stores_the_finished_runs_with_their_provenance(tmp_path, monkeypatch, capsys):
    from mirrorlib import stored

    root = tmp_path / "paper"
    shutil.copytree(stored.STORED_ROOT / "deep_networks", root / "deep_networks")
    monkeypatch.setattr(stored, "STORED_ROOT", root)
    out = tmp_path / "sweep"
    argv = ["finetune", "--scale", "paper", "--from-stored", "--networks", "mlp-32"]
    argv += ["--seeds", "12", "--no-run"]  # seeds 10 and 11 are not run
    argv += ["--out", str(out), "--store", "mlp32", "--note", "Runs restored."]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "runs: 30 of 36 finished; none run here (--no-run)" in printed
    assert "stored as results/paper/deep_networks/mlp32 (30 new run(s))" in printed
    assert not list((out / "runs").glob("mlp-32__*__seed1[01].csv"))
    table, record = stored.read_stored("deep_networks", "mlp32")
    runs = dn.stored_sweep()[0].query("architecture == 'mlp-32'").reset_index(drop=True)
    pd.testing.assert_frame_equal(table, runs, check_dtype=False)
    assert record.command == (
        "python -m mirrorlib finetune --scale paper --networks mlp-32 --seeds 12 --device auto "
        f"--from-stored --no-run --out {out} --store mlp32"
    )
    assert record.note == (
        "MLP-32: 30 runs (seeds per trained potential: 2-norm 10, 3-norm 10, negative entropy "
        "10). The wall time is the sum of the runs' own times. Runs restored."
    )
    seconds = runs.drop_duplicates(["trained_potential", "seed"])["seconds"].sum()
    assert record.wall_time_s == round(seconds, 1)
    assert record.device == stored.describe_device("cpu")
    assert cli.main(argv[:-2]) == 0
    assert "nothing stored: results/paper/deep_networks/mlp32 holds these runs" in (
        capsys.readouterr().out
    )


def test_the_cli_has_a_version_and_plain_text_help_for_every_option(capsys):
    from mirrorlib import __version__

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"mirrorlib {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    parser = cli._build_parser()
    finetune = parser._subparsers._group_actions[0].choices["finetune"]
    for action in finetune._actions:
        assert action.help, f"{action.option_strings} has no help"


def test_output_into_a_closed_pipe_ends_quietly():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [PY, "-m", "mirrorlib", "finetune", "--scale", "paper", "--seeds", "2000", "--list"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline().startswith(b"rnn-100__")
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err and err == ""


# --------------------------------------------------------------------------- SIGKILL


def test_a_finetune_killed_mid_run_resumes_with_nothing_lost_or_duplicated(tmp_path):
    """SIGKILL the command twice (during the first run, then during a later one); the third
    start finishes the sweep: one valid file per run, every row once."""
    out = tmp_path / "sweep"
    argv = [PY, "-m", "mirrorlib", "finetune", "--scale", "ci", "--networks", "rnn-100"]
    argv += ["--seeds", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = out / "runs"

    def kill_when(ready) -> None:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    kill_when(lambda: (out / "pretrained" / "rnn-100.pt").is_file())
    kill_when(lambda: len(list(runs.glob("*.csv"))) >= 1)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = dn.config("ci", n_seeds=1, threads=1)
    specs = dn.select_specs(cfg, architectures=["rnn-100"])
    assert sorted(p.stem for p in runs.glob("*.csv")) == sorted(s.run_id for s in specs)
    for path in runs.glob("*.csv"):
        sweep.read_file(path, sweep.table_codec(dn.COLUMNS))  # raises on a damaged file
    table = dn.collect(out, cfg)
    assert len(table) == len(specs) * len(dn.CANDIDATES)
    keys = ["architecture", "objective", "trained_potential", "seed", "candidate"]
    assert not table.duplicated(keys).any()


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a second node on 127.0.0.1, one CPU each (the workers import this checkout)."""
    if importlib.util.find_spec("ray") is None:  # not imported here: see below
        pytest.skip("ray is not installed (pip install 'mirrorlib[cluster]')")
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    # read when ray is imported: keeps every node, and the driver, on 127.0.0.1
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [saved["PYTHONPATH"]])])
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        worker = cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ci_two_networks() -> tuple[dn.DeepNetworksConfig, list[dn.RunSpec]]:
    cfg = dn.config("ci", n_seeds=1, threads=1, objectives=("supervised",))
    return cfg, dn.select_specs(cfg, architectures=["rnn-100", "mlp-32"])


@pytest.fixture(scope="module")
def sequential_ci(tmp_path_factory):
    cfg, specs = _ci_two_networks()
    out = tmp_path_factory.mktemp("sequential")
    assert not dn.execute_sweep(cfg, out, "cpu", specs).failed
    return dn.collect(out, cfg)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Bitwise equal but for the timing column and ``relative_change``, a ratio of norms that
    numpy's BLAS computes on as many threads as the process has (Ray gives its workers
    ``OMP_NUM_THREADS`` = the task's CPUs): that one within 1e-12 (measured: 4.5e-16)."""
    blas = ["relative_change"]
    pd.testing.assert_frame_equal(
        a.drop(columns=["seconds", *blas]), b.drop(columns=["seconds", *blas]), check_exact=True
    )
    pd.testing.assert_frame_equal(a[blas], b[blas], check_exact=False, rtol=1e-12, atol=0)


def test_the_ray_sweep_runs_on_both_nodes_and_equals_the_sequential_one(
    ray_cluster, sequential_ci, tmp_path
):
    cluster, worker = ray_cluster
    cfg, specs = _ci_two_networks()
    executor = sweep.RayExecutor(cluster.address, results="driver")
    report = dn.execute_sweep(cfg, tmp_path, "cpu", specs, executor)
    assert not report.failed, report.format()
    nodes = {o.node for o in report.outcomes.values() if o.status == "done"}
    assert nodes == {cluster.head_node.node_id, worker.node_id}  # tasks ran on each node
    _same(dn.collect(tmp_path, cfg), sequential_ci)
    # driver mode: the tasks carry no path of the sweep folder, the driver wrote every file
    from ray import cloudpickle

    for task in dn.sweep_tasks(cfg, specs):
        assert str(tmp_path).encode() not in cloudpickle.dumps(task)
    assert dn.execute_sweep(cfg, tmp_path, "cpu", specs, executor).ran() == []  # nothing left


def test_killing_a_node_mid_sweep_loses_nothing(ray_cluster, sequential_ci, tmp_path):
    """Shared mode (the workers write the files); the second node is killed as soon as the
    first run has finished, and the sweep completes on the head."""
    cluster, worker = ray_cluster
    cfg, specs = _ci_two_networks()
    runs = tmp_path / "runs"

    def kill_worker() -> None:
        while not list(runs.glob("*.csv")):
            time.sleep(0.05)
        cluster.remove_node(worker, allow_graceful=False)

    killer = threading.Thread(target=kill_worker, daemon=True)
    killer.start()
    executor = sweep.RayExecutor(cluster.address, results="shared")
    report = dn.execute_sweep(cfg, tmp_path, "cpu", specs, executor)
    killer.join(timeout=1)
    assert not killer.is_alive() and worker.node_id not in {n["NodeID"] for n in _alive()}
    assert not report.failed, report.format()
    assert sorted(p.stem for p in runs.glob("*.csv")) == sorted(s.run_id for s in specs)
    table = dn.collect(tmp_path, cfg)  # every file is checked
    keys = ["architecture", "trained_potential", "seed", "candidate"]
    assert not table.duplicated(keys).any()
    _same(table, sequential_ci)
    assert dn.execute_sweep(cfg, tmp_path, "cpu", specs, executor).ran() == []


def test_a_run_failing_on_its_own_on_ray_is_reported_not_retried(ray_cluster, tmp_path):
    cluster, _ = ray_cluster
    bad = dn.NetworkSetup(
        "mlp-32", "no-such-data", pretrain_data="digits", new_head=False, n_samples=150
    )
    cfg = _tiny(networks=(bad,), n_seeds=2, pretrain_epochs=1)
    start = time.monotonic()
    report = dn.execute_sweep(cfg, tmp_path, executor=sweep.RayExecutor(cluster.address))
    assert [o.key for o in report.failed] == [f"runs/{s.run_id}" for s in dn.run_specs(cfg)]
    assert all("no-such-data" in o.error for o in report.failed)
    assert report.outcomes["pretrained/mlp-32"].status == "done"
    assert time.monotonic() - start < 120  # reported once each, not retried forever


def _alive() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n["Alive"]]


def _tiny_book(folder: Path) -> Path:
    """tests/data/tiny_book with the real _config.yml and bibliography (as in test_book.py)."""
    shutil.copytree(REPO / "tests" / "data" / "tiny_book", folder)
    shutil.copy2(REPO / "_config.yml", folder / "_config.yml")
    shutil.copy2(REPO / "book" / "references.bib", folder / "book" / "references.bib")
    return folder


def test_the_book_runs_each_chapter_as_a_ray_task_and_the_driver_builds_the_html(
    ray_cluster, tmp_path
):
    from mirrorlib.book import run_book

    cluster, _ = ray_cluster
    root = _tiny_book(tmp_path / "ray")
    report = run_book(root, "ci", device="cpu", ray=sweep.RayExecutor(cluster.address))
    assert not report.failed, report.format()
    assert report.html_status == "ok" and (root / "_build" / "html" / "index.html").is_file()
    assert list((root / "_build" / "figures" / "ci").glob("*.png"))
    executed = (root / "_build" / "executed" / "ci" / "book" / "tiny.ipynb").read_text()
    assert "mirrorlib-chapter-" not in executed and str(tmp_path) not in executed
    cells = nbformat.reads(executed, 4).cells
    injected = next(c for c in cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'results_dir = "../_build/results/ci"' in injected.source  # as a local build's
    here = _tiny_book(tmp_path / "here")
    assert not run_book(here, "ci", device="cpu", html=False).failed

    def tables(book: Path) -> dict[str, bytes]:
        folder = book / "_build" / "results" / "ci"
        return {p.name: p.read_bytes() for p in folder.glob("*.csv") if p.stem != "book_timing"}

    assert tables(root) and tables(root) == tables(here)  # gathered from the worker, unchanged
