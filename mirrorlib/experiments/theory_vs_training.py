"""Theory against training: do the trained endpoints of Fig 2 reach the Bregman projection?

The theory chapter (:mod:`mirrorlib.experiments.dual_gaussian`) analyses the exact Bregman
projection ``w* = argmin D_phi(w, w0)`` subject to ``X w = y``, the point mirror descent
converges to. Fig 2 (:mod:`mirrorlib.experiments.linear_regression`) analyses the weights
mirror descent reaches with the paper's protocol: a learning rate chosen on a held-out draw,
at most 500 steps, a loss target of ``1e-3``, float32. This module trains the same problems
both ways and measures how far apart the endpoints are:

- ``fig2``: the paper's protocol (:func:`~mirrorlib.experiments.linear_regression.select_lr`
  on a held-out draw, then :func:`~mirrorlib.experiments.linear_regression.train_batched`);
- ``long``: the same learning rate for ``long_factor`` times as many steps, in float64;
- ``projection``: :func:`~mirrorlib.projection.bregman_projection`.

Every mirror-descent iterate keeps ``grad_phi(w) - grad_phi(w0)`` in the row space of ``X``,
and the projection is the only point there that fits the data; a trained endpoint differs
from it only as far as it has not fitted the data yet.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from mirrorlib.experiments import preset, requirement
from mirrorlib.experiments.linear_regression import (
    LinearRegressionConfig,
    cell_problems,
    delta_cdf_null,
    select_lr,
    train_batched,
)
from mirrorlib.experiments.linear_regression import config as linreg_config
from mirrorlib.potentials import Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.projection import bregman_projection
from mirrorlib.stats import delta_cdf

__all__ = [
    "ENDPOINTS",
    "PRESETS",
    "STORED_CHAPTER",
    "STORE_COMMAND",
    "TheoryVsTrainingConfig",
    "config",
    "endpoint_stats",
    "run",
    "store_paper",
    "summarise",
]

ENDPOINTS = ("fig2", "long", "projection")
"""The endpoints compared: Fig 2's protocol, ten times longer training, the exact projection."""


@dataclass(frozen=True)
class TheoryVsTrainingConfig:
    """Settings: Fig 2's problems (:func:`~mirrorlib.experiments.linear_regression.cell_problems`)
    for ``dims`` with ``N = int(D^alpha)``, input correlations ``corr_powers`` (2: short-range,
    1: long-range) and ``seeds`` seeds; the ``long`` endpoint (``long_factor`` times Fig 2's
    steps, float64) for ``D <= long_max_d``. The learning-rate search and the training are Fig
    2's (:data:`~mirrorlib.experiments.linear_regression.PAPER_LRS`, 100 to 500 steps, loss
    target ``1e-3``, float32)."""

    dims: tuple[int, ...] = (100, 300, 1000)
    alpha: float = 0.75
    corr_powers: tuple[float, ...] = (2.0, 1.0)
    potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    seeds: int = 3
    long_factor: int = 10
    long_max_d: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        need = requirement("theory-vs-training")
        need(all(int(d) >= 10 for d in self.dims), "dims must be >= 10")
        need(0 < self.alpha < 1, "alpha must lie in (0, 1)")
        for name in self.potentials:
            make_potential(name)
        need(self.seeds >= 1, "seeds must be >= 1")
        need(self.long_factor >= 1, "long_factor must be >= 1")

    def fig2_config(self) -> LinearRegressionConfig:
        """The Fig 2 configuration whose problems and training this comparison uses."""
        return linreg_config(
            "paper",
            dims=tuple(int(d) for d in self.dims),
            alphas=(float(self.alpha),),
            corr_powers=tuple(float(p) for p in self.corr_powers),
            potentials=self.potentials,
            n_seeds=self.seeds,
            seed=self.seed,
        )


PRESETS: dict[str, TheoryVsTrainingConfig] = {
    "ci": TheoryVsTrainingConfig(),
    "paper": TheoryVsTrainingConfig(dims=(100, 1000, 5000, 20000), seeds=3),
}
"""``ci``: ``D`` up to 1000, 3 seeds (a minute or two on 2 CPU cores); ``paper``: Fig 2's
largest ``D = 20000`` among four sizes, 3 seeds (tens of minutes on 2 CPU cores)."""


def config(scale: str = "ci", **overrides) -> TheoryVsTrainingConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the theory-vs-training comparison")


def endpoint_stats(
    potential: Potential, X: Tensor, y: Tensor, w0: Tensor, w: Tensor, w_star: Tensor
) -> dict[str, float]:
    """How far the endpoint ``w`` is from the projection ``w_star`` (all in float64):

    ``loss`` (mean squared error), ``bregman`` (``D_phi(w, w0)`` summed), ``dual_distance``
    (``||grad_phi(w) - grad_phi(w*)|| / ||grad_phi(w*) - grad_phi(w0)||``), ``distance``
    (``||w - w*|| / ||w* - w0||``) and ``delta_cdf`` (uncentred, of ``grad_phi(w) -
    grad_phi(w0)``).
    """
    X, y, w0, w, w_star = (t.double() for t in (X, y, w0, w, w_star))
    theta0, theta_star, theta = (potential.to_dual(t) for t in (w0, w_star, w))
    return {
        "loss": float((X @ w - y).square().mean()),
        "bregman": float(potential.bregman(w, w0).sum()),
        "dual_distance": float((theta - theta_star).norm() / (theta_star - theta0).norm()),
        "distance": float((w - w_star).norm() / (w_star - w0).norm()),
        "delta_cdf": delta_cdf(theta - theta0),
    }


