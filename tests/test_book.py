"""The book runner (mirrorlib.book) on a tiny book, and the real book's conventions."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch
import yaml

from mirrorlib import cli
from mirrorlib.book import read_toc, run_book
from mirrorlib.launch import install_cell_source, read_repository

REPO = Path(__file__).resolve().parents[1]
TINY_BOOK = REPO / "tests" / "data" / "tiny_book"
PARAMETERS = ("scale", "device", "seed", "results_dir", "figures_dir")


def make_tiny_book(folder: Path) -> Path:
    """A copy of tests/data/tiny_book with the real _config.yml and bibliography."""
    shutil.copytree(TINY_BOOK, folder)
    shutil.copy2(REPO / "_config.yml", folder / "_config.yml")
    shutil.copy2(REPO / "book" / "references.bib", folder / "book" / "references.bib")
    return folder


def make_broken_book(folder: Path) -> Path:
    """The tiny book after two broken chapters: one divides by zero, one has no parameters."""
    make_tiny_book(folder)
    text = (folder / "book" / "tiny.md").read_text()
    failing = "```{code-cell} ipython3\nratio = 1 / 0\n```\n\nThe figure is drawn"
    (folder / "book" / "broken.md").write_text(text.replace("The figure is drawn", failing))
    (folder / "book" / "unparameterised.md").write_text(text.replace(":tags: [parameters]", ""))
    toc = yaml.safe_load((folder / "_toc.yml").read_text())
    toc["chapters"] = [{"file": f"book/{name}"} for name in ("broken", "unparameterised", "tiny")]
    (folder / "_toc.yml").write_text(yaml.safe_dump(toc))
    return folder


def result_tables(root: Path) -> dict[str, bytes]:
    """The bytes of every result table of a run at scale ci, timing excluded."""
    folder = root / "_build" / "results" / "ci"
    return {p.name: p.read_bytes() for p in folder.glob("*.csv") if p.stem != "book_timing"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny book, executed and built once for the tests below."""
    root = make_tiny_book(tmp_path_factory.mktemp("built") / "book")
    return root, run_book(root, scale="ci", device="cpu", seed=0)


def test_the_tiny_book_builds(built):
    root, report = built
    assert not report.failed, report.format()
    assert [(c.name, c.status) for c in report.chapters] == [("tiny", "ok")]
    assert report.html_status == "ok"
    assert (root / "_build" / "html" / "book" / "tiny.html").is_file()
    assert (root / "_build" / "figures" / "ci" / "fig0_tiny_eg_step.png").is_file()
    assert (root / "_build" / "figures" / "ci" / "fig0_tiny_eg_step.pdf").is_file()
    timing = (root / "_build" / "results" / "ci" / "book_timing.csv").read_text()
    assert re.fullmatch(
        r"chapter,status,seconds,notes\ntiny,ok,[\d.]+,\nhtml build,ok,[\d.]+,\n", timing
    )


def test_launch_buttons_open_the_paired_notebook(built):
    root, _ = built
    page = (root / "_build" / "html" / "book" / "tiny.html").read_text()
    repository = read_repository(REPO)
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert repository.binder_url("book/tiny.ipynb") in hrefs
    assert repository.colab_url("book/tiny.ipynb") in hrefs
    assert repository.url in hrefs
    assert any(h.startswith(f"{repository.url}/issues/new") for h in hrefs)
    # the page is built from the executed .ipynb; its edit link opens the MyST source
    assert f"{repository.url}/edit/{repository.branch}/book/tiny.md" in hrefs
    assert not any("/edit/" in h and h.endswith(".ipynb") for h in hrefs)


