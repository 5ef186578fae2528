"""Stored paper-scale results: compressed tables with their provenance (mirrorlib.stored)."""

from __future__ import annotations

import gzip
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.stored import (
    PaperScaleStore,
    Provenance,
    describe_together,
    git_commit,
    read_stored,
    stored_tables,
    write_stored,
)


def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "inputs": ["binary", "short", "long"],
            "D": [100, 1000, 20000],
            "converged": [True, False, True],
            "delta_cdf": rng.random(3) / 7,
            "missing": [1.0, np.nan, 2.0],
        }
    )


def test_a_stored_table_reads_back_exactly_with_its_provenance(tmp_path):
    record = Provenance.of_this_run("python run.py", 12.345, note="shared machine")
    written = write_stored(table(), "chapter", "clt", record, root=tmp_path)
    got, provenance = read_stored("chapter", "clt", root=tmp_path)
    pd.testing.assert_frame_equal(got, table())  # floats round-trip exactly
    assert provenance == written
    assert isinstance(provenance, Provenance)
    assert provenance.command == "python run.py" and provenance.note == "shared machine"
    assert provenance.wall_time_s == 12.3
    assert provenance.torch_version == torch.__version__
    assert provenance.device.startswith("cpu: ")
    assert provenance.commit == git_commit() and provenance.commit != ""
    assert provenance.date.endswith("UTC")
    record = json.loads((tmp_path / "chapter" / "clt.json").read_text())
    assert set(record) == {"commit", "command", "device", "torch_version", "date",
                           "wall_time_s", "note"}  # fmt: skip
    with gzip.open(tmp_path / "chapter" / "clt.csv.gz", "rt") as f:
        assert f.readline().strip() == "inputs,D,converged,delta_cdf,missing"


def test_the_same_table_gives_the_same_bytes(tmp_path):
    record = Provenance.of_this_run("cmd", 1.0)
    write_stored(table(), "c", "t", record, root=tmp_path / "a")
    write_stored(table(), "c", "t", record, root=tmp_path / "b")
    first = (tmp_path / "a" / "c" / "t.csv.gz").read_bytes()
    assert first == (tmp_path / "b" / "c" / "t.csv.gz").read_bytes()


def test_bad_names_and_missing_tables_raise(tmp_path):
    record = Provenance.of_this_run("cmd", 1.0)
    with pytest.raises(ValueError, match="plain file name"):
        write_stored(table(), "c", "../t", record, root=tmp_path)
    with pytest.raises(ValueError, match="without its extension"):
        write_stored(table(), "c", "t.csv.gz", record, root=tmp_path)
    with pytest.raises(TypeError, match="DataFrame"):
        write_stored([1, 2], "c", "t", record, root=tmp_path)
    with pytest.raises(TypeError, match="Provenance"):
        write_stored(table(), "c", "t", "cmd", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no stored table c/none"):
        read_stored("c", "none", root=tmp_path)


def test_chapters_store_only_at_paper_scale(tmp_path, monkeypatch):
    monkeypatch.setattr("mirrorlib.stored.STORED_ROOT", tmp_path)
    ci = PaperScaleStore("ci", "chapter")
    with pytest.raises(RuntimeError, match=r"call start\(\) before computing the table 't'"):
        ci.save(table(), "t")
    ci.start()
    assert ci.save(table(), "t") is None
    assert not (tmp_path / "chapter").exists()
    paper = PaperScaleStore("paper", "chapter")
    paper.start()
    time.sleep(0.2)
    provenance = paper.save(table(), "t")
    assert provenance.command == "python -m mirrorlib book --scale paper --chapters chapter"
    assert read_stored("chapter", "t")[1] == provenance
    assert 0.2 <= provenance.wall_time_s < 60  # the time since start()
    with pytest.raises(ValueError, match="plain file name"):
        PaperScaleStore("paper", "../chapter")


def test_stored_tables_lists_every_table_with_its_provenance(tmp_path):
    table = pd.DataFrame({"x": [1, 2]})
    date = "2026-12-06 01:00 UTC"
    b = Provenance("abc", "cmd b", "cpu: X", "2.13.0", date, 2.54)
    write_stored(table, "b_chapter", "second", b, root=tmp_path)
    write_stored(
        table,
        "a_chapter",
        "first",
        Provenance("def", "cmd a", "cpu: X", "2.13.0", date, 1.0),
        root=tmp_path,
    )
    (tmp_path / "a_chapter" / "orphan.json").write_text("{}")  # a record without its table
    listed = stored_tables(tmp_path)
    assert list(listed[["chapter", "name", "command", "commit"]].itertuples(index=False)) == [
        ("a_chapter", "first", "cmd a", "def"),
        ("b_chapter", "second", "cmd b", "abc"),
    ]
    assert listed["wall_time_s"].tolist() == [1.0, 2.5]  # kept to 0.1 s
    assert read_stored("b_chapter", "second", tmp_path)[1].date == date
    assert stored_tables(tmp_path / "none").empty


def test_provenance_describes_itself_in_one_line():
    date = "2026-12-06 01:00 UTC"
    record = Provenance("0123456789abcdef", "cmd", "cpu: X", "2.13.0", date, 95.0, "shared")
    assert record.describe() == (
        f"on {date} at commit `0123456789` (cpu: X, torch 2.13.0) in 2 minutes of wall time; shared"
    )
    assert "in 40 seconds" in Provenance("c", "", "d", "t", "x", 40.0).describe()


def test_describe_together_says_a_shared_note_once():
    def record(minutes: float, note: str) -> Provenance:
        return Provenance("0123456789", "cmd", "cpu: X", "2.13.0", "d", 60.0 * minutes, note)

    shared = describe_together(
        {
            "the regression": record(8, "run side by side: an upper bound"),
            "the network": record(31, "run side by side: an upper bound"),
        }
    )
    assert shared.count("upper bound") == 1
    assert shared == (
        "the regression on d at commit `0123456789` (cpu: X, torch 2.13.0) in 8 minutes of wall "
        "time and the network on d at commit `0123456789` (cpu: X, torch 2.13.0) in 31 minutes "
        "of wall time, both run side by side: an upper bound"
    )  # fmt: skip
    apart = describe_together({"a": record(2, "one"), "b": record(3, "two"), "c": record(4, "")})
    assert apart.split("; ")[1::2] == ["one", "two"] and apart.count("; ") == 4
    with pytest.raises(ValueError, match="at least one"):
        describe_together({})


def test_git_commit_is_dirty_for_code_but_not_for_stored_results(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results" / "paper").mkdir(parents=True)
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "paper" / "t.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "results" / "paper" / "t.json").write_text('{"a": 1}\n')
    assert git_commit(tmp_path) == clean  # a run rewrites stored results as it goes
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"
