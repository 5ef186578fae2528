"""Run every chapter's notebook the way a reader's launch service would, on a fresh environment.

  python .ci/launch_check.py binder [--chapters NAME ...]
  python .ci/launch_check.py colab  [--chapters NAME ...]

binder: a fresh venv built from binder/ alone, in repo2docker's order: the apt packages of
  binder/apt.txt, `pip install -r binder/requirements.txt` from the repository root, then
  binder/postBuild. PyTorch's CPU index, which binder/requirements.txt names, is unreachable from
  CI's machines; pip is told not to retry it (PIP_RETRIES=0) and takes the same pinned wheels
  from the package index it can reach.
colab: a fresh venv with a Colab-like base (torch, numpy, scipy, pandas, matplotlib,
  scikit-learn and the kernel), where only the notebook's own first cell installs mirrorlib, its
  packages and its data: MIRRORLIB_INSTALL_SOURCE points that cell at a clean copy of this
  checkout (what Colab would clone).

Papermill (from the environment running this script) executes each chapter's paired
book/NAME.ipynb, unmodified, with that venv's kernel and its default parameters (the ci scale),
in book/ of the environment's copy of the repository. Prints a table of chapter, status, seconds
and what each substituted; exits 1 if a chapter failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mirrorlib.book import _ipc_kernel_manager, _notes, read_toc  # noqa: E402

COLAB_BASE = ["torch", "numpy", "scipy", "pandas", "matplotlib", "scikit-learn", "ipykernel"]
"""Colab's preinstalled packages that matter here, at requirements.txt's versions where it pins
them (an unpinned torch would be PyPI's multi-GB CUDA build; Colab brings its own)."""


def _pinned(names: list[str]) -> list[str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            pins[line.split("==")[0].strip().lower()] = line.strip()
    return [pins.get(name, name) for name in names]


def _run(command: list[str], **kwargs) -> None:
    print("$", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, **kwargs)


def _clean_copy(target: Path) -> Path:
    """The checkout's committed and untracked-but-not-ignored files (what a clone holds)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _venv(folder: Path) -> Path:
    _run(["python3", "-m", "venv", str(folder)])
    python = folder / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    return python


def _apt(apt_file: Path) -> None:
    packages = [
        line.strip()
        for line in apt_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-q", *packages], capture_output=True, check=False
    )
    if done.returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], capture_output=True, check=False)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-q", *packages], capture_output=True, check=False
        )


def build_binder(repo: Path, work: Path) -> Path:
    """A venv made from repo/binder/ as repo2docker makes it; returns its python."""
    python = _venv(work / "venv")
    _apt(repo / "binder" / "apt.txt")
    env = {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}", "PIP_RETRIES": "0"}
    env.pop("PIP_EXTRA_INDEX_URL", None)
    _run(
        [str(python), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        cwd=repo,
        env=env,
    )
    _run(["bash", "binder/postBuild"], cwd=repo, env=env)
    return python


def build_colab(work: Path) -> Path:
    """A venv with a Colab-like base and nothing of this project; returns its python."""
    python = _venv(work / "venv")
    _run([str(python), "-m", "pip", "install", "-q", *_pinned(COLAB_BASE)])
    return python


def execute(python: Path, repo: Path, chapters: list[str], env: dict[str, str], out: Path):
    """Execute each chapter's paired notebook with ``python``'s kernel; yield result rows."""
    import nbformat
    import papermill

    kernels = out / "kernels"
    _run(
        [
            str(python),
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(kernels),
            "--name",
            "launch-check",
        ]
    )
    os.environ["JUPYTER_PATH"] = str(kernels / "share" / "jupyter")
    os.environ.update(env)
    for name in chapters:
        notebook = repo / "book" / f"{name}.ipynb"
        start = time.perf_counter()
        status, error, notes = "ok", "", ()
        try:
            executed = papermill.execute_notebook(
                str(notebook),
                str(out / f"{name}.ipynb"),
                kernel_name="launch-check",
                cwd=str(notebook.parent),
                progress_bar=False,
                kernel_manager_class=_ipc_kernel_manager(),
            )
            notes = _notes(nbformat.from_dict(executed))
        except Exception as exc:  # the chapter failed: report it, go on with the others
            status, error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0:1]}"
        seconds = time.perf_counter() - start
        print(f"{name:<16} {status:<7} {seconds:7.1f} s  {'; '.join(notes)} {error}", flush=True)
        yield {
            "chapter": name,
            "status": status,
            "seconds": round(seconds, 1),
            "notes": "; ".join(notes),
            "error": error,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=("binder", "colab"))
    parser.add_argument("--chapters", nargs="+", help="these chapters only (default: all)")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    chapters = args.chapters or [p.name for p in read_toc(ROOT) if p.is_notebook]
    work = args.keep or Path(tempfile.mkdtemp(prefix=f"launch-{args.service}-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    repo = _clean_copy(work / "repo")
    if args.service == "binder":
        python, env = build_binder(repo, work), {}
    else:
        python, env = build_colab(work), {"MIRRORLIB_INSTALL_SOURCE": str(repo)}
    built = time.perf_counter() - start
    print(f"== {args.service}-like environment built in {built:.0f} s", flush=True)
    rows = list(execute(python, repo, chapters, env, work / "executed"))
    failed = [row["chapter"] for row in rows if row["status"] != "ok"]
    summary = {
        "service": args.service,
        "environment_seconds": round(built),
        "total_seconds": round(time.perf_counter() - start),
        "chapters": rows,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"== {args.service}-like pass: {len(rows) - len(failed)}/{len(rows)} chapters ran, "
        f"{summary['total_seconds']} s in all"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
