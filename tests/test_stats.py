"""The exact Delta-CDF against numerical integration, the paper's grid, and its floor."""

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
    z = rng.standard_t(4, size=5000)
    assert _exact_torch(torch.from_numpy(z.copy())) == pytest.approx(
        _exact_numpy(z.copy()), rel=1e-10
    )


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

    mean, se, word = paired_verdict([1.0, 2.0, 3.0], [0.9, 1.9, 2.9])
    assert mean == pytest.approx(0.1) and se == pytest.approx(0.0, abs=1e-12)
    assert word == "higher than"
    assert paired_verdict([1.0, 2.0, 3.0], [1.5, 1.0, 3.4])[2] == "not distinguishable from"
    with pytest.raises(ValueError):
        paired_verdict([1.0], [2.0])
