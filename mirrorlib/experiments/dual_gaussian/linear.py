"""The linear model: the theory's objects (row space, mirror descent to interpolation, the
first-order size of the change) and experiments (a) to (d) and (f) of the dual-gaussian
chapter (:mod:`mirrorlib.experiments.dual_gaussian`)."""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mirrorlib.experiments.dual_gaussian.settings import (
    _CLT,
    _LIN,
    _SMALL,
    INPUT_KINDS,
    DualGaussianConfig,
    clt_problem,
    config,
    density_histogram,
    input_variance,
    random_problem,
)
from mirrorlib.experiments.linear_regression import delta_cdf_null, train_batched
from mirrorlib.potentials import NegativeEntropy, Potential, potential_in_words
from mirrorlib.potentials import potential as make_potential
from mirrorlib.projection import (
    bregman_projection,
    bregman_projection_scipy,
    inverse_curvature,
    linearised_solution,
    sign_feasible,
)
from mirrorlib.recovery import InputError
from mirrorlib.results import read_table, write_table
from mirrorlib.stats import PAIRED_LEVEL, delta_cdf, delta_cdf_floor, paired_verdict

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
    potential: str | Potential,
    lrs: tuple[float, ...],
    steps: int,
    momentum: float = 0.9,
) -> MirrorDescentFit:
    """Mirror descent to interpolation: every learning rate of ``lrs`` at once (one batched
    :func:`~mirrorlib.experiments.linear_regression.train_batched` call: heavy-ball momentum,
    cosine schedule, ``steps`` steps, float64); returns the run with the lowest final loss."""
    lr_t = torch.tensor(lrs, dtype=torch.float64)
    w_start = w0.double().reshape(1, -1).expand(len(lrs), -1)
    w, loss = train_batched(X.double(), y.double(), w_start, potential, lr_t, steps, momentum)
    finite = torch.isfinite(loss) & torch.isfinite(w).all(-1)
    if not bool(finite.any()):
        raise RuntimeError(f"every learning rate diverged ({make_potential(potential).name})")
    loss = torch.where(finite, loss, torch.full_like(loss, math.inf))
    best = int(torch.argmin(loss))
    return MirrorDescentFit(w[best], float(loss[best]), float(lrs[best]))


def relative_change_prediction(
    w0: Tensor, potential: str | Potential, N: int, input_var: float
) -> float:
    """First-order prediction of ``||w* - w0|| / ||w0||`` for random labels ``+-1``.

    With ``X H0^-1 X^T ~ s2 (sum_i d_i) I`` (``d = 1 / phi''(w0)``, ``s2`` the input variance;
    ``N << D``), ``a ~ r / (s2 sum d)`` with ``||r||^2 ~ N (1 + s2 ||w0||^2)``, and
    ``w* - w0 ~ d * X^T a``:

        ||w* - w0||^2 / ||w0||^2 ~ N (1 + s2 ||w0||^2) / (s2 D) * mean(d^2) / mean(d)^2 / ||w0||^2.

    For the 2-norm (``d = 1``), ``s2 = 1`` and ``||w0|| = 1`` this is ``sqrt(2 N / D)``.
    """
    pot = make_potential(potential)
    w0 = w0.double()
    d = inverse_curvature(pot, w0)
    norm2 = float(w0.square().sum())
    D = w0.shape[0]
    shape = float(d.square().mean() / d.mean().square())
    return math.sqrt(N * (1 + input_var * norm2) / (input_var * D) * shape / norm2)


# --------------------------------------------------------------------------------------------
# Experiments


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
            X, y, w0 = random_problem(cfg.lin_inputs, N, D, cfg.seed, _SMALL, N, D, s)
            feasible = None
            for name in cfg.potentials:
                pot = make_potential(name)
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
            X, y, w0 = random_problem(cfg.lin_inputs, N, D, cfg.seed, _LIN, N, D, s)
            for name in cfg.potentials:
                pot = make_potential(name)
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
    X, y, w0 = clt_problem(cfg, kind, N, D, seed)
    rows = []
    for name in cfg.potentials:
        pot = make_potential(name)
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


def clt_seed_rows(cfg: DualGaussianConfig, seed: int) -> pd.DataFrame:
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
            futures = {pool.submit(clt_seed_rows, cfg, s): s for s in missing}
            for future in as_completed(futures):
                done(futures[future], future.result())
    else:
        for s in missing:
            done(s, clt_seed_rows(cfg, s))
    table = pd.concat([frames[s] for s in sorted(frames)], ignore_index=True)
    order = {kind: i for i, kind in enumerate(cfg.clt_inputs)}
    table = table.sort_values(
        ["inputs", "D", "alpha", "seed"],
        key=lambda c: c.map(order) if c.name == "inputs" else c,
        kind="stable",
    )
    return table.reset_index(drop=True)


