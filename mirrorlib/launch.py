"""Where the book lives, and the cell that sets up a chapter launched in Colab.

One place names the repository: ``repository.url`` and ``repository.branch`` in
``_config.yml``. Everything else derives from it: the book's Binder, Colab, repository, edit
and issue buttons (jupyter-book reads the same keys), the tests, and the first cell of every
chapter, which :func:`sync_install_cells` writes from :func:`install_cell_source`. A fork edits
those two keys and runs ``python -m mirrorlib launch-cells``.

The install cell runs only in Colab (``"google.colab" in sys.modules``), or wherever
``MIRRORLIB_INSTALL_SOURCE`` names a checkout of the repository (CI's Colab-like check). It
clones the repository at the configured branch and runs its one install script,
``.ci/install --keep-torch``: the chapters' Python packages (``mirrorlib[chapters]``), the data
packages of ``requirements-data.txt`` and the apt packages of ``binder/apt.txt``, without
replacing the runtime's own (CUDA) PyTorch. It then moves into the clone's ``book/`` folder, so
that the chapter reads and writes where it would in the repository (``../_build/``, the stored
results).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INSTALL_SOURCE_ENV",
    "Repository",
    "install_cell_source",
    "read_repository",
    "stale_install_cells",
    "sync_install_cells",
]

INSTALL_SOURCE_ENV = "MIRRORLIB_INSTALL_SOURCE"
"""Environment variable naming a local checkout for the install cell to install from."""

_MARKER = "# mirrorlib launch set-up"
_GITHUB = re.compile(r"^https://github\.com/(?P<slug>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Repository:
    """The book's GitHub repository and branch, as ``_config.yml`` names them."""

    url: str
    branch: str

    @property
    def slug(self) -> str:
        """``owner/name``, as in GitHub, Binder and Colab addresses."""
        match = _GITHUB.match(self.url)
        if match is None:
            raise ValueError(
                f"repository.url must be https://github.com/OWNER/NAME, got {self.url!r}"
            )
        return match["slug"]

    @property
    def name(self) -> str:
        """The repository's name (the folder a clone makes)."""
        return self.slug.split("/")[1]

    def binder_url(self, notebook: str) -> str:
        """The Binder launch address of ``notebook`` (a path in the repository)."""
        return f"https://mybinder.org/v2/gh/{self.slug}/{self.branch}?urlpath=lab/tree/{notebook}"

    def colab_url(self, notebook: str) -> str:
        """The Colab launch address of ``notebook`` (a path in the repository)."""
        return f"https://colab.research.google.com/github/{self.slug}/blob/{self.branch}/{notebook}"


def read_repository(root: str | os.PathLike = ".") -> Repository:
    """The repository and branch named in ``root/_config.yml``."""
    import yaml

    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8"))
    section = config.get("repository") or {}
    repository = Repository(str(section.get("url", "")), str(section.get("branch", "main")))
    repository.slug  # noqa: B018 (validates the address)
    return repository


def install_cell_source(repository: Repository) -> str:
    """The code of a chapter's first cell (tagged ``remove-cell``) for ``repository``."""
    return f'''{_MARKER} (written by `python -m mirrorlib launch-cells` from _config.yml).
# In Colab only: install mirrorlib, the packages and data the chapters need, keeping Colab's torch.
import os
import subprocess
import sys

source = os.environ.get("{INSTALL_SOURCE_ENV}")
if "google.colab" in sys.modules or source:
    if not source:
        source = "/content/{repository.name}"
        if not os.path.isdir(source):
            subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "{repository.branch}",
                            "{repository.url}", source], check=True)
    subprocess.run(["bash", os.path.join(source, ".ci", "install"), "--keep-torch"], check=True,
                   env={{**os.environ, "PYTHON": sys.executable}})
    sys.path.insert(0, source)  # the running kernel does not read the new editable install
    os.chdir(os.path.join(source, "book"))  # run where the chapter sits in the repository'''


_CELL = re.compile(
    r"```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n\n(?:(?!```).)*?google\.colab.*?\n```",
    re.DOTALL,
)
_FIRST_CODE_CELL = re.compile(
    r"```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*\n?(?P<code>.*?)\n```", re.DOTALL
)


def _chapter_sources(root: Path) -> list[Path]:
    from mirrorlib.book import read_toc

    return [page.source for page in read_toc(root) if page.is_notebook]


def stale_install_cells(root: str | os.PathLike = ".") -> list[Path]:
    """The chapters whose first cell is not the install cell for ``_config.yml``'s repository."""
    root = Path(root)
    expected = install_cell_source(read_repository(root))
    stale = []
    for path in _chapter_sources(root):
        match = _FIRST_CODE_CELL.search(path.read_text(encoding="utf-8"))
        if match is None or match["code"] != expected:
            stale.append(path)
    return stale


def sync_install_cells(root: str | os.PathLike = ".") -> list[Path]:
    """Rewrite the install cell of every chapter (and its paired notebook); return those changed.

    A chapter without an install cell gets one before its first code cell.
    """
    root = Path(root)
    cell = (
        "```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        + install_cell_source(read_repository(root))
        + "\n```"
    )
    changed = []
    for path in _chapter_sources(root):
        text = path.read_text(encoding="utf-8")
        if _CELL.search(text):
            new = _CELL.sub(lambda _: cell, text, count=1)
        else:
            start = text.index("```{code-cell}")
            new = text[:start] + cell + "\n\n" + text[start:]
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
            subprocess.run(
                [sys.executable, "-m", "jupytext", "--quiet", "--sync", str(path)], check=True
            )
    return changed
