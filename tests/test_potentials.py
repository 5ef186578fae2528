"""One property suite over every potential, in float32 and float64."""

import inspect
import math

import numpy as np
import pytest
import torch

import mirrorlib
from mirrorlib import (
    HyperbolicEntropy,
    NegativeEntropy,
    PNorm,
    optim,
    potential,
    potential_in_words,
    projection,
    recovery,
    synapse_law,
)
from mirrorlib.experiments import geometry, linear_regression, theory_vs_training
from mirrorlib.experiments.dual_gaussian import linear as dual_gaussian_linear

POTENTIALS = [
    NegativeEntropy(),
    PNorm(1.1),
    PNorm(1.5),
    PNorm(2.0),
    PNorm(2.5),
    PNorm(3.0),
    HyperbolicEntropy(0.1),
    HyperbolicEntropy(1.0),
]
DTYPES = [torch.float32, torch.float64]
MAGNITUDES = [0.0, 1e-15, 1e-8, 1e-3, 0.1, 0.5, 1.0, 3.0]


def signed_grid(dtype):
    m = torch.tensor(MAGNITUDES, dtype=dtype)
    return torch.cat([m, -m[1:]])


@pytest.mark.parametrize("pot", POTENTIALS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
class TestPotentialProperties:
    def test_round_trip(self, pot, dtype):
        w = signed_grid(dtype)
        back = pot.from_dual(pot.to_dual(w), torch.sign(w))
        rtol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(back, w, rtol=rtol, atol=0)

    def test_maps_finite_at_zero_and_tiny(self, pot, dtype):
        w = signed_grid(dtype)
        for out in (pot.phi(w), pot.to_dual(w), pot.hess_diag(w), pot.bregman(w, w)):
            assert torch.isfinite(out).all(), out
        assert pot.from_dual(pot.to_dual(w), torch.sign(w))[0] == 0

    def test_gradient_of_phi_is_mirror_map(self, pot, dtype):
        w = signed_grid(torch.float64)
        w = w[w.abs() > 1e-6].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(pot.phi(w).sum(), w)
        torch.testing.assert_close(grad, pot.to_dual(w.detach()), rtol=1e-10, atol=1e-12)

    def test_hessian_is_derivative_of_mirror_map(self, pot, dtype):
        w = signed_grid(torch.float64)
        w = w[w.abs() > 1e-6].clone().requires_grad_(True)
        (hess,) = torch.autograd.grad(pot.to_dual(w).sum(), w)
        torch.testing.assert_close(hess, pot.hess_diag(w.detach()), rtol=1e-10, atol=1e-12)
        assert (pot.hess_diag(w.detach()) > 0).all()

    def test_bregman_nonnegative_and_zero_on_diagonal(self, pot, dtype):
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(500, generator=gen, dtype=dtype)
        b = torch.randn(500, generator=gen, dtype=dtype)
        d = pot.bregman(a, b)
        assert (d >= -1e-5).all()
        assert torch.allclose(pot.bregman(a, a), torch.zeros_like(a), atol=1e-5)

    def test_step_is_dual_space_step(self, pot, dtype):
        gen = torch.Generator().manual_seed(1)
        w = torch.randn(200, generator=gen, dtype=dtype)
        g = torch.randn(200, generator=gen, dtype=dtype)
        lr = 0.05
        expected = pot.from_dual(pot.to_dual(w) - lr * g, torch.sign(w))
        rtol = 1e-4 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(pot.step(w, g, lr), expected, rtol=rtol, atol=1e-12)

    def test_no_overflow_for_large_dual_values(self, pot, dtype):
        theta = torch.tensor([1e3, -1e3, 1e30, -1e30], dtype=dtype)
        w = pot.from_dual(theta, torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=dtype))
        assert torch.isfinite(w).all()

    def test_numpy_in_numpy_out(self, pot, dtype):
        w = signed_grid(dtype).numpy()
        out = pot.to_dual(w)
        assert isinstance(out, np.ndarray) and out.dtype == w.dtype
        np.testing.assert_allclose(out, pot.to_dual(torch.from_numpy(w)).numpy())
        assert isinstance(pot.bregman(w, w), np.ndarray)


