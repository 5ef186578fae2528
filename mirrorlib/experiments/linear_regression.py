"""Fig 2: linear regression trained by mirror descent, and how Gaussian its dual change is.

The problem (Pogodin, Cornford et al. 2024, Fig 2): ``N < D`` inputs ``x_n`` of size ``D``
(:mod:`mirrorlib.experiments.correlated_inputs`: ``x = L z + u`` with a Toeplitz covariance of
power ``p``), labels ``y_n = +-1`` at random, a linear model ``w`` (``Linear(D, 1, bias=False)``)
started at ``w0 ~ N(0, I / D)`` and the full-batch mean squared error

    L(w) = (1/N) sum_n (x_n . w - y_n)^2,   grad L(w) = (2/N) X^T r,   r = X w - y.

Mirror descent with heavy-ball momentum on the raw gradient and a cosine-annealed learning rate,
for ``t = 0 .. T-1``:

    b_t = mu b_{t-1} + grad L(w_t)   (b_{-1} = 0),
    w_{t+1} = step(w_t, b_t, lr (1 + cos(pi t / T)) / 2)   (:meth:`Potential.step`).

Every gradient is ``X^T r``, so the dual change ``grad_phi(w_T) - grad_phi(w0) = X^T a`` lies in
the row space of ``X``; its coordinates are sums of ``N`` terms and, for ``N = D^alpha``,
``alpha < 1``, they look Gaussian across synapses. The table reports, per run, the exact
Delta-CDF of the dual change (:func:`mirrorlib.stats.delta_cdf`, uncentred) and its relative
size ``||grad_phi(w_T) - grad_phi(w0)|| / ||grad_phi(w0)||``.

The protocol (:data:`PRESETS` ``"paper"``), for each correlation power ``p``, ``D``,
``N = int(D^alpha)`` and potential: the learning rate is chosen on a held-out draw among 16
values (:func:`select_lr`), which also fixes the step budget ``T`` (100, then +100 up to 500
while the best loss is ``>= 1e-3``); then every seed is trained with that ``lr`` and ``T``.
Speed comes from batching: all learning rates, then all seeds, of one cell are one tensor
computation (:func:`train_batched`); one input draw per seed serves every ``D`` (nested
slices), both ``alpha`` (the first ``N`` rows) and the three potentials, which also start from
the same ``w0``. :func:`train_per_run` is the same training written the way the paper's code
runs it (``nn.Linear``, ``nn.MSELoss``, :class:`mirrorlib.MirrorDescent`,
``CosineAnnealingLR``), the ground truth that :func:`train_batched` is tested against.

Where this differs from the authors' code (github.com/romanpogodin/synaptic-weight-distr):
their inputs are redrawn for every (potential, alpha), here shared (common random numbers, the
same distribution); their 16 search runs each draw a new ``w0``, here they share one; their
final loss is the one computed before the last update, here the loss of the final weights;
they train in float16 autocast on a GPU, here in float32 (or float64); their Delta-CDF is a
1000-point grid on [-5, 5], here exact; inputs come from an FFT circulant embedding instead of
a dense Cholesky factor (the same Gaussian law).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from mirrorlib.experiments import cpu_threads, preset
from mirrorlib.experiments.correlated_inputs import circulant_embedding, correlated_inputs
from mirrorlib.optim import MirrorDescent
from mirrorlib.potentials import Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.stats import delta_cdf, delta_cdf_floor, paired_verdict

__all__ = [
    "COLUMNS",
    "LinearRegressionConfig",
    "LrChoice",
    "PAPER_DIMS",
    "PAPER_LRS",
    "NULL_VALUES",
    "PRESETS",
    "Problem",
    "SMALL_WORK",
    "config",
    "cell_problems",
    "cosine_schedule",
    "delta_cdf_null",
    "dual_change_stats",
    "n_samples",
    "run",
    "run_cell",
    "summarise_largest_d",
    "select_lr",
    "train_batched",
    "train_per_run",
]

PAPER_DIMS: tuple[int, ...] = tuple(int(d) for d in np.logspace(2, np.log10(2e4), 10).astype(int))
"""``D = logspace(2, log10(2e4), 10)`` as integers: 100, 180, ..., 11100, 20000."""

PAPER_LRS: tuple[float, ...] = tuple(float(lr) for lr in np.logspace(-7, -1, 16))
"""The 16 candidate learning rates, ``logspace(-7, -1, 16)``."""

COLUMNS: dict[str, str] = {
    "corr_power": "p in C_ij = (-1)^|i-j| / (1 + |i-j|^p): 2 short-range, 1 long-range",
    "alpha": "N = int(D^alpha) training points",
    "D": "number of weights (input size)",
    "N": "number of training points, int(D^alpha)",
    "potential": "the potential mirror descent trained with (and the dual space analysed)",
    "seed": "seed index; all potentials and both alphas of a seed share its inputs and w0",
    "lr": "learning rate chosen on the held-out draw (same for every seed of the cell)",
    "steps": "step budget T of the cell, chosen with lr (100, +100 up to 500)",
    "search_loss": "final loss of the chosen lr on the held-out draw",
    "final_loss": "mean squared error of the final weights (inf: diverged)",
    "converged": "final_loss below the loss target (1e-3 in the paper)",
    "delta_cdf": "exact uncentred Delta-CDF of the dual change (NaN: diverged)",
    "delta_cdf_floor": "expected Delta-CDF of D independent Gaussian values (finite-sample floor)",
    "delta_cdf_null": "expected Delta-CDF of D Gaussian values correlated like the inputs "
    "(C + I/12): what a Gaussian dual change reaches here; below delta_cdf_floor",
    "relative_change": "||dual change|| / ||grad_phi(w0)|| (NaN: diverged)",
}
"""The columns of :func:`run`'s table, with what each holds."""


