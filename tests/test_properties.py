"""Property-based tests (Hypothesis) of what the library promises.

- ``delta_cdf`` is invariant to scale (factors 1e-300 to 1e300) and to permutation, and equals
  an independent adaptive quadrature of ``|F_n - Phi|``;
- each potential's two maps invert each other, and its Bregman divergence is >= 0 and 0 only
  on the diagonal;
- ``recover`` on generated malformed files exits 0 or 2 (one line), never with a traceback,
  and leaves no file behind.

Example counts are set per test (``max_examples``); the profile is in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, special

from mirrorlib import delta_cdf, potential
from mirrorlib.cli import main

# Values 0 or of magnitude 1e-3..1e3: scaled by 1e-300..1e300 they stay normal floats.
nonzero = st.one_of(st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3))
moderate = st.one_of(st.just(0.0), nonzero)


def spread(x: np.ndarray) -> np.ndarray:
    """``x``, with one more value when all of its values are equal (Delta-CDF needs a spread)."""
    return x if np.ptp(x) > 0 else np.append(x, x[0] + 1.0)


def samples(max_size: int):
    return hnp.arrays(np.float64, st.integers(2, max_size), elements=moderate).map(spread)


@settings(max_examples=150)
@given(x=samples(200), exponent=st.integers(-300, 300), centered=st.booleans())
def test_delta_cdf_scale_invariant(x, exponent, centered):
    scale = 10.0**exponent
    assert delta_cdf(x * scale, centered) == pytest.approx(
        delta_cdf(x, centered), rel=1e-9, abs=1e-12
    )


@settings(max_examples=100)
@given(x=samples(200), centered=st.booleans(), data=st.data())
def test_delta_cdf_permutation_invariant(x, centered, data):
    order = data.draw(st.permutations(range(x.size)))
    assert delta_cdf(x[order], centered) == delta_cdf(x, centered)


def quadrature(x: np.ndarray, centered: bool) -> float:
    """``integral |F_n - Phi|`` by scipy's adaptive quadrature, piece by piece."""
    z = (x - (x.mean() if centered else 0.0)) / np.std(x, ddof=1)
    z = np.sort(z)

    def gap(t):
        return abs(np.searchsorted(z, t, side="right") / z.size - special.ndtr(t))

    # Split at the samples (jumps of F_n) and where Phi crosses each level k/n (kinks of |.|).
    crossings = special.ndtri(np.arange(1, z.size) / z.size)
    # Beyond +-40 around both the samples and 0, |F_n - Phi| is below 1e-300.
    low, high = min(z[0], 0.0) - 40.0, max(z[-1], 0.0) + 40.0
    # Phi changes only within about +-8: extra edges there, so no long piece hides that change.
    edges = np.sort(np.concatenate([[low], z, crossings, np.arange(-8.0, 9.0), [high]]))
    return sum(
        integrate.quad(gap, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b > a
    )


@settings(max_examples=60)
@given(x=samples(25), centered=st.booleans())
def test_delta_cdf_matches_quadrature(x, centered):
    assert delta_cdf(x, centered) == pytest.approx(quadrature(x, centered), abs=1e-8)


potentials = st.one_of(
    st.floats(1.05, 4.0).map(lambda p: potential(f"{p}-norm")),
    st.just(potential("negative_entropy")),
    st.floats(1e-2, 1e2).map(lambda beta: potential("hypentropy", beta=beta)),
)
weights = hnp.arrays(np.float64, st.integers(1, 20), elements=moderate)


@settings(max_examples=200)
@given(pot=potentials, w=weights)
def test_maps_invert_each_other_on_weights(pot, w):
    back = pot.from_dual(pot.to_dual(w), np.sign(w))
    np.testing.assert_allclose(back, w, rtol=1e-9, atol=0)


@settings(max_examples=200)
@given(pot=potentials, data=st.data())
def test_maps_invert_each_other_on_dual_values(pot, data):
    bound = {"negative_entropy": 50.0}.get(pot.name, 30.0 if "hypentropy" in pot.name else 1e3)
    theta = data.draw(hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-bound, bound)))
    if pot.needs_sign:
        sign = data.draw(hnp.arrays(np.float64, theta.shape, elements=st.sampled_from([-1, 1])))
        w = pot.from_dual(theta, sign)
    else:
        w = pot.from_dual(theta)
    np.testing.assert_allclose(pot.to_dual(w), theta, rtol=1e-9, atol=1e-9)


@settings(max_examples=200)
@given(pot=potentials, a=weights, data=st.data())
def test_bregman_nonnegative_and_zero_only_on_the_diagonal(pot, a, data):
    if pot.needs_sign:  # negative entropy's domain: nonzero weights (zero stays zero)
        a = np.where(a == 0, 1.0, a)
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=nonzero if pot.needs_sign else moderate))
    d = pot.bregman(a, b)
    np.testing.assert_array_equal(pot.bregman(a, a), 0.0)
    # >= 0 up to rounding of the terms it is the difference of.
    terms = np.abs(pot.phi(a)) + np.abs(pot.phi(b)) + np.abs(pot.to_dual(b) * (a - b))
    assert np.all(d >= -1e-12 * terms)
    # Strictly positive where a and b are told apart by more than rounding.
    apart = np.abs(a - b) > 1e-3 * np.maximum(np.abs(a), np.abs(b))
    assert np.all(d[apart] > 0)