def _cell(cfg: TheoryVsTrainingConfig, p: float, D: int) -> list[dict]:
    """Every seed and potential of Fig 2's cell ``(p, D)``: the three endpoints' rows."""
    fig2 = cfg.fig2_config()
    seeds, held = cell_problems(fig2, p, D, cfg.alpha)
    N = seeds.X.shape[1]
    null = delta_cdf_null(D, p)
    rows = []
    for name in cfg.potentials:
        pot = make_potential(name)
        choice = select_lr(held.X, held.y, held.w0, pot, fig2.lrs)
        trained = {
            "fig2": train_batched(seeds.X, seeds.y, seeds.w0, pot, choice.lr, choice.steps)[0]
        }
        if D <= cfg.long_max_d:
            X64, y64, w64 = seeds.X.double(), seeds.y.double(), seeds.w0.double()
            steps = choice.steps * cfg.long_factor
            trained["long"] = train_batched(X64, y64, w64, pot, choice.lr, steps)[0]
        for s in range(cfg.seeds):
            X, y, w0 = seeds.X[s].double(), seeds.y[s].double(), seeds.w0[s].double()
            proj = bregman_projection(X, y, w0, pot)
            if not proj.converged:
                continue
            head = {"corr_power": float(p), "D": D, "N": N, "seed": s, "potential": pot.name}
            head |= {"lr": choice.lr, "steps": choice.steps, "null": null}
            bregman_star = float(pot.bregman(proj.w, w0).sum())
            ends = [(key, w[s]) for key, w in trained.items()] + [("projection", proj.w)]
            for endpoint, w in ends:
                if not bool(torch.isfinite(w).all()):
                    continue
                stats = endpoint_stats(pot, X, y, w0, w, proj.w)
                stats["bregman_ratio"] = stats["bregman"] / bregman_star
                rows.append(head | {"endpoint": endpoint} | stats)
    return rows


def run(cfg: TheoryVsTrainingConfig | None = None) -> pd.DataFrame:
    """One row per correlation power, ``D``, seed, potential and endpoint (:data:`ENDPOINTS`):
    columns ``corr_power, D, N, seed, potential, lr, steps`` (Fig 2's choice), ``null`` (the
    correlated Gaussian reference of :func:`delta_cdf_null`), ``endpoint``, the columns of
    :func:`endpoint_stats` and ``bregman_ratio`` (``D_phi(w, w0) / D_phi(w*, w0)``). Problems
    whose projection does not exist (negative entropy without a sign-feasible fit) are left
    out, and so are diverged endpoints."""
    cfg = cfg or config("ci")
    rows = [
        row
        for p in cfg.corr_powers
        for D in sorted(int(d) for d in cfg.dims)
        for row in _cell(cfg, float(p), D)
    ]
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per potential, ``D`` and endpoint (both correlation powers and all seeds pooled): the
    median of ``delta_cdf / null``, its lowest and highest value, and the medians of ``loss``,
    ``bregman_ratio`` and ``dual_distance``."""
    t = table.assign(ratio=table["delta_cdf"] / table["null"])
    groups = t.groupby(["potential", "D", "endpoint"])
    out = groups.agg(
        ratio=("ratio", "median"),
        ratio_min=("ratio", "min"),
        ratio_max=("ratio", "max"),
        loss=("loss", "median"),
        bregman_ratio=("bregman_ratio", "median"),
        dual_distance=("dual_distance", "median"),
    )
    return out.reset_index()


STORED_CHAPTER = "theory_vs_training"
"""The folder of the stored ``paper`` run in :data:`mirrorlib.stored.STORED_ROOT`."""

STORE_COMMAND = (
    'python -c "from mirrorlib.experiments import theory_vs_training as tv; tv.store_paper()"'
)
"""The command that runs the ``paper`` preset and stores its table (:func:`store_paper`)."""


def store_paper(root: str | os.PathLike | None = None, note: str = "") -> float:
    """Run the ``paper`` preset and store its table ``endpoints`` with its provenance
    (:func:`mirrorlib.stored.write_stored`; ``root`` defaults to ``results/paper/``). Returns
    the wall time in seconds."""
    from mirrorlib.stored import Provenance, write_stored

    start = time.perf_counter()
    table = run(config("paper"))
    wall = time.perf_counter() - start
    record = Provenance.of_this_run(STORE_COMMAND, wall, note=note)
    write_stored(table, STORED_CHAPTER, "endpoints", record, root=root)
    return wall
