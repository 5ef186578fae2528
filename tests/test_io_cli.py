"""Reading weight files and the ``python -m mirrorlib recover`` command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mirrorlib import InputError, load_weights
from mirrorlib.cli import main
from mirrorlib.recovery import simulate_after


@pytest.fixture()
def pair():
    rng = np.random.default_rng(0)
    w0 = rng.choice([-1.0, 1.0], 2000) * rng.lognormal(np.log(0.1), 0.5, 2000)
    return w0, simulate_after(w0, "ne", 0.2, seed=1)


def test_load_each_format(tmp_path, pair):
    w0, _ = pair
    np.save(tmp_path / "a.npy", w0)
    np.savez(tmp_path / "a.npz", layer1=w0[:1000].reshape(20, 50), layer2=w0[1000:])
    (tmp_path / "a.csv").write_text("weight\n" + "\n".join(map(repr, w0.tolist())) + "\n")
    (tmp_path / "b.csv").write_text("\n".join(map(repr, w0.tolist())) + "\n")
    (tmp_path / "c.csv").write_text("x,y\n1,2\n3,4\n")
    torch.save(torch.from_numpy(w0), tmp_path / "a.pt")
    torch.save({"model": {"fc.weight": torch.ones(3, 4), "n": torch.tensor(1)}}, tmp_path / "s.pt")
    np.testing.assert_array_equal(load_weights(tmp_path / "a.npy"), w0)
    assert set(load_weights(tmp_path / "a.npz")) == {"layer1", "layer2"}
    np.testing.assert_allclose(load_weights(tmp_path / "a.csv"), w0)
    np.testing.assert_allclose(load_weights(tmp_path / "b.csv"), w0)
    assert set(load_weights(tmp_path / "c.csv")) == {"x", "y"}
    np.testing.assert_array_equal(load_weights(tmp_path / "a.pt"), w0)
    assert set(load_weights(tmp_path / "s.pt")) == {"model.fc.weight", "model.n"}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("w.txt", b"1\n2\n", "unsupported file type '.txt'"),
        ("w.csv", b"", "empty"),
        ("w.csv", b"weight\n1.0\nabc\n", "non-numeric value 'abc'"),
        ("w.npy", b"not a numpy file", "cannot read as .npy"),
        ("w.npz", b"not a zip", "cannot read as .npz"),
        ("w.pt", b"garbage", "cannot read as a PyTorch file"),
    ],
)
def test_load_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_weights(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_weights(tmp_path / "nope.npy")


def test_recover_prints_table_and_verdict(tmp_path, pair, capsys):
    w0, w1 = pair
    np.save(tmp_path / "before.npy", w0)
    np.save(tmp_path / "after.npy", w1)
    code = main(
        ["recover", str(tmp_path / "before.npy"), str(tmp_path / "after.npy"), "--n-boot", "30"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "negative_entropy" in out and "best: negative_entropy" in out and "plausible" in out


def test_recover_json_with_state_dicts(tmp_path):
    gen = torch.Generator().manual_seed(0)
    before = {
        "features.0.weight": torch.randn(64, 3, 3, 3, generator=gen),
        "classifier.weight": torch.randn(10, 64, generator=gen),
    }
    after = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in before.items()}
    torch.save(before, tmp_path / "b.pt")
    torch.save(after, tmp_path / "a.pt")
    code = main(
        [
            "recover",
            str(tmp_path / "b.pt"),
            str(tmp_path / "a.pt"),
            "--json",
            "--exclude",
            "^classifier",
            "--candidates",
            "ne",
            "2-norm",
            "3-norm",
            "--n-boot",
            "20",
        ]
    )
    assert code == 0


def test_recover_json_output(tmp_path, pair, capsys):
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0)
    np.save(tmp_path / "a.npy", w1)
    assert (
        main(
            ["recover", str(tmp_path / "b.npy"), str(tmp_path / "a.npy"), "--json", "--n-boot", "0"]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["best"] == "negative_entropy" and payload["n_weights"] == 2000
    assert payload["candidates"][0]["potential"] == "negative_entropy"


@pytest.mark.parametrize(
    "after, extra, message",
    [
        ("short", [], "shape"),
        ("nan", [], "non-finite"),
        ("same", [], "identical"),
        ("ok", ["--candidates", "euclid"], "unknown potential"),
        ("text", [], "non-numeric"),
    ],
)
def test_recover_bad_input_exit_2_one_line(tmp_path, pair, after, extra, message):
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0)
    files = {
        "short": lambda p: np.save(p, w1[:10]),
        "nan": lambda p: np.save(p, np.r_[w1[:-1], np.nan]),
        "same": lambda p: np.save(p, w0),
        "ok": lambda p: np.save(p, w1),
    }
    target = tmp_path / ("a.csv" if after == "text" else "a.npy")
    if after == "text":
        target.write_text("w\nhello\n")
    else:
        files[after](target)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirrorlib",
            "recover",
            str(tmp_path / "b.npy"),
            str(target),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr
