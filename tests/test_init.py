"""Signed log-normal initialisation and Dale's-law signs."""

from __future__ import annotations

import math

import pytest
import torch

from mirrorlib import lognormal_mu_sigma, random_signs, signed_lognormal_


def test_lognormal_mu_sigma_of_the_paper():
    mu, sigma = lognormal_mu_sigma(0.1, 0.1)
    assert sigma == pytest.approx(math.sqrt(math.log(2)))
    assert mu == pytest.approx(math.log(0.1) - math.log(2) / 2)


@pytest.mark.parametrize("mean, std", [(0.1, 0.1), (0.5, 0.2), (2.0, 3.0)])
def test_magnitudes_have_the_requested_mean_and_std(mean, std):
    w = signed_lognormal_(
        torch.empty(1_000_000, dtype=torch.float64),
        mean,
        std,
        generator=torch.Generator().manual_seed(0),
    )
    assert w.abs().mean().item() == pytest.approx(mean, rel=0.01)
    # the sample std of a heavy-tailed log-normal converges slowly: looser tolerance
    assert w.abs().std().item() == pytest.approx(std, rel=0.05)
    assert torch.log(w.abs()).std().item() == pytest.approx(lognormal_mu_sigma(mean, std)[1], 1e-2)


def test_signs_are_fair_coins_without_dale():
    w = signed_lognormal_(torch.empty(400, 500), generator=torch.Generator().manual_seed(1))
    assert (w > 0).double().mean().item() == pytest.approx(0.5, abs=0.01)
    assert (w != 0).all()


@pytest.mark.parametrize("shape", [(50, 4000), (6, 2000, 3, 3)])
def test_dale_presynaptic_neurons_share_a_sign(shape):
    w = signed_lognormal_(torch.empty(shape), dale=True, generator=torch.Generator().manual_seed(2))
    signs = torch.sign(w).transpose(0, 1).reshape(shape[1], -1)  # one row per presynaptic neuron
    assert (signs == signs[:, :1]).all()
    assert (signs[:, 0] > 0).double().mean().item() == pytest.approx(0.8, abs=0.03)


def test_random_signs_mask_can_be_kept_and_reused():
    gen = torch.Generator().manual_seed(3)
    mask = random_signs((30, 40), dale=True, p_excitatory=0.5, generator=gen, dtype=torch.float64)
    assert mask.shape == (30, 40) and mask.is_contiguous()
    assert set(mask.unique().tolist()) <= {-1.0, 1.0}
    w = signed_lognormal_(torch.empty(30, 40, dtype=torch.float64), signs=mask, generator=gen)
    assert torch.equal(torch.sign(w), mask)
    column = signed_lognormal_(torch.empty(30, 40), signs=mask[:1].float())  # broadcast
    assert torch.equal(torch.sign(column), mask.float())


def test_the_generator_makes_draws_reproducible():
    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return signed_lognormal_(torch.empty(20, 30), dale=True, generator=gen)

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_zero_std_gives_a_signed_constant():
    w = signed_lognormal_(torch.empty(1000), 0.25, 0.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(w.abs(), torch.full((1000,), 0.25))


def test_it_fills_in_place_without_recording_a_graph():
    w = torch.nn.Parameter(torch.empty(5, 6))
    out = signed_lognormal_(w)
    assert out is w and w.grad_fn is None


BAD_INPUTS = [
    ({"mean": 0.0}, ValueError, r"mean of \|w\| must be finite and > 0"),
    ({"std": -0.1}, ValueError, r"std of \|w\| must be finite and >= 0"),
    ({"p_excitatory": 1.5}, ValueError, r"p_excitatory must be in \[0, 1\]"),
    ({"dale": True, "shape": (10,)}, ValueError, r"Dale's law needs a weight of shape"),
    ({"signs": torch.ones(3, 3)}, ValueError, r"do not broadcast"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_INPUTS)
def test_bad_inputs_raise(kwargs, error, message):
    kwargs = dict(kwargs)
    tensor = torch.empty(kwargs.pop("shape", (4, 5)))
    with pytest.raises(error, match=message):
        signed_lognormal_(tensor, **kwargs)
