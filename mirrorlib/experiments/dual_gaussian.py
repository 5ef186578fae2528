"""Why the change in the dual space looks Gaussian: the experiments of ``book/dual_gaussian.md``.

Underdetermined linear regression: inputs ``X`` (``N x D``, ``N < D``), labels ``y``, weights
started at ``w0`` and trained by mirror descent with a separable potential ``phi`` on the squared
loss. Every gradient is ``(2/N) X^T r``, so

    grad_phi(w_t) - grad_phi(w0) = X^T a_t        (row space of X, at every step t),

and a run that reaches ``X w = y`` has reached the *Bregman projection*
(Gunasekar et al. 2018)

    w* = argmin_w D_phi(w, w0)   subject to   X w = y.

The pieces, each a function here, checked by the chapter and the tests:

- :func:`row_space_residual`: the part of a dual change outside ``row(X)`` (a);
- :func:`fit_mirror_descent`: mirror descent to interpolation (the Fig 2 trainer
  :func:`mirrorlib.experiments.linear_regression.train_batched`, all learning rates at once);
- from :mod:`mirrorlib.projection` (imported here): :func:`bregman_projection`, ``w*`` by
  damped Newton on the dual problem in ``a`` (N unknowns), each step solved matrix-free by
  conjugate gradients in float32, and its dense float64 reference
  :func:`bregman_projection_dense`; :func:`bregman_projection_scipy`, ``w*`` by a generic
  constrained solver (SLSQP) (b); :func:`linearised_solution`, ``w*`` with the mirror map
  replaced by its tangent at ``w0``, ``w_lin = w0 + H0^-1 X^T (X H0^-1 X^T)^-1 (y - X w0)``,
  ``H0 = diag(phi''(w0))`` (c);
- :func:`sample_inputs`: iid signs, or the paper's correlated inputs (short/long range).

The experiments return tidy tables: :func:`run_implicit_bias` (a, b), :func:`run_linearisation`
(c, f), :func:`run_clt` and :func:`dual_change_histograms` (d, f), :func:`run_deep` (e).
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mirrorlib.experiments import cpu_threads, preset, requirement
from mirrorlib.experiments.correlated_inputs import circulant_embedding, correlated_inputs
from mirrorlib.experiments.linear_regression import delta_cdf_null, train_batched
from mirrorlib.optim import MirrorDescent
from mirrorlib.potentials import NegativeEntropy, Potential, potential
from mirrorlib.projection import (
    SMALL_WORK,
    Projection,
    bregman_projection,
    bregman_projection_dense,
    bregman_projection_scipy,
    inverse_curvature,
    linearised_solution,
    sign_feasible,
)
from mirrorlib.recovery import InputError
from mirrorlib.results import read_table, write_table
from mirrorlib.stats import delta_cdf, delta_cdf_floor

__all__ = [
    "DualGaussianConfig",
    "INPUT_KINDS",
    "PRESETS",
    "Projection",
    "bregman_projection",
    "bregman_projection_dense",
    "bregman_projection_scipy",
    "config",
    "dual_change_histograms",
    "HIST_EDGES",
    "WideMLP",
    "fit_mirror_descent",
    "input_variance",
    "linearised_solution",
    "relative_change_prediction",
    "row_space_residual",
    "clt_point",
    "run_clt",
    "run_deep",
    "run_implicit_bias",
    "run_linearisation",
    "linearisation_summary",
    "width_summary",
    "sample_inputs",
    "sign_feasible",
]

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


def _generator(*key: int) -> torch.Generator:
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


class _Problem(NamedTuple):
    X: Tensor
    y: Tensor
    w0: Tensor


def _problem(kind: str, N: int, D: int, *key: int) -> _Problem:
    """Inputs, labels ``+-1`` and ``w0 ~ N(0, I / D)`` (float64) from the generator ``key``."""
    gen = _generator(*key)
    X = sample_inputs(kind, N, D, gen)
    y = torch.randint(0, 2, (N,), generator=gen).double().mul_(2).sub_(1)
    w0 = torch.randn(D, generator=gen, dtype=torch.float64) / math.sqrt(D)
    return _Problem(X, y, w0)


# --------------------------------------------------------------------------------------------
# The theory's objects


def row_space_residual(X: Tensor, v: Tensor) -> float:
    """``||v - P v|| / ||v||`` with ``P`` the orthogonal projection onto the row space of ``X``.

    ``P v = Q Q^T v`` with ``Q`` an orthonormal basis of ``row(X)`` (reduced QR of ``X^T``;
    ``X`` must have full row rank). Zero when ``v = X^T a`` for some ``a``, up to rounding.
    """
    X, v = X.double(), v.double().reshape(-1)
    if X.dim() != 2 or X.shape[1] != v.shape[0]:
        raise InputError(f"X must be (N, {v.shape[0]}), got {tuple(X.shape)}")
    q, _ = torch.linalg.qr(X.T)
    resid = v - q @ (q.T @ v)
    return float(resid.norm() / v.norm())


class MirrorDescentFit(NamedTuple):
    """The outcome of :func:`fit_mirror_descent`."""

    w: Tensor
    loss: float
    lr: float


def fit_mirror_descent(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential_: str | Potential,
    lrs: tuple[float, ...],
    steps: int,
    momentum: float = 0.9,
) -> MirrorDescentFit:
    """Mirror descent to interpolation: every learning rate of ``lrs`` at once (one batched
    :func:`~mirrorlib.experiments.linear_regression.train_batched` call: heavy-ball momentum,
    cosine schedule, ``steps`` steps, float64); returns the run with the lowest final loss."""
    lr_t = torch.tensor(lrs, dtype=torch.float64)
    w_start = w0.double().reshape(1, -1).expand(len(lrs), -1)
    w, loss = train_batched(X.double(), y.double(), w_start, potential_, lr_t, steps, momentum)
    finite = torch.isfinite(loss) & torch.isfinite(w).all(-1)
    if not bool(finite.any()):
        raise RuntimeError(f"every learning rate diverged ({potential(potential_).name})")
    loss = torch.where(finite, loss, torch.full_like(loss, math.inf))
    best = int(torch.argmin(loss))
    return MirrorDescentFit(w[best], float(loss[best]), float(lrs[best]))


def relative_change_prediction(
    w0: Tensor, potential_: str | Potential, N: int, input_var: float
) -> float:
    """First-order prediction of ``||w* - w0|| / ||w0||`` for random labels ``+-1``.

    With ``X H0^-1 X^T ~ s2 (sum_i d_i) I`` (``d = 1 / phi''(w0)``, ``s2`` the input variance;
    ``N << D``), ``a ~ r / (s2 sum d)`` with ``||r||^2 ~ N (1 + s2 ||w0||^2)``, and
    ``w* - w0 ~ d * X^T a``:

        ||w* - w0||^2 / ||w0||^2 ~ N (1 + s2 ||w0||^2) / (s2 D) * mean(d^2) / mean(d)^2 / ||w0||^2.

    For the 2-norm (``d = 1``), ``s2 = 1`` and ``||w0|| = 1`` this is ``sqrt(2 N / D)``.
    """
    pot = potential(potential_)
    w0 = w0.double()
    d = inverse_curvature(pot, w0)
    norm2 = float(w0.square().sum())
    D = w0.shape[0]
    shape = float(d.square().mean() / d.mean().square())
    return math.sqrt(N * (1 + input_var * norm2) / (input_var * D) * shape / norm2)


# --------------------------------------------------------------------------------------------
# Experiments

_SMALL, _LIN, _CLT, _DEEP = range(4)


def run_implicit_bias(cfg: DualGaussianConfig | None = None) -> pd.DataFrame:
    """(a) and (b): mirror descent, the Newton projection and SLSQP on small problems.

    For each ``(N, D)`` of ``small_shapes``, seed and potential (inputs ``lin_inputs``): train
    by :func:`fit_mirror_descent`, then compute :func:`bregman_projection` and
    :func:`bregman_projection_scipy`. One row each, columns ``N, D, seed, potential,
    md_loss`` (final loss of mirror descent), ``row_residual`` (:func:`row_space_residual` of
    its dual change), ``md_vs_newton``, ``scipy_vs_newton``, ``md_vs_scipy`` (largest
    coordinate difference divided by the largest coordinate of ``w* - w0``),
    ``newton_converged``, ``bregman_md``, ``bregman_scipy`` (``D_phi(w, w0)`` reached), and
    ``solvable``: whether the problem has a solution in the potential's domain (for negative
    entropy, weights with the signs of ``w0``: :func:`sign_feasible`; always for p-norms). On
    an unsolvable problem mirror descent cannot fit the labels and there is no projection.
    """
    cfg = cfg or config("ci")
    rows = []
    for N, D in cfg.small_shapes:
        for s in range(cfg.small_seeds):
            X, y, w0 = _problem(cfg.lin_inputs, N, D, cfg.seed, _SMALL, N, D, s)
            feasible = None
            for name in cfg.potentials:
                pot = potential(name)
                if pot.needs_sign and feasible is None:
                    feasible = sign_feasible(X, y, w0)
                fit = fit_mirror_descent(X, y, w0, pot, cfg.md_lrs, cfg.md_steps)
                proj = bregman_projection(X, y, w0, pot)
                w_sp = torch.from_numpy(bregman_projection_scipy(X, y, w0, pot))
                scale = float((proj.w - w0).abs().max())

                def gap(u: Tensor, v: Tensor, scale: float = scale) -> float:
                    return float((u - v).abs().max()) / scale

                rows.append(
                    {
                        "N": N,
                        "D": D,
                        "seed": s,
                        "potential": pot.name,
                        "md_loss": fit.loss,
                        "row_residual": row_space_residual(X, pot.to_dual(fit.w) - pot.to_dual(w0)),
                        "md_vs_newton": gap(fit.w, proj.w),
                        "scipy_vs_newton": gap(w_sp, proj.w),
                        "md_vs_scipy": gap(fit.w, w_sp),
                        "newton_converged": proj.converged,
                        "bregman_md": float(pot.bregman(fit.w, w0).sum()),
                        "bregman_scipy": float(pot.bregman(w_sp, w0).sum()),
                        "solvable": bool(feasible) if pot.needs_sign else True,
                    }
                )
    return pd.DataFrame(rows)


def _dual_stats(pot: Potential, w0: Tensor, w: Tensor) -> dict[str, float]:
    """Delta-CDF (uncentred), relative weight change and relative dual change of ``w0 -> w``."""
    diff = pot.to_dual(w) - pot.to_dual(w0)
    return {
        "delta_cdf": delta_cdf(diff),
        "relative_change": float((w - w0).norm() / w0.norm()),
        "relative_dual_change": float(diff.norm() / pot.to_dual(w0).norm()),
    }


def run_linearisation(cfg: DualGaussianConfig | None = None) -> pd.DataFrame:
    """(c) and (f): how far the exact projection is from its linearisation, against ``N / D``.

    ``D = lin_dim``; for each ratio, ``N = round(ratio D)``, seed and potential: ``w*`` by
    :func:`bregman_projection`, ``w_lin`` by :func:`linearised_solution`. Columns ``D, N,
    ratio, seed, potential, converged`` (an interpolating ``w*`` was found; else the other
    columns are NaN), ``sign_feasible`` (negative entropy: whether any weights with the signs
    of ``w0`` fit the data, :func:`sign_feasible`, checked before the projection, which is not
    tried where none does; other potentials: True where ``w*`` was found, empty otherwise),
    ``lin_error = ||w* - w_lin|| / ||w* - w0||``, ``delta_cdf``,
    ``relative_change``, ``relative_dual_change`` (of ``w0 -> w*``), ``floor`` (the
    Delta-CDF of ``D`` independent Gaussian values) and ``null`` (of ``D`` Gaussian values
    correlated like the inputs; equal to ``floor`` for independent inputs).
    """
    cfg = cfg or config("ci")
    D = int(cfg.lin_dim)
    p = INPUT_KINDS[cfg.lin_inputs]
    floor = delta_cdf_floor(D)
    null = floor if p is None else delta_cdf_null(D, p)
    rows = []
    for ratio in cfg.lin_ratios:
        N = max(1, int(round(ratio * D)))
        for s in range(cfg.lin_seeds):
            X, y, w0 = _problem(cfg.lin_inputs, N, D, cfg.seed, _LIN, N, D, s)
            for name in cfg.potentials:
                pot = potential(name)
                row = {"D": D, "N": N, "ratio": ratio, "seed": s, "potential": pot.name}
                # Negative entropy keeps every sign: the linear programme says first whether it
                # can fit at all (if not, its dual is unbounded and Newton could only stall).
                feasible = sign_feasible(X, y, w0) if isinstance(pot, NegativeEntropy) else None
                proj = None if feasible is False else bregman_projection(X, y, w0, pot)
                row["converged"] = proj is not None and proj.converged
                row["sign_feasible"] = (row["converged"] or None) if feasible is None else feasible
                stats = {
                    "lin_error": math.nan,
                    "delta_cdf": math.nan,
                    "relative_change": math.nan,
                    "relative_dual_change": math.nan,
                }
                if row["converged"]:
                    w_lin = linearised_solution(X, y, w0, pot)
                    stats = _dual_stats(pot, w0, proj.w)
                    stats["lin_error"] = float((proj.w - w_lin).norm() / (proj.w - w0).norm())
                rows.append(row | stats | {"floor": floor, "null": null})
    return pd.DataFrame(rows)


LIN_HIGH_RATIO = 0.5
"""The ``N / D`` at which the chapter quotes the linearisation error of large changes."""


def linearisation_summary(table: pd.DataFrame, high_ratio: float = LIN_HIGH_RATIO) -> dict:
    """What the chapter quotes from a :func:`run_linearisation` table: the median over seeds of
    ``lin_error`` for the negative entropy (``ne``) and the 3-norm (``p3``) at the smallest
    ``N / D`` (``lin_{key}_lo``) and at ``high_ratio`` (``lin_{key}_hi``)."""
    if high_ratio not in set(table["ratio"]):
        raise InputError(
            f"the table has no N / D = {high_ratio}; it has {sorted(set(table['ratio']))}"
        )
    med = table.groupby(["potential", "ratio"])["lin_error"].median()
    low = table["ratio"].min()
    values = {}
    for pot, key in (("negative_entropy", "ne"), ("3-norm", "p3")):
        values[f"lin_{key}_lo"] = float(med.loc[(pot, low)])
        values[f"lin_{key}_hi"] = float(med.loc[(pot, high_ratio)])
    return values


def clt_point(cfg: DualGaussianConfig, kind: str, D: int, alpha: float, seed: int) -> list[dict]:
    """The rows of :func:`run_clt` for one input law, ``D``, ``alpha`` and seed: one problem,
    its exact projection for each potential."""
    p = INPUT_KINDS[kind]
    floor = delta_cdf_floor(D)
    null = floor if p is None else delta_cdf_null(D, p)
    N = int(np.power(float(D), float(alpha)))
    X, y, w0 = _problem(kind, N, D, cfg.seed, _CLT, N, D, seed)
    rows = []
    for name in cfg.potentials:
        pot = potential(name)
        proj = bregman_projection(X, y, w0, pot)
        stats = {"delta_cdf": math.nan, "relative_change": math.nan}
        stats["relative_dual_change"] = math.nan
        if proj.converged:
            stats = _dual_stats(pot, w0, proj.w)
        head = {"inputs": kind, "D": D, "alpha": float(alpha), "N": N, "seed": seed}
        rows.append(
            head
            | {"potential": pot.name, "converged": proj.converged}
            | stats
            | {
                "prediction": math.sqrt(2 * N / D),
                "prediction_lin": relative_change_prediction(w0, pot, N, input_variance(kind)),
                "floor": floor,
                "null": null,
            }
        )
    return rows


def _clt_seed(cfg: DualGaussianConfig, seed: int) -> pd.DataFrame:
    """Every cell of :func:`run_clt` for one seed."""
    rows = [
        row
        for kind in cfg.clt_inputs
        for D in sorted(int(d) for d in cfg.clt_dims)
        for alpha in cfg.clt_alphas
        for row in clt_point(cfg, kind, D, float(alpha), seed)
    ]
    return pd.DataFrame(rows)


def _one_thread() -> None:
    torch.set_num_threads(1)


def run_clt(
    cfg: DualGaussianConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """(d) and (f): the dual change's Delta-CDF and relative size as ``D`` grows, ``N = D^alpha``.

    For each input law of ``clt_inputs``, ``D`` of ``clt_dims``, ``alpha``, seed and potential,
    the exact projection :func:`bregman_projection` (the point mirror descent converges to;
    :func:`clt_point`). Columns ``inputs, D, alpha, N, seed, potential, converged, delta_cdf,
    relative_change`` (``||w* - w0|| / ||w0||``), ``relative_dual_change``,
    ``prediction = sqrt(2 N / D)``, ``prediction_lin`` (:func:`relative_change_prediction`),
    ``floor`` and ``null`` (as in :func:`run_linearisation`).

    Seeds run one after the other, every cell for each. With ``checkpoint_dir``, each finished
    seed's rows are written there (``clt_<settings>_seed<s>.csv``) and read back instead of
    recomputed, so an interrupted run resumes where it stopped. ``workers > 1`` runs that many
    seeds at once, each in its own process on one thread (the same rows: every seed's problems
    come from their own generators).
    """
    cfg = cfg or config("ci")
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    key = hashlib.sha1(
        repr((cfg.potentials, cfg.clt_dims, cfg.clt_alphas, cfg.clt_inputs, cfg.seed)).encode()
    ).hexdigest()[:12]
    frames: dict[int, pd.DataFrame] = {}
    names = {s: f"clt_{key}_seed{s}" for s in range(cfg.clt_seeds)}
    if folder is not None:
        for s, name in names.items():
            if (folder / f"{name}.csv").is_file():
                frames[s] = read_table(folder, name)
    missing = [s for s in names if s not in frames]

    def done(s: int, frame: pd.DataFrame) -> None:
        frames[s] = frame
        if folder is not None:
            write_table(frame, folder, names[s])

    if workers > 1 and len(missing) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_clt_seed, cfg, s): s for s in missing}
            for future in as_completed(futures):
                done(futures[future], future.result())
    else:
        for s in missing:
            done(s, _clt_seed(cfg, s))
    table = pd.concat([frames[s] for s in sorted(frames)], ignore_index=True)
    order = {kind: i for i, kind in enumerate(cfg.clt_inputs)}
    table = table.sort_values(
        ["inputs", "D", "alpha", "seed"],
        key=lambda c: c.map(order) if c.name == "inputs" else c,
        kind="stable",
    )
    return table.reset_index(drop=True)


HIST_EDGES = np.linspace(-5.0, 5.0, 51)
"""Bin edges of the histograms of standardised dual changes."""


def _histogram(z: np.ndarray) -> pd.DataFrame:
    """Density histogram of ``z`` on :data:`HIST_EDGES` (values outside are dropped)."""
    counts, edges = np.histogram(z, bins=HIST_EDGES)
    density = counts / (len(z) * np.diff(edges))
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "density": density})


def dual_change_histograms(
    cfg: DualGaussianConfig | None = None,
    inputs: str = "binary",
    D: int | None = None,
    ns: tuple[int, ...] = (1, 3, 30),
) -> pd.DataFrame:
    """(d): histograms of the dual change for ``N`` of ``ns`` examples, ``D`` weights (default:
    the largest of ``clt_dims``), one problem (inputs ``inputs``) solved by
    :func:`bregman_projection` for each potential. The change is divided by its standard
    deviation (not centred, as the statistic). Columns ``inputs, D, N, potential,
    delta_cdf, left, right, density``."""
    cfg = cfg or config("ci")
    D = int(D or max(cfg.clt_dims))
    frames = []
    for N in ns:
        if not 1 <= N < D:
            raise InputError(f"need 1 <= N < D, got N={N}, D={D}")
        X, y, w0 = _problem(inputs, N, D, cfg.seed, _CLT, N, D, 0, 1)
        for name in cfg.potentials:
            pot = potential(name)
            proj = bregman_projection(X, y, w0, pot)
            if not proj.converged:
                continue
            diff = (pot.to_dual(proj.w) - pot.to_dual(w0)).numpy()
            head = {"inputs": inputs, "D": D, "N": N, "potential": pot.name}
            head["delta_cdf"] = delta_cdf(diff)
            frames.append(_histogram(diff / diff.std(ddof=1)).assign(**head))
    cols = ["inputs", "D", "N", "potential", "delta_cdf", "left", "right", "density"]
    return pd.concat(frames, ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------
# (e) A wide network finetuned from pretrained weights


class WideMLP(torch.nn.Module):
    """Two hidden ReLU layers of ``width`` units in the NTK parameterisation, no biases:

        h1 = relu(W1 x / sqrt(n_in)),  h2 = sqrt(2) relu(W2 h1 / sqrt(width)),
        f = W3 h2 / sqrt(width),

    every weight drawn from N(0, 1). In this parameterisation a network trained with a fixed
    learning rate stays closer to its linearisation the wider it is (Jacot et al. 2018)."""

    def __init__(self, n_in: int, width: int, n_out: int, generator: torch.Generator) -> None:
        super().__init__()
        shapes = {"w1": (width, n_in), "w2": (width, width), "w3": (n_out, width)}
        for name, shape in shapes.items():
            w = torch.randn(shape, generator=generator, dtype=torch.float64)
            setattr(self, name, torch.nn.Parameter(w))

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(x @ self.w1.T / math.sqrt(self.w1.shape[1]))
        h = torch.relu(h @ self.w2.T / math.sqrt(self.w2.shape[1])) * math.sqrt(2.0)
        return h @ self.w3.T / math.sqrt(self.w3.shape[1])


def _pretrain(model: torch.nn.Module, x: Tensor, y: Tensor, epochs: int, gen) -> None:
    """SGD (lr 0.5, momentum 0.9, batches of 64, cross-entropy) for ``epochs`` epochs."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for batch in order.split(64):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), y[batch]).backward()
            opt.step()


