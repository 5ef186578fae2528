"""Potentials: the geometry of plasticity.

A separable potential ``Phi(w) = sum_i phi(w_i)`` defines mirror descent through its *mirror map*
``grad_phi`` (weights -> dual space) and the inverse map (dual -> weights). Every method works
element-wise on torch tensors (any device, float32/float64) and on numpy arrays; numpy in gives
numpy out.

Each potential keeps its maps finite: at ``w = 0`` (where ``|w|^(p-1)`` or ``log|w|`` would give
NaN or an infinite slope) and for dual values whose inverse overflows (clamped to the dtype's
largest finite number).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np
import torch

Array = torch.Tensor | np.ndarray

__all__ = [
    "Potential",
    "PNorm",
    "NegativeEntropy",
    "HyperbolicEntropy",
    "potential",
    "available_potentials",
    "potential_in_words",
]


def _to_tensor(x) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, came_from_numpy)``; numpy arrays are shared, not copied, and Python
    numbers count as numpy. Integer and bool values become floats: numpy ones float64, torch
    ones torch's default dtype (as ``torch.sqrt`` of an integer tensor does)."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()):
            x = x.to(torch.get_default_dtype())
        return x, False
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return torch.from_numpy(arr), True


def _array_api(n_arrays: int):
    """Let a method written for tensors take its first ``n_arrays`` arguments as numpy arrays or
    Python numbers too (integers read as floats, :func:`_to_tensor`); if any was numpy, the
    result is numpy."""

    def decorate(method):
        @functools.wraps(method)
        def wrapped(self, *args, **kwargs):
            arrays, rest = args[:n_arrays], args[n_arrays:]
            converted = [_to_tensor(a) if a is not None else (None, False) for a in arrays]
            out = method(self, *[t for t, _ in converted], *rest, **kwargs)
            if any(was_numpy for _, was_numpy in converted):
                return out.numpy()
            return out

        return wrapped

    return decorate


def _finfo(x: torch.Tensor) -> torch.finfo:
    return torch.finfo(x.dtype if x.is_floating_point() else torch.get_default_dtype())


def _clamp_finite(x: torch.Tensor) -> torch.Tensor:
    """Clamp +-inf to the largest finite value of the dtype (NaN is left alone)."""
    big = _finfo(x).max
    return x.clamp(-big, big)


def _signed_power(x: torch.Tensor, a: float) -> torch.Tensor:
    """``sign(x) |x|^a``, written so that a compiled kernel stays cheap: ``copysign`` instead of
    multiplying by ``sign()``, and the powers the 1.5- and 3-norms need (``a`` = 2, 1/2) as
    eager ``pow`` computes them (a product, a square root), so both paths agree exactly."""
    if a == 2.0:
        return x * x.abs()
    magnitude = x.abs().sqrt() if a == 0.5 else x.abs().pow(a)
    return torch.copysign(magnitude, x)


def _safe_abs(w: torch.Tensor) -> torch.Tensor:
    """``|w|`` floored at the smallest normal number, so logs and negative powers stay finite."""
    return w.abs().clamp_min(_finfo(w).tiny)


def _log_abs(w: torch.Tensor) -> torch.Tensor:
    """``log|w|``, finite at ``w = 0`` (``|w|`` floored at the smallest subnormal number, so a
    subnormal weight keeps its own logarithm)."""
    info = _finfo(w)
    return torch.log(w.abs().clamp_min(info.tiny * info.eps))


@dataclass(frozen=True)
class Potential:
    """A separable, strictly convex potential ``Phi(w) = sum_i phi(w_i)``.

    Subclasses implement :meth:`phi`, :meth:`to_dual` (the mirror map ``grad_phi``),
    :meth:`from_dual` (its inverse) and :meth:`hess_diag`. The mirror-descent step and the
    Bregman divergence follow from these.
    """

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def needs_sign(self) -> bool:
        """True when the inverse map needs the sign of the weight before the step."""
        return False

    def phi(self, w: Array) -> Array:
        """Per-weight potential ``phi(w_i)``; the potential of a vector is their sum."""
        raise NotImplementedError

    def to_dual(self, w: Array) -> Array:
        """Mirror map ``theta = grad_phi(w)``."""
        raise NotImplementedError

    def from_dual(self, theta: Array, sign: Array | None = None) -> Array:
        """Inverse mirror map ``w = (grad_phi)^-1(theta)``.

        ``sign`` is the sign of the weights before the step; only potentials whose dual space
        does not determine the sign (negative entropy) use it.
        """
        raise NotImplementedError

    def hess_diag(self, w: Array) -> Array:
        """Diagonal of the Hessian, ``phi''(w_i)`` (finite: clamped at the dtype's maximum)."""
        raise NotImplementedError

    @_array_api(2)
    def bregman(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-weight Bregman divergence ``D(a, b) = phi(a) - phi(b) - phi'(b) (a - b) >= 0``."""
        return self.phi(a) - self.phi(b) - self.to_dual(b) * (a - b)

    def dual_step(self, w: torch.Tensor, g: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        """The displacement of a step in the dual space, ``lr * g``; a potential whose maps
        cannot represent a longer step limits it here (negative entropy)."""
        return lr * g

    @_array_api(2)
    def step(self, w: torch.Tensor, g: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        """One mirror-descent step, ``from_dual(to_dual(w) - dual_step(w, g, lr), sign(w))``."""
        return self.from_dual(self.to_dual(w) - self.dual_step(w, g, lr), torch.sign(w))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class PNorm(Potential):
    """``phi(w) = |w|^p / p`` for ``p > 1``; ``p = 2`` is gradient descent.

    ``grad_phi(w) = sign(w) |w|^(p-1)``, inverse ``sign(t) |t|^(1/(p-1))``,
    ``phi''(w) = (p-1) |w|^(p-2)`` (unbounded at 0 when ``p < 2``). Steps may change sign.

    In a floating-point dtype the inverse map saturates where the dtype runs out: for
    ``p < 2`` its result is clamped to ``+-max``; for ``p > 2`` its argument is (the dual of a
    weight above ``max^(1/(p-1))``, 1.8e19 for the 3-norm in float32, overflows), so a step
    never leaves ``|w| <= max^(1/(p-1))``: a larger weight is brought back to that bound, not
    sent to ``+-max``. For ``p > 2`` a weight below ``tiny^(1/(p-1))`` in size has a dual that
    underflows to 0 (3-norm, float32: 1.1e-19); a step sends it to ``(-lr g)^(1/(p-1))``.
    """

    p: float = 2.0

    def __post_init__(self):
        if not (isinstance(self.p, (int, float)) and math.isfinite(self.p) and self.p > 1):
            raise ValueError(f"a p-norm potential needs a finite p > 1, got p={self.p!r}")
        object.__setattr__(self, "p", float(self.p))

    @property
    def name(self) -> str:
        return f"{self.p:g}-norm"

    @_array_api(1)
    def phi(self, w: torch.Tensor) -> torch.Tensor:
        return w.abs().pow(self.p) / self.p

    @_array_api(1)
    def to_dual(self, w: torch.Tensor) -> torch.Tensor:
        if self.p == 2.0:
            return w.clone()
        return _signed_power(w, self.p - 1.0)

    @_array_api(2)
    def from_dual(self, theta: torch.Tensor, sign: torch.Tensor | None = None) -> torch.Tensor:
        if self.p == 2.0:
            return theta.clone()
        if self.p > 2.0:  # |t|^(1/(p-1)) is finite for finite t
            return _signed_power(_clamp_finite(theta), 1.0 / (self.p - 1.0))
        return _clamp_finite(_signed_power(theta, 1.0 / (self.p - 1.0)))

    @_array_api(1)
    def hess_diag(self, w: torch.Tensor) -> torch.Tensor:
        if self.p == 2.0:
            return torch.ones_like(w)
        base = _safe_abs(w) if self.p < 2.0 else w.abs()
        return _clamp_finite((self.p - 1.0) * base.pow(self.p - 2.0))

    @_array_api(2)
    def step(self, w: torch.Tensor, g: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        if self.p == 2.0:
            return w - lr * g
        return self.from_dual(self.to_dual(w) - lr * g)


@dataclass(frozen=True)
class NegativeEntropy(Potential):
    """Negative entropy for signed weights, ``phi(w) = |w| log|w|``: exponentiated gradient.

    ``grad_phi(w) = sign(w) (log|w| + 1)``; the inverse needs the sign ``s`` of the weight
    before the step, ``w = s exp(s theta - 1)``, so a step never changes a sign and a weight of
    exactly 0 stays 0 (its dual value is taken as 0). The step is multiplicative:
    ``w' = w exp(-lr sign(w) g)``, by a factor of at most ``sqrt(max)`` of the dtype per step
    (:meth:`dual_step`). ``phi''(w) = 1/|w|``. Crossing zero is infinitely far: the Bregman
    divergence between weights of opposite signs is ``+inf``. Subnormal weights are weights
    like any other (``log|w|`` is finite for them). Weights above ``sqrt(max)`` in size (1.8e19
    in float32) are outside the range steps are specified for: a growing step may take one to
    ``+-inf`` (:meth:`step`) or to ``+-max`` (:meth:`from_dual`).
    """

    @property
    def name(self) -> str:
        return "negative_entropy"

    @property
    def needs_sign(self) -> bool:
        return True

    @_array_api(1)
    def phi(self, w: torch.Tensor) -> torch.Tensor:
        a = w.abs()
        return torch.where(a > 0, a * torch.log(_safe_abs(w)), torch.zeros_like(a))

    @_array_api(1)
    def to_dual(self, w: torch.Tensor) -> torch.Tensor:
        return torch.sign(w) * (_log_abs(w) + 1.0)

    @_array_api(2)
    def from_dual(self, theta: torch.Tensor, sign: torch.Tensor | None = None) -> torch.Tensor:
        if sign is None:
            raise ValueError(
                "negative entropy's inverse map needs the sign of the weights before the step: "
                "call from_dual(theta, sign=torch.sign(w_before))"
            )
        sign = torch.sign(sign).to(theta.dtype)
        log_max = math.log(_finfo(theta).max)
        magnitude = torch.exp((sign * theta - 1.0).clamp(max=log_max))
        return _clamp_finite(torch.where(sign == 0, torch.zeros_like(magnitude), sign * magnitude))

    @_array_api(1)
    def hess_diag(self, w: torch.Tensor) -> torch.Tensor:
        return _clamp_finite(1.0 / _safe_abs(w))

    @_array_api(2)
    def bregman(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = self.phi(a) - self.phi(b) - self.to_dual(b) * (a - b)
        unreachable = (torch.sign(a) * torch.sign(b) < 0) | ((b == 0) & (a != 0))
        return torch.where(unreachable, torch.full_like(d, math.inf), d)

    def dual_step(self, w: torch.Tensor, g: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        """``lr * g``, limited so that ``|w|`` grows by a factor of at most ``sqrt(max)``:
        ``-sign(w) lr g <= log(max) / 2`` (44.4 in float32, 354.9 in float64)."""
        cap = 0.5 * math.log(_finfo(w).max)
        step = lr * g
        return torch.where(w > 0, step.clamp(min=-cap), step.clamp(max=cap))

    @_array_api(2)
    def step(self, w: torch.Tensor, g: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        # The closed form of from_dual(to_dual(w) - dual_step(w, g, lr), sign(w)).
        # -lr sign(w) g chosen by w's sign (exact, and cheaper than sign() in a compiled kernel).
        # The exponent is capped at log(max) / 2: one step multiplies a weight by at most
        # sqrt(max), so a zero weight stays 0 (never 0 * inf) and every weight up to sqrt(max)
        # in size (1.8e19 in float32) stays finite, with one clamp instead of three.
        cap = 0.5 * math.log(_finfo(w).max)
        return w * torch.exp(torch.where(w > 0, -lr * g, lr * g).clamp(max=cap))


@dataclass(frozen=True)
class HyperbolicEntropy(Potential):
    """Hyperbolic entropy with scale ``beta > 0`` (Ghai et al. 2020).

    ``phi(w) = w arcsinh(w/beta) - sqrt(w^2 + beta^2) + beta``, ``grad_phi(w) = arcsinh(w/beta)``,
    inverse ``beta sinh(theta)``, ``phi''(w) = 1/sqrt(w^2 + beta^2)``. It can change sign; for
    ``|w| >> beta`` it behaves like negative entropy, for ``|w| << beta`` like a scaled 2-norm.
    """

    beta: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"hyperbolic entropy needs a finite beta > 0, got beta={self.beta!r}")
        object.__setattr__(self, "beta", float(self.beta))

    @property
    def name(self) -> str:
        return f"hypentropy(beta={self.beta:g})"

    @_array_api(1)
    def phi(self, w: torch.Tensor) -> torch.Tensor:
        b = self.beta
        return w * torch.asinh(w / b) - torch.sqrt(w * w + b * b) + b

    @_array_api(1)
    def to_dual(self, w: torch.Tensor) -> torch.Tensor:
        return torch.asinh(w / self.beta)

    @_array_api(2)
    def from_dual(self, theta: torch.Tensor, sign: torch.Tensor | None = None) -> torch.Tensor:
        limit = math.asinh(_finfo(theta).max / self.beta)
        return _clamp_finite(self.beta * torch.sinh(theta.clamp(-limit, limit)))

    @_array_api(1)
    def hess_diag(self, w: torch.Tensor) -> torch.Tensor:
        return torch.rsqrt(w * w + self.beta**2)


_PNORM = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*-?\s*norm\s*$")
_NEGATIVE_ENTROPY_NAMES = ("negative_entropy", "ne", "negative-entropy", "eg")
_HYPENTROPY = re.compile(r"^\s*hypentropy\s*(?:\(\s*(?:beta\s*=\s*)?([^)]*)\))?\s*$")


def available_potentials() -> list[str]:
    """A help text: one description per family of names :func:`potential` accepts, for error
    messages and users. The entries are descriptions, not names to pass on (``"<p>-norm (any
    p > 1, ...)"`` stands for ``"2-norm"``, ``"1.5-norm"``, ...); the names themselves are
    listed in :func:`potential`'s docstring."""
    return [
        "negative_entropy",
        "ne",
        "<p>-norm (any p > 1, e.g. 2-norm, 1.5-norm, 3-norm)",
        "hypentropy (beta=1, or 'hypentropy(beta=0.1)' / potential('hypentropy', beta=0.1))",
    ]


def potential_in_words(name: str | Potential) -> str:
    """The potential called ``name`` as prose names it (no TeX; a figure's legend uses
    :func:`mirrorlib.plotting.potential_label`): ``"negative entropy"``,
    ``"2.5-norm"``, ``"hyperbolic entropy"`` (with ``", beta = 0.1"`` when ``beta != 1``).
    Names are read by :func:`potential`, so an unknown one raises its ``ValueError``."""
    pot = potential(name)
    if isinstance(pot, NegativeEntropy):
        return "negative entropy"
    if isinstance(pot, HyperbolicEntropy):
        return "hyperbolic entropy" + ("" if pot.beta == 1 else f", beta = {pot.beta:g}")
    return pot.name


def potential(name: str | Potential, beta: float | None = None) -> Potential:
    """Return the potential called ``name`` (case and surrounding spaces ignored).

    ``"negative_entropy"`` (aliases ``"ne"``, ``"negative-entropy"`` and ``"eg"``, for
    exponentiated gradient), ``"<p>-norm"`` for any ``p > 1`` (``"2-norm"`` is Euclidean),
    ``"hypentropy"`` with scale ``beta`` (``beta=`` argument, or ``"hypentropy(beta=0.1)"``;
    1 when neither gives it). A :class:`Potential` is returned unchanged. Unknown names raise
    ``ValueError``, and so does a ``beta`` argument for any other potential or one that
    contradicts the potential's own beta.
    """
    if isinstance(name, Potential):
        if beta is not None and not (isinstance(name, HyperbolicEntropy) and name.beta == beta):
            raise ValueError(f"beta={beta!r} contradicts the potential {name.name}")
        return name
    if not isinstance(name, str):
        raise TypeError(f"a potential name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    match = _HYPENTROPY.match(key)
    if match:
        if match.group(1):
            try:
                named = float(match.group(1))
            except ValueError:
                raise ValueError(f"cannot read beta in potential name {name!r}") from None
            if beta is not None and beta != named:
                raise ValueError(f"beta={beta!r} contradicts the name {name!r}")
            beta = named
        return HyperbolicEntropy(1.0 if beta is None else beta)
    match = _PNORM.match(key)
    if key in _NEGATIVE_ENTROPY_NAMES or match:
        if beta is not None:
            raise ValueError(f"beta={beta!r} is only for hyperbolic entropy, not {name!r}")
        return PNorm(float(match.group(1))) if match else NegativeEntropy()
    raise ValueError(
        f"unknown potential {name!r}; valid names: " + "; ".join(available_potentials())
    )
