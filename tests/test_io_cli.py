"""Reading weight files and the ``python -m mirrorlib recover`` command line."""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import warnings

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


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("w.npz", npy_bytes(np.ones(3)), "holds one .npy array, not an .npz archive"),
        ("w.npy", npz_bytes(w=np.ones(3)), "holds an .npz archive, not one .npy array"),
        ("w.npy", npy_bytes(np.ones(3)).replace(b"(3,)", b"(3,("), "cannot read as .npy"),
        ("w.pt", pickle.dumps({"w": 1.0}, protocol=4), "cannot read as a PyTorch file"),
    ],
    ids=["npy-named-npz", "npz-named-npy", "damaged-npy-header", "plain-pickle-pt"],
)
def test_load_mislabelled_or_damaged_files_one_error_no_warning(tmp_path, name, content, message):
    """Found by the property tests: each gave a traceback or an extra warning line."""
    (tmp_path / name).write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=ResourceWarning)  # hidden by default
        with pytest.raises(InputError, match=re.escape(message)):
            load_weights(tmp_path / name)
    assert not caught, caught[0].message


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
    assert "best: negative_entropy" in out and "indistinguishable" in out


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


def run_recover(capsys, before, after, *extra):
    """``recover`` in this process: (exit code, stdout, stderr lines)."""
    code = main(["recover", str(before), str(after), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def test_csv_first_value_nan_is_data_rejected_as_nan(tmp_path, pair, capsys):
    """A first value of nan used to be taken for a header and dropped silently."""
    (tmp_path / "a.csv").write_text("nan\n1\n2\n")
    loaded = load_weights(tmp_path / "a.csv")
    assert loaded.shape == (3,) and np.isnan(loaded[0])
    w0, w1 = pair
    (tmp_path / "b.csv").write_text("\n".join(map(repr, w0.tolist())) + "\n")
    (tmp_path / "c.csv").write_text("nan\n" + "\n".join(map(repr, w1[1:].tolist())) + "\n")
    code, out, err = run_recover(capsys, tmp_path / "b.csv", tmp_path / "c.csv", "--n-boot", "0")
    assert code == 2 and out == "" and len(err) == 1 and "non-finite" in err[0]


@pytest.mark.parametrize(
    "content, message",
    [
        ("1,\n2,\n3,\n", "line 1 ends with a comma"),
        ("x,y\n1,2\n3\n4,5\n", "line 3 has 1 value(s) but the first line has 2"),
        ("x,y\n1,2\n3,\n4,5\n", "line 3 ends with a comma"),
        ("x,y,z\n1,,2\n", "line 2 has an empty value in column 2"),
        ("1\n2,3\n", "Expected 1 fields in line 2, saw 2"),
        ("w,w\n1,2\n", "names column 'w' twice"),
        ("w\n", "only a header"),
    ],
)
def test_csv_shape_problems_name_their_cause(tmp_path, content, message):
    (tmp_path / "w.csv").write_text(content)
    with pytest.raises(InputError, match=re.escape(message)):
        load_weights(tmp_path / "w.csv")


def test_csv_load_and_recover_without_warnings(tmp_path, capsys):
    """pandas gives read-only arrays; torch warned on every CSV load. An all-zero "before" is a
    valid input (the relative change is infinite); negative entropy alone names the zeros."""
    rng = np.random.default_rng(0)
    (tmp_path / "b.csv").write_text("w\n" + "0\n" * 500)
    (tmp_path / "a.csv").write_text(
        "w\n" + "\n".join(map(repr, rng.normal(0, 0.1, 500).tolist())) + "\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, _ = run_recover(capsys, tmp_path / "b.csv", tmp_path / "a.csv", "--n-boot", "20")
    assert code == 0 and "best: 2-norm" in out, _
    code, _, err = run_recover(capsys, tmp_path / "b.csv", tmp_path / "a.csv", "--candidates", "ne")
    assert code == 2 and err == [
        "error: every candidate potential was excluded: 500 weight(s) went to or from exactly 0 "
        "(negative entropy keeps signs, 0 stays 0)"
    ]


def write_bad_crc_npz(path, array):
    np.savez(path, w=array)
    data = bytearray(path.read_bytes())
    start = data.index(array.tobytes()[:16])
    data[start] ^= 0xFF  # flip one data byte: the zip's CRC no longer matches
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name, write_before, write_after, message",
    [
        (
            "w.pt",
            lambda p, w: torch.save(torch.from_numpy(w), p),
            lambda p, w: torch.save(torch.from_numpy(w).to_sparse(), p),
            "sparse",
        ),
        (
            "w.pt",
            lambda p, w: torch.save({"w": torch.from_numpy(w)}, p),
            lambda p, w: torch.save({"w": torch.from_numpy(w).to_sparse()}, p),
            "sparse",
        ),
        ("w.npz", lambda p, w: np.savez(p, w=w), write_bad_crc_npz, "cannot read array 'w'"),
        (
            "w.npz",
            lambda p, w: np.savez(p, w=w),
            lambda p, w: np.savez(p, w=np.array([{"a": 1}], dtype=object)),
            "cannot read array 'w'",
        ),
    ],
    ids=["sparse-tensor", "sparse-state-dict", "bad-crc-npz", "object-npz"],
)
def test_recover_damaged_files_exit_2_in_one_line(
    tmp_path, pair, capsys, name, write_before, write_after, message
):
    w0, w1 = pair
    write_before(tmp_path / f"before_{name}", w0)
    write_after(tmp_path / f"after_{name}", w1)
    code, out, err = run_recover(capsys, tmp_path / f"before_{name}", tmp_path / f"after_{name}")
    assert code == 2 and out == "" and len(err) == 1 and message in err[0], err


def test_recover_weights_scaled_by_1e_300(tmp_path, pair, capsys):
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0 * 1e-300)
    np.save(tmp_path / "a.npy", w1 * 1e-300)
    code, out, _ = run_recover(capsys, tmp_path / "b.npy", tmp_path / "a.npy", "--n-boot", "20")
    assert code == 0 and "best: negative_entropy" in out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_recover_half_precision_checkpoints(tmp_path, pair, capsys, dtype):
    w0, w1 = pair
    for name, w in (("b", w0), ("a", w1)):
        torch.save(torch.from_numpy(w).to(dtype), tmp_path / f"{name}.pt")
        torch.save(
            {"layer.weight": torch.from_numpy(w).to(dtype).reshape(40, 50)},
            tmp_path / f"{name}_sd.pt",
        )
    code, out, _ = run_recover(capsys, tmp_path / "b.pt", tmp_path / "a.pt", "--n-boot", "20")
    assert code == 0 and "best:" in out
    code, out, _ = run_recover(capsys, tmp_path / "b_sd.pt", tmp_path / "a_sd.pt", "--n-boot", "20")
    assert code == 0 and "best:" in out


def test_recover_candidates_with_commas_before_the_files(tmp_path, pair, capsys):
    """'--candidates ne 2-norm b.npy a.npy' swallowed the files; one word with '=' does not."""
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0)
    np.save(tmp_path / "a.npy", w1)
    code = main(["recover", "--candidates=ne,2-norm", str(tmp_path / "b.npy"),
                 str(tmp_path / "a.npy"), "--json", "--n-boot", "0"])  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and [c["potential"] for c in payload["candidates"]] == [
        "negative_entropy",
        "2-norm",
    ]
    assert payload["n_zero_dropped"] == 0 and payload["frac_unchanged"] == 0.0
    code, out, _ = run_recover(
        capsys, tmp_path / "b.npy", tmp_path / "a.npy", "--candidates", "ne,1.5-norm", "3-norm"
    )
    assert code == 0 and all(name in out for name in ("negative_entropy", "1.5-norm", "3-norm"))


