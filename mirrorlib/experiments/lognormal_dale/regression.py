"""Part 1 of the chapter "Log-normal weights and Dale's law": does learning keep weights
log-normal? First the statistics of ``log|w|`` both parts use: how far it is from a normal law
(:func:`log_weight_delta_cdf`, with its finite-sample floor) and the histogram and QQ tables the
figures draw (:func:`distribution_tables`). Then the underdetermined linear regression trained by
exponentiated gradient and gradient descent from log-normal and Gaussian starts
(:func:`run_regression`, one row per run) and the medians over seeds the chapter quotes from its
table (:func:`regression_summary`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import special
from torch import Tensor

from mirrorlib.experiments import linear_regression as linreg
from mirrorlib.experiments.lognormal_dale.settings import (
    INITS,
    PRESETS,
    W0_SECOND_MOMENT,
    LognormalDaleConfig,
    _generator,
    _one_thread,
)
from mirrorlib.init import signed_lognormal_
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf, delta_cdf_floor

__all__ = [
    "REGRESSION_COLUMNS",
    "RegressionProblem",
    "RegressionRun",
    "distribution_tables",
    "log_weight_delta_cdf",
    "regression_problem",
    "regression_summary",
    "run_regression",
    "sample_w0",
]


# --------------------------------------------------------------------------------------------
# Statistics of log|w|


def _nonzero_log(w) -> np.ndarray:
    w = w.detach().cpu().numpy() if isinstance(w, Tensor) else np.asarray(w)
    a = np.abs(w.astype(np.float64, copy=False).reshape(-1))
    return np.log10(a[a > 0])


def log_weight_delta_cdf(w) -> tuple[float, int]:
    """How far ``log|w|`` is from a normal law: ``(Delta-CDF, n)``.

    The exact centred Delta-CDF (:func:`mirrorlib.stats.delta_cdf`, ``centered=True``) of
    ``log|w_i|`` over the ``n`` nonzero weights: 0 for a perfect log-normal, and for ``n``
    exact log-normal weights the finite-sample floor ``delta_cdf_floor(n, centered=True)``.
    Centred, since ``log|w|`` has a mean of its own. Weights that are exactly 0 (no logarithm)
    are left out; count them separately. ``(nan, n)`` if fewer than 2 remain.
    """
    logs = _nonzero_log(w)
    if logs.size < 2 or np.ptp(logs) == 0:
        return math.nan, int(logs.size)
    return delta_cdf(logs, centered=True), int(logs.size)


@functools.lru_cache(maxsize=64)
def _simulated_floor(n: int) -> float:
    """Mean centred Delta-CDF of ``n`` standard normal values over ``max(50, min(400,
    4e6 / n))`` draws (a cheaper budget than :func:`delta_cdf_floor` for small ``n``; the
    standard error is a few per cent)."""
    rng = np.random.default_rng(n)
    draws = max(50, min(400, 4_000_000 // n))
    return float(np.mean([delta_cdf(rng.standard_normal(n), centered=True) for _ in range(draws)]))


def _floor(n: int) -> float:
    """The centred finite-sample floor for ``n`` values, from a simulation at a nearby size.

    Simulated once per power of two, then scaled like ``1/sqrt(n)``: within a factor
    ``sqrt(2)`` of ``n`` the slow drift of the constant is negligible.
    """
    if n < 2:
        return math.nan
    ref = max(2, 1 << int(round(math.log2(n))))
    return _simulated_floor(ref) * math.sqrt(ref / n)


def distribution_tables(
    samples: dict[tuple, np.ndarray | Tensor],
    keys: tuple[str, ...],
    bins: int = 40,
    n_quantiles: int = 199,
    edges_by: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Histogram and QQ tables of ``log10|w|`` for every weight set in ``samples``.

    ``samples`` maps a tuple of labels (named by ``keys``) to weights; exact zeros are left out.
    Histogram: one row per set and bin, columns ``*keys, left, right, density`` (density of
    ``log10|w|`` over the set's nonzero weights). The sets share the same edges, from the
    pooled 0.1 % quantile to the pooled maximum, or, with ``edges_by`` (one of ``keys``), the
    sets with the same value of that label do. QQ: one row per set and probability
    ``p_k = (k - 1/2) / K``, columns ``*keys, prob, normal`` (the standard normal quantile)
    and ``sample`` (the quantile of the standardised ``(log|w| - mean) / std``): a log-normal
    set lies on the line ``sample = normal``.
    """
    if edges_by is not None and edges_by not in keys:
        raise InputError(f"edges_by={edges_by!r} is not one of the keys {keys!r}")
    logs = {key: _nonzero_log(w) for key, w in samples.items()}
    for key, values in logs.items():
        if len(key) != len(keys):
            raise InputError(f"sample key {key!r} does not match the names {keys!r}")
        if values.size < 2:
            raise InputError(f"the weight set {key!r} has fewer than 2 nonzero weights")
    position = keys.index(edges_by) if edges_by is not None else None
    groups: dict = {}
    for key, values in logs.items():
        groups.setdefault(None if position is None else key[position], []).append(values)
    edges = {}
    for group, members in groups.items():
        pooled = np.concatenate(members)
        edges[group] = np.linspace(np.quantile(pooled, 0.001), pooled.max(), bins + 1)
    probs = (np.arange(1, n_quantiles + 1) - 0.5) / n_quantiles
    normal = special.ndtri(probs)
    hist_rows, qq_rows = [], []
    for key, values in logs.items():
        labels = dict(zip(keys, key, strict=True))
        e = edges[None if position is None else key[position]]
        counts, _ = np.histogram(values, e)
        density = counts / (values.size * np.diff(e))
        for left, right, d in zip(e[:-1], e[1:], density, strict=True):
            hist_rows.append({**labels, "left": left, "right": right, "density": d})
        z = (values - values.mean()) / values.std(ddof=1)
        for p, q, s in zip(probs, normal, np.quantile(z, probs), strict=True):
            qq_rows.append({**labels, "prob": p, "normal": q, "sample": s})
    return pd.DataFrame(hist_rows), pd.DataFrame(qq_rows)


