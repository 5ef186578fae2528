"""The exact Delta-CDF against numerical integration, the paper's grid, and its floor."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from mirrorlib import delta_cdf, delta_cdf_floor, delta_cdf_grid


def quad_delta_cdf(x, centered=False):
    """Reference: adaptive quadrature of |F_n - Phi| over the real line, split at the samples."""
    x = np.asarray(x, dtype=np.float64)
    z = (x - (x.mean() if centered else 0.0)) / x.std(ddof=1)
    z = np.sort(z)
    n = z.size

    def gap(t):
        return abs(np.searchsorted(z, t, side="right") / n - special.ndtr(t))

    edges = np.concatenate([[z[0] - 40], z, [z[-1] + 40]])
    return sum(
        integrate.quad(gap, a, b, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b > a
    )


@pytest.mark.parametrize("n", [2, 3, 7, 30, 200])
@pytest.mark.parametrize("centered", [False, True])
def test_exact_matches_quadrature(n, centered):
    rng = np.random.default_rng(n)
    x = rng.standard_t(3, size=n) * 0.7 + 0.4
    assert delta_cdf(x, centered) == pytest.approx(quad_delta_cdf(x, centered), abs=1e-9)


def test_ties_and_heavy_tails_match_quadrature():
    x = np.array([1.0, 1.0, 1.0, -2.0, 5.0, 5.0, 0.0, 30.0])
    assert delta_cdf(x) == pytest.approx(quad_delta_cdf(x), abs=1e-9)


@pytest.mark.parametrize("n", [20_000, 200_000])
def test_exact_matches_paper_grid_on_large_samples(n):
    rng = np.random.default_rng(0)
    x = rng.laplace(size=n)
    # The grid's error: Riemann sum on [-5, 5] with spacing 0.01 and the tails beyond 5.
    assert delta_cdf(x) == pytest.approx(delta_cdf_grid(x), abs=2e-3)


def test_torch_numpy_and_shapes_agree():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 40))
    ref = delta_cdf(x)
    assert delta_cdf(torch.from_numpy(x)) == pytest.approx(ref, rel=1e-12)
    assert delta_cdf(torch.from_numpy(x).float()) == pytest.approx(ref, rel=1e-5)
    assert delta_cdf(x.ravel().tolist()) == pytest.approx(ref, rel=1e-12)


def test_torch_backend_formula_matches_numpy():
    """The formula used for CUDA tensors, run here on CPU."""
    from mirrorlib.stats import _exact_numpy, _exact_torch

    rng = np.random.default_rng(2)
    z = np.sort(rng.standard_t(4, size=5000))
    assert _exact_torch(torch.from_numpy(z.copy())) == pytest.approx(
        _exact_numpy(z.copy()), rel=1e-10
    )


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e300])
@pytest.mark.parametrize("centered", [False, True])
def test_torch_path_used_for_cuda_tensors_matches_numpy_on_cpu(scale, centered):
    """The sort-then-standardise path CUDA tensors take, run here on CPU tensors."""
    from mirrorlib.stats import _exact_torch, _standardise

    x = torch.from_numpy(np.random.default_rng(6).standard_t(4, size=3000) * scale)
    got = _exact_torch(_standardise(torch.sort(x.float() if scale == 1.0 else x).values, centered))
    expected = delta_cdf(x.float().numpy() if scale == 1.0 else x.numpy(), centered)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensor_stays_on_gpu():
    x = torch.randn(10_000, device="cuda", dtype=torch.float64)
    assert delta_cdf(x) == pytest.approx(delta_cdf(x.cpu().numpy()), rel=1e-9)


def test_scale_invariant_and_sign_of_mean_matters_uncentred():
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    assert delta_cdf(3.0 * x) == pytest.approx(delta_cdf(x), rel=1e-12)
    assert delta_cdf(x + 2.0) > delta_cdf(x + 2.0, centered=True)


@pytest.mark.parametrize(
    "x, message",
    [
        ([1.0, np.nan, 2.0], "non-finite"),
        ([1.0, np.inf, 2.0], "non-finite"),
        ([1.0], "at least 2"),
        ([2.0, 2.0, 2.0], "zero variance"),
        (np.array(["a", "b"]), "numeric"),
    ],
)
def test_bad_input(x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        delta_cdf(x)


@pytest.mark.parametrize("n, paper", [(100, 0.12), (1000, 0.038), (10_000, 0.012)])
def test_floor_matches_simulation(n, paper):
    floor = delta_cdf_floor(n)
    assert floor == pytest.approx(paper, rel=0.1)
    rng = np.random.default_rng(123)
    independent = np.mean([delta_cdf(rng.standard_normal(n)) for _ in range(200)])
    assert floor == pytest.approx(independent, rel=0.08)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-160, 1e160, 1e200, 1e300])
@pytest.mark.parametrize("centered", [False, True])
def test_scale_invariant_beyond_the_square_root_of_the_float_range(scale, centered):
    """np.std squares its input: beyond 1e+-154 it overflowed (0.7979) or underflowed
    ("zero variance")."""
    x = np.random.default_rng(4).standard_t(4, size=1000) + 0.3
    assert delta_cdf(x * scale, centered) == pytest.approx(delta_cdf(x, centered), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32])
def test_half_precision_and_integer_tensors_computed_in_float64(dtype):
    x = torch.randn(500, generator=torch.Generator().manual_seed(0)).mul(100).to(dtype)
    expected = delta_cdf(x.double().numpy())
    assert delta_cdf(x) == expected
    assert delta_cdf(x.reshape(20, 25), centered=True) == delta_cdf(x.double().numpy(), True)


def test_float32_sorted_in_its_dtype_gives_the_float64_answer():
    x = np.random.default_rng(5).laplace(size=10_001).astype(np.float32)
    assert delta_cdf(x) == pytest.approx(delta_cdf(x.astype(np.float64)), rel=1e-12, abs=0)
    assert delta_cdf(torch.from_numpy(x)) == pytest.approx(delta_cdf(x), rel=1e-12, abs=0)


def test_sparse_and_complex_tensors_are_refused():
    with pytest.raises(TypeError, match="dense"):
        delta_cdf(torch.eye(30).to_sparse())
    with pytest.raises(TypeError, match="real-valued"):
        delta_cdf(torch.ones(30, dtype=torch.complex64))


def test_floor_where_the_expectation_is_infinite():
    """Uncentred n = 2: E[Delta-CDF] is infinite (it used to return 6.78 after 79 s); n = 3:
    finite mean, infinite spread; centred n = 2 is the single value of z = +-1/sqrt(2)."""
    assert delta_cdf_floor(2) == math.inf
    assert delta_cdf_floor(2, spread=True) == (math.inf, math.inf)
    mean, std = delta_cdf_floor(3, spread=True)
    assert math.isfinite(mean) and std == math.inf
    assert delta_cdf_floor(2, centered=True) == pytest.approx(
        delta_cdf([-1.0, 1.0], centered=True), rel=1e-12
    )


def test_floor_scored_in_batches_matches_one_draw_at_a_time():
    """The batched simulation scores the same draws as delta_cdf called on each in turn."""
    from mirrorlib.stats import _simulated_floor

    rng = np.random.default_rng(7)
    one_by_one = [delta_cdf(rng.standard_normal(1000), True) for _ in range(4000)]
    mean, std = _simulated_floor(1000, True, 7)
    assert mean == pytest.approx(np.mean(one_by_one), rel=1e-12)
    assert std == pytest.approx(np.std(one_by_one, ddof=1), rel=1e-10)


def test_floor_scales_like_inverse_sqrt_n():
    mean, std = delta_cdf_floor(1_000_000, spread=True)
    assert mean == pytest.approx(1.2 / 1000, rel=0.25) and 0 < std < mean
    with pytest.raises(ValueError, match="integer"):
        delta_cdf_floor(1.5)


def test_difference_verdict_needs_the_interval_to_exclude_zero():
    from mirrorlib.stats import difference_verdict

    assert difference_verdict(-0.3, 0.1) == "lower than"
    assert difference_verdict(0.3, 0.1) == "higher than"
    # z = 1.4, the 3-norm against p = 2.9 in the review: not "lower"
    assert difference_verdict(-0.14, 0.1) == "not distinguishable from"
    assert difference_verdict(-0.14, 0.1, z=1.0) == "lower than"
    with pytest.raises(ValueError):
        difference_verdict(float("nan"), 0.1)


def test_paired_verdict_uses_the_spread_of_the_differences():
    from mirrorlib.stats import paired_verdict

    # differences 0.1, 0.09, 0.11: se 0.0058, 4.3 se = 0.025 < 0.1
    mean, se, word = paired_verdict([1.0, 2.0, 3.0], [0.9, 1.91, 2.89])
    assert mean == pytest.approx(0.1) and se == pytest.approx(0.01 / math.sqrt(3))
    assert word == "higher than"
    assert paired_verdict([1.0, 2.0, 3.0], [1.5, 1.0, 3.4])[2] == "not distinguishable from"
    # two pairs, differences 1.0 and 1.2: mean 1.1, se 0.1, eleven standard errors from zero,
    # but with one degree of freedom the 95 % interval is 12.7 se wide: no verdict
    assert paired_verdict([2.0, 3.2], [1.0, 2.0])[2] == "not distinguishable from"
    assert paired_verdict([2.0, 3.2], [1.0, 2.0], level=0.9)[2] == "higher than"  # 6.3 se
    with pytest.raises(ValueError, match="at least two pairs, got 1"):
        paired_verdict([1.0], [2.0])


def test_paired_t_multiplier_is_the_student_t_quantile():
    from mirrorlib.stats import paired_t_multiplier

    assert paired_t_multiplier(2) == pytest.approx(12.706, abs=1e-3)  # one degree of freedom
    assert paired_t_multiplier(5) == pytest.approx(2.776, abs=1e-3)
    assert paired_t_multiplier(3, level=0.9) == pytest.approx(2.920, abs=1e-3)
    with pytest.raises(ValueError, match="two pairs"):
        paired_t_multiplier(1)
    assert paired_t_multiplier(np.int64(5)) == paired_t_multiplier(5)
    for count in (2.5, 3.0, True, "3"):
        with pytest.raises(ValueError, match="integer count"):
            paired_t_multiplier(count)
    with pytest.raises(ValueError, match="level"):
        paired_t_multiplier(5, level=1.0)


def test_paired_verdict_gives_no_verdict_when_the_differences_agree_to_rounding():
    """Audit 12 H6: equal differences have no spread to measure, so the t interval has zero
    width; "higher than" from them was decided by how rounding left the standard error."""
    from mirrorlib.stats import paired_verdict

    mean, se, word = paired_verdict([1.0, 2.0], [0.9, 1.9])  # se 5.6e-17 from rounding
    assert mean == pytest.approx(0.1) and 0 < se < 1e-15
    assert word == "not distinguishable from"
    mean, se, word = paired_verdict([0.3, 0.7], [0.3 - 1e-12, 0.7 - 1e-12])  # se exactly 0
    assert mean == pytest.approx(1e-12, rel=1e-3) and se == 0.0
    assert word == "not distinguishable from"
    assert paired_verdict([0.1 + 0.2, 0.3], [0.3, 0.3])[2] == "not distinguishable from"
    assert paired_verdict([-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5])[2] == "not distinguishable from"
    # a spread well above rounding is measured: differences 1e-12 apart at values near 1
    d = np.array([0.0, 1e-12, 2e-12])
    assert paired_verdict(0.5 + d, 0.4 + 0 * d)[2] == "higher than"
    assert paired_verdict(0.4 + 0 * d, 0.5 + d)[2] == "lower than"


def test_paired_verdict_needs_one_value_of_each_per_pair():
    """Audit 12 M11: lengths 3 and 1 were broadcast into three "pairs"."""
    from mirrorlib.stats import paired_verdict

    with pytest.raises(ValueError, match="a has 3 values and b has 1"):
        paired_verdict([1.0, 2.0, 3.0], [0.0])
    with pytest.raises(ValueError, match="a has 3 values and b has 2"):
        paired_verdict([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"1-D .* shapes \(2, 2\) and \(4,\)"):
        paired_verdict([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="finite"):
        paired_verdict([1.0, np.nan], [1.0, 2.0])


def test_difference_verdict_makes_no_claim_from_a_zero_width_interval():
    from mirrorlib.stats import difference_verdict

    assert difference_verdict(0.1, 0.0) == "not distinguishable from"
    assert difference_verdict(-0.1, 0.0) == "not distinguishable from"
    assert difference_verdict(0.1, 1e-3, resolution=1e-3) == "not distinguishable from"
    assert difference_verdict(0.1, 1e-3, resolution=1e-4) == "higher than"
    assert difference_verdict(0.1, 1e-3, z=0.0) == "higher than"
    with pytest.raises(ValueError, match="z must be finite and >= 0"):
        difference_verdict(0.1, 1.0, z=-2)  # was "lower than"
    with pytest.raises(ValueError, match="z must be finite"):
        difference_verdict(0.1, 1.0, z=math.nan)
    with pytest.raises(ValueError, match="resolution"):
        difference_verdict(0.1, 1.0, resolution=-1.0)


@pytest.mark.parametrize(
    "n, seed, message",
    [
        (100.0, 0, "n must be an integer"),
        (math.nan, 0, "n must be an integer"),  # was int()'s "cannot convert float NaN"
        (None, 0, "n must be an integer"),
        (True, 0, "n must be an integer"),
        (1, 0, "n must be an integer >= 2"),
        (100, 1.5, "seed must be an integer >= 0"),  # was silently seed 1
        (100, -1, "seed must be an integer >= 0"),
        (100, None, "seed must be an integer >= 0"),
    ],
)
def test_floor_refuses_a_count_or_seed_that_is_not_a_whole_number(n, seed, message):
    """Audit 12 L5."""
    with pytest.raises(ValueError, match=message):
        delta_cdf_floor(n, seed=seed)


def test_floor_takes_numpy_integers():
    assert delta_cdf_floor(np.int64(1000), seed=np.int64(0)) == delta_cdf_floor(1000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lim": -1.0}, "lim must be finite and > 0"),  # was a negative distance
        ({"lim": 0.0}, "lim must be finite and > 0"),
        ({"lim": math.inf}, "lim must be finite and > 0"),
        ({"n_points": 0}, "n_points must be an integer >= 2"),  # was NaN
        ({"n_points": 1}, "n_points must be an integer >= 2"),
        ({"n_points": 100.0}, "n_points must be an integer >= 2"),
    ],
)
def test_grid_refuses_an_empty_or_negative_grid(kwargs, message):
    """Audit 12 L8."""
    x = np.random.default_rng(0).standard_normal(50)
    with pytest.raises(ValueError, match=message):
        delta_cdf_grid(x, **kwargs)


def test_scan_geometry_scores_are_the_centred_statistic():
    """Audit 12 M7: delta_cdf defaults to uncentred, scan_geometry to centred; the docstrings
    say how to get scan_geometry's number from delta_cdf."""
    from mirrorlib import dual_change, scan_geometry, simulate_after

    rng = np.random.default_rng(0)
    before = rng.lognormal(-1, 0.5, 4000)
    after = simulate_after(before, "ne", 0.05, seed=2)
    scan = scan_geometry(before, after, ["ne"], n_boot=0)
    change = dual_change(before, after, "ne")
    assert scan.delta_cdf[0] == delta_cdf(change, centered=True)
    assert scan.delta_cdf[0] < 0.8 * delta_cdf(change)