def test_recover_too_few_resamples_exit_2(tmp_path, pair, capsys):
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0)
    np.save(tmp_path / "a.npy", w1)
    code, out, err = run_recover(capsys, tmp_path / "b.npy", tmp_path / "a.npy", "--n-boot", "1")
    assert code == 2 and out == "" and len(err) == 1
    assert "n_boot must be 0 (no bootstrap) or at least 20" in err[0]


def test_recover_bad_seed_and_long_name(tmp_path, pair, capsys):
    w0, w1 = pair
    np.save(tmp_path / "b.npy", w0)
    np.save(tmp_path / "a.npy", w1)
    code, _, err = run_recover(capsys, tmp_path / "b.npy", tmp_path / "a.npy", "--seed", "-1")
    assert code == 2 and len(err) == 1 and "seed must be an integer >= 0" in err[0]
    long_name = tmp_path / ("x" * 300 + ".npy")
    code, _, err = run_recover(capsys, long_name, tmp_path / "a.npy")
    assert code == 2 and len(err) == 1 and "cannot open (File name too long)" in err[0]


def test_recover_refuses_a_fifo_without_blocking(tmp_path, pair):
    """Reading a FIFO blocks until a writer comes: it is refused before it is opened."""
    w0, _ = pair
    np.save(tmp_path / "b.npy", w0)
    fifo = tmp_path / "a.npy"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "mirrorlib", "recover", str(tmp_path / "b.npy"), str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["recover", "b.npy", "a.npy", "--n-boot", "abc"],
        ["recover"],
        ["nonsense"],
        ["finetune", "--seeds", "x"],
        ["book", "--scale", "huge"],
    ],
)
def test_usage_errors_are_one_line_on_stderr(argv, capsys):
    from mirrorlib.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "error: " in err and "--help)" in err