class GaussianDeparture(NamedTuple):
    """The outcome of :func:`gaussian_departure`."""

    ratios: pd.DataFrame
    """Delta-CDF / null, one row per ``(inputs, seed)`` pair, one column per potential."""
    leader: str
    """The potential whose ratio is highest on average over the pairs."""
    words: dict[str, str]
    """:func:`~mirrorlib.stats.paired_verdict`'s word for the leader against each other
    potential ("higher than", "not distinguishable from" or "lower than")."""
    differences: dict[str, tuple[float, float]]
    """The mean and standard error of ``r_leader - r_q`` over the pairs, for each other
    potential ``q``: what the word is read from."""
    most: str | None
    """The leader where it is "higher than" every other potential, else None."""


def gaussian_departure(
    table: pd.DataFrame, alpha: float, level: float = PAIRED_LEVEL
) -> GaussianDeparture:
    """Which potential's dual change departs clearly the most from Gaussian at the largest ``D``
    and ``N = D^alpha`` of a :func:`run_clt` table.

    Each solved problem gives the ratio ``r = delta_cdf / null`` (1: as Gaussian as Gaussian
    values of that size and correlation). Problems are paired by ``(inputs, seed)``, the same
    inputs for every potential; pairs where some potential was not solved are dropped. The
    *leader* has the highest mean ratio; it departs the most (``most``) when, for every other
    potential ``q``, :func:`~mirrorlib.stats.paired_verdict` finds ``r_leader - r_q`` above
    zero at confidence ``level``. No other potential can: one higher than the leader by that
    test would have a higher mean.
    """
    if float(alpha) not in set(table["alpha"].astype(float)):
        raise InputError(f"the table has no alpha = {alpha}; it has {sorted(set(table['alpha']))}")
    big = table[(table["D"] == table["D"].max()) & (table["alpha"].astype(float) == float(alpha))]
    solved = big[big["converged"].astype(bool)]
    ratios = solved.assign(ratio=solved["delta_cdf"] / solved["null"]).pivot_table(
        index=["inputs", "seed"], columns="potential", values="ratio", dropna=False
    )
    ratios = ratios.reindex(columns=sorted(set(big["potential"]))).dropna()
    if ratios.shape[1] < 2 or len(ratios) < 2:
        raise InputError(
            f"need two potentials solved on at least two (inputs, seed) pairs, got "
            f"{ratios.shape[1]} potentials on {len(ratios)} pairs"
        )
    leader = str(ratios.mean().idxmax())
    verdicts = {
        str(other): paired_verdict(ratios[leader], ratios[other], level)
        for other in ratios.columns.drop(leader)
    }
    words = {other: word for other, (_, _, word) in verdicts.items()}
    differences = {other: (mean, se) for other, (mean, se, _) in verdicts.items()}
    most = leader if all(word == "higher than" for word in words.values()) else None
    return GaussianDeparture(ratios, leader, words, differences, most)


def departure_scales(build: GaussianDeparture, stored: GaussianDeparture) -> str:
    """What :func:`gaussian_departure` of this build's run and of the stored paper-scale table
    say together, in words: an unresolved order does not contradict a resolved one (but its
    point estimates may lead with another potential, which is said), and only two different
    resolved leaders disagree."""
    if build.most == stored.most:
        return ("the two scales agree" if build.most else
                "neither scale resolves the order")  # fmt: skip
    if build.most is None:
        if stored.most is not None and build.leader != stored.most:
            first, stored_first = potential_in_words(build.leader), potential_in_words(stored.most)
            return (
                "this build's run leaves the order unresolved, and its point estimates put the "
                f"{first} first, not the {stored_first}; at its smaller D and with fewer seeds it "
                "need not agree, and the stored table speaks for the paper's protocol"
            )
        return ("this build's run leaves the order unresolved, which does not contradict the "
                "stored table; that table speaks for the paper's protocol")  # fmt: skip
    if stored.most is None:
        return ("the stored table, at the paper's protocol, does not resolve the order that "
                "this build's run finds")  # fmt: skip
    return "the two scales disagree"


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
        X, y, w0 = random_problem(inputs, N, D, cfg.seed, _CLT, N, D, 0, 1)
        for name in cfg.potentials:
            pot = make_potential(name)
            proj = bregman_projection(X, y, w0, pot)
            if not proj.converged:
                continue
            diff = (pot.to_dual(proj.w) - pot.to_dual(w0)).numpy()
            head = {"inputs": inputs, "D": D, "N": N, "potential": pot.name}
            head["delta_cdf"] = delta_cdf(diff)
            frames.append(density_histogram(diff / diff.std(ddof=1)).assign(**head))
    cols = ["inputs", "D", "N", "potential", "delta_cdf", "left", "right", "density"]
    return pd.concat(frames, ignore_index=True)[cols]
