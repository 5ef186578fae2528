import gzip

import numpy as np
import pytest
import torch

from mirrorlib.data import DatasetUnavailable, available_datasets, load_dataset
from mirrorlib.recovery import InputError


def _write_idx(folder, stem, array, header):
    with gzip.open(folder / f"{stem}.gz", "wb") as handle:
        handle.write(bytes(header) + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        _write_idx(tmp_path, f"{split}-images-idx3-ubyte", images, [0] * 16)
        _write_idx(tmp_path, f"{split}-labels-idx1-ubyte", np.arange(n) % 10, [0] * 8)
    return tmp_path


def test_idx_files_from_a_users_folder(idx_folder):
    train = load_dataset("fashion-mnist", "train", root=idx_folder)
    assert train.images.shape == (30, 1, 28, 28) and train.images.dtype == torch.float32
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert train.labels.tolist() == [i % 10 for i in range(30)]
    assert len(load_dataset("mnist", "test", root=idx_folder)) == 10


def test_digits_split_is_fixed_disjoint_and_stratified():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (1, 8, 8)
    assert torch.equal(load_dataset("digits", "train").images, train.images)
    counts = np.bincount(test.labels.numpy())
    assert counts.max() - counts.min() <= 2


def test_subset_is_balanced_and_seeded():
    digits = load_dataset("digits")
    subset = digits.subset(40, seed=3)
    assert np.bincount(subset.labels.numpy()).tolist() == [4] * 10
    assert torch.equal(subset.images, digits.subset(40, seed=3).images)
    with pytest.raises(InputError, match="cannot draw"):
        digits.subset(10_000)


def test_missing_or_unknown_data_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("mirrorlib.data.FASHION_MNIST_SYSTEM", tmp_path / "absent")
    monkeypatch.delenv("MIRRORLIB_FASHION_MNIST", raising=False)
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    with pytest.raises(DatasetUnavailable, match="no MNIST IDX files"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(InputError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(InputError, match="unknown split"):
        load_dataset("digits", "validation")
    assert "fashion-mnist" not in available_datasets()
