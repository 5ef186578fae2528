"""The launch paths: one place names the repository, one script installs, and what a chapter
substitutes or skips reaches the reader and the run summary."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from mirrorlib import data, networks
from mirrorlib.book import run_book
from mirrorlib.launch import (
    install_cell_source,
    read_repository,
    stale_install_cells,
    sync_install_cells,
)

REPO = Path(__file__).resolve().parents[1]
TINY_BOOK = REPO / "tests" / "data" / "tiny_book"


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[=<>\[ ;]", line)[0].lower().replace("_", "-"))
    return names


def test_every_chapter_cell_comes_from_the_config():
    assert stale_install_cells(REPO) == []


def test_a_fork_changes_the_repository_in_one_place(tmp_path):
    root = tmp_path / "fork"
    shutil.copytree(TINY_BOOK, root)
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["repository"]["url"] = "https://github.com/someone/my-fork"
    config["repository"]["branch"] = "dev"
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    assert stale_install_cells(root) == [root / "book" / "tiny.md"]
    assert sync_install_cells(root) == [root / "book" / "tiny.md"]
    assert stale_install_cells(root) == [] and sync_install_cells(root) == []
    text = (root / "book" / "tiny.md").read_text()
    assert '"--branch", "dev",' in text and "https://github.com/someone/my-fork" in text
    assert "/content/my-fork" in text and "mirrorlib/synaptic-geometry-book" not in text
    repository = read_repository(root)
    assert repository.colab_url("book/tiny.ipynb") == (
        "https://colab.research.google.com/github/someone/my-fork/blob/dev/book/tiny.ipynb"
    )
    assert (root / "book" / "tiny.ipynb").is_file()


def test_a_repository_that_is_not_on_github_is_refused(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/x\n")
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        read_repository(tmp_path)


def test_the_install_cell_runs_only_in_colab_or_when_pointed_at_a_checkout():
    cell = install_cell_source(read_repository(REPO))
    assert 'if "google.colab" in sys.modules or source:' in cell
    assert '".ci", "install"), "--keep-torch"' in cell
    namespace: dict = {}
    exec(compile(cell, "cell", "exec"), namespace)  # here: neither, so it does nothing
    assert namespace["source"] is None


def test_one_install_script_serves_ci_pages_and_colab():
    install = (REPO / ".ci" / "install").read_text()
    for listed in ("requirements.txt", "requirements-data.txt", "binder/apt.txt", "[chapters]"):
        assert listed in install
    ci = (REPO / ".ci" / "run").read_text()
    assert ".ci/install" in ci
    assert "launch_check.py binder" in ci and "launch_check.py colab" in ci
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["build"]["steps"]]
    assert any(".ci/install" in run for run in steps), "the Pages workflow must call .ci/install"
    assert not any("pip install -r" in run for run in steps), "install through .ci/install only"


def test_binder_installs_the_same_lists():
    binder = REPO / "binder"
    assert "-r ../requirements.txt" in (binder / "requirements.txt").read_text().splitlines()
    assert "requirements-data.txt" in (binder / "postBuild").read_text()
    assert "dataset-fashion-mnist" in (binder / "apt.txt").read_text().split()
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"


def test_the_chapters_extra_is_pinned_in_requirements():
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["chapters"]
    names = {re.split(r"[=<>\[ ;]", item)[0].lower() for item in extra}
    assert names <= _requirement_names(REPO / "requirements.txt")


def test_install_hints_name_the_real_packages():
    pinned = {
        line.strip()
        for line in (REPO / "requirements-data.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for arch in networks.ARCHITECTURES.values():
        if arch.package is not None:
            assert arch.package[2] in pinned, arch.name


def test_a_missing_checkpoint_names_its_pip_package(monkeypatch, tmp_path):
    monkeypatch.setattr(networks, "_package_file", lambda package, relative: None)
    monkeypatch.setattr(networks.torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("MIRRORLIB_CHECKPOINTS", raising=False)
    with pytest.raises(networks.NetworkUnavailable, match="digit-recognizer-py==0.1.0"):
        networks.find_checkpoint("mnist-cnn")


def test_available_datasets_works_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert "digits" not in data.available_datasets()
    with pytest.raises(data.DatasetUnavailable, match="pip install scikit-learn"):
        data.load_dataset("digits")


_SUBSTITUTING = """
```{code-cell} ipython3
from mirrorlib.results import note_substitution, register_requires_magic

register_requires_magic()
note_substitution("fallback: MNIST digits for Fashion-MNIST", "Fashion-MNIST is not here.")
```

```{code-cell} ipython3
%%requires no_such_module_xyz -- pip install no-such-module
raise RuntimeError("a cell that needs a missing package must not run")
```

```{code-cell} ipython3
%%requires json
import json

after_requires = json.dumps([1])
json.dumps(["hidden by the semicolon"]);
```

```{code-cell} ipython3
assert after_requires == "[1]"
```

The figure is drawn"""


def test_substitutions_reach_the_reader_and_the_summary(tmp_path):
    root = tmp_path / "book"
    shutil.copytree(TINY_BOOK, root)
    chapter = root / "book" / "tiny.md"
    text = chapter.read_text()
    chapter.write_text(text.replace("The figure is drawn", _SUBSTITUTING, 1))
    report = run_book(root, scale="ci", device="cpu", html=False)
    assert not report.failed, report.format()
    run = report.chapters[0]
    assert run.notes == (
        "fallback: MNIST digits for Fashion-MNIST",
        "skipped: no_such_module_xyz not installed",
    )
    assert run.summary == (
        "ok (fallback: MNIST digits for Fashion-MNIST; skipped: no_such_module_xyz not installed)"
    )
    assert re.search(r"^tiny +[\d.]+ s  ok \(fallback: MNIST digits", report.format(), re.M)
    executed = (root / "_build" / "executed" / "ci" / "book" / "tiny.ipynb").read_text()
    assert "Fashion-MNIST is not here." in executed
    assert "`no_such_module_xyz` is not installed here (pip install no-such-module)" in executed
    cell = next(c for c in nbformat.reads(executed, 4).cells if "hidden by" in c.source)
    assert [o.output_type for o in cell.outputs] == [], "a trailing ; hides the last value"
    timing = (root / "_build" / "results" / "ci" / "book_timing.csv").read_text()
    assert "skipped: no_such_module_xyz not installed" in timing
