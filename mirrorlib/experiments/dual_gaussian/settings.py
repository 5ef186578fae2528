"""Settings, random problems and histograms shared by the experiments of the dual-gaussian
chapter (:mod:`mirrorlib.experiments.dual_gaussian`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mirrorlib.experiments import preset, requirement
from mirrorlib.experiments.correlated_inputs import circulant_embedding, correlated_inputs
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError

INPUT_KINDS: dict[str, float | None] = {"binary": None, "short": 2.0, "long": 1.0}
"""Input laws: ``"binary"``, iid signs ``+-1``; ``"short"`` / ``"long"``, the paper's
``x = L z + u`` with ``C_ij = (-1)^|i-j| / (1 + |i-j|^p)``, ``p = 2`` / ``p = 1``."""


@dataclass(frozen=True)
class DualGaussianConfig:
    """Settings of the chapter's experiments (see :data:`PRESETS`).

    (a, b) ``small_shapes``: ``(N, D)`` problems, ``small_seeds`` each, trained by mirror
    descent for ``md_steps`` steps with every learning rate of ``md_lrs``.
    (c, f) ``lin_dim``: ``D``; ``lin_ratios``: ``N / D``; ``lin_seeds``; ``lin_inputs``.
    (d, f) ``clt_dims`` with ``N = int(D^alpha)`` for ``alpha`` in ``clt_alphas``, inputs
    ``clt_inputs``, ``clt_seeds`` seeds.
    (e) :class:`WideMLP` of hidden widths ``widths`` on sklearn digits, pretrained with SGD for
    ``pretrain_epochs``, finetuned on ``deep_n`` new examples with a new labelling for at most
    ``deep_max_steps`` full-batch steps, ``deep_seeds`` seeds.
    """

    potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    small_shapes: tuple[tuple[int, int], ...] = ((5, 20), (10, 40))
    small_seeds: int = 3
    md_steps: int = 2000
    md_lrs: tuple[float, ...] = tuple(float(x) for x in np.logspace(-4, 0, 17))
    lin_dim: int = 500
    lin_ratios: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
    lin_seeds: int = 3
    lin_inputs: str = "short"
    clt_dims: tuple[int, ...] = (100, 300, 1000, 2000)
    clt_alphas: tuple[float, ...] = (0.5, 0.75)
    clt_inputs: tuple[str, ...] = ("binary", "short", "long")
    clt_seeds: int = 3
    widths: tuple[int, ...] = (64, 128, 256, 512)
    deep_n: int = 60
    deep_seeds: int = 2
    pretrain_epochs: int = 10
    deep_max_steps: int = 1000
    deep_lr: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        need = requirement("dual-gaussian")

        for name in self.potentials:
            potential(name)
        for N, D in self.small_shapes:
            need(1 <= N < D, f"small_shapes need 1 <= N < D, got {(N, D)}")
        need(all(0 < r < 1 for r in self.lin_ratios), "lin_ratios must lie in (0, 1)")
        need(all(0 < a < 1 for a in self.clt_alphas), "clt_alphas must lie in (0, 1)")
        need(all(int(d) >= 10 for d in self.clt_dims), "clt_dims must be >= 10")
        for kind in (self.lin_inputs, *self.clt_inputs):
            need(kind in INPUT_KINDS, f"unknown inputs {kind!r}; choose from {list(INPUT_KINDS)}")
        for name in ("small_seeds", "lin_seeds", "clt_seeds", "deep_seeds", "md_steps"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1")
        need(all(w >= 1 for w in self.widths), "widths must be >= 1")
        need(self.deep_n >= 2, "deep_n must be >= 2")


PRESETS: dict[str, DualGaussianConfig] = {
    "ci": DualGaussianConfig(),
    "paper": DualGaussianConfig(
        small_shapes=((5, 20), (10, 40), (10, 50), (20, 100)),
        small_seeds=20,
        lin_dim=1000,
        lin_ratios=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        lin_seeds=10,
        clt_dims=tuple(int(d) for d in np.logspace(2, np.log10(2e4), 10).astype(int)),
        clt_seeds=30,
        widths=(64, 256, 1024, 2048),
        deep_seeds=3,
        pretrain_epochs=20,
    ),
}
"""``ci``: about a minute on 2 CPU cores. ``paper``: more seeds and sizes: the central-limit
scan on Fig 2's grid (10 ``D`` from 100 to 20000, ``N = D^0.5`` and ``D^0.75``, 30 seeds);
``D = 1000`` for the ``N / D`` scan; widths up to 2048. Everything runs on the CPU; the exact
projections by matrix-free Newton-CG (:func:`bregman_projection`). Its tables, with their
provenance, are stored in ``results/paper/dual_gaussian/`` (:mod:`mirrorlib.stored`)."""


def config(scale: str = "ci", **overrides) -> DualGaussianConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the dual-gaussian chapter")


# --------------------------------------------------------------------------------------------
# Random problems


def seeded_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from ``key`` (non-negative ints) through ``SeedSequence``."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def input_variance(kind: str) -> float:
    """Per-coordinate variance of the inputs: 1 (binary) or ``1 + 1/12`` (paper's inputs)."""
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown inputs {kind!r}; choose from {list(INPUT_KINDS)}")
    return 1.0 if INPUT_KINDS[kind] is None else 1.0 + 1.0 / 12.0


def sample_inputs(kind: str, N: int, D: int, generator: torch.Generator) -> Tensor:
    """``N`` float64 inputs of size ``D``: iid signs (``"binary"``) or the paper's ``x = L z + u``
    with short-range (``"short"``, ``p = 2``) or long-range (``"long"``, ``p = 1``) correlations
    (:func:`mirrorlib.experiments.correlated_inputs.correlated_inputs`)."""
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown inputs {kind!r}; choose from {list(INPUT_KINDS)}")
    p = INPUT_KINDS[kind]
    if p is None:
        return torch.randint(0, 2, (N, D), generator=generator).double().mul_(2).sub_(1)
    return correlated_inputs(N, circulant_embedding(D, p), generator, torch.float64)


class Problem(NamedTuple):
    """Inputs ``X`` (``N x D``), labels ``y`` and starting weights ``w0``."""

    X: Tensor
    y: Tensor
    w0: Tensor


def random_problem(kind: str, N: int, D: int, *key: int) -> Problem:
    """Inputs, labels ``+-1`` and ``w0 ~ N(0, I / D)`` (float64) from the generator ``key``."""
    gen = seeded_generator(*key)
    X = sample_inputs(kind, N, D, gen)
    y = torch.randint(0, 2, (N,), generator=gen).double().mul_(2).sub_(1)
    w0 = torch.randn(D, generator=gen, dtype=torch.float64) / math.sqrt(D)
    return Problem(X, y, w0)


_SMALL, _LIN, _CLT, _DEEP = range(4)
"""Independent random streams: (a, b) small problems, (c) linearisation, (d) central limit,
(e) the wide network."""


def clt_problem(cfg: DualGaussianConfig, kind: str, N: int, D: int, seed: int) -> Problem:
    """The problem of :func:`~mirrorlib.experiments.dual_gaussian.run_clt` for inputs ``kind``,
    ``N`` examples, ``D`` weights and ``seed``."""
    return random_problem(kind, N, D, cfg.seed, _CLT, N, D, seed)


HIST_EDGES = np.linspace(-5.0, 5.0, 51)
"""Bin edges of the histograms of standardised dual changes."""


def density_histogram(z: np.ndarray) -> pd.DataFrame:
    """Density histogram of ``z`` on :data:`HIST_EDGES` (values outside are dropped)."""
    counts, edges = np.histogram(z, bins=HIST_EDGES)
    density = counts / (len(z) * np.diff(edges))
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "density": density})
