"""Several processes running one sweep folder (mirrorlib.sweep's claims): every task runs
once, a task claimed elsewhere is read back from its file, and a killed process leaves no
claim behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mirrorlib import sweep

REPO = Path(__file__).resolve().parents[1]

# Two processes run the same sweep: a shared step ("lr") then six runs that need it. A run
# waits until both processes have started, so that neither can finish the sweep alone.
WORKER = """
import os, sys, time
from pathlib import Path
from mirrorlib import sweep

sweep._POLL_SECONDS = 0.05
folder, log = Path(sys.argv[1]), Path(sys.argv[2])


def work(name, seconds, lr=None):
    with open(log, "a") as f:
        f.write(f"{name} {os.getpid()}\\n")
    deadline = time.time() + 60
    while name != "lr" and len(list(folder.parent.glob("started.*"))) < 2:
        assert time.time() < deadline, "the other process never started"
        time.sleep(0.02)
    time.sleep(seconds)
    return {"name": name, "lr": lr}


if __name__ == "__main__":
    (folder.parent / f"started.{os.getpid()}").touch()
    lr = sweep.Task("lr/search", work, ("lr", 0.3), is_run=False)
    runs = [sweep.Task(f"runs/r{i}", work, (f"r{i}", 0.3), deps=(("lr", "lr/search"),))
            for i in range(6)]
    report = sweep.run_tasks([lr, *runs], folder)
    assert not report.failed, report.format()
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_two_processes_sharing_a_folder_run_each_task_once(tmp_path):
    script, folder, log = tmp_path / "worker.py", tmp_path / "sweep", tmp_path / "log.txt"
    script.write_text(WORKER)
    argv = [sys.executable, str(script), str(folder), str(log)]
    procs = [subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    lines = [line.split() for line in log.read_text().splitlines()]
    names = [name for name, _ in lines]
    assert sorted(names) == sorted(["lr", *(f"r{i}" for i in range(6))])  # each once
    run_pids = {pid for name, pid in lines if name != "lr"}
    assert len(run_pids) == 2, "both processes ran runs"
    for i in range(6):
        result = sweep.read_file(folder / f"runs/r{i}.json", sweep.json_codec)
        assert result["lr"] == {"name": "lr", "lr": None}
    assert not list((folder / ".claims").rglob("*.lock")), "claims are removed when released"


def _record(calls: list, name: str, lr=None) -> dict:
    calls.append(name)
    return {"name": name, "lr": lr}


def test_a_task_claimed_elsewhere_is_waited_for_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "_POLL_SECONDS", 0.02)
    calls: list = []
    lr = sweep.Task("lr", _record, (calls, "lr"), is_run=False)
    run = sweep.Task("run", _record, (calls, "run"), deps=(("lr", "lr"),))
    held = sweep._claim(tmp_path, "lr")  # the other process
    assert held is not None and sweep._claim(tmp_path, "lr") is None

    def finish_elsewhere():
        time.sleep(0.3)
        sweep.write_file(lr.path(tmp_path), {"name": "elsewhere"}, lr.codec)
        held.release()

    thread = threading.Thread(target=finish_elsewhere)
    thread.start()
    report = sweep.run_tasks([lr, run], tmp_path)
    thread.join()
    assert calls == ["run"], "the claimed task did not run here"
    assert report.outcomes["lr"].status == "stored"
    assert report.outcomes["run"].status == "done"
    assert sweep.read_file(run.path(tmp_path), run.codec)["lr"] == {"name": "elsewhere"}


def test_a_claim_released_without_a_result_is_taken_and_run_here(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "_POLL_SECONDS", 0.02)
    calls: list = []
    task = sweep.Task("run", _record, (calls, "run"))
    held = sweep._claim(tmp_path, "run")
    timer = threading.Timer(0.2, held.release)  # the other process failed: no file
    timer.start()
    report = sweep.run_tasks([task], tmp_path)
    timer.join()
    assert calls == ["run"] and report.outcomes["run"].status == "done"


def test_a_killed_process_leaves_no_claim(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from mirrorlib import sweep; "
        "c = sweep._claim(Path(sys.argv[1]), 'runs/a'); print('held', flush=True); "
        "time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert sweep._claim(tmp_path, "runs/a") is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    claim = sweep._claim(tmp_path, "runs/a")
    assert claim is not None
    claim.release()