# --- recover on malformed files -------------------------------------------------------------


class Hostile:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_container(path: Path, value) -> None:
    """Save ``value`` (array, tensor, dict or object) in the container ``path``'s suffix names."""
    suffix = path.suffix
    if suffix == ".pt":
        torch.save(value, path)
    elif suffix == ".npy":
        np.save(path, value, allow_pickle=True)
    elif suffix == ".npz":
        np.savez(path, w=value) if not isinstance(value, dict) else np.savez(path, **value)
    else:
        arr = np.asarray(value)
        path.write_text("w\n" + "\n".join(str(v) for v in arr.reshape(-1).tolist()) + "\n")


DAMAGES = [
    "valid",
    "truncated",
    "flipped bytes",
    "wrong dtype",
    "wrong shape",
    "wrong container",
    "hostile pickle",
    "random bytes",
]


def damaged_after(
    data, kind: str, suffix: str, directory: Path, w1: np.ndarray, marker: Path
) -> Path:
    """Write the "after" file in the container ``suffix``, damaged as ``kind`` says."""
    path = directory / f"after{suffix}"
    if kind == "wrong dtype":
        dtype = data.draw(
            st.sampled_from(["complex", "bool", "str", "int8", "float16", "bfloat16"]),
            label="dtype",
        )
        if dtype == "bfloat16":
            value = torch.from_numpy(w1).to(torch.bfloat16)
            value = value if suffix == ".pt" else value.float().numpy()
        elif dtype == "str":
            value = np.array([f"w{i}" for i in range(w1.size)])
        else:
            value = (w1 * 100 if dtype == "int8" else w1).astype(dtype)
        write_container(
            path,
            torch.from_numpy(value)
            if suffix == ".pt" and dtype not in ("str", "bfloat16")
            else value,
        )
        return path
    if kind == "wrong shape":
        size = data.draw(st.integers(0, 2 * w1.size), label="size")
        write_container(path, np.resize(w1, size))
        return path
    if kind == "wrong container":
        other = data.draw(st.sampled_from([".npy", ".npz", ".csv", ".pt"]), label="written as")
        real = directory / f"real{other}"
        write_container(real, torch.from_numpy(w1) if other == ".pt" else w1)
        path.write_bytes(real.read_bytes())
        real.unlink()
        return path
    if kind == "hostile pickle":
        payload = Hostile(marker)
        if suffix == ".pt":
            path.write_bytes(pickle.dumps({"w": payload}))
        elif suffix in (".npy", ".npz"):
            write_container(path, np.array([payload, payload], dtype=object))
        else:
            path.write_bytes(pickle.dumps(payload))
        return path
    if kind == "random bytes":
        path.write_bytes(data.draw(st.binary(max_size=2000), label="bytes"))
        return path
    write_container(path, torch.from_numpy(w1) if suffix == ".pt" else w1)
    raw = bytearray(path.read_bytes())
    if kind == "truncated":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="kept bytes")]
    elif kind == "flipped bytes":
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            at = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[at] ^= data.draw(st.integers(1, 255), label="mask")
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("kind", DAMAGES)
@settings(max_examples=15)
@given(data=st.data())
def test_recover_on_malformed_files_exits_0_or_2_in_one_line(kind, data):
    rng = np.random.default_rng(0)
    w0 = rng.choice([-1.0, 1.0], 200) * rng.lognormal(np.log(0.1), 0.5, 200)
    w1 = w0 * np.exp(0.05 * rng.standard_normal(200))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        marker = directory / "pwned"
        suffix = data.draw(st.sampled_from([".npy", ".npz", ".csv", ".pt"]), label="container")
        before = directory / f"before{suffix}"
        write_container(before, torch.from_numpy(w0) if suffix == ".pt" else w0)
        after = damaged_after(data, kind, suffix, directory, w1, marker)
        files = sorted(directory.iterdir())
        out, err = io.StringIO(), io.StringIO()
        args = ["recover", str(before), str(after), "--candidates", "ne", "2-norm"]
        args += ["--n-boot", "20"]
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            for hidden in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=hidden)  # as Python does by default
            code = main(args)
        assert not caught, f"a warning would add lines to stderr: {caught[0].message}"
        assert not marker.exists(), "a pickle in the file ran code"
        assert sorted(directory.iterdir()) == files, "recover left a file behind"
        assert code in (0, 2)
        event(f"exit {code}")
        if code == 2:
            lines = err.getvalue().strip().splitlines()
            assert out.getvalue() == "" and len(lines) == 1 and lines[0].startswith("error: ")
        else:
            assert "best:" in out.getvalue()
        if kind == "valid":
            assert code == 0
