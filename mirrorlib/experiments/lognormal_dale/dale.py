"""Log-normal weights and Dale's law: the experiments of the chapter "Log-normal weights and
Dale's law" (``book/lognormal_dale.md``).

Part 1, *does learning keep weights log-normal?* An underdetermined linear regression
(``N = int(D^alpha)`` points, ``D`` weights, i.i.d. Gaussian inputs scaled so that
``x . w0`` has unit variance, labels ``+-c`` at random) is trained to (near) zero loss by mirror
descent with the negative entropy (exponentiated gradient, EG) or the 2-norm (gradient descent,
GD), from signed log-normal or Gaussian starting weights of the same second moment. Mirror
descent moves the dual coordinate by ``X^T a``, close to Gaussian across synapses. For EG the
dual coordinate is ``sign(w) (log|w| + 1)`` and signs never change, so

    log|w_T| = log|w_0| + sign(w_0) (X^T a)_i,

a Gaussian plus a Gaussian: a log-normal start stays log-normal. For GD, ``w_T = w_0 + X^T a``:
a log-normal plus a Gaussian is not log-normal, and a Gaussian start stays Gaussian.
:func:`run_regression` measures, per run, the centred Delta-CDF of ``log|w|`` before and after
(:func:`log_weight_delta_cdf`), the fraction of sign flips and the relative change
``||w_T - w_0|| / ||w_0||``; the label scale ``c`` sets how far the weights move.

Part 2, *Dale's law in a trained network.* A ReLU MLP (:class:`DaleMLP`) whose presynaptic
neurons (input pixels, hidden units) are each excitatory or inhibitory (signed log-normal
initialisation with Dale's law, :func:`dale_init_`), trained on an image dataset with EG,
unconstrained GD and sign-constrained (projected) GD (:func:`make_optimizers`). Learning rates
come from a small search on a validation split (:func:`select_learning_rates`);
:func:`run_dale` then reports per method, seed and epoch the accuracies and, per layer and
population, the sign violations against the initial Dale signs, the fraction of weights that
are exactly zero and the Delta-CDF of ``log|w|``.

:func:`distribution_tables` turns weights into the histogram and QQ tables the figures draw.
All functions are deterministic: the same configuration gives the same tables.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import special
from torch import Tensor, nn

from mirrorlib.data import ImageDataset, load_dataset
from mirrorlib.experiments import cpu_threads, preset, requirement
from mirrorlib.experiments import linear_regression as linreg
from mirrorlib.init import random_signs, signed_lognormal_
from mirrorlib.optim import MirrorDescent, SignConstrainedSGD
from mirrorlib.potentials import potential
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf, delta_cdf_floor

__all__ = [
    "DALE_METHODS",
    "INITS",
    "LognormalDaleConfig",
    "DaleMLP",
    "DaleRun",
    "PRESETS",
    "accuracy",
    "config",
    "dale_init_",
    "DaleData",
    "load_data",
    "distribution_tables",
    "log_weight_delta_cdf",
    "make_optimizers",
    "regression_problem",
    "run_dale",
    "run_regression",
    "sample_w0",
    "select_learning_rates",
    "sign_statistics",
    "train_dale",
]

INITS = ("lognormal", "normal")
"""Laws of the starting weights in Part 1: signed log-normal (``E|w| = std|w| = 0.1``, random
signs) and Gaussian ``N(0, 0.02)``, the same second moment ``E w^2 = 0.02``."""

W0_SECOND_MOMENT = 0.02

DALE_METHODS = ("eg", "gd", "sign_constrained_gd")
"""Part 2's learning rules: EG (negative-entropy mirror descent), unconstrained GD, and GD
projected onto the orthant of the initial signs (:class:`mirrorlib.optim.SignConstrainedSGD`)."""

METHOD_LABELS = {
    "eg": "exponentiated gradient",
    "gd": "gradient descent",
    "sign_constrained_gd": "sign-constrained GD",
}


@dataclass(frozen=True)
class LognormalDaleConfig:
    """Settings of both parts (see :data:`PRESETS`); invalid values raise ``ValueError``.

    Part 1: ``dim`` weights, ``N = int(dim^alpha)`` points for each of ``alphas``, ``inits`` x
    ``potentials`` x ``label_scales`` (labels ``+-c``) x ``n_seeds_regression`` seeds; the
    weights of the first seed at ``alphas[0]`` and ``example_scale`` are kept for the figures.
    The learning rate of each (alpha, init, potential, c) is chosen from ``regression_lrs``
    on a held-out draw
    (:func:`mirrorlib.experiments.linear_regression.select_lr`, ``min_steps`` up to
    ``max_steps`` while the loss is above ``loss_target * c^2``).

    Part 2: ``dataset`` (``fashion-mnist``, ``mnist`` or ``digits``), an MLP with ``hidden``
    units per hidden layer, ``p_excitatory`` of the presynaptic neurons excitatory; each method
    trains ``epochs`` epochs with minibatches of ``batch_size``, heavy-ball ``momentum`` and a
    cosine-annealed learning rate; biases use plain SGD with ``bias_lr``. The weight learning
    rate of each method is searched over ``eg_lrs`` (EG) or ``gd_lrs`` (both GDs), training
    ``search_epochs`` on the training set less ``n_validation`` images and scoring on those.
    ``n_train`` (None: all) caps the training images; ``n_seeds`` seeds per method.

    Both parts run on the CPU with ``threads`` torch threads (None: torch's setting).
    """

    dim: int = 2000
    alphas: tuple[float, ...] = (0.5, 0.75)
    inits: tuple[str, ...] = INITS
    potentials: tuple[str, ...] = ("negative_entropy", "2-norm")
    label_scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    example_scale: float = 4.0
    n_seeds_regression: int = 3
    regression_lrs: tuple[float, ...] = tuple(float(v) for v in np.logspace(-2, 3, 11))
    min_steps: int = 200
    step_increment: int = 200
    max_steps: int = 1000
    loss_target: float = 1e-3
    dataset: str = "fashion-mnist"
    hidden: tuple[int, ...] = (100,)
    p_excitatory: float = 0.8
    methods: tuple[str, ...] = DALE_METHODS
    epochs: int = 6
    batch_size: int = 100
    momentum: float = 0.9
    bias_lr: float = 0.01
    eg_lrs: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
    gd_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    search_epochs: int = 2
    n_validation: int = 10_000
    n_train: int | None = None
    n_eval_train: int = 10_000
    n_seeds: int = 2
    threads: int | None = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self)


def _check(cfg: LognormalDaleConfig) -> None:
    need = requirement("lognormal-dale")

    def positive_int(name: str, minimum: int = 1) -> None:
        value = getattr(cfg, name)
        need(
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and value >= minimum,
            f"{name} must be an integer >= {minimum}, got {value!r}",
        )

    for name in ("dim", "n_seeds_regression", "min_steps", "step_increment", "max_steps"):
        positive_int(name, 100 if name == "dim" else 1)
    for name in ("epochs", "batch_size", "search_epochs", "n_validation", "n_seeds"):
        positive_int(name)
    positive_int("n_eval_train")
    positive_int("seed", 0)
    need(len(cfg.alphas) > 0, "alphas is empty")
    need(all(0 < a < 1 for a in cfg.alphas), f"alphas must lie in (0, 1), got {cfg.alphas!r}")
    need(
        cfg.example_scale in cfg.label_scales,
        f"example_scale {cfg.example_scale} is not one of label_scales {cfg.label_scales}",
    )
    need(cfg.max_steps >= cfg.min_steps, "max_steps must be >= min_steps")
    for init in cfg.inits:
        need(init in INITS, f"unknown init {init!r}; choose from {INITS}")
    for name in cfg.potentials:
        try:
            potential(name)
        except (ValueError, TypeError) as err:
            need(False, str(err))
    for method in cfg.methods:
        need(method in DALE_METHODS, f"unknown method {method!r}; choose from {DALE_METHODS}")
    for name in ("label_scales", "regression_lrs", "eg_lrs", "gd_lrs"):
        values = getattr(cfg, name)
        need(len(values) > 0, f"{name} is empty")
        need(
            all(math.isfinite(v) and v > 0 for v in values),
            f"{name} must be finite and > 0, got {values}",
        )
        need(list(values) == sorted(set(values)), f"{name} must be increasing, got {values}")
    need(all(int(h) == h and h >= 1 for h in cfg.hidden), f"bad hidden sizes {cfg.hidden}")
    need(0 < cfg.p_excitatory <= 1, f"p_excitatory must be in (0, 1], got {cfg.p_excitatory}")
    need(0 <= cfg.momentum < 1, f"momentum must be in [0, 1), got {cfg.momentum}")
    need(cfg.bias_lr >= 0, f"bias_lr must be >= 0, got {cfg.bias_lr}")
    need(cfg.loss_target > 0, f"loss_target must be > 0, got {cfg.loss_target}")
    need(cfg.n_train is None or cfg.n_train > cfg.n_validation, "n_train must exceed n_validation")
    need(
        cfg.threads is None or cfg.threads >= 1, f"threads must be None or >= 1, got {cfg.threads}"
    )


PRESETS: dict[str, LognormalDaleConfig] = {
    "ci": LognormalDaleConfig(),
    "paper": LognormalDaleConfig(
        dim=8000,
        label_scales=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
        n_seeds_regression=10,
        hidden=(500,),
        epochs=30,
        eg_lrs=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        gd_lrs=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        search_epochs=5,
        n_seeds=5,
    ),
}
"""``ci``: Part 1 at ``D = 2000`` (``N = 44`` and 299), 5 label scales, 3 seeds; Part 2 a
784-100-10 MLP on Fashion-MNIST, 6 epochs, 2 seeds, 4 learning rates per method searched for 2
epochs (about two minutes on two CPU cores, measured). ``paper``: ``D = 8000``, 7 label scales,
10 seeds; a 784-500-10 MLP, 30 epochs, 5 seeds, 6 learning rates searched for 5 epochs (30
minutes, measured on one thread of a 2-core CPU while another job used the machine)."""


def config(scale: str = "ci", **overrides) -> LognormalDaleConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "lognormal-dale")


def _one_thread(function):
    """Run ``function(cfg, ...)`` with ``cfg.threads`` torch CPU threads (None: unchanged),
    then restore the count. The models here are small: on two cores a second thread's
    synchronisation costs more than it saves, and on a shared machine it stalls."""

    @functools.wraps(function)
    def wrapped(cfg=None, *args, **kwargs):
        with cpu_threads((cfg or PRESETS["ci"]).threads):
            return function(cfg, *args, **kwargs)

    return wrapped


def _generator(*keys: int) -> torch.Generator:
    """A torch generator for the random stream named by ``keys`` (independent streams)."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


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


# --------------------------------------------------------------------------------------------
# Part 2: a network obeying Dale's law


def dale_init_(
    weight: Tensor,
    p_excitatory: float = 0.8,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill a ``(out, in)`` weight with balanced signed log-normal weights under Dale's law.

    Each presynaptic neuron ``j`` (column) is excitatory (``s_j = +1``) with probability
    ``p_excitatory``, else inhibitory (``s_j = -1``); magnitudes are log-normal with
    ``std = mean`` (:func:`mirrorlib.init.signed_lognormal_`). Inhibitory magnitudes are
    multiplied by ``r = n_E / n_I`` so that every row sums to 0 in expectation (excitation
    balances inhibition for inputs of equal mean), and the common mean ``m`` is chosen so that
    ``E sum_j w_ij^2 = 2 m^2 (n_E + r^2 n_I) = gain^2``. Returns the column signs ``s``
    ``(in,)``, the neurons' identities to keep.
    """
    if weight.dim() != 2:
        raise InputError(f"dale_init_ needs a (out, in) weight, got shape {tuple(weight.shape)}")
    n_in = weight.shape[1]
    signs = random_signs(
        (1, n_in), dale=True, p_excitatory=p_excitatory, generator=generator, dtype=weight.dtype
    )[0]
    n_e = int((signs > 0).sum())
    n_i = n_in - n_e
    ratio = n_e / n_i if n_i and n_e else 1.0
    mean = gain / math.sqrt(2.0 * (n_e + ratio**2 * n_i))
    with torch.no_grad():
        signed_lognormal_(weight, mean=mean, std=mean, signs=signs, generator=generator)
        weight[:, signs < 0] *= ratio
    return signs


class DaleMLP(nn.Module):
    """A ReLU multilayer perceptron whose presynaptic neurons obey Dale's law at initialisation.

    Layers ``n_in -> hidden[0] -> ... -> n_classes``; every weight is set by :func:`dale_init_`
    (gain ``sqrt(2)`` before a ReLU, 1 for the readout), biases start at 0. The column signs of
    layer ``k`` are kept in the buffer ``signs_k``: nothing in the model enforces them, the
    learning rule must.
    """

    def __init__(
        self,
        n_in: int,
        hidden: tuple[int, ...],
        n_classes: int,
        p_excitatory: float = 0.8,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [n_in, *hidden, n_classes]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        for k, layer in enumerate(self.layers):
            gain = math.sqrt(2.0) if k < len(self.layers) - 1 else 1.0
            signs = dale_init_(layer.weight, p_excitatory, gain, generator)
            nn.init.zeros_(layer.bias)
            self.register_buffer(f"signs_{k}", signs)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

    def signs(self, k: int) -> Tensor:
        """The Dale signs ``(in,)`` of layer ``k``'s presynaptic neurons."""
        return getattr(self, f"signs_{k}")

    def weights(self) -> list[Tensor]:
        return [layer.weight for layer in self.layers]

    def biases(self) -> list[Tensor]:
        return [layer.bias for layer in self.layers]


def make_optimizers(
    model: DaleMLP, method: str, lr: float, bias_lr: float, momentum: float
) -> list[torch.optim.Optimizer]:
    """The optimiser(s) of ``method``; biases always take Euclidean (SGD) steps with ``bias_lr``.

    ``"eg"``: :class:`MirrorDescent` with the negative entropy on the weights and the 2-norm on
    the biases (a potential per parameter group). ``"gd"``: :class:`MirrorDescent` with the
    2-norm everywhere (``torch.optim.SGD``). ``"sign_constrained_gd"``:
    :class:`SignConstrainedSGD` on the weights (each step projected onto the orthant of the
    initial signs) and ``torch.optim.SGD`` on the biases, which have no sign to keep.
    """
    if method == "sign_constrained_gd":
        return [
            SignConstrainedSGD(model.weights(), lr=lr, momentum=momentum),
            torch.optim.SGD(model.biases(), lr=bias_lr, momentum=momentum),
        ]
    if method not in ("eg", "gd"):
        raise InputError(f"unknown method {method!r}; choose from {DALE_METHODS}")
    groups = [
        {
            "params": model.weights(),
            "potential": "negative_entropy" if method == "eg" else "2-norm",
        },
        {"params": model.biases(), "potential": "2-norm", "lr": bias_lr},
    ]
    return [MirrorDescent(groups, lr=lr, momentum=momentum, fast=False)]


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 5000) -> float:
    """Fraction of ``images`` whose highest logit is the label."""
    correct = 0
    for i in range(0, len(labels), batch):
        correct += int((model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
    return correct / len(labels)


def sign_statistics(weight: Tensor, signs: Tensor) -> dict[str, dict]:
    """Dale's-law bookkeeping of one ``(out, in)`` weight against its column signs ``signs``.

    One entry per population (``"excitatory"``, ``"inhibitory"``): ``n`` weights,
    ``violations`` (``s_j w_ij < 0``: the synapse now has the wrong sign), ``zeros``
    (``w_ij = 0`` exactly), ``neurons`` and ``neurons_violating`` (presynaptic neurons with at
    least one wrong-signed synapse), and ``logs``: the nonzero weights, for the Delta-CDF.
    """
    w = weight.detach()
    out = {}
    for population, mask in (("excitatory", signs > 0), ("inhibitory", signs < 0)):
        sub = w[:, mask]
        wrong = (sub * signs[mask]) < 0
        out[population] = {
            "n": sub.numel(),
            "violations": int(wrong.sum()),
            "zeros": int((sub == 0).sum()),
            "neurons": int(mask.sum()),
            "neurons_violating": int(wrong.any(0).sum()),
            "weights": sub,
        }
    return out


class DaleData(NamedTuple):
    """Flattened images and labels of the three splits Part 2 uses, and where they came from."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str = ""


def load_data(cfg: LognormalDaleConfig) -> DaleData:
    """Flattened training and test images of ``cfg.dataset`` (``n_train`` training images if
    set, a class-balanced subset)."""
    train, test = load_dataset(cfg.dataset, "train"), load_dataset(cfg.dataset, "test")
    if cfg.n_train is not None:
        train = train.subset(min(cfg.n_train, len(train)), seed=cfg.seed)
    return DaleData(*_flat(train), *_flat(test), train.source)


def _flat(data: ImageDataset) -> tuple[Tensor, Tensor]:
    return data.images.flatten(1).contiguous(), data.labels


def _validation_split(data: DaleData, cfg: LognormalDaleConfig) -> DaleData:
    """Hold ``n_validation`` training images out (a fixed permutation); they play the test set."""
    if cfg.n_validation >= len(data.train_y):
        raise InputError(
            f"n_validation ({cfg.n_validation}) must be below the {len(data.train_y)} "
            "training images"
        )
    order = torch.randperm(len(data.train_y), generator=_generator(cfg.seed, 3))
    val, fit = order[: cfg.n_validation], order[cfg.n_validation :]
    return DaleData(
        data.train_x[fit], data.train_y[fit], data.train_x[val], data.train_y[val], data.source
    )


def train_dale(
    cfg: LognormalDaleConfig,
    method: str,
    lr: float,
    data: DaleData,
    seed: int,
    epochs: int,
    record: bool = True,
) -> tuple[list[dict], list[dict], DaleMLP, list[Tensor]]:
    """Train one :class:`DaleMLP` with ``method`` at weight learning rate ``lr``.

    Minibatches of ``batch_size`` in a fresh random order each epoch, cross-entropy loss,
    learning rates cosine-annealed to 0 over all steps. After every epoch (and at epoch 0,
    before training) it records a row of accuracies (train on the first ``n_eval_train``
    training images, test on the test split) and, with ``record``, one row per layer and
    population of :func:`sign_statistics` and the Delta-CDF of ``log|w|``. Returns
    ``(accuracy rows, weight rows, model, initial weights)``.
    """
    gen = _generator(cfg.seed, 4, seed)
    n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
    model = DaleMLP(data.train_x.shape[1], cfg.hidden, n_classes, cfg.p_excitatory, gen)
    initial = [w.detach().clone() for w in model.weights()]
    optimizers = make_optimizers(model, method, lr, cfg.bias_lr, cfg.momentum)
    n = len(data.train_y)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    schedules = [
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        for opt in optimizers
    ]
    n_eval = min(cfg.n_eval_train, n)
    acc_rows, weight_rows = [], []
    base = {"method": method, "lr": lr, "seed": seed}

    def measure(epoch: int, loss: float) -> None:
        train_acc = accuracy(model, data.train_x[:n_eval], data.train_y[:n_eval])
        test_acc = accuracy(model, data.test_x, data.test_y)
        acc_rows.append(
            base
            | {"epoch": epoch, "train_loss": loss, "train_acc": train_acc, "test_acc": test_acc}
        )
        if not record:
            return
        for k, w in enumerate(model.weights()):
            signs = model.signs(k)
            for population, st in sign_statistics(w, signs).items():
                sub = st.pop("weights")
                sub0 = initial[k][:, signs > 0 if population == "excitatory" else signs < 0]
                d, n_used = log_weight_delta_cdf(sub)
                logs = _nonzero_log(sub)
                kept = (sub * sub0 > 0).reshape(-1)  # nonzero, sign kept
                change = (sub.abs().log() - sub0.abs().log()).reshape(-1)[kept].numpy()
                weight_rows.append(
                    base
                    | {"epoch": epoch, "layer": k + 1, "population": population}
                    | st
                    | {
                        "violation_fraction": st["violations"] / st["n"],
                        "zero_fraction": st["zeros"] / st["n"],
                        "relative_change": float((sub - sub0).norm() / sub0.norm()),
                        "max_abs": float(sub.abs().max()),
                        "std_log": float(np.std(logs, ddof=1)) if logs.size > 1 else math.nan,
                        "delta_cdf_log": d,
                        "floor": _floor(n_used),
                        "delta_cdf_log_change": (
                            delta_cdf(change, centered=True)
                            if change.size > 1 and np.ptp(change) > 0
                            else math.nan
                        ),
                    }
                )

    measure(0, math.nan)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        total, finite = 0.0, True
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            loss.backward()
            for opt, schedule in zip(optimizers, schedules, strict=True):
                opt.step()
                schedule.step()
            value = float(loss.detach())
            total += value * len(idx)
            finite = finite and math.isfinite(value)
        if not finite or not all(torch.isfinite(w).all() for w in model.weights()):
            acc_rows.append(
                base
                | {
                    "epoch": epoch,
                    "train_loss": math.inf,
                    "train_acc": math.nan,
                    "test_acc": math.nan,
                }
            )
            break
        measure(epoch, total / n)
    return acc_rows, weight_rows, model, initial


@_one_thread
def select_learning_rates(
    cfg: LognormalDaleConfig | None = None, data: DaleData | None = None
) -> pd.DataFrame:
    """The learning-rate search of Part 2, on a validation split of the training set.

    Every method trains ``search_epochs`` epochs (seed ``cfg.seed``) with each learning rate of
    its grid (``eg_lrs`` for EG, ``gd_lrs`` for both GDs) on the training images less
    ``n_validation`` held-out ones, and is scored by its accuracy on those. One row per
    ``(method, lr)``: ``val_acc`` (NaN if training diverged) and ``chosen`` (the best; a tie
    goes to the smaller learning rate).
    """
    cfg = cfg or PRESETS["ci"]
    split = _validation_split(data if data is not None else load_data(cfg), cfg)
    rows = []
    for method in cfg.methods:
        grid = cfg.eg_lrs if method == "eg" else cfg.gd_lrs
        for lr in grid:
            acc, _, _, _ = train_dale(cfg, method, lr, split, cfg.seed, cfg.search_epochs, False)
            last = acc[-1]
            rows.append(
                {"method": method, "lr": lr, "val_acc": last["test_acc"], "epochs": last["epoch"]}
            )
    table = pd.DataFrame(rows)
    table["chosen"] = False
    for _, group in table.groupby("method", sort=False):
        scores = group["val_acc"].fillna(-1.0)
        table.loc[scores.idxmax(), "chosen"] = True
    return table


class DaleRun(NamedTuple):
    """What :func:`run_dale` returns."""

    accuracy: pd.DataFrame
    """One row per ``(method, seed, epoch)``: ``lr``, ``train_loss``, ``train_acc``,
    ``test_acc`` (epoch 0: before training)."""
    weights: pd.DataFrame
    """One row per ``(method, seed, epoch, layer, population)``: ``n``, ``violations``,
    ``zeros``, ``neurons``, ``neurons_violating``, ``violation_fraction``, ``zero_fraction``,
    ``relative_change`` (``||W - W_0|| / ||W_0||`` over the population), ``max_abs`` (the
    largest ``|w|``), ``std_log`` (of
    ``log10|w|``), ``delta_cdf_log`` (centred Delta-CDF of ``log|w|`` over nonzero weights)
    and ``floor``
    (its finite-sample value for that many exact log-normal weights), and
    ``delta_cdf_log_change``, the centred Delta-CDF of ``log|w| - log|w_0|`` over the synapses
    that kept their sign (for EG, its dual change: Gaussian in the small-change regime)."""
    example: dict[tuple[str, int, str, str], np.ndarray]
    """``(stage, layer, population, method) -> weights`` of the first seed: stage ``"before"``
    (method ``"-"``, the shared initial weights) or ``"after"``."""


@_one_thread
def run_dale(
    cfg: LognormalDaleConfig | None = None,
    lrs: dict[str, float] | None = None,
    data: DaleData | None = None,
) -> DaleRun:
    """Part 2: train the Dale MLP with every method for ``n_seeds`` seeds.

    ``lrs`` maps each method to its weight learning rate (from :func:`select_learning_rates`;
    by default the search is run here). Training uses the whole training set (or ``n_train``
    images) and reports the test split. Seeds ``seed .. seed + n_seeds - 1`` give every method
    the same initial network and the same minibatch order.
    """
    cfg = cfg or PRESETS["ci"]
    data = data if data is not None else load_data(cfg)
    if lrs is None:
        search = select_learning_rates(cfg, data)
        lrs = dict(search.loc[search["chosen"], ["method", "lr"]].itertuples(index=False))
    missing = [m for m in cfg.methods if m not in lrs]
    if missing:
        raise InputError(f"no learning rate for method(s) {missing}")
    acc_rows, weight_rows, example = [], [], {}
    for method in cfg.methods:
        for s in range(cfg.n_seeds):
            acc, weights, model, initial = train_dale(
                cfg, method, lrs[method], data, cfg.seed + s, cfg.epochs
            )
            acc_rows += acc
            weight_rows += weights
            if s == 0:
                for k, (w0, w) in enumerate(zip(initial, model.weights(), strict=True)):
                    signs = model.signs(k)
                    for population, mask in (("excitatory", signs > 0), ("inhibitory", signs < 0)):
                        example["before", k + 1, population, "-"] = w0[:, mask].numpy()
                        example["after", k + 1, population, method] = (
                            w.detach()[:, mask].numpy().copy()
                        )
    return DaleRun(pd.DataFrame(acc_rows), pd.DataFrame(weight_rows), example)