def test_negative_entropy_keeps_signs_and_zero():
    ne = NegativeEntropy()
    w = torch.tensor([-2.0, -1e-3, 0.0, 1e-3, 2.0], dtype=torch.float64)
    for g in (torch.full_like(w, 1e6), torch.full_like(w, -1e6)):
        new = ne.step(w, g, 1.0)
        assert torch.isfinite(new).all()
        assert not (torch.sign(new) * torch.sign(w) < 0).any()
        assert new[2] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_negative_entropy_step_caps_growth_and_keeps_zeros(dtype):
    ne = NegativeEntropy()
    root = math.sqrt(torch.finfo(dtype).max)
    w = torch.tensor([-2.0, -1e-3, -0.0, 0.0, 1e-3, 2.0, 0.99 * root], dtype=dtype)
    g = torch.tensor([math.inf, 1e30, -math.inf, math.inf, -1e30, -math.inf, -1e30], dtype=dtype)
    new = ne.step(w, g, 1.0)
    # every weight is pushed away from zero by more than a float can hold: one step multiplies
    # it by sqrt(max) at most, so it stays finite and keeps its sign; zeros stay zeros
    factor = torch.exp(torch.tensor(0.5 * math.log(torch.finfo(dtype).max), dtype=dtype))
    assert torch.isfinite(new).all()
    assert torch.equal(new, w * factor)
    assert torch.equal(torch.signbit(new), torch.signbit(w))
    assert (new[2:4] == 0).all()
    # a step that moves nothing far is the exact multiplicative update
    g = torch.tensor([0.5, -2.0, 1.0, 3.0, 0.25, -1.0, 0.0], dtype=dtype)
    assert torch.equal(ne.step(w, g, 0.1), w * torch.exp(-0.1 * torch.sign(w) * g))


def test_negative_entropy_zero_stays_zero_for_infinite_dual():
    ne = NegativeEntropy()
    theta = torch.tensor([math.inf, -math.inf, 5.0])
    assert (ne.from_dual(theta, torch.zeros(3)) == 0).all()


def test_negative_entropy_is_multiplicative():
    ne = NegativeEntropy()
    w = torch.tensor([-0.5, 0.2, 3.0], dtype=torch.float64)
    g = torch.tensor([0.3, -1.0, 0.1], dtype=torch.float64)
    assert torch.equal(ne.step(w, g, 0.1), w * torch.exp(-0.1 * torch.sign(w) * g))


def test_negative_entropy_crossing_zero_is_infinitely_far():
    ne = NegativeEntropy()
    d = ne.bregman(torch.tensor([-0.1, 0.1, 0.1]), torch.tensor([0.1, -0.1, 0.0]))
    assert torch.isinf(d).all()


def test_negative_entropy_inverse_needs_sign():
    with pytest.raises(ValueError, match="needs the sign"):
        NegativeEntropy().from_dual(torch.zeros(3))


def test_hypentropy_behaves_like_negative_entropy_for_large_weights():
    w = torch.tensor([10.0, 100.0], dtype=torch.float64)
    beta = 1e-3
    hyp = HyperbolicEntropy(beta).to_dual(w)
    ne = NegativeEntropy().to_dual(w)
    # arcsinh(w/beta) = log(2 w / beta) + O((beta/w)^2): equal up to a constant shift
    torch.testing.assert_close(
        hyp - ne, torch.full_like(w, math.log(2 / beta) - 1), rtol=0, atol=1e-8
    )


@pytest.mark.parametrize("p", [1.5, 2.5, 3.0, 1.1])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_p_norm_maps_equal_sign_times_power_exactly(p, dtype):
    pot = PNorm(p)
    w = torch.cat([signed_grid(dtype), torch.randn(1000, dtype=dtype)])
    assert torch.equal(pot.to_dual(w), torch.sign(w) * w.abs().pow(p - 1.0))
    theta = pot.to_dual(w) - 0.3
    expected = torch.sign(theta) * theta.abs().pow(1.0 / (p - 1.0))
    big = torch.finfo(dtype).max
    assert torch.equal(pot.from_dual(theta), expected.clamp(-big, big))


def test_two_norm_is_identity_map():
    w = torch.randn(10)
    torch.testing.assert_close(PNorm(2).to_dual(w), w)
    torch.testing.assert_close(PNorm(2).step(w, w, 0.5), 0.5 * w)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("negative_entropy", NegativeEntropy()),
        ("ne", NegativeEntropy()),
        ("NE", NegativeEntropy()),
        ("2-norm", PNorm(2.0)),
        ("1.5-norm", PNorm(1.5)),
        ("3-norm", PNorm(3.0)),
        ("hypentropy", HyperbolicEntropy(1.0)),
        ("hypentropy(beta=0.1)", HyperbolicEntropy(0.1)),
    ],
)
def test_potential_by_name(name, expected):
    assert potential(name) == expected
    assert potential(expected) is expected