def _finetune(
    model: torch.nn.Module, x: Tensor, y: Tensor, pot: Potential, lr: float, max_steps: int
) -> tuple[int, float]:
    """Full-batch mirror descent (momentum 0.9, cross-entropy) until every training example is
    classified correctly or ``max_steps``; returns ``(steps, training accuracy)``.

    Each weight tensor gets its own learning rate ``lr / median(1 / phi''(w0))``, so that the
    first step moves a typical weight about as far as gradient descent with ``lr`` would."""
    groups = []
    for param in model.parameters():
        scale = float(torch.median(inverse_curvature(pot, param.detach().double())))
        groups.append({"params": [param], "lr": lr / scale})
    opt = MirrorDescent(groups, lr=lr, potential=pot, momentum=0.9, fast=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = 0
    for steps in range(1, max_steps + 1):
        opt.zero_grad(set_to_none=True)
        out = model(x)
        if bool((out.argmax(1) == y).all()):
            steps -= 1
            break
        loss_fn(out, y).backward()
        opt.step()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).double().mean())
    return steps, accuracy


def _linearisation_error(
    model: torch.nn.Module, before: dict[str, Tensor], after: dict[str, Tensor], x: Tensor
) -> tuple[float, float]:
    """Outputs on ``x`` after finetuning against their first-order Taylor expansion around the
    pretrained parameters, ``f_lin = f(x; p0) + J(x; p0) (p - p0)`` (``torch.func.jvp``).

    Returns ``||f - f_lin|| / ||f - f0||`` and the share of inputs whose predicted class
    (argmax) is the same for ``f`` and ``f_lin``."""
    tangent = {k: after[k] - before[k] for k in before}

    def f(params: dict[str, Tensor]) -> Tensor:
        return torch.func.functional_call(model, params, (x,))

    out0, jvp_out = torch.func.jvp(f, (before,), (tangent,))
    with torch.no_grad():
        out1 = f(after)
    lin = out0 + jvp_out
    error = float((out1 - lin).norm() / (out1 - out0).norm())
    agree = float((out1.argmax(1) == lin.argmax(1)).double().mean())
    return error, agree


