"""Geometry recovery: dual changes, the scan's self-check, confidence and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mirrorlib import InputError, dual_change, flatten_weights, potential, scan_geometry
from mirrorlib.projection import linearised_solution
from mirrorlib.recovery import DEFAULT_CANDIDATES, simulate_after


def normal_w0(n, rng):
    return rng.normal(0.0, 0.1, n)


def signed_lognormal_w0(n, rng, mean=0.1, std=0.1):
    sigma2 = np.log1p(std**2 / mean**2)
    mu = np.log(mean) - sigma2 / 2
    return rng.choice([-1.0, 1.0], n) * rng.lognormal(mu, np.sqrt(sigma2), n)


def p_of(name):
    return 1.0 if name == "negative_entropy" else potential(name).p


@pytest.mark.parametrize("true", ["negative_entropy", "1.5-norm", "2-norm", "2.5-norm", "3-norm"])
@pytest.mark.parametrize("w0_kind", ["normal", "signed_lognormal"])
def test_scan_recovers_true_potential(true, w0_kind):
    """5000 weights, a Gaussian dual change of 10% of a typical dual value (the median
    |grad_phi(w0)|): the best candidate is within 0.1 of the truth in >= 95% of 20 seeds
    (negative entropy is the p -> 1 limit, so 1.1-norm counts as its neighbour)."""
    pot = potential(true)
    hits = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        w0 = normal_w0(5000, rng) if w0_kind == "normal" else signed_lognormal_w0(5000, rng)
        change = 0.1 * np.median(np.abs(pot.to_dual(w0)))
        w1 = simulate_after(w0, pot, change, seed=seed + 1000)
        best = scan_geometry(w0, w1, n_boot=0)["potential"].iloc[0]
        hits += abs(p_of(best) - p_of(true)) <= 0.1 + 1e-9
    assert hits >= 19


def test_table_columns_order_and_attrs():
    rng = np.random.default_rng(0)
    w0 = signed_lognormal_w0(3000, rng)
    w1 = simulate_after(w0, "ne", 0.15, seed=1)
    df = scan_geometry(w0, w1, n_boot=50)
    for col in ["rank", "potential", "p", "delta_cdf", "relative_change", "note", "p_best"]:
        assert col in df.columns
    assert len(df) == len(DEFAULT_CANDIDATES)
    assert df["delta_cdf"].is_monotonic_increasing
    assert df["p_best"].sum() == pytest.approx(1.0)
    assert df.attrs["n_weights"] == 3000 and "best:" in df.attrs["verdict"]
    assert df["indistinguishable"].iloc[0]
    # The 3-norm is far from negative entropy: ruled out.
    assert not df.set_index("potential").loc["3-norm", "indistinguishable"]


def test_relative_change_is_ratio_of_norms():
    rng = np.random.default_rng(0)
    w0 = normal_w0(1000, rng)
    w1 = simulate_after(w0, "2-norm", 0.01, seed=2)
    row = scan_geometry(w0, w1, ["2-norm"], n_boot=0).iloc[0]
    assert row["relative_change"] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))


def test_bootstrap_is_reproducible_and_subsampling_works():
    rng = np.random.default_rng(4)
    w0 = signed_lognormal_w0(4000, rng)
    w1 = simulate_after(w0, "2-norm", 0.01, seed=5)
    cands = ["ne", "1.5-norm", "2-norm", "3-norm"]
    a = scan_geometry(w0, w1, cands, n_boot=40, seed=3)
    b = scan_geometry(w0, w1, cands, n_boot=40, seed=3)
    pd.testing.assert_frame_equal(a, b)
    sub = scan_geometry(w0, w1, cands, n_boot=40, seed=3, max_boot_size=1000)
    assert sub["potential"].iloc[0] == "2-norm"
    assert sub.set_index("potential").loc["2-norm", "p_best"] > 0.5


def test_negative_entropy_excluded_on_sign_change():
    rng = np.random.default_rng(0)
    w0 = normal_w0(2000, rng)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)  # large enough to flip some signs
    df = scan_geometry(w0, w1, n_boot=0)
    ne = df.set_index("potential").loc["negative_entropy"]
    assert ne["excluded"] and "changed sign" in ne["note"]
    assert df["potential"].iloc[-1] == "negative_entropy"


def test_dual_change_types_and_errors():
    w0 = np.array([0.5, -0.2, 0.1])
    w1 = np.array([0.6, -0.1, 0.2])
    np.testing.assert_allclose(dual_change(w0, w1, "2-norm"), w1 - w0)
    t = dual_change(torch.tensor(w0), torch.tensor(w1), "ne")
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), np.sign(w0) * np.log(w1 / w0), rtol=1e-12)
    with pytest.raises(InputError, match="changed sign"):
        dual_change(w0, -w1, "ne")
    with pytest.raises(InputError, match="shape"):
        dual_change(w0, w1[:2], "2-norm")


def test_the_potential_is_passed_as_potential():
    # recovery and projection called the argument ``potential_``; it is ``potential`` everywhere.
    w0, w1 = np.array([0.5, 0.2, 0.1]), np.array([0.6, 0.1, 0.2])
    np.testing.assert_allclose(dual_change(w0, w1, potential="negative_entropy"), np.log(w1 / w0))
    np.testing.assert_array_equal(
        simulate_after(w0, potential="2-norm", change=0.1, seed=3),
        simulate_after(w0, "2-norm", 0.1, seed=3),
    )
    X = torch.eye(2, 3, dtype=torch.float64)
    y = torch.tensor([1.0, 2.0], dtype=torch.float64)
    w = linearised_solution(X, y, torch.tensor(w0), potential="2-norm")
    np.testing.assert_allclose(w.numpy(), [1.0, 2.0, 0.1])


def test_state_dicts_with_exclusion_and_ndim_filter():
    gen = torch.Generator().manual_seed(0)
    before = {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=gen),
        "conv.bias": torch.randn(8, generator=gen),
        "bn.num_batches_tracked": torch.tensor(5),
        "fc.weight": torch.randn(10, 20, generator=gen),
    }
    after = {k: v + 0.01 if v.is_floating_point() else v for k, v in before.items()}
    b, a, names = flatten_weights(before, after, exclude=r"^fc\.")
    assert names == ["conv.weight"] and b.size == 216
    b, a, names = flatten_weights(before, after, min_ndim=1)
    assert names == ["conv.bias", "conv.weight", "fc.weight"]


@pytest.mark.parametrize(
    "before, after, kwargs, message",
    [
        (np.ones(200), np.ones(300), {}, "shape"),
        (np.r_[np.ones(199), np.nan], np.ones(200), {}, "non-finite"),
        (np.ones(200), np.r_[np.ones(199), np.inf], {}, "non-finite"),
        (np.ones(50), np.ones(50) * 2, {}, "at least 100"),
        (np.linspace(1, 2, 200), np.linspace(1, 2, 200), {}, "identical"),
        (
            np.linspace(1, 2, 200),
            np.linspace(1, 2, 200) + 0.1,
            {"candidates": ["2-norm"]},
            "excluded",
        ),
        (
            np.linspace(1, 2, 200),
            np.linspace(1, 3, 200),
            {"candidates": ["euclid"]},
            "unknown potential 'euclid'",
        ),
        ({"a": np.ones((20, 20))}, {"b": np.ones((20, 20))}, {}, "different tensors"),
        ({"a": np.ones((20, 20))}, np.ones(400), {}, "one input is a set"),
        ({"a": np.ones((20, 20))}, {"a": np.ones((20, 20))}, {"exclude": "a"}, "no weights left"),
        ({"a": np.ones((20, 20))}, {"a": np.ones((20, 20))}, {"exclude": "("}, "bad --exclude"),
        (np.array(["x"] * 200), np.ones(200), {}, "not numeric"),
        (np.linspace(1, 2, 200), np.linspace(1, 3, 200), {"confidence": 1.5}, "confidence"),
    ],
)
def test_bad_input(before, after, kwargs, message):
    with pytest.raises(InputError, match=message):
        scan_geometry(before, after, n_boot=0 if "n_boot" not in kwargs else None, **kwargs)


def test_bootstrap_with_resamples_that_draw_no_changed_weight():
    """100 of 2000 weights change and resamples hold 30: a resample can hold none of them. It
    used to score inf for every candidate, inf - inf gave NaN and every candidate but the best
    was called worse. Such resamples are now left out for all."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.1, 2000)
    w1 = w0.copy()
    w1[:100] += 0.01 * rng.standard_normal(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = scan_geometry(
            w0, w1, ["2-norm", "2.1-norm", "1.9-norm"], n_boot=200, max_boot_size=30, seed=0
        )
    assert 0 < df.attrs["n_boot_kept"] < 200 and "left out" in df.attrs["verdict"]
    assert df["p_best"].sum() == pytest.approx(1.0)
    assert df["indistinguishable"].map(lambda v: isinstance(v, bool)).all()
    assert df[df["p_best"] >= 0.05]["indistinguishable"].all()


def test_bootstrap_that_keeps_no_resample_claims_nothing():
    rng = np.random.default_rng(1)
    w0 = rng.normal(0, 0.1, 100_000)
    w1 = w0.copy()
    w1[:100] += 0.01
    df = scan_geometry(w0, w1, ["2-norm", "1.5-norm"], n_boot=20, max_boot_size=2, seed=0)
    assert df.attrs["n_boot_kept"] == 0 and "20 of 20" in df.attrs["verdict"]
    assert df["p_best"].isna().all() and df["indistinguishable"].isna().all()
    assert not df["note"].str.contains("worse").any()


def test_too_few_kept_resamples_withhold_the_claims():
    """7 of 20 resamples of 2 weights score both candidates: p_best is given, no 95 % claim."""
    rng = np.random.default_rng(1)
    rng.normal(0, 0.1, 100_000)  # the draw of the test above, so that this one is fixed too
    w0 = rng.normal(0, 0.1, 1000)
    w1 = w0.copy()
    w1[:100] += 0.01 * rng.standard_normal(100)
    df = scan_geometry(w0, w1, ["2-norm", "1.5-norm"], n_boot=20, max_boot_size=2, seed=0)
    assert 0 < df.attrs["n_boot_kept"] < 20 and df["p_best"].sum() == pytest.approx(1.0)
    assert df["indistinguishable"].isna().all() and not df["note"].str.contains("worse").any()
    assert "too few for a claim at 95% (at least 20)" in df.attrs["verdict"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_state_dicts_and_tensors_computed_in_float64(dtype):
    gen = torch.Generator().manual_seed(0)
    before = {"conv.weight": torch.randn(16, 3, 3, 3, generator=gen).to(dtype)}
    after = {"conv.weight": (before["conv.weight"].double() * 1.05 + 0.01).to(dtype)}
    as64 = {k: v.double() for k, v in before.items()}, {k: v.double() for k, v in after.items()}
    expected = scan_geometry(*as64, ["2-norm", "3-norm"], n_boot=0)
    pd.testing.assert_frame_equal(
        scan_geometry(before, after, ["2-norm", "3-norm"], n_boot=0), expected
    )
    bare = scan_geometry(before["conv.weight"], after["conv.weight"], ["2-norm"], n_boot=0)
    assert bare["delta_cdf"].iloc[0] == expected.set_index("potential").loc["2-norm", "delta_cdf"]


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_weights_at_extreme_scales(scale):
    """p <= 2 dual changes scale by scale^(p-1) and stay finite: the same Delta-CDF as the
    unscaled weights (at 1e300 the 1.6- to 2-norm used to give 0.7979)."""
    rng = np.random.default_rng(2)
    w0 = normal_w0(2000, rng)
    w1 = simulate_after(w0, "1.8-norm", 0.002, seed=3)
    cands = ["1.6-norm", "1.8-norm", "2-norm"]
    ref = scan_geometry(w0, w1, cands, n_boot=0).set_index("potential")["delta_cdf"]
    got = scan_geometry(w0 * scale, w1 * scale, cands, n_boot=0).set_index("potential")
    np.testing.assert_allclose(got["delta_cdf"], ref[got.index], rtol=1e-9)
    assert got.loc["2-norm", "relative_change"] == pytest.approx(
        scan_geometry(w0, w1, ["2-norm"], n_boot=0)["relative_change"].iloc[0], rel=1e-12
    )


def test_sparse_tensor_and_bad_seed_are_input_errors():
    dense = torch.randn(20, 20, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="sparse"):
        scan_geometry(dense.to_sparse(), dense.to_sparse() * 2, n_boot=0)
    with pytest.raises(InputError, match="sparse"):
        scan_geometry({"w": dense.to_sparse()}, {"w": dense.to_sparse() * 2}, n_boot=0)
    with pytest.raises(InputError, match="seed"):
        scan_geometry(dense, dense * 2, ["2-norm"], n_boot=3, seed=-1)


def test_excluded_tensors_are_not_read():
    """--exclude applies before conversion: an unreadable tensor that is excluded is ignored."""
    dense = torch.randn(20, 20, generator=torch.Generator().manual_seed(0))
    before = {"w": dense, "skip": dense.to_sparse()}
    after = {"w": dense * 1.1 + 0.01, "skip": dense.to_sparse()}
    _, _, names = flatten_weights(before, after, exclude="^skip")
    assert names == ["w"]
