"""Execute every chapter of the book once with papermill, then build the HTML book from them.

Each chapter in _toc.yml (a MyST notebook, book/NAME.md) runs in its own folder with the
parameters scale, device, seed, results_dir and figures_dir injected after its cell tagged
"parameters". Outputs, for a scale S:

  _build/executed/S/book/NAME.ipynb   the executed chapter (written only when it succeeds)
  _build/results/S/                   result tables, and book_timing.csv (the timing table)
  _build/figures/S/                   figures (PNG and PDF)
  _build/html/                        the book, built from the executed notebooks

The HTML build executes nothing; it runs jupyter-book with -W -n --keep-going on a clean
output folder, so any warning fails it. A failing chapter does not stop the others: its
partial notebook is kept as NAME.failed.ipynb (its old NAME.ipynb is removed), the failing
cell is named, and the HTML is not built. With --chapters, the HTML is built when every other
chapter has been executed before at the same scale (those earlier executions are reused).

Exit status: 0 when every chapter ran (and the HTML was built, unless skipped as above),
1 when a chapter or the HTML build failed, 2 for bad arguments or a broken _toc.yml.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mirrorlib.results import write_table

if TYPE_CHECKING:
    from mirrorlib.sweep import RayExecutor

__all__ = [
    "BookError",
    "BookReport",
    "ChapterRun",
    "Page",
    "add_arguments",
    "execute_chapter",
    "execute_chapters",
    "main",
    "read_toc",
    "resolve_device",
    "run_book",
]

SCALES = ("ci", "paper")
DEVICES = ("auto", "cpu", "cuda")
KERNEL_NAME = "python3"
TIMING_TABLE = "book_timing"
TIMING_COLUMNS = ["chapter", "status", "seconds", "notes"]
_JUPYTER_BOOK = "from jupyter_book.cli.main import main; main()"
_SPHINX_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL|SEVERE):")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class BookError(Exception):
    """Bad arguments or a broken book configuration (exit status 2)."""


@dataclass(frozen=True)
class Page:
    """One page of the table of contents."""

    docname: str
    """Path without suffix, relative to the book's root, as in _toc.yml (``book/geometry``)."""
    source: Path
    """The file the page is written in (``.md`` or ``.ipynb``)."""
    is_notebook: bool
    """True for a chapter that is executed (a notebook, or MyST markdown with a kernelspec)."""

    @property
    def name(self) -> str:
        """The chapter's name on the command line: the file name without suffix."""
        return Path(self.docname).name


@dataclass(frozen=True)
class ChapterRun:
    """The outcome of executing one chapter."""

    name: str
    status: str
    seconds: float
    error: str = ""
    notes: tuple[str, ...] = ()
    """What the chapter substituted or skipped (:func:`mirrorlib.results.note_substitution`)."""

    @property
    def summary(self) -> str:
        """The status with its notes: ``ok (fallback: MNIST digits for Fashion-MNIST)``."""
        return f"{self.status} ({'; '.join(self.notes)})" if self.notes else self.status


@dataclass
class BookReport:
    """What :func:`run_book` did."""

    scale: str
    chapters: list[ChapterRun] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    html_status: str = "skipped"
    html_seconds: float = 0.0
    html_note: str = ""
    total_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when a chapter or the HTML build failed."""
        return self.html_status == "failed" or any(c.status == "failed" for c in self.chapters)

    def timing(self) -> pd.DataFrame:
        """The timing table: one row per executed chapter, and one for the HTML build."""
        rows = [(c.name, c.status, round(c.seconds, 1), "; ".join(c.notes)) for c in self.chapters]
        if self.html_status != "skipped":
            rows.append(("html build", self.html_status, round(self.html_seconds, 1), ""))
        return pd.DataFrame(rows, columns=TIMING_COLUMNS)

    def format(self) -> str:
        """The timing table, the total, and what went wrong, as printed at the end of a run."""
        table = self.timing()
        width = max([len("chapter"), len("total"), *table["chapter"].map(len)])
        lines = [f"{'chapter':<{width}}  {'wall time':>9}  status"]
        lines += [
            f"{row.chapter:<{width}}  {row.seconds:>7.1f} s  "
            + (f"{row.status} ({row.notes})" if row.notes else row.status)
            for row in table.itertuples()
        ]
        lines.append(f"{'total':<{width}}  {self.total_seconds:>7.1f} s")
        lines += [f"FAILED {c.name}: {c.error}" for c in self.chapters if c.status == "failed"]
        if self.reused:
            lines.append(f"reused earlier executions of: {', '.join(self.reused)}")
        if self.html_note:
            lines.append(self.html_note)
        return "\n".join(lines)


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when torch sees a GPU, else ``cpu``; refuse an absent GPU."""
    import torch

    if device not in DEVICES:
        raise BookError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BookError("--device cuda, but torch.cuda.is_available() is False on this machine")
    return device