def test_the_executed_notebook_names_no_folder_of_the_builder(built):
    root, _ = built
    executed = root / "_build" / "executed" / "ci" / "book" / "tiny.ipynb"
    text = executed.read_text()
    assert str(root) not in text and "/tmp/" not in text
    cells = nbformat.reads(text, 4).cells
    injected = next(c for c in cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'results_dir = "../_build/results/ci"' in injected.source


def test_no_kernel_transport_warning_in_logs_or_pages(built):
    root, _ = built
    for path in [*root.glob("_build/executed/ci/**/*.ipynb"), *root.glob("_build/html/**/*.html")]:
        assert "without encryption" not in path.read_text(), path


def test_the_html_shows_results_but_hides_setup_cells(built):
    root, _ = built
    page = (root / "_build" / "html" / "book" / "tiny.html").read_text()
    assert "Fig. 1.1" in page
    assert "google.colab" not in page
    assert str(root) not in page  # the injected absolute paths stay hidden
    executed = nbformat.read(root / "_build" / "executed" / "ci" / "book" / "tiny.ipynb", 4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata.tags


def test_same_scale_and_seed_give_identical_tables(built, tmp_path):
    first_root, _ = built
    second_root = make_tiny_book(tmp_path / "again")
    report = run_book(second_root, scale="ci", device="cpu", seed=0, html=False)
    assert not report.failed, report.format()
    first = result_tables(first_root)
    assert first and result_tables(second_root) == first


def test_a_failing_chapter_is_named_and_spares_the_others(tmp_path, capsys):
    root = make_broken_book(tmp_path / "book")
    executed = root / "_build" / "executed" / "ci" / "book"
    executed.mkdir(parents=True)
    (executed / "broken.ipynb").write_text("stale output of an earlier run")
    status = cli.main(["book", "--root", str(root), "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 1
    assert re.search(r"FAILED broken: cell In \[\d+\] `ratio = 1 / 0`: ZeroDivisionError", out)
    assert "FAILED unparameterised: unparameterised.md has no cell tagged 'parameters'" in out
    assert re.search(r"^tiny +[\d.]+ s  ok$", out, re.MULTILINE)
    assert "HTML not built: broken, unparameterised failed" in out
    assert sorted(p.name for p in executed.iterdir()) == ["broken.failed.ipynb", "tiny.ipynb"]
    assert not (root / "_build" / "html").exists()

    report = run_book(root, chapters=["tiny"], device="cpu")
    assert [(c.name, c.status) for c in report.chapters] == [("tiny", "ok")]
    assert report.html_status == "skipped"
    assert "never executed at scale ci: broken, unparameterised" in report.html_note


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--chapters", "nope"], "unknown chapter 'nope'; the chapters in _toc.yml are: tiny"),
        (["--root", "/nonexistent"], "no _toc.yml in /nonexistent (run from the repository root"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    root = make_tiny_book(tmp_path / "book")
    assert cli.main(["book", "--root", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (root / "_build").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_an_absent_gpu_exits_2(tmp_path, capsys):
    root = make_tiny_book(tmp_path / "book")
    assert cli.main(["book", "--root", str(root), "--device", "cuda"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


# The real book: configuration and the conventions every chapter follows.

REAL_CHAPTERS = [page for page in read_toc(REPO) if page.is_notebook]


def test_the_real_book_is_configured_for_launch_buttons():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert "book/*.ipynb" in config["exclude_patterns"]
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert read_toc(REPO)[0].docname == "book/intro"


def test_every_citation_is_in_the_bibliography():
    bib = (REPO / "book" / "references.bib").read_text()
    known = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    cited = set()
    for page in read_toc(REPO):
        for keys in re.findall(r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`", page.source.read_text()):
            cited.update(key.strip() for key in keys.split(","))
    assert cited, "the book cites nothing"
    assert cited <= known, f"missing from book/references.bib: {sorted(cited - known)}"


@pytest.mark.parametrize("page", REAL_CHAPTERS, ids=[page.name for page in REAL_CHAPTERS])
def test_chapter_follows_the_conventions(page):
    paired = page.source.with_suffix(".ipynb")
    assert paired.is_file(), f"run `jupytext --sync {page.source.relative_to(REPO)}`"
    source, notebook = jupytext.read(page.source), nbformat.read(paired, 4)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [
        (c.cell_type, c.source) for c in source.cells
    ], f"{paired.name} is out of sync: run `jupytext --sync {page.source.relative_to(REPO)}`"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    colab = code[0]
    assert colab.source == install_cell_source(read_repository(REPO)), (
        "the Colab cell is not the one _config.yml gives: run `python -m mirrorlib launch-cells`"
    )
    assert "remove-cell" in colab.metadata.get("tags", [])
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert all(re.search(rf"^{name} = ", parameters[0].source, re.M) for name in PARAMETERS)


def _only_glues(code: str) -> bool:
    """True for a cell that computes and glues values and shows nothing else."""
    if code.startswith("%%requires"):
        code = code.split("\n", 1)[1]
    tree = ast.parse(code)
    names = {
        getattr(node.func, "id", getattr(node.func, "attr", ""))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    shows = {"write_table", "save_figure", "print", "display"}
    if "glue" not in names or names & shows or any(n.startswith("run") for n in names):
        return False

    def quiet(statements: list[ast.stmt]) -> bool:
        for st in statements:
            if isinstance(st, ast.Assign | ast.AugAssign | ast.AnnAssign):
                continue
            if isinstance(st, ast.Expr) and getattr(st.value, "func", None) is not None:
                if getattr(st.value.func, "id", "") == "glue":
                    continue
            if isinstance(st, ast.For | ast.If) and quiet(st.body) and quiet(st.orelse):
                continue
            return False
        return True

    return quiet(tree.body)


@pytest.mark.parametrize("page", REAL_CHAPTERS, ids=[page.name for page in REAL_CHAPTERS])
def test_cells_that_only_glue_values_are_hidden(page):
    cells = [c for c in jupytext.read(page.source).cells if c.cell_type == "code"]
    shown = [
        c.source.splitlines()[0]
        for c in cells
        if _only_glues(c.source) and "remove-cell" not in c.metadata.get("tags", [])
    ]
    assert not shown, f"tag these glue-only cells remove-cell: {shown}"


def test_no_module_imports_tqdm_auto():
    # In a kernel without ipywidgets, tqdm.auto warns with the path of the builder's
    # environment, and the warning lands in the notebook a reader downloads.
    sources = [p for p in (REPO / "mirrorlib").rglob("*.py") if "tqdm.auto" in p.read_text()]
    assert not sources, f"use `from tqdm import tqdm` in {sources}"