def test_potential_name_round_trips():
    for pot in POTENTIALS:
        assert potential(pot.name) == pot


def test_potential_in_words_names_each_potential_as_prose_does():
    names = ("negative_entropy", "ne", "2.50-norm", "3-norm", "hypentropy", "hypentropy(beta=0.1)")
    words = [potential_in_words(name) for name in names]
    assert words == ["negative entropy", "negative entropy", "2.5-norm", "3-norm",
                     "hyperbolic entropy", "hyperbolic entropy, beta = 0.1"]  # fmt: skip
    assert potential_in_words(NegativeEntropy()) == "negative entropy"
    with pytest.raises(ValueError, match="unknown potential 'none'"):
        potential_in_words("none")


def test_hypentropy_beta_argument():
    assert potential("hypentropy", beta=0.25) == HyperbolicEntropy(0.25)


@pytest.mark.parametrize(
    "name, message",
    [
        ("euclid", r"unknown potential 'euclid'; valid names: negative_entropy"),
        ("1-norm", r"finite p > 1"),
        ("0.5-norm", r"finite p > 1"),
        ("hypentropy(beta=-1)", r"beta > 0"),
        ("hypentropy(beta=x)", r"cannot read beta"),
    ],
)
def test_bad_potential_names(name, message):
    with pytest.raises(ValueError, match=message):
        potential(name)


@pytest.mark.parametrize(
    "module",
    [
        mirrorlib,
        optim,
        projection,
        recovery,
        synapse_law,
        linear_regression,
        dual_gaussian_linear,
        geometry,
        theory_vs_training,
    ],
    ids=lambda m: m.__name__,
)
def test_public_functions_call_the_potential_argument_potential(module):
    # It was also ``potential_``, ``potential_name`` and ``pot``.
    for name, f in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(f):
            continue
        params = inspect.signature(f).parameters
        odd = [a for a in params if a.startswith("potential_") or a == "pot"]
        assert not odd, f"{module.__name__}.{name}({', '.join(odd)})"


def test_available_potentials_lists_names():
    names = mirrorlib.available_potentials()
    assert "negative_entropy" in names and "ne" in names
    assert any("norm" in n for n in names) and any("hypentropy" in n for n in names)


@pytest.mark.parametrize("pot", POTENTIALS, ids=str)
def test_integer_tensors_are_mapped_to_floats(pot):
    """Audit 12 L10: the 2- and 3-norms returned integer tensors (3-norm dual of [1, 2] was
    [1, 4]); numpy integers and the other potentials already gave floats."""
    w = torch.tensor([1, 2, -3])
    for out in (pot.phi(w), pot.to_dual(w), pot.from_dual(w, torch.sign(w)), pot.hess_diag(w)):
        assert out.dtype == torch.get_default_dtype()
    as_float = w.to(torch.get_default_dtype())
    assert torch.equal(pot.to_dual(w), pot.to_dual(as_float))
    assert torch.equal(pot.from_dual(w, torch.sign(w)), pot.from_dual(as_float, torch.sign(w)))


@pytest.mark.parametrize(
    "name, beta, message",
    [
        ("2-norm", 0.1, r"beta=0.1 is only for hyperbolic entropy, not '2-norm'"),
        ("ne", 1.0, r"only for hyperbolic entropy"),
        ("hypentropy(beta=0.5)", 0.1, r"beta=0.1 contradicts the name 'hypentropy\(beta=0.5\)'"),
        (PNorm(3.0), 0.1, r"contradicts the potential 3-norm"),
        (HyperbolicEntropy(0.5), 0.1, r"contradicts the potential hypentropy\(beta=0.5\)"),
    ],
)
def test_potential_refuses_a_beta_it_would_ignore(name, beta, message):
    """Audit 12 L4: potential('2-norm', beta=0.1) was the 2-norm, and the name's beta won."""
    with pytest.raises(ValueError, match=message):
        potential(name, beta=beta)


def test_potential_takes_a_beta_that_agrees():
    assert potential("hypentropy(beta=0.5)", beta=0.5) == HyperbolicEntropy(0.5)
    assert potential(HyperbolicEntropy(0.5), beta=0.5) == HyperbolicEntropy(0.5)


@pytest.mark.parametrize("alias", ["eg", "negative-entropy", " Negative_Entropy "])
def test_documented_aliases_of_negative_entropy(alias):
    assert potential(alias) == NegativeEntropy()
    assert f'"{alias.strip().lower()}"' in potential.__doc__