def _toc_entries(node: Any) -> Iterator[str]:
    """Every ``root`` and ``file`` in a _toc.yml structure, in reading order."""
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                yield str(node[key])
        for value in node.values():
            if isinstance(value, list):
                for item in value:
                    yield from _toc_entries(item)


def _has_kernelspec(path: Path) -> bool:
    """True when a MyST markdown file's front matter names a kernel (it is a notebook)."""
    import yaml

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    end = text.find("\n---", 3)
    if end < 0:
        return False
    front = yaml.safe_load(text[3:end])
    return isinstance(front, dict) and "kernelspec" in front


def read_toc(root: Path) -> list[Page]:
    """The pages listed in ``root/_toc.yml``, in order, each resolved to its source file."""
    import yaml

    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BookError(f"no _toc.yml in {root} (run from the repository root, or pass --root)")
    pages = []
    for entry in _toc_entries(yaml.safe_load(toc_path.read_text(encoding="utf-8"))):
        docname = entry.removesuffix(".md").removesuffix(".ipynb")
        for suffix in (".md", ".ipynb"):
            source = root / f"{docname}{suffix}"
            if source.is_file():
                notebook = suffix == ".ipynb" or _has_kernelspec(source)
                pages.append(Page(docname, source, notebook))
                break
        else:
            raise BookError(f"_toc.yml lists {entry!r}, but {docname}.md does not exist")
    names = [page.name for page in pages if page.is_notebook]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BookError(f"chapter names must be unique; _toc.yml repeats {', '.join(twice)}")
    return pages


def _describe_failure(exc: Exception) -> str:
    """One line naming the failing cell (for a cell error) and the error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, BookError):
        return str(exc)
    if isinstance(exc, PapermillExecutionError):
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        evalue = (exc.evalue.splitlines() or [""])[0]
        return f"cell In [{exc.exec_count}] `{first_line.strip()}`: {exc.ename}: {evalue}"
    message = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {message}"


def _ipc_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over local IPC sockets, not TCP.

    A kernel on TCP without encryption logs a warning into every chapter's output; IPC
    sockets are files readable only by this user, which is also the safer transport.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

    return IPCKernelManager


def execute_chapter(page: Page, executed_dir: Path, parameters: dict[str, Any]) -> ChapterRun:
    """Execute one chapter with papermill into ``executed_dir/<docname>.ipynb``.

    The kernel runs in the chapter's folder. The notebook is written to a temporary file and
    renamed only on success; on failure the partial notebook becomes ``NAME.failed.ipynb``.
    """
    import jupytext
    import nbformat
    import papermill

    target = executed_dir / f"{page.docname}.ipynb"
    failed = target.with_name(f"{page.name}.failed.ipynb")
    tmp = target.with_name(f".{page.name}.{uuid.uuid4().hex}.ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        notebook = jupytext.read(page.source)
        if not any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells):
            raise BookError(f"{page.source.name} has no cell tagged 'parameters'")
        notebook = papermill.execute_notebook(
            notebook,
            tmp,
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=page.source.parent,
            progress_bar={"desc": page.name, "leave": False},
            kernel_manager_class=_ipc_kernel_manager(),
        )
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                tags.append("remove-cell")
        # A reader downloads this notebook from the book: no folder of the builder in it.
        record = notebook.metadata.get("papermill", {})
        record.update(input_path=page.source.name, output_path=target.name)
        nbformat.write(notebook, tmp)
        os.replace(tmp, target)
        return ChapterRun(page.name, "ok", time.perf_counter() - start, notes=_notes(notebook))
    except Exception as exc:
        target.unlink(missing_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        error = _describe_failure(exc)
        if failed.exists():
            error += f" (see {failed})"
        return ChapterRun(page.name, "failed", time.perf_counter() - start, error)
    finally:
        tmp.unlink(missing_ok=True)


def _notes(notebook: Any) -> tuple[str, ...]:
    """The substitutions an executed chapter recorded in its outputs' metadata, in order."""
    from mirrorlib.results import SUBSTITUTION_KEY

    notes = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            note = output.get("metadata", {}).get(SUBSTITUTION_KEY)
            if note and note not in notes:
                notes.append(str(note))
    return tuple(notes)


