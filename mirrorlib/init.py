"""Initialisation: signed log-normal weights, optionally obeying Dale's law.

A signed log-normal weight is ``w = s * m`` with a random sign ``s`` in {-1, +1} and a log-normal
magnitude ``m = exp(mu + sigma * z)``, ``z ~ N(0, 1)``. The paper draws magnitudes with
``E|w| = std|w| = 0.1``. Under Dale's law a neuron is either excitatory or inhibitory, so all its
outgoing weights share one sign; in a torch weight of shape ``(out, in, ...)`` the presynaptic
neuron of ``w[i, j, ...]`` is ``j`` (the column of a Linear weight, the input channel of a conv).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["lognormal_mu_sigma", "random_signs", "signed_lognormal_"]


def lognormal_mu_sigma(mean: float, std: float) -> tuple[float, float]:
    """Parameters ``(mu, sigma)`` of ``log m`` for a log-normal ``m`` with the given mean and std.

    ``sigma^2 = log(1 + std^2 / mean^2)`` and ``mu = log(mean) - sigma^2 / 2``, since
    ``E m = exp(mu + sigma^2/2)`` and ``Var m = (exp(sigma^2) - 1) (E m)^2``.
    """
    if not (math.isfinite(mean) and mean > 0):
        raise ValueError(f"the mean of |w| must be finite and > 0, got mean={mean!r}")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"the std of |w| must be finite and >= 0, got std={std!r}")
    sigma2 = math.log1p((std / mean) ** 2)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


def random_signs(
    shape: torch.Size | tuple[int, ...],
    *,
    dale: bool = False,
    p_excitatory: float | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A tensor of ``shape`` filled with signs +1 (excitatory) and -1 (inhibitory).

    ``p_excitatory`` is the probability of +1: per weight without Dale's law (default 1/2), per
    presynaptic neuron with ``dale=True`` (default 0.8), where every weight ``[:, j, ...]`` of
    neuron ``j`` (dimension 1) takes that neuron's sign. Keep the result to know each weight's
    (or neuron's) sign later.
    """
    shape = torch.Size(shape)
    if p_excitatory is None:
        p_excitatory = 0.8 if dale else 0.5
    if not 0.0 <= p_excitatory <= 1.0:
        raise ValueError(f"p_excitatory must be in [0, 1], got {p_excitatory!r}")
    if dale and len(shape) < 2:
        raise ValueError(
            f"Dale's law needs a weight of shape (out, in, ...) with a presynaptic dimension 1, "
            f"got shape {tuple(shape)}"
        )
    draw_shape = (1, shape[1]) + (1,) * (len(shape) - 2) if dale else shape
    uniform = torch.rand(draw_shape, generator=generator, device=device)
    signs = torch.where(uniform < p_excitatory, 1.0, -1.0).to(dtype or torch.get_default_dtype())
    return signs.expand(shape).contiguous()


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def signed_lognormal_(
    tensor: Tensor,
    mean: float = 0.1,
    std: float = 0.1,
    *,
    signs: Tensor | None = None,
    dale: bool = False,
    p_excitatory: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` in place with signed log-normal weights ``w = s * m``; return it.

    ``|w| = m`` is log-normal with ``E|w| = mean`` and ``std|w| = std`` (``std = 0`` gives the
    constant ``mean``). The signs ``s`` are ``signs`` if given (broadcast to the tensor's shape),
    otherwise drawn by :func:`random_signs` with ``dale`` and ``p_excitatory``. The magnitudes
    are drawn first, then the signs, both from ``generator``.
    """
    mu, sigma = lognormal_mu_sigma(mean, std)
    if signs is not None and not _broadcasts_to(signs.shape, tensor.shape):
        raise ValueError(
            f"signs of shape {tuple(signs.shape)} do not broadcast to the tensor's shape "
            f"{tuple(tensor.shape)}"
        )
    with torch.no_grad():
        if sigma > 0:
            tensor.log_normal_(mu, sigma, generator=generator)
        else:
            tensor.fill_(mean)
        if signs is None:
            signs = random_signs(
                tensor.shape,
                dale=dale,
                p_excitatory=p_excitatory,
                generator=generator,
                dtype=tensor.dtype,
                device=tensor.device,
            )
        tensor.mul_(signs)
    return tensor
