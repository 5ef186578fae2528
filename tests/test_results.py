"""mirrorlib.results: tables and figures written atomically and reproducibly."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib.results import chapter_context, read_table, save_figure, write_table


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {"potential": ["ne", "2-norm", "3-norm"], "delta_cdf": [0.0375, 0.1, 1 / 3], "seed": 0}
    )


def test_table_round_trip(tmp_path, table):
    path = write_table(table, tmp_path, "fig3_wrong_potential")
    assert path == tmp_path / "fig3_wrong_potential.csv"
    pd.testing.assert_frame_equal(read_table(tmp_path, "fig3_wrong_potential"), table)


def test_table_bytes_are_reproducible(tmp_path, table):
    first = write_table(table, tmp_path / "a", "t").read_bytes()
    second = write_table(table.copy(), tmp_path / "b", "t").read_bytes()
    assert first == second
    assert first.startswith(b"potential,delta_cdf,seed\nne,0.0375,0\n")


def test_a_meaningful_index_becomes_columns(tmp_path, table):
    write_table(table.set_index(["potential", "seed"]), tmp_path, "t")
    assert list(read_table(tmp_path, "t").columns) == ["potential", "seed", "delta_cdf"]
    write_table(table.iloc[1:], tmp_path, "sliced")
    assert list(read_table(tmp_path, "sliced").columns) == ["index", *table.columns]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("t.csv", "without its extension"),
        ("sub/t", "plain file name"),
        ("", "plain file name"),
        ("..", "plain file name"),
    ],
)
def test_bad_table_names(tmp_path, table, name, message):
    with pytest.raises(ValueError, match=message):
        write_table(table, tmp_path, name)


def test_write_table_refuses_non_frames(tmp_path):
    with pytest.raises(TypeError, match="DataFrame"):
        write_table({"a": [1]}, tmp_path, "t")


def test_missing_table_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no result table 'absent'"):
        read_table(tmp_path, "absent")


def test_a_failed_write_keeps_the_old_table(tmp_path, table, monkeypatch):
    path = write_table(table, tmp_path, "t")
    before = path.read_bytes()

    def broken_to_csv(self, target, **kwargs):
        with open(target, "w") as handle:
            handle.write("half a ta")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_table(table, tmp_path, "t")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_save_figure_writes_png_and_a_reproducible_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path, "fig2_linear_regression")
    again = save_figure(fig, tmp_path / "again", "fig2_linear_regression")
    plt.close(fig)
    assert [p.name for p in paths] == ["fig2_linear_regression.png", "fig2_linear_regression.pdf"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert paths[1].read_bytes() == again[1].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", *sorted(p.name for p in paths)]
    with pytest.raises(ValueError, match="without its extension"):
        save_figure(fig, tmp_path, "fig2.png")


def test_chapter_context_makes_folders_and_seeds(tmp_path):
    ctx = chapter_context(tmp_path / "results", tmp_path / "figures", seed=3, device="cpu")
    first = (torch.randn(3), ctx.rng.standard_normal(3))
    assert ctx.results_dir.is_dir() and ctx.figures_dir.is_dir()
    assert ctx.device == torch.device("cpu")
    ctx = chapter_context(tmp_path / "results", tmp_path / "figures", seed=3)
    assert torch.equal(torch.randn(3), first[0])
    np.testing.assert_array_equal(ctx.rng.standard_normal(3), first[1])