def _drop_excludes(config: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """The config without the exclude patterns that would hide the executed notebooks."""
    patterns = config.get("exclude_patterns", [])
    kept = [p for p in patterns if not any(fnmatch.fnmatchcase(path, p) for path in paths)]
    return {**config, "exclude_patterns": kept}


def _assemble_source(root: Path, pages: Sequence[Page], executed_dir: Path, source: Path) -> None:
    """Lay out a book source tree whose chapters are the executed notebooks.

    Copies the folders holding the pages (without the chapters' own .md/.ipynb), the
    executed notebooks in their place, ``_toc.yml``, the bibliography and ``_config.yml``.
    """
    import yaml

    chapters = [page for page in pages if page.is_notebook]
    replaced = {page.source.with_suffix(ext) for page in chapters for ext in (".md", ".ipynb")}

    def ignore(folder: str, names: list[str]) -> list[str]:
        skip = {"_build", "__pycache__"}
        return [n for n in names if n.startswith(".") or n in skip or Path(folder, n) in replaced]

    source.mkdir(parents=True)
    for folder in sorted({page.source.parent for page in pages} - {root}):
        shutil.copytree(
            folder, source / folder.relative_to(root), ignore=ignore, dirs_exist_ok=True
        )
    for page in pages:
        if page.source.parent == root and not page.is_notebook:
            shutil.copy2(page.source, source / page.source.name)
    for page in chapters:
        shutil.copy2(executed_dir / f"{page.docname}.ipynb", source / f"{page.docname}.ipynb")
    shutil.copy2(root / "_toc.yml", source / "_toc.yml")
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    for bib in config.get("bibtex_bibfiles", []):
        if not (source / bib).exists():
            (source / bib).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / bib, source / bib)
    config = _drop_excludes(config, [f"{page.docname}.ipynb" for page in chapters])
    (source / "_config.yml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def build_html(root: Path, pages: Sequence[Page], executed_dir: Path, scale: str) -> Path:
    """Build ``root/_build/html`` from the executed notebooks; return its ``index.html``.

    Raises :class:`RuntimeError` with Sphinx's warnings when the build fails.
    """
    build = root / "_build"
    source = build / "source" / scale
    shutil.rmtree(source, ignore_errors=True)
    _assemble_source(root, pages, executed_dir, source)
    for folder in ("html", ".doctrees", "jupyter_execute"):
        shutil.rmtree(build / folder, ignore_errors=True)
    command = [sys.executable, "-c", _JUPYTER_BOOK, "build", str(source)]
    command += ["--path-output", str(root), "-W", "-n", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = _ANSI_ESCAPE.sub("", done.stdout + done.stderr)
    log = build / "logs" / f"jupyter-book-{scale}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(output, encoding="utf-8")
    if done.returncode != 0:
        problems = [line for line in output.splitlines() if _SPHINX_PROBLEM.search(line)]
        detail = "\n".join(problems or output.splitlines()[-20:])
        raise RuntimeError(f"jupyter-book build failed (full log: {log}):\n{detail}")
    return build / "html" / "index.html"


def run_book(
    root: str | os.PathLike = ".",
    scale: str = "ci",
    chapters: Sequence[str] | None = None,
    device: str = "auto",
    seed: int = 0,
    html: bool = True,
    ray: RayExecutor | None = None,
) -> BookReport:
    """Execute the chapters of the book in ``root`` (all, or those named) and build its HTML.

    ``ray``: a :class:`mirrorlib.sweep.RayExecutor` to execute each chapter as a Ray task
    (:func:`execute_chapters`); the HTML is built here from what they return.

    Writes the timing table to ``_build/results/<scale>/book_timing.csv``. Raises
    :class:`BookError` for bad arguments; chapter and build failures are in the report.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    root = Path(root).resolve()
    if scale not in SCALES:
        raise BookError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    pages = read_toc(root)
    if html and not (root / "_config.yml").is_file():
        raise BookError(f"no _config.yml in {root} (pass --no-html to only execute the chapters)")
    notebooks = [page for page in pages if page.is_notebook]
    known = [page.name for page in notebooks]
    unknown = [name for name in chapters or [] if name not in known]
    if unknown:
        raise BookError(
            f"unknown chapter {', '.join(map(repr, unknown))}; "
            f"the chapters in _toc.yml are: {', '.join(known) or 'none'}"
        )
    selected = [page for page in notebooks if chapters is None or page.name in chapters]
    build = root / "_build"
    executed_dir = build / "executed" / scale
    results_dir = build / "results" / scale
    device = resolve_device(device)
    report = BookReport(scale)

    def parameters(page: Page) -> dict:
        # Folders relative to the chapter's own, so that an executed notebook (which a reader
        # downloads from the book) names no folder of the machine that built it.
        here = page.source.parent
        return {
            "scale": scale,
            "device": device,
            "seed": seed,
            "results_dir": os.path.relpath(results_dir, here),
            "figures_dir": os.path.relpath(build / "figures" / scale, here),
        }

    if ray is not None:
        folders = {"results": results_dir, "figures": build / "figures" / scale}
        report.chapters = execute_chapters(selected, executed_dir, parameters, folders, ray)
    for page in tqdm(selected if ray is None else [], desc="chapters", unit="chapter"):
        run = execute_chapter(page, executed_dir, parameters(page))
        if run.status == "failed":
            tqdm.write(f"FAILED {run.name}: {run.error}", file=sys.stderr)
        report.chapters.append(run)
        _update_timing(results_dir, report.timing())
    failed = [run.name for run in report.chapters if run.status == "failed"]
    others = [page for page in notebooks if page not in selected]
    missing = [p.name for p in others if not (executed_dir / f"{p.docname}.ipynb").is_file()]
    if not html:
        report.html_note = "HTML not built (--no-html)"
    elif failed:
        report.html_note = f"HTML not built: {', '.join(failed)} failed"
    elif missing:
        report.html_note = (
            f"HTML not built: never executed at scale {scale}: {', '.join(missing)} "
            "(run them, or run the whole book)"
        )
    else:
        report.reused = [page.name for page in others]
        tqdm.write("building the HTML (jupyter-book build -W -n --keep-going)", file=sys.stderr)
        html_start = time.perf_counter()
        try:
            index = build_html(root, pages, executed_dir, scale)
            report.html_status = "ok"
            report.html_note = f"HTML book: {index}"
        except RuntimeError as exc:
            report.html_status = "failed"
            report.html_note = str(exc)
        report.html_seconds = time.perf_counter() - html_start
    report.total_seconds = time.perf_counter() - start
    _update_timing(results_dir, report.timing())
    return report


def _execute_chapter_remote(
    page: Page, executed_dir: str, parameters: dict, shared: bool
) -> tuple[ChapterRun, dict]:
    """The body of a chapter's Ray task; ``parameters`` name the results and figures folders
    relative to the chapter's own (the working folder of its execution). Shared mode: execute
    into the book's own folders. Driver mode: execute into a folder of this worker and return
    the chapter's run and every file it wrote (executed notebook, tables, figures), as
    ``{(place, relative path): bytes}`` with ``place`` one of ``executed``, ``results``,
    ``figures``; the executed notebook names the relative folders, not the worker's."""
    if shared:
        return execute_chapter(page, Path(executed_dir), parameters), {}
    with tempfile.TemporaryDirectory(prefix="mirrorlib-chapter-") as tmp:
        folders = {place: Path(tmp) / place for place in ("executed", "results", "figures")}
        local = {**parameters, "results_dir": str(folders["results"])}
        local["figures_dir"] = str(folders["figures"])
        run = execute_chapter(page, folders["executed"], local)
        run = replace(run, error=run.error.replace(str(folders["executed"]), executed_dir))
        files = {
            (place, str(path.relative_to(folder))): path.read_bytes()
            for place, folder in folders.items()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
    for key, data in files.items():
        if key[0] == "executed":
            for place in ("results", "figures"):
                relative = json.dumps(parameters[f"{place}_dir"])[1:-1].encode()
                data = data.replace(json.dumps(str(folders[place]))[1:-1].encode(), relative)
            files[key] = data
    return run, files


def execute_chapters(
    pages: Sequence[Page],
    executed_dir: Path,
    parameters: Callable[[Page], dict],
    folders: dict[str, Path],
    executor: RayExecutor,
) -> list[ChapterRun]:
    """Execute each chapter of ``pages`` as one Ray task (one CPU, and one GPU when its
    parameters' ``device`` is ``cuda``), the way :func:`execute_chapter` does here; return
    their :class:`ChapterRun` s in the order of ``pages``. ``parameters(page)`` are the
    chapter's papermill parameters, with ``results_dir`` and ``figures_dir`` relative to its
    folder; ``folders`` holds the same two folders (keys ``results``, ``figures``) as paths
    here.

    Every worker needs the book's sources at the same path as here (a shared filesystem, or
    the same checkout). In driver mode the executed notebook and the tables and figures a
    chapter wrote travel back through Ray and are written here, atomically, into
    ``executed_dir`` and ``folders``; in shared mode the workers write them there themselves
    (and a chapter's stored results, such as the deep-network sweep's runs, are reused from
    one build to the next)."""
    import ray
    from tqdm import tqdm

    from mirrorlib.sweep import write_atomic

    executor.connect()
    remote = ray.remote(_execute_chapter_remote)
    shared = executor.results == "shared"
    refs = []
    for p in pages:
        gpus = 1 if parameters(p).get("device") == "cuda" else 0
        options = {"num_cpus": 1, "num_gpus": gpus, "max_retries": executor.max_retries}
        task = remote.options(**options, name=f"book:{p.name}")
        refs.append(task.remote(p, str(executed_dir), parameters(p), shared))
    places = {"executed": Path(executed_dir), **{k: Path(v) for k, v in folders.items()}}
    runs: dict[int, Any] = {}
    index = {ref: i for i, ref in enumerate(refs)}
    with tqdm(total=len(refs), desc="chapters", unit="chapter", file=sys.stderr) as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            run, files = ray.get(ready[0])
            page = pages[index[ready[0]]]
            for (place, relative), data in files.items():
                write_atomic(places[place] / relative, data)
            if files:  # what execute_chapter does to the notebook of the earlier execution
                target = places["executed"] / f"{page.docname}.ipynb"
                failed = target.with_name(f"{page.name}.failed.ipynb")
                (target if run.status == "failed" else failed).unlink(missing_ok=True)
            if run.status == "failed":
                bar.write(f"FAILED {run.name}: {run.error}", file=sys.stderr)
            runs[index[ready[0]]] = run
            bar.update(1)
    return [runs[i] for i in range(len(refs))]


def _update_timing(results_dir: Path, timing: pd.DataFrame) -> None:
    """Write the timing table: this run's rows, and earlier rows of chapters it did not run.

    Written after every chapter, so that a page executed later in the same run (the page on
    running the book) can quote the times of the chapters before it.
    """
    path = results_dir / f"{TIMING_TABLE}.csv"
    if path.is_file():
        earlier = pd.read_csv(path, keep_default_na=False)
        if list(earlier.columns) == TIMING_COLUMNS:
            kept = earlier[~earlier["chapter"].isin(timing["chapter"])]
            timing = pd.concat([kept, timing], ignore_index=True) if len(kept) else timing
    write_table(timing, results_dir, TIMING_TABLE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``book`` command's options to ``parser``."""
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="ci",
        help="ci: minutes on a laptop CPU; paper: the paper's settings (GPU advised)",
    )
    parser.add_argument(
        "--chapters",
        nargs="+",
        metavar="NAME",
        help="execute only these chapters (file names in _toc.yml without suffix)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto (default): cuda when torch sees a GPU, else cpu",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every chapter (default: 0)")
    parser.add_argument("--no-html", action="store_true", help="execute only; build no HTML")
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="the book's root folder (default: .)"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="execute each chapter as a Ray task: without ADDRESS on a Ray started here; with "
        "'auto' or a cluster's address, on that cluster (workers need the book at the same path)",
    )
    parser.add_argument(
        "--ray-results",
        choices=("driver", "shared"),
        default="driver",
        help="driver (default): tables and figures return through Ray and are written here; "
        "shared: the workers write them into _build themselves (a shared filesystem)",
    )


def main(args: argparse.Namespace) -> int:
    """Run the ``book`` command; return its exit status."""
    try:
        report = run_book(
            root=args.root,
            scale=args.scale,
            chapters=args.chapters,
            device=args.device,
            seed=args.seed,
            html=not args.no_html,
            ray=_ray_executor(args.ray, args.ray_results),
        )
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 1 if report.failed else 0


def _ray_executor(address: str | None, results: str):
    """The executor of ``--ray [ADDRESS]`` (None without the option)."""
    if address is None:
        return None
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BookError("--ray needs Ray: pip install 'mirrorlib[cluster]'") from None
    from mirrorlib.sweep import RayExecutor

    return RayExecutor(None if address == "local" else address, results)