def run_deep(
    cfg: DualGaussianConfig | None = None, dataset: str = "digits"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(e): MLPs pretrained on one task, finetuned by mirror descent on a few examples of
    another, compared with their linearisation.

    A :class:`WideMLP` per width of ``widths`` and seed. Task A: the ``dataset``'s classes
    (train split; pixels standardised), learned by SGD (:func:`_pretrain`). Task B:
    ``deep_n`` test-split images with the labels shifted, ``(y + 5) mod 10``, learned by
    full-batch mirror descent to 100 % training accuracy (:func:`_finetune`) with each
    potential, all from the same pretrained weights. The other test images are held out.
    Float64 throughout. The analysed weights are the middle layer ``W2`` (``width^2``).

    Returns ``(summary, histograms)``. ``summary``: one row per ``(width, seed, potential)``
    with ``D`` (middle-layer weights), ``N``, ``steps``, ``train_accuracy``, ``lin_error``
    and ``lin_agreement`` on the held-out images (:func:`_linearisation_error`),
    ``relative_change`` (``||w - w0|| / ||w0||`` of the middle layer), ``delta_cdf`` of its
    dual change and its ``floor``. ``histograms``: for seed 0, the middle layer's
    standardised dual change per ``(width, potential)`` (columns ``left, right, density``).
    """
    from mirrorlib.data import load_dataset

    cfg = cfg or config("ci")
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    x_a, x_b_all = train.images.flatten(1).double(), test.images.flatten(1).double()
    mean, std = x_a.mean(0), x_a.std(0) + 0.1
    x_a, x_b_all = (x_a - mean) / std, (x_b_all - mean) / std
    if not 2 <= cfg.deep_n < len(x_b_all):
        raise InputError(f"deep_n must be in [2, {len(x_b_all)}), got {cfg.deep_n}")
    rows, hists = [], []
    for width in cfg.widths:
        with cpu_threads(1 if width**2 * cfg.deep_n < SMALL_WORK else None):
            _deep_width(cfg, width, x_a, train.labels, x_b_all, test.labels, rows, hists)
    hist_cols = ["width", "potential", "left", "right", "density"]
    return pd.DataFrame(rows), pd.concat(hists, ignore_index=True)[hist_cols]


def width_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians over seeds, one row per width, of a :func:`run_deep` table's ``lin_error``,
    ``relative_change``, ``delta_cdf`` and ``floor``."""
    return table.groupby("width")[["lin_error", "relative_change", "delta_cdf", "floor"]].median()


def _deep_width(
    cfg: DualGaussianConfig,
    width: int,
    x_a: Tensor,
    y_a: Tensor,
    x_b_all: Tensor,
    labels_b: Tensor,
    rows: list,
    hists: list,
) -> None:
    """:func:`run_deep` for one width: append its rows and histograms."""
    n_in, n_out = x_a.shape[1], int(max(y_a.max(), labels_b.max())) + 1
    for s in range(cfg.deep_seeds):
        gen = _generator(cfg.seed, _DEEP, width, s)
        model = WideMLP(n_in, width, n_out, gen)
        _pretrain(model, x_a, y_a, cfg.pretrain_epochs, gen)
        pretrained = {k: v.detach().clone() for k, v in model.named_parameters()}
        order = torch.randperm(len(x_b_all), generator=gen)
        fit, held = order[: cfg.deep_n], order[cfg.deep_n :]
        x_b, y_b = x_b_all[fit], (labels_b[fit] + n_out // 2) % n_out
        for name in cfg.potentials:
            pot = potential(name)
            with torch.no_grad():
                for k, v in model.named_parameters():
                    v.copy_(pretrained[k])
            steps, accuracy = _finetune(model, x_b, y_b, pot, cfg.deep_lr, cfg.deep_max_steps)
            after = {k: v.detach().clone() for k, v in model.named_parameters()}
            error, agree = _linearisation_error(model, pretrained, after, x_b_all[held])
            w0, w1 = pretrained["w2"], after["w2"]
            diff = (pot.to_dual(w1) - pot.to_dual(w0)).reshape(-1).numpy()
            rows.append(
                {
                    "width": width,
                    "D": w0.numel(),
                    "N": cfg.deep_n,
                    "seed": s,
                    "potential": pot.name,
                    "steps": steps,
                    "train_accuracy": accuracy,
                    "lin_error": error,
                    "lin_agreement": agree,
                    "relative_change": float((w1 - w0).norm() / w0.norm()),
                    "delta_cdf": delta_cdf(diff),
                    "floor": delta_cdf_floor(w0.numel()),
                }
            )
            if s == 0:
                hist = _histogram(diff / diff.std(ddof=1))
                hists.append(hist.assign(width=width, potential=pot.name))


# --------------------------------------------------------------------------------------------
# Stored paper-scale results

STORED_CHAPTER = "dual_gaussian"
"""The chapter's folder in :data:`mirrorlib.stored.STORED_ROOT`."""

STORE_COMMAND = (
    'python -c "from mirrorlib.experiments import dual_gaussian as dg; dg.store_paper()"'
)
"""The command that runs the ``paper`` preset and stores its tables (:func:`store_paper`)."""


def store_paper(
    checkpoint_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    note: str = "",
    command: str = STORE_COMMAND,
    tables: tuple[str, ...] = ("clt", "linearisation", "implicit_bias", "deep"),
    workers: int = 2,
) -> dict[str, float]:
    """Run the ``paper`` preset and store each table as soon as it is done, with its wall time
    (:func:`mirrorlib.stored.write_stored`; ``root`` defaults to ``results/paper/``): ``clt``
    (resumable through ``checkpoint_dir``, ``workers`` seeds at once; see :func:`run_clt`),
    ``linearisation``,
    ``implicit_bias``, ``deep`` and ``deep_histograms`` (those of ``tables``). Returns the wall
    time of each."""
    from mirrorlib.stored import Provenance, write_stored

    cfg = config("paper")
    runs = {
        "clt": lambda: run_clt(cfg, checkpoint_dir, workers),
        "linearisation": lambda: run_linearisation(cfg),
        "implicit_bias": lambda: run_implicit_bias(cfg),
        "deep": lambda: run_deep(cfg),
    }
    times = {}
    unknown = sorted(set(tables) - set(runs))
    if unknown:
        raise InputError(f"unknown table(s) {unknown}; choose from {list(runs)}")
    for name in tables:
        run = runs[name]
        start = time.perf_counter()
        result = run()
        times[name] = time.perf_counter() - start
        names = (name, f"{name}_histograms") if name == "deep" else (name,)
        tables = result if name == "deep" else (result,)
        for table_name, table in zip(names, tables, strict=True):
            wall = times[name]
            record = Provenance.of_this_run(command, wall, note=note)
            write_stored(table, STORED_CHAPTER, table_name, record, root=root)
    return times