def n_samples(D: int, alpha: float) -> int:
    """``N = int(D^alpha)``, as the paper's code computes it."""
    return int(np.power(float(D), float(alpha)))


@dataclass(frozen=True)
class LinearRegressionConfig:
    """Settings of the experiment (see :data:`PRESETS`); invalid values raise ``ValueError``.

    Random numbers come from generators keyed by ``(seed, purpose, p, draw[, D])``: the same
    config always gives the same table, on a given device and dtype.
    """

    corr_powers: tuple[float, ...] = (2.0, 1.0)
    alphas: tuple[float, ...] = (0.5, 0.75)
    dims: tuple[int, ...] = PAPER_DIMS
    potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    n_seeds: int = 30
    lrs: tuple[float, ...] = PAPER_LRS
    momentum: float = 0.9
    min_steps: int = 100
    step_increment: int = 100
    max_steps: int = 500
    loss_target: float = 1e-3
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("corr_powers", "alphas", "dims", "potentials", "lrs"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not np.iterable(value) or len(value) == 0:
                raise ValueError(f"{name} must be a non-empty sequence, got {value!r}")
            if len(set(value)) != len(value):
                raise ValueError(f"{name} must be distinct, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for p in self.corr_powers:
            if not (_is_real(p) and math.isfinite(p) and p > 0):
                raise ValueError(f"corr_powers must be finite numbers > 0, got {p!r}")
        for alpha in self.alphas:
            if not (_is_real(alpha) and 0 < alpha < 1):
                raise ValueError(f"alphas must lie in (0, 1) (N = D^alpha < D), got {alpha!r}")
        for D in self.dims:
            if not (isinstance(D, (int, np.integer)) and D >= 2):
                raise ValueError(f"dims must be integers >= 2, got {D!r}")
        for name in self.potentials:
            make_potential(name)
        for lr in self.lrs:
            if not (_is_real(lr) and math.isfinite(lr) and lr > 0):
                raise ValueError(f"lrs must be finite numbers > 0, got {lr!r}")
        if list(self.lrs) != sorted(self.lrs):
            raise ValueError("lrs must be increasing (a tie picks the smaller lr)")
        for name in ("n_seeds", "min_steps", "step_increment", "max_steps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_steps < self.min_steps:
            raise ValueError(
                f"max_steps ({self.max_steps}) must be at least min_steps ({self.min_steps})"
            )
        if not (_is_real(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not (_is_real(self.loss_target) and self.loss_target > 0):
            raise ValueError(f"loss_target must be > 0, got {self.loss_target!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


PRESETS: dict[str, LinearRegressionConfig] = {
    "ci": LinearRegressionConfig(
        dims=tuple(int(d) for d in np.logspace(2, np.log10(2e3), 5).astype(int)), n_seeds=5
    ),
    "paper": LinearRegressionConfig(),
}
"""``ci``: D = 100 ... 2000 (5 values), 5 seeds, everything else as the paper (seconds on 2 CPU
cores); ``paper``: the full grid, 10 D up to 20000 and 30 seeds (minutes)."""


def config(scale: str = "ci", **overrides) -> LinearRegressionConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the linear-regression experiment")


def cosine_schedule(steps: int) -> list[float]:
    """Learning-rate factors ``(1 + cos(pi t / T)) / 2``, ``t = 0 .. T-1`` (``T = steps``).

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=0)``
    stepped after each of ``T`` optimiser steps.
    """
    return [0.5 * (1.0 + math.cos(math.pi * t / steps)) for t in range(steps)]


def _outputs(X: Tensor, w: Tensor) -> Tensor:
    """``X w`` for each run: ``(B, D) -> (B, N)``; one matrix product (X shared) or a bmm."""
    return torch.matmul(w.unsqueeze(-2), X.mT).squeeze(-2)


def _backprop(X: Tensor, r: Tensor) -> Tensor:
    """``X^T r`` for each run: ``(B, N) -> (B, D)``."""
    return torch.matmul(r.unsqueeze(-2), X).squeeze(-2)


SMALL_WORK = 1 << 21
"""Below this many multiply-adds per matrix product, :func:`train_batched` runs on one CPU
thread: at that size the threads' per-operation synchronisation costs more than it saves (and,
on a busy machine, stalls for milliseconds)."""


def train_batched(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential: str | Potential,
    lr: float | Tensor,
    steps: int,
    momentum: float = 0.9,
) -> tuple[Tensor, Tensor]:
    """Train ``B`` linear regressions at once by mirror descent; return ``(w_T, L(w_T))``.

    ``X``: ``(B, N, D)``, one design per run, or ``(N, D)`` shared by all runs; ``y``:
    ``(B, N)`` or ``(N,)``; ``w0``: ``(B, D)``; ``lr``: a float or a ``(B,)`` tensor, one
    learning rate per run. Per run (see the module docstring): ``b <- mu b + (2/N) X^T r``,
    ``w <- step(w, b, lr (1 + cos(pi t/T)) / 2)``. Each step reads ``X`` twice (``X^T r``,
    then ``X w``); runs never mix, so a diverging run leaves the others untouched. Problems
    smaller than :data:`SMALL_WORK` run on one CPU thread.
    Returns the final weights ``(B, D)`` and losses ``(B,)`` (``mean_n r_n^2``).
    """
    pot = make_potential(potential)
    w = w0.clone(memory_format=torch.contiguous_format)
    lr_col = torch.as_tensor(lr, dtype=w.dtype, device=w.device).reshape(-1, 1)
    buf = torch.zeros_like(w)
    scale = 2.0 / X.shape[-2]
    small = w.shape[0] * X.shape[-2] * X.shape[-1] < SMALL_WORK
    with cpu_threads(1 if small and w.device.type == "cpu" else None):
        r = _outputs(X, w) - y
        for factor in cosine_schedule(steps):
            buf.mul_(momentum).add_(_backprop(X, r), alpha=scale)
            w = pot.step(w, buf, lr_col * factor)
            r = _outputs(X, w) - y
        return w, r.square().mean(-1)


def train_per_run(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential: str | Potential,
    lr: float,
    steps: int,
    momentum: float = 0.9,
) -> tuple[Tensor, float]:
    """One run, written the way the paper's code trains it; return ``(w_T, L(w_T))``.

    ``nn.Linear(D, 1, bias=False)`` set to ``w0``, ``nn.MSELoss``, :class:`MirrorDescent`
    (its readable reference path) and ``CosineAnnealingLR(T_max=steps)``, one
    ``zero_grad / backward / step`` per step. ``X``: ``(N, D)``, ``y``: ``(N,)``.
    """
    model = torch.nn.Linear(X.shape[1], 1, bias=False, dtype=X.dtype, device=X.device)
    with torch.no_grad():
        model.weight.copy_(w0.reshape(1, -1))
    opt = MirrorDescent(
        model.parameters(), lr=lr, potential=potential, momentum=momentum, fast=False
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = torch.nn.MSELoss()
    target = y.reshape(-1, 1)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X), target).backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        final = float(loss_fn(model(X), target))
    return model.weight.detach().reshape(-1).clone(), final


class LrChoice(NamedTuple):
    """The outcome of :func:`select_lr`."""

    lr: float
    steps: int
    loss: float


def select_lr(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential: str | Potential,
    lrs: tuple[float, ...] = PAPER_LRS,
    min_steps: int = 100,
    step_increment: int = 100,
    max_steps: int = 500,
    loss_target: float = 1e-3,
    momentum: float = 0.9,
) -> LrChoice:
    """The paper's learning-rate search on one (held-out) problem, every ``lr`` in one batch.

    ``X``: ``(N, D)``, ``y``: ``(N,)``, ``w0``: ``(D,)``, shared by all runs. Train with each of
    ``lrs`` for ``T = min_steps``; pick the lowest final loss; while it is ``>= loss_target``
    and ``T < max_steps``, search again from ``w0`` with ``T + step_increment`` steps (a
    fresh start: the cosine schedule depends on ``T``). Runs whose final loss or weights are
    not finite (diverged) are never picked; among equal losses the smaller ``lr`` wins.
    Raises ``RuntimeError`` if every ``lr`` diverges.
    """
    lr_t = torch.tensor(lrs, dtype=w0.dtype, device=w0.device)
    w_start = w0.reshape(1, -1).expand(len(lrs), -1)
    steps = min_steps
    while True:
        w, loss = train_batched(X, y, w_start, potential, lr_t, steps, momentum)
        finite = torch.isfinite(loss) & torch.isfinite(w).all(-1)
        if not bool(finite.any()):
            raise RuntimeError(f"every learning rate diverged ({make_potential(potential).name})")
        loss = torch.where(finite, loss, torch.full_like(loss, math.inf))
        best = int(torch.argmin(loss))
        if float(loss[best]) < loss_target or steps >= max_steps:
            return LrChoice(float(lrs[best]), steps, float(loss[best]))
        steps = min(steps + step_increment, max_steps)


def dual_change_stats(
    potential: str | Potential, w0: Tensor, w: Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Per run (row of ``w0``, ``w``): Delta-CDF and relative size of the dual change.

    ``diff = grad_phi(w) - grad_phi(w0)`` in float64; returns ``delta_cdf(diff)`` (exact,
    uncentred) and ``||diff|| / ||grad_phi(w0)||``, both NaN for a run whose ``diff`` is not
    finite (it diverged) or is constant.
    """
    pot = make_potential(potential)
    theta0 = pot.to_dual(w0.double())
    diff = (pot.to_dual(w.double()) - theta0).cpu()
    relative = (diff.norm(dim=-1) / theta0.norm(dim=-1).cpu()).numpy()
    gaussianity = np.full(len(diff), np.nan)
    for i, row in enumerate(diff):
        if bool(torch.isfinite(row).all()) and float(row.std()) > 0:
            gaussianity[i] = delta_cdf(row)
        else:
            relative[i] = np.nan
    return gaussianity, relative


NULL_VALUES = 2_000_000
"""Gaussian values simulated per :func:`delta_cdf_null` (at least 100 vectors)."""


@functools.lru_cache(maxsize=256)
def delta_cdf_null(D: int, p: float, seed: int = 0) -> float:
    """The Delta-CDF a dual change with the inputs' correlations reaches when it is Gaussian.

    A fixed combination ``X^T a`` of the rows has, across synapses, covariance proportional
    to the inputs' ``C + I/12``. Returns the mean Delta-CDF of ``D`` values ``x ~ N(0, C +
    I/12)`` over ``max(100, NULL_VALUES // D)`` simulated vectors (cached per process). It
    lies below the floor for independent values (:func:`mirrorlib.stats.delta_cdf_floor`):
    the covariances alternate in sign, so the empirical CDF of neighbouring, anticorrelated
    values fluctuates less.
    """
    embedding = circulant_embedding(int(D), p)
    gen = torch.Generator().manual_seed(seed)
    count = max(100, NULL_VALUES // int(D))
    x = embedding.sample(count, gen, torch.float64)
    x += torch.randn(x.shape, generator=gen, dtype=torch.float64) / math.sqrt(12.0)
    return float(np.mean([delta_cdf(row) for row in x.numpy()]))


_INPUTS, _HELD_OUT, _W0_SEED, _W0_HELD_OUT = range(4)


def _generator(device: torch.device, *key: int) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``key`` (non-negative ints) by SeedSequence."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0]))


def _power_key(p: float) -> int:
    return int(round(float(p) * 1_000_000))


def _draw(cfg: LinearRegressionConfig, embedding, n: int, key: tuple[int, ...], dtype, device):
    """One draw: inputs ``(n, D_max)`` and labels ``+-1`` ``(n,)`` from the generator ``key``."""
    gen = _generator(device, cfg.seed, *key)
    X = correlated_inputs(n, embedding, gen, dtype)
    y = torch.randint(0, 2, (n,), generator=gen, device=device).to(dtype).mul_(2).sub_(1)
    return X, y


def _inputs(cfg: LinearRegressionConfig, p: float, n_max: int, d_max: int, dtype, device):
    """For power ``p``: the seeds' draws stacked, ``(n_seeds, n_max, d_max)`` and
    ``(n_seeds, n_max)``, and the held-out draw, ``(n_max, d_max)`` and ``(n_max,)``.

    Two draws are made at a time, in two threads (torch's random number generation is serial,
    one core per generator); each draw has its own generator, so the result does not depend
    on the threads."""
    embedding = circulant_embedding(d_max, p)
    pk = _power_key(p)
    keys = [(_INPUTS, pk, s) for s in range(cfg.n_seeds)] + [(_HELD_OUT, pk, 0)]
    X = torch.empty(cfg.n_seeds, n_max, d_max, dtype=dtype, device=device)
    y = torch.empty(cfg.n_seeds, n_max, dtype=dtype, device=device)
    with ThreadPoolExecutor(max_workers=2) as pool:
        draws = pool.map(lambda key: _draw(cfg, embedding, n_max, key, dtype, device), keys)
        for s, (X_s, y_s) in zip(range(cfg.n_seeds), draws, strict=False):
            X[s], y[s] = X_s, y_s
        X_held, y_held = next(draws)
    return X, y, X_held, y_held


def _initial_weights(
    cfg: LinearRegressionConfig, key: tuple[int, ...], D: int, count: int, dtype, device
) -> Tensor:
    """``count`` rows of ``w0 ~ N(0, I / D)``, drawn in float32 and cast to ``dtype``."""
    gen = _generator(device, cfg.seed, *key, D)
    w0 = torch.randn(count, D, generator=gen, dtype=torch.float32, device=device)
    return w0.to(dtype).div_(math.sqrt(D))


class Problem(NamedTuple):
    """Inputs, labels and starting weights of one or several runs."""

    X: Tensor
    y: Tensor
    w0: Tensor


def cell_problems(
    cfg: LinearRegressionConfig, p: float, D: int, alpha: float, device: str | torch.device = "cpu"
) -> tuple[Problem, Problem]:
    """The problems :func:`run` trains in its cell ``(p, D, alpha)``: the seeds' ``(X, y, w0)``
    stacked (``(n_seeds, N, D)``, ``(n_seeds, N)``, ``(n_seeds, D)``) and the held-out draw
    that chooses the learning rate, drawn exactly as :func:`run` draws them for ``cfg`` (slices
    of the ``N_max x D_max`` draws of its whole grid), in ``cfg.dtype`` on ``device``."""
    device = torch.device(device)
    dtype = getattr(torch, cfg.dtype)
    dims = sorted(int(d) for d in cfg.dims)
    if int(D) not in dims or float(alpha) not in [float(a) for a in cfg.alphas]:
        raise ValueError(f"({D}, {alpha}) is not a cell of the config's grid")
    n_max = max(n_samples(d, a) for d in dims for a in cfg.alphas)
    X, y, X_held, y_held = _inputs(cfg, p, n_max, dims[-1], dtype, device)
    pk = _power_key(p)
    w0 = _initial_weights(cfg, (_W0_SEED, pk), int(D), cfg.n_seeds, dtype, device)
    w0_held = _initial_weights(cfg, (_W0_HELD_OUT, pk), int(D), 1, dtype, device)[0]
    N = n_samples(D, alpha)
    seeds = Problem(X[:, :N, :D].clone(), y[:, :N].clone(), w0)
    return seeds, Problem(X_held[:N, :D].clone(), y_held[:N].clone(), w0_held)


def _train_cell(
    cfg: LinearRegressionConfig, pot: Potential, seeds: Problem, held: Problem
) -> dict[str, object]:
    """One cell: the lr search on ``held``, then every seed at once; the table's columns."""
    choice = select_lr(
        held.X,
        held.y,
        held.w0,
        pot,
        cfg.lrs,
        cfg.min_steps,
        cfg.step_increment,
        cfg.max_steps,
        cfg.loss_target,
        cfg.momentum,
    )
    w, loss = train_batched(seeds.X, seeds.y, seeds.w0, pot, choice.lr, choice.steps, cfg.momentum)
    loss = loss.double().cpu().numpy()
    loss[~np.isfinite(loss)] = np.inf
    gaussianity, relative = dual_change_stats(pot, seeds.w0, w)
    return {
        "potential": pot.name,
        "seed": np.arange(len(loss)),
        "lr": choice.lr,
        "steps": choice.steps,
        "search_loss": choice.loss,
        "final_loss": loss,
        "converged": loss < cfg.loss_target,
        "delta_cdf": gaussianity,
        "relative_change": relative,
    }


def run(
    cfg: LinearRegressionConfig | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Run the experiment; a tidy table, one row per run, columns :data:`COLUMNS`.

    For each correlation power ``p``: ``n_seeds`` draws and one held-out draw of
    ``N_max x D_max`` inputs (and labels), from which every cell takes the first ``N`` rows and
    ``D`` columns. For each ``D``, ``alpha`` and potential: :func:`select_lr` on the held-out
    draw (its own ``w0``), then all seeds in one :func:`train_batched` call. Deterministic:
    the same config gives the same table (on a given device). ``progress`` shows a tqdm bar.
    """
    cfg = cfg or config("ci")
    device = torch.device(device)
    dtype = getattr(torch, cfg.dtype)
    pots = [make_potential(name) for name in cfg.potentials]
    dims = sorted(int(d) for d in cfg.dims)
    n_max = max(n_samples(D, alpha) for D in dims for alpha in cfg.alphas)
    floors = {D: delta_cdf_floor(D) for D in dims}
    nulls = {(p, D): delta_cdf_null(D, p) for p in cfg.corr_powers for D in dims}
    cells = len(cfg.corr_powers) * len(dims) * len(cfg.alphas) * len(pots)
    frames = []
    with tqdm(total=cells, desc="linear regression", disable=not progress) as bar:
        for p in cfg.corr_powers:
            bar.set_postfix_str(f"p={p:g}: sampling inputs")
            X, y, X_held, y_held = _inputs(cfg, p, n_max, dims[-1], dtype, device)
            for D in dims:
                pk = _power_key(p)
                w0 = _initial_weights(cfg, (_W0_SEED, pk), D, cfg.n_seeds, dtype, device)
                w0_held = _initial_weights(cfg, (_W0_HELD_OUT, pk), D, 1, dtype, device)[0]
                for alpha in cfg.alphas:
                    N = n_samples(D, alpha)
                    seeds = Problem(X[:, :N, :D], y[:, :N], w0)
                    held = Problem(X_held[:N, :D], y_held[:N], w0_held)
                    for pot in pots:
                        bar.set_postfix_str(f"p={p:g} D={D} N={N} {pot.name}")
                        floor_null = (floors[D], nulls[p, D])
                        frames.append(_cell_rows(cfg, p, alpha, pot, seeds, held, *floor_null))
                        bar.update()
            del X, y, X_held, y_held
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def _cell_rows(cfg, p, alpha, pot, seeds: Problem, held: Problem, floor: float, null: float):
    D, N = seeds.X.shape[-1], seeds.X.shape[-2]
    columns = _train_cell(cfg, pot, seeds, held)
    return pd.DataFrame(
        {"corr_power": float(p), "alpha": float(alpha), "D": D, "N": N}
        | columns
        | {"delta_cdf_floor": floor, "delta_cdf_null": null}
    )


def run_cell(
    cfg: LinearRegressionConfig,
    p: float,
    D: int,
    alpha: float,
    potentials: tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """The rows :func:`run` gives for the cell ``(p, D, alpha)`` (every seed; ``potentials``:
    a subset of ``cfg.potentials``, default all), computed alone from the same draws
    (:func:`cell_problems`). Bitwise equal to :func:`run`'s rows on the same device: used to
    re-check a stored paper-scale table without rerunning the grid."""
    seeds, held = cell_problems(cfg, p, D, alpha, device)
    floor, null = delta_cdf_floor(int(D)), delta_cdf_null(int(D), p)
    names = cfg.potentials if potentials is None else potentials
    frames = [_cell_rows(cfg, p, alpha, make_potential(n), seeds, held, floor, null) for n in names]
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def summarise_largest_d(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, object]]:
    """What the chapter reads from a :func:`run` table at its largest ``D``.

    Returns the median ``delta_cdf / delta_cdf_null`` per ``(potential, alpha)`` (one column
    per ``corr_power``), and a dict: ``ratio_05_min/max`` (every potential at alpha 0.5),
    ``ratio_2n_075`` (the 2-norm's largest at 0.75), ``ratio_curved_min/max`` (negative
    entropy and the 3-norm at 0.75), ``rel_min/max`` (the 2-norm's median relative change over
    ``sqrt(2N/D)``), ``rel_2n_075`` (its smallest median relative change at 0.75),
    ``n_over_d`` (at 0.75), and for negative entropy (``ne``) and the 3-norm (``3``) against
    the 2-norm at 0.75, paired by seed and input correlation, ``{k}_vs_2`` (the verdict of a
    paired t interval, :func:`mirrorlib.stats.paired_verdict`), ``{k}_vs_2_diff`` and
    ``{k}_vs_2_se``; ``n_pairs`` counts the pairs.
    """
    big = table[table["D"] == table["D"].max()]
    cells = big.groupby(["potential", "alpha", "corr_power"])
    ratio = (cells["delta_cdf"].median() / cells["delta_cdf_null"].first()).unstack("corr_power")
    prediction = np.sqrt(2 * cells["N"].first() / cells["D"].first())
    rel = (cells["relative_change"].median() / prediction).unstack("corr_power").loc["2-norm"]
    curved = ratio.loc[["negative_entropy", "3-norm"]].xs(0.75, level="alpha")
    at_05 = ratio.xs(0.5, level="alpha")
    values: dict[str, object] = {
        "ratio_05_min": float(at_05.min().min()),
        "ratio_05_max": float(at_05.max().max()),
        "ratio_2n_075": float(ratio.loc[("2-norm", 0.75)].max()),
        "ratio_curved_min": float(curved.min().min()),
        "ratio_curved_max": float(curved.max().max()),
        "rel_min": float(rel.min().min()),
        "rel_max": float(rel.max().max()),
        "rel_2n_075": float(cells["relative_change"].median().loc[("2-norm", 0.75)].min()),
        "n_over_d": float(big.loc[big["alpha"] == 0.75, "N"].iloc[0] / big["D"].iloc[0]),
    }
    paired = big[big["alpha"] == 0.75].assign(r=big["delta_cdf"] / big["delta_cdf_null"])
    paired = paired.pivot_table(index=["corr_power", "seed"], columns="potential", values="r")
    for name, key in (("negative_entropy", "ne"), ("3-norm", "3")):
        pair = paired[[name, "2-norm"]].dropna()
        diff, se, word = paired_verdict(pair[name], pair["2-norm"])
        values |= {f"{key}_vs_2": word, f"{key}_vs_2_diff": diff, f"{key}_vs_2_se": se}
        values["n_pairs"] = len(pair)
    return ratio, values