# --------------------------------------------------------------------------------------------
# Part 1: linear regression from log-normal and Gaussian starts


def sample_w0(init: str, dim: int, generator: torch.Generator) -> Tensor:
    """``dim`` float64 starting weights: ``"lognormal"`` (signed log-normal with
    ``E|w| = std|w| = 0.1``, random signs) or ``"normal"`` (``N(0, 0.02)``); both have
    ``E w^2 = 0.02``."""
    if init not in INITS:
        raise InputError(f"unknown init {init!r}; choose from {INITS}")
    w0 = torch.empty(dim, dtype=torch.float64)
    if init == "lognormal":
        return signed_lognormal_(w0, mean=0.1, std=0.1, generator=generator)
    return w0.normal_(0.0, math.sqrt(W0_SECOND_MOMENT), generator=generator)


class RegressionProblem(NamedTuple):
    """Inputs ``X`` ``(N, D)``, label signs ``y`` ``(N,)`` and one ``w0`` ``(D,)`` per init."""

    X: Tensor
    y: Tensor
    w0: dict[str, Tensor]


def regression_problem(cfg: LognormalDaleConfig, *key: int) -> RegressionProblem:
    """One draw of the Part 1 problem, from the random stream ``key``, for the largest alpha.

    ``X_nd ~ N(0, 1 / (D E[w0^2]))``, so that ``x_n . w0`` has variance close to 1 for both
    inits; labels ``y_n = +-1`` (multiplied by the label scale ``c`` when training); ``w0`` for
    every init in ``cfg.inits``. All float64. A smaller alpha uses the first ``N`` rows.
    """
    n = linreg.n_samples(cfg.dim, max(cfg.alphas))
    gen = _generator(cfg.seed, *key)
    X = torch.randn(n, cfg.dim, generator=gen, dtype=torch.float64)
    X /= math.sqrt(cfg.dim * W0_SECOND_MOMENT)
    y = torch.where(torch.rand(n, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    w0 = {init: sample_w0(init, cfg.dim, gen) for init in INITS}
    return RegressionProblem(X, y.to(torch.float64), {i: w0[i] for i in cfg.inits})


REGRESSION_COLUMNS: dict[str, str] = {
    "alpha": "N = int(D^alpha) training points",
    "init": "law of w0: lognormal or normal (same second moment)",
    "potential": "potential of mirror descent: negative_entropy (EG) or 2-norm (GD)",
    "label_scale": "c: labels are +-c (x . w0 has unit variance); sets how far weights move",
    "seed": "seed index (inputs, labels and w0 shared by every init/potential/c of a seed)",
    "D": "number of weights",
    "N": "number of training points, int(D^alpha)",
    "lr": "learning rate chosen on a held-out draw",
    "steps": "number of steps (chosen with lr)",
    "final_loss": "mean squared error of the final weights",
    "converged": "final_loss < loss_target * c^2",
    "relative_change": "||w_T - w_0|| / ||w_0||",
    "sign_flips": "fraction of weights whose sign differs from w_0's (0 exactly for EG)",
    "zero_fraction": "fraction of weights exactly 0 after training",
    "delta_cdf_log_before": "centred Delta-CDF of log|w_0| (0: exactly log-normal)",
    "delta_cdf_log_after": "centred Delta-CDF of log|w_T| over its nonzero weights",
    "floor": "expected centred Delta-CDF of D exact normal values (finite-sample floor)",
    "std_log_before": "standard deviation of log10|w_0|",
    "std_log_after": "standard deviation of log10|w_T|",
    "corr_log_change": "correlation over synapses of log|w_T| - log|w_0| with log|w_0|",
    "delta_cdf_dual": "centred Delta-CDF of the dual change of the training potential",
}
"""The columns of :func:`run_regression`'s table."""


class RegressionRun(NamedTuple):
    """What :func:`run_regression` returns: the table and the weights of one example."""

    table: pd.DataFrame
    example: dict[tuple[str, str, str], np.ndarray]
    """``(init, stage, potential) -> weights``, stage ``"before"`` (potential ``"-"``) or
    ``"after"``, for the first seed at ``alphas[0]`` and ``example_scale``."""


@_one_thread
def run_regression(cfg: LognormalDaleConfig | None = None) -> RegressionRun:
    """Part 1: train linear regressions by EG and GD from log-normal and Gaussian starts.

    For each alpha, init, potential and label scale ``c``: choose the learning rate (and step
    budget) on a held-out draw, then train every seed (one batched computation,
    :func:`mirrorlib.experiments.linear_regression.train_batched`, heavy-ball ``momentum``,
    cosine schedule) on its own inputs with labels ``c y``. One row per run with the columns
    of :data:`REGRESSION_COLUMNS`.
    """
    cfg = cfg or PRESETS["ci"]
    problems = [regression_problem(cfg, 1, s) for s in range(cfg.n_seeds_regression)]
    held_out = regression_problem(cfg, 2)
    floor = delta_cdf_floor(cfg.dim, centered=True)
    rows, example = [], {}
    for alpha in cfg.alphas:
        n = linreg.n_samples(cfg.dim, alpha)
        X = torch.stack([p.X[:n] for p in problems])
        y = torch.stack([p.y[:n] for p in problems])
        for init in cfg.inits:
            w0 = torch.stack([p.w0[init] for p in problems])
            example[init, "before", "-"] = w0[0].numpy()
            before = [log_weight_delta_cdf(w)[0] for w in w0]
            for name in cfg.potentials:
                pot = potential(name)
                for c in cfg.label_scales:
                    choice = linreg.select_lr(
                        held_out.X[:n],
                        c * held_out.y[:n],
                        held_out.w0[init],
                        pot,
                        lrs=cfg.regression_lrs,
                        min_steps=cfg.min_steps,
                        step_increment=cfg.step_increment,
                        max_steps=cfg.max_steps,
                        loss_target=cfg.loss_target * c**2,
                        momentum=cfg.momentum,
                    )
                    w, loss, lrs = _train_stable(cfg, X, c * y, w0, pot, choice)
                    if alpha == cfg.alphas[0] and c == cfg.example_scale:
                        example[init, "after", pot.name] = w[0].numpy()
                    for s in range(cfg.n_seeds_regression):
                        row = _regression_row(cfg, pot, c, choice, w0[s], w[s], loss[s])
                        row["lr"] = float(lrs[s])
                        rows.append(
                            {"alpha": alpha, "init": init, "seed": s, "N": n, "floor": floor}
                            | row
                            | {"delta_cdf_log_before": before[s]}
                        )
    return RegressionRun(pd.DataFrame(rows)[list(REGRESSION_COLUMNS)], example)


def _train_stable(cfg, X, y, w0, pot, choice) -> tuple[Tensor, Tensor, Tensor]:
    """Train every seed with the chosen learning rate; a seed that diverges (the held-out draw
    does not guarantee stability on every draw) is retrained with the next smaller rate of the
    grid, and so on. Returns the weights, losses and the learning rate each seed used."""
    grid = [lr for lr in cfg.regression_lrs if lr <= choice.lr]
    lrs = torch.full((len(w0),), choice.lr, dtype=w0.dtype)
    w, loss = linreg.train_batched(X, y, w0, pot, lrs, choice.steps, cfg.momentum)
    for lr in reversed(grid[:-1]):
        bad = ~(torch.isfinite(loss) & torch.isfinite(w).all(-1))
        if not bool(bad.any()):
            break
        lrs[bad] = lr
        w[bad], loss[bad] = linreg.train_batched(
            X[bad], y[bad], w0[bad], pot, lr, choice.steps, cfg.momentum
        )
    return w, loss, lrs


def _regression_row(cfg, pot, c, choice, w0: Tensor, w: Tensor, loss: Tensor) -> dict:
    finite = bool(torch.isfinite(w).all())
    row = {
        "potential": pot.name,
        "label_scale": c,
        "D": cfg.dim,
        "lr": choice.lr,
        "steps": choice.steps,
        "final_loss": float(loss),
        "converged": bool(float(loss) < cfg.loss_target * c**2),
        "std_log_before": float(np.std(_nonzero_log(w0), ddof=1)),
    }
    if not finite:
        nan = dict.fromkeys(
            (
                "relative_change",
                "sign_flips",
                "zero_fraction",
                "delta_cdf_log_after",
                "std_log_after",
                "corr_log_change",
                "delta_cdf_dual",
            ),
            math.nan,
        )
        return row | nan
    both = (w != 0) & (w0 != 0)
    log0, log1 = torch.log(w0[both].abs()), torch.log(w[both].abs())
    return row | {
        "relative_change": float((w - w0).norm() / w0.norm()),
        "sign_flips": float((torch.sign(w) != torch.sign(w0)).double().mean()),
        "zero_fraction": float((w == 0).double().mean()),
        "delta_cdf_log_after": log_weight_delta_cdf(w)[0],
        "std_log_after": float(np.std(_nonzero_log(w), ddof=1)),
        "corr_log_change": float(np.corrcoef((log1 - log0).numpy(), log0.numpy())[0, 1]),
        "delta_cdf_dual": delta_cdf((pot.to_dual(w) - pot.to_dual(w0)).numpy(), centered=True),
    }


SUMMARY_COLUMNS = (
    "relative_change",
    "delta_cdf_log_after",
    "corr_log_change",
    "delta_cdf_dual",
    "floor",
)
"""The columns of a :func:`run_regression` table that :func:`regression_summary` takes medians
of (besides the keys ``alpha``, ``init``, ``potential`` and ``label_scale``)."""


def regression_summary(table: pd.DataFrame) -> dict[str, float]:
    """What the chapter quotes from a :func:`run_regression` table, as ``{key: value}``.

    Every value comes from the medians over seeds of one ``(alpha, init, potential,
    label_scale)`` cell. "Small" and "large" are the table's smallest and largest alpha (also
    returned, ``alpha_small`` and ``alpha_large``); "EG" and "GD" are the negative entropy and
    the 2-norm from a log-normal start, "EG-normal" the negative entropy from a Gaussian one;
    "Delta-CDF" is ``delta_cdf_log_after``, and max / min run over the label scales.

    - ``eg_small_max_rel``: EG's largest ``relative_change`` at small alpha;
    - ``eg_small_max_dcdf``, ``eg_large_min_dcdf``, ``eg_large_max_dcdf``: EG's largest
      Delta-CDF at small alpha, its smallest and largest at large alpha;
    - ``eg_small_corr``, ``eg_large_corr``: EG's largest ``|corr_log_change|`` at small and at
      large alpha;
    - ``eg_large_dual``: EG's largest ``delta_cdf_dual`` at large alpha;
    - ``gd_min_dcdf``: GD's smallest Delta-CDF over every alpha; ``gd_min_rel``: GD's smallest
      ``relative_change`` at small alpha;
    - ``egn_first``, ``egn_last``: EG-normal's Delta-CDF at small alpha and the smallest and
      the largest label scale;
    - ``median_floor``: EG's ``floor`` at small alpha and the smallest label scale.

    Raises :class:`~mirrorlib.recovery.InputError` if the table lacks one of the columns or of
    the (init, potential) pairs these need.
    """
    keys = ["alpha", "init", "potential", "label_scale"]
    missing = [c for c in (*keys, *SUMMARY_COLUMNS) if c not in table.columns]
    if missing:
        raise InputError(f"the regression table has no column(s) {missing}")
    pairs = set(zip(table["init"], table["potential"], strict=True))
    for pair in (
        ("lognormal", "negative_entropy"),
        ("lognormal", "2-norm"),
        ("normal", "negative_entropy"),
    ):
        if pair not in pairs:
            raise InputError(
                f"the regression table has no run with init={pair[0]!r} and potential="
                f"{pair[1]!r}; it has {sorted(pairs)}"
            )
    med = table.groupby(keys)[list(SUMMARY_COLUMNS)].median()
    eg = med.xs(("lognormal", "negative_entropy"), level=("init", "potential"))
    gd = med.xs(("lognormal", "2-norm"), level=("init", "potential"))
    eg_normal = med.xs(("normal", "negative_entropy"), level=("init", "potential"))
    small, large = table["alpha"].min(), table["alpha"].max()
    first, last = table["label_scale"].min(), table["label_scale"].max()
    values = {
        "eg_small_max_rel": eg.loc[small, "relative_change"].max(),
        "eg_small_max_dcdf": eg.loc[small, "delta_cdf_log_after"].max(),
        "eg_large_min_dcdf": eg.loc[large, "delta_cdf_log_after"].min(),
        "eg_large_max_dcdf": eg.loc[large, "delta_cdf_log_after"].max(),
        "eg_small_corr": eg.loc[small, "corr_log_change"].abs().max(),
        "eg_large_corr": eg.loc[large, "corr_log_change"].abs().max(),
        "eg_large_dual": eg.loc[large, "delta_cdf_dual"].max(),
        "gd_min_dcdf": gd["delta_cdf_log_after"].min(),
        "gd_min_rel": gd.loc[small, "relative_change"].min(),
        "egn_first": eg_normal.loc[(small, first), "delta_cdf_log_after"],
        "egn_last": eg_normal.loc[(small, last), "delta_cdf_log_after"],
        "median_floor": eg.loc[(small, first), "floor"],
        "alpha_small": small,
        "alpha_large": large,
    }
    return {key: float(value) for key, value in values.items()}
