"""Synaptic geometry in two dimensions: the experiments of the chapter "Synaptic geometry and
mirror descent" (``book/geometry.md``).

Every function returns a tidy :class:`pandas.DataFrame` (one row per observation, one column
per variable) and is deterministic: the same arguments (and ``seed``) give the same table.

- :func:`check_mirror_step`: the mirror-descent step of each potential equals the composition
  ``from_dual(to_dual(w) - lr g, sign(w))`` and the proximal step
  ``argmin_v lr g v + D(v, w)``; negative entropy is the multiplicative update
  ``w exp(-lr sign(w) g)`` and flips no sign; no weight's update depends on another synapse.
- :func:`local_rate_check`: ``(step(w, g, lr) - w) / lr -> -g / phi''(w)`` as ``lr -> 0``.
- :func:`bregman_grid`, :func:`bregman_slice`: Bregman divergences from a reference point on a
  2-D grid and along a line across an axis (both orders of the arguments).
- :func:`trajectories`, :func:`projections`,
  :func:`summarise_trajectories`: mirror descent on an underdetermined 2-D least-squares problem
  (:class:`LineProblem`) converges to the Bregman projection of ``w0`` onto the line of
  solutions.
- :func:`mirror_maps`, :func:`hypentropy_limits`: hyperbolic entropy between the 2-norm and
  negative entropy.
- :func:`adam_history_dependence`: Adam's update depends on the gradient history, not only on
  the current weight and gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import optimize

from mirrorlib.experiments import preset
from mirrorlib.potentials import Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.projection import Projection, bregman_projection, bregman_projection_scipy

__all__ = [
    "DIRECTIONS",
    "GeometryConfig",
    "LineProblem",
    "PRESETS",
    "adam_history_dependence",
    "bregman_grid",
    "bregman_slice",
    "check_mirror_step",
    "config",
    "hypentropy_limits",
    "local_rate_check",
    "mirror_maps",
    "projections",
    "run",
    "summarise_trajectories",
    "trajectories",
]

DIRECTIONS = ("D(w,w_ref)", "D(w_ref,w)")
"""Values of the ``direction`` column of :func:`bregman_grid`: which argument is the grid."""


@dataclass(frozen=True)
class LineProblem:
    """Underdetermined least squares in 2-D, ``L(w) = (x . w - y)^2 / 2``, started at ``w0``.

    One equation, two unknowns: the solutions form the line ``x . w = y``. The gradient
    ``x (x . w - y)`` always points along ``x``. The defaults put ``w0`` in the positive
    orthant and the Euclidean projection of ``w0`` onto the line outside it.
    """

    x: tuple[float, float] = (1.0, -1.0)
    y: float = 0.6
    w0: tuple[float, float] = (0.1, 0.3)

    @property
    def X(self) -> np.ndarray:  # noqa: N802 - the paper's symbol
        """The data matrix, shape ``(1, 2)``."""
        return np.asarray([self.x], dtype=np.float64)

    def residual(self, w: np.ndarray) -> np.ndarray:
        """``x . w - y`` for ``w`` of shape ``(..., 2)``."""
        return np.asarray(w, dtype=np.float64) @ np.asarray(self.x) - self.y

    def loss(self, w: np.ndarray) -> np.ndarray:
        """``(x . w - y)^2 / 2``."""
        return 0.5 * self.residual(w) ** 2

    def grad(self, w: np.ndarray) -> np.ndarray:
        """``x (x . w - y)``, the gradient of :meth:`loss`."""
        return np.asarray(self.x) * self.residual(w)[..., None]


@dataclass(frozen=True)
class GeometryConfig:
    """Settings of the chapter's experiments (see :data:`PRESETS`)."""

    potentials: tuple[str, ...] = ("2-norm", "3-norm", "ne")
    w_ref: tuple[float, float] = (0.5, 0.25)
    grid_lim: float = 1.0
    grid_n: int = 101
    problem: LineProblem = field(default_factory=LineProblem)
    frame: tuple[tuple[float, float], tuple[float, float]] = ((-0.15, 0.8), (-0.35, 0.45))
    lr: float = 0.02
    steps: int = 3000
    n_record: int = 400
    betas: tuple[float, ...] = (0.01, 0.1, 1.0)
    map_n: int = 400
    check_potentials: tuple[str, ...] = ("2-norm", "3-norm", "ne", "hypentropy")
    check_n: int = 200
    check_lr: float = 0.5
    rate_lrs: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    seed: int = 0


PRESETS: dict[str, GeometryConfig] = {
    "ci": GeometryConfig(),
    "paper": GeometryConfig(
        grid_n=201, lr=0.005, steps=12000, n_record=1000, map_n=2000, check_n=2000
    ),
}
"""``ci``: runs in seconds; ``paper``: finer grids and smaller steps (smoother figures)."""


def config(scale: str = "ci", **overrides) -> GeometryConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the geometry chapter")


def _names(potentials) -> list[Potential]:
    return [make_potential(p) for p in potentials]


def _proximal_step(pot: Potential, w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """``argmin_v lr g_i v + D(v, w_i)`` for each coordinate, by a bounded scalar search.

    Uses only ``phi`` and ``bregman`` (not the mirror maps). Potentials whose divergence is
    infinite across zero (``needs_sign``) are searched on the weight's own half-line.
    """
    out = np.empty_like(w)
    for i, (wi, gi) in enumerate(zip(w, g, strict=True)):
        if pot.needs_sign:
            a = abs(wi)
            lo, hi = sorted((np.sign(wi) * a * np.exp(-10.0), np.sign(wi) * a * np.exp(10.0)))
        else:
            lo, hi = wi - 10.0, wi + 10.0

        def objective(v, wi=wi, gi=gi):
            return float(lr * gi * v + pot.bregman(np.array([v]), np.array([wi]))[0])

        res = optimize.minimize_scalar(
            objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13, "maxiter": 500}
        )
        out[i] = res.x
    return out


def check_mirror_step(
    potentials=("2-norm", "3-norm", "ne", "hypentropy"),
    n: int = 200,
    lr: float = 0.5,
    seed: int = 0,
    delta: float = 1e-3,
) -> pd.DataFrame:
    """Check each potential's ``step`` against three other descriptions of mirror descent.

    Draws ``n`` signed weights and gradients from N(0, 1) and returns one row per potential:

    - ``max_err_dual``: ``max |step(w, g) - from_dual(to_dual(w) - lr g, sign(w))|``;
    - ``max_err_prox``: the distance to ``argmin_v lr g v + D(v, w)`` found by a scalar search
      (accurate to about 1e-8: a derivative-free search cannot locate a minimum better than
      the square root of the machine precision);
    - ``max_err_multiplicative``: distance to ``w exp(-lr sign(w) g)`` (negative entropy only,
      NaN otherwise);
    - ``sign_flips``: how many of the ``n`` weights changed sign;
    - ``cross_talk``: the largest change of weight ``i``'s update when weight ``j != i`` or its
      gradient is moved by ``delta`` (zero for a separable potential).
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n)
    g = rng.standard_normal(n)
    off = ~np.eye(n, dtype=bool)
    rows = []
    for pot in _names(potentials):
        w1 = pot.step(w, g, lr)
        composed = pot.from_dual(pot.to_dual(w) - lr * g, np.sign(w))
        is_ne = pot.name == "negative_entropy"
        multiplicative = w * np.exp(-lr * np.sign(w) * g) if is_ne else None
        moved_w = pot.step(w[None, :] + delta * np.eye(n), np.tile(g, (n, 1)), lr)
        moved_g = pot.step(np.tile(w, (n, 1)), g[None, :] + delta * np.eye(n), lr)
        cross = max(np.abs(moved_w - w1)[off].max(), np.abs(moved_g - w1)[off].max())
        rows.append(
            {
                "potential": pot.name,
                "n": n,
                "lr": lr,
                "max_err_dual": float(np.abs(w1 - composed).max()),
                "max_err_prox": float(np.abs(w1 - _proximal_step(pot, w, g, lr)).max()),
                "max_err_multiplicative": (
                    float(np.abs(w1 - multiplicative).max()) if is_ne else np.nan
                ),
                "sign_flips": int(np.sum(np.sign(w1) != np.sign(w))),
                "cross_talk": float(cross),
            }
        )
    return pd.DataFrame(rows)


def local_rate_check(
    potentials=("2-norm", "3-norm", "ne", "hypentropy"),
    lrs=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
    n: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """How close a small mirror-descent step is to the continuous-time flow ``-g / phi''(w)``.

    Weights are signed with magnitudes uniform on [0.1, 2], gradients N(0, 1). One row per
    potential and learning rate: ``max_rel_err = max_i |(step - w)_i / lr + g_i / phi''(w_i)|
    / |g_i / phi''(w_i)|``, which shrinks in proportion to ``lr``.
    """
    rng = np.random.default_rng(seed)
    w = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.1, 2.0, size=n)
    g = rng.standard_normal(n)
    rows = []
    for pot in _names(potentials):
        flow = -g / pot.hess_diag(w)
        for lr in lrs:
            velocity = (pot.step(w, g, lr) - w) / lr
            rel = np.abs(velocity - flow) / np.abs(flow)
            rows.append({"potential": pot.name, "lr": lr, "max_rel_err": float(rel.max())})
    return pd.DataFrame(rows)


def bregman_grid(
    potentials=("2-norm", "3-norm", "ne"),
    w_ref=(0.5, 0.25),
    lim: float | tuple[tuple[float, float], tuple[float, float]] = 1.0,
    n: int = 161,
    directions=DIRECTIONS,
) -> pd.DataFrame:
    """Bregman divergence between the points of an ``n x n`` grid and the reference ``w_ref``.

    ``lim`` is a half-width (the grid is ``[-lim, lim]^2``) or ``((w1_min, w1_max), (w2_min,
    w2_max))``. Columns: ``potential, direction, w1, w2, divergence`` where ``direction`` is
    ``"D(w,w_ref)"`` (the grid point first: the penalty of a mirror-descent step from
    ``w_ref``) or ``"D(w_ref,w)"``. The divergence is the sum over both coordinates and is
    ``+inf`` where it is infinite (negative entropy across an axis).
    """
    if np.isscalar(lim):
        lim = ((-lim, lim), (-lim, lim))
    (a1, b1), (a2, b2) = lim
    w1, w2 = np.meshgrid(np.linspace(a1, b1, n), np.linspace(a2, b2, n), indexing="xy")
    grid = np.stack([w1.ravel(), w2.ravel()], axis=1)
    ref = np.tile(np.asarray(w_ref, dtype=np.float64), (len(grid), 1))
    frames = []
    for pot in _names(potentials):
        for direction in directions:
            if direction not in DIRECTIONS:
                raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")
            a, b = (grid, ref) if direction == DIRECTIONS[0] else (ref, grid)
            frames.append(
                pd.DataFrame(
                    {
                        "potential": pot.name,
                        "direction": direction,
                        "w1": grid[:, 0],
                        "w2": grid[:, 1],
                        "divergence": pot.bregman(a, b).sum(axis=1),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def bregman_slice(
    potentials=("2-norm", "3-norm", "ne"),
    w_ref=(0.5, 0.25),
    lo: float = -0.5,
    hi: float = 1.0,
    n: int = 301,
    directions=DIRECTIONS,
) -> pd.DataFrame:
    """Bregman divergence along the vertical line ``w1 = w_ref[0]``, across the axis ``w2 = 0``.

    ``w2`` takes ``n`` evenly spaced values in ``[lo, hi]`` plus ``n // 3`` values on each side
    of zero down to ``1e-9`` (log-spaced), so that a divergence growing like ``-log|w2|``
    near the axis is resolved. Columns as in :func:`bregman_grid`.
    """
    near = np.geomspace(1e-9, min(abs(lo), abs(hi), 0.1), n // 3)
    w2 = np.unique(np.concatenate([np.linspace(lo, hi, n), near, -near, [0.0]]))
    w2 = w2[(w2 >= lo) & (w2 <= hi)]
    points = np.stack([np.full_like(w2, w_ref[0]), w2], axis=1)
    ref = np.tile(np.asarray(w_ref, dtype=np.float64), (len(points), 1))
    frames = []
    for pot in _names(potentials):
        for direction in directions:
            if direction not in DIRECTIONS:
                raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")
            a, b = (points, ref) if direction == DIRECTIONS[0] else (ref, points)
            frames.append(
                pd.DataFrame(
                    {
                        "potential": pot.name,
                        "direction": direction,
                        "w1": points[:, 0],
                        "w2": points[:, 1],
                        "divergence": pot.bregman(a, b).sum(axis=1),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _record_steps(steps: int, n_record: int) -> np.ndarray:
    """Step numbers to keep: 0, then about ``n_record`` log-spaced steps up to ``steps``."""
    kept = np.unique(np.round(np.geomspace(1, steps, n_record)).astype(int))
    return np.concatenate([[0], kept])


def trajectories(
    potentials=("2-norm", "3-norm", "ne"),
    problem: LineProblem | None = None,
    lr: float = 0.02,
    steps: int = 3000,
    n_record: int = 400,
) -> pd.DataFrame:
    """Full-batch mirror descent on ``problem`` from its ``w0``, one run per potential.

    Uses :meth:`Potential.step` in float64. Columns ``potential, step, w1, w2, loss``; the
    steps kept are 0 and about ``n_record`` log-spaced ones up to ``steps`` (the last step
    always included).
    """
    problem = problem or LineProblem()
    keep = set(_record_steps(steps, n_record).tolist())
    rows = []
    for pot in _names(potentials):
        w = np.asarray(problem.w0, dtype=np.float64)
        for t in range(steps + 1):
            if t in keep:
                rows.append(
                    {
                        "potential": pot.name,
                        "step": t,
                        "w1": w[0],
                        "w2": w[1],
                        "loss": float(problem.loss(w)),
                    }
                )
            if t < steps:
                w = pot.step(w, problem.grad(w), lr)
    return pd.DataFrame(rows)


def projections(potentials=("2-norm", "3-norm", "ne"), problem: LineProblem | None = None):
    """Bregman projections of ``problem.w0`` onto its line of solutions, by two methods:
    ``primal`` minimises the divergence directly
    (:func:`mirrorlib.projection.bregman_projection_scipy`), ``dual`` solves the optimality
    condition ``grad_phi(w) = grad_phi(w0) + X^T a`` for ``a``
    (:func:`mirrorlib.projection.bregman_projection`).

    Columns ``potential, method, w1, w2, divergence`` (``D(w*, w0)``) and ``loss``.
    """
    problem = problem or LineProblem()
    X, y, w0 = (torch.tensor(v, dtype=torch.float64) for v in (problem.X, [problem.y], problem.w0))
    solvers = {
        "primal": lambda pot: bregman_projection_scipy(X, y, w0, pot),
        "dual": lambda pot: _converged(bregman_projection(X, y, w0, pot, tol=1e-15)).w.numpy(),
    }
    rows = []
    for pot in _names(potentials):
        for method, solve in solvers.items():
            w = solve(pot)
            rows.append(
                {
                    "potential": pot.name,
                    "method": method,
                    "w1": w[0],
                    "w2": w[1],
                    "divergence": float(pot.bregman(w, np.asarray(problem.w0)).sum()),
                    "loss": float(problem.loss(w)),
                }
            )
    return pd.DataFrame(rows)


def _converged(proj: Projection) -> Projection:
    if not proj.converged:
        raise RuntimeError(f"Bregman projection did not converge: residual {proj.residual:.3g}")
    return proj


def summarise_trajectories(
    trajectories: pd.DataFrame, projections: pd.DataFrame, problem: LineProblem | None = None
) -> pd.DataFrame:
    """Where each run of :func:`trajectories` ended, compared with its Bregman projection.

    One row per potential: ``final_loss``; ``dist_primal`` and ``dist_dual``, the distances from
    the last iterate to the two projections of :func:`projections`; ``row_space_residual``,
    the part of the dual change ``grad_phi(w_T) - grad_phi(w0)`` orthogonal to ``x``, relative
    to its size (0 when the change lies in the row space of ``X``); ``left_orthant``, whether
    any recorded iterate has a coordinate whose sign differs from ``w0``'s; ``min_abs_w``, the
    smallest ``|w_i|`` met along the recorded path.
    """
    problem = problem or LineProblem()
    w0 = np.asarray(problem.w0, dtype=np.float64)
    x_hat = np.asarray(problem.x) / np.linalg.norm(problem.x)
    rows = []
    for name, run in trajectories.groupby("potential", sort=False):
        pot = make_potential(name)
        path = run.sort_values("step")[["w1", "w2"]].to_numpy(dtype=np.float64, copy=True)
        w_t = path[-1]
        change = pot.to_dual(w_t) - pot.to_dual(w0)
        orthogonal = change - (change @ x_hat) * x_hat
        proj = projections[projections["potential"] == name].set_index("method")
        row = {"potential": name, "final_loss": float(problem.loss(w_t))}
        for method in ("primal", "dual"):
            target = proj.loc[method, ["w1", "w2"]].to_numpy(dtype=np.float64)
            row[f"dist_{method}"] = float(np.linalg.norm(w_t - target))
        row["row_space_residual"] = float(np.linalg.norm(orthogonal) / np.linalg.norm(change))
        row["left_orthant"] = bool(np.any(np.sign(path) != np.sign(w0)))
        row["min_abs_w"] = float(np.abs(path).min())
        rows.append(row)
    return pd.DataFrame(rows)


def mirror_maps(
    potentials=("2-norm", "3-norm", "ne"),
    betas=(0.01, 0.1, 1.0),
    n: int = 400,
    w_min: float = 1e-4,
    w_max: float = 10.0,
) -> pd.DataFrame:
    """Mirror map ``grad_phi(w)`` and local rate ``1 / phi''(w)`` on a signed log-spaced grid.

    The grid has ``n`` magnitudes from ``w_min`` to ``w_max`` on each side of zero. Rows for
    each of ``potentials`` (``beta`` NaN) and for hyperbolic entropy at each of ``betas``.
    Columns ``potential, beta, w, dual, rate``.
    """
    mags = np.geomspace(w_min, w_max, n)
    w = np.concatenate([-mags[::-1], mags])
    pots = [(pot, np.nan) for pot in _names(potentials)]
    pots += [(make_potential("hypentropy", beta=b), float(b)) for b in betas]
    frames = [
        pd.DataFrame(
            {
                "potential": pot.name,
                "beta": beta,
                "w": w,
                "dual": pot.to_dual(w),
                "rate": 1.0 / pot.hess_diag(w),
            }
        )
        for pot, beta in pots
    ]
    return pd.concat(frames, ignore_index=True)


def hypentropy_limits(
    betas=(0.01, 0.1, 1.0), lr: float = 1e-3, n: int = 200, seed: int = 0
) -> pd.DataFrame:
    """Hyperbolic entropy's step against its two limits.

    For each ``beta``: weights with ``|w|`` log-uniform in ``[100 beta, 1000 beta]``
    (regime ``"large"``), compared with the negative-entropy step; and ``|w|`` in
    ``[beta/1000, beta/100]`` (regime ``"small"``), compared with a gradient-descent step of
    learning rate ``lr * beta``. Gradients are N(0, 1). ``max_rel_err`` is the largest relative
    difference between the two *updates* ``w' - w``.
    """
    rng = np.random.default_rng(seed)
    ne, gd = make_potential("ne"), make_potential("2-norm")
    rows = []
    for beta in betas:
        hyp = make_potential("hypentropy", beta=beta)
        for regime, (lo, hi) in (("large", (100.0, 1000.0)), ("small", (1e-3, 1e-2))):
            mags = beta * np.exp(rng.uniform(np.log(lo), np.log(hi), n))
            w = rng.choice([-1.0, 1.0], size=n) * mags
            g = rng.standard_normal(n)
            update = hyp.step(w, g, lr) - w
            limit = ne.step(w, g, lr) - w if regime == "large" else gd.step(w, g, lr * beta) - w
            rel = np.abs(update - limit) / np.abs(limit)
            rows.append({"beta": float(beta), "regime": regime, "max_rel_err": float(rel.max())})
    return pd.DataFrame(rows)


def adam_history_dependence(
    scales=(1.0, 0.01),
    w: float = 0.5,
    g: float = 0.1,
    lr: float = 1e-3,
    warmup: int = 100,
    potentials=("2-norm", "3-norm", "ne"),
    seed: int = 0,
) -> pd.DataFrame:
    """The next update of two synapses with the same weight and gradient but different pasts.

    Synapse ``k`` first sees ``warmup`` gradients drawn from N(0, scales[k]^2) under
    :class:`torch.optim.Adam` (eps 1e-8, beta2 0.999; beta1 0.9 as ``"adam"`` and 0, no
    momentum, as ``"adam(beta1=0)"``); then both are set to weight ``w``, given gradient ``g``,
    and the update of that step is recorded. A fixed separable potential has no such memory:
    its update is ``step(w, g, lr) - w`` whatever the past. Columns
    ``optimiser, history_scale, w, g, lr, update``.
    """
    scale = torch.tensor(scales, dtype=torch.float64)
    rows = []
    for label, beta1 in (("adam", 0.9), ("adam(beta1=0)", 0.0)):
        gen = torch.Generator().manual_seed(seed)
        p = torch.nn.Parameter(torch.full_like(scale, w))
        opt = torch.optim.Adam([p], lr=lr, betas=(beta1, 0.999), eps=1e-8)
        for _ in range(warmup):
            p.grad = scale * torch.randn(len(scales), generator=gen, dtype=torch.float64)
            opt.step()
        with torch.no_grad():
            p.fill_(w)
        p.grad = torch.full_like(scale, g)
        opt.step()
        update = (p.detach() - w).tolist()
        rows += [
            {"optimiser": label, "history_scale": float(s), "update": u}
            for s, u in zip(scales, update, strict=True)
        ]
    for pot in _names(potentials):
        update = float(pot.step(np.array([w]), np.array([g]), lr)[0] - w)
        rows += [
            {"optimiser": pot.name, "history_scale": float(s), "update": update} for s in scales
        ]
    table = pd.DataFrame(rows)
    table.insert(2, "w", w)
    table.insert(3, "g", g)
    table.insert(4, "lr", lr)
    return table


def run(cfg: GeometryConfig | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the chapter, keyed by the name it is saved under."""
    cfg = cfg or config("ci")
    traj = trajectories(cfg.potentials, cfg.problem, cfg.lr, cfg.steps, cfg.n_record)
    proj = projections(cfg.potentials, cfg.problem)
    return {
        "geometry_step_check": check_mirror_step(
            cfg.check_potentials, cfg.check_n, cfg.check_lr, cfg.seed
        ),
        "geometry_local_rate": local_rate_check(
            cfg.check_potentials, cfg.rate_lrs, cfg.check_n, cfg.seed
        ),
        "geometry_bregman_grid": bregman_grid(cfg.potentials, cfg.w_ref, cfg.grid_lim, cfg.grid_n),
        "geometry_bregman_slice": bregman_slice(cfg.potentials, cfg.w_ref),
        "geometry_trajectories": traj,
        "geometry_trajectory_balls": bregman_grid(
            cfg.potentials, cfg.problem.w0, cfg.frame, cfg.grid_n, directions=DIRECTIONS[:1]
        ),
        "geometry_projections": proj,
        "geometry_trajectory_summary": summarise_trajectories(traj, proj, cfg.problem),
        "geometry_mirror_maps": mirror_maps(cfg.potentials, cfg.betas, cfg.map_n),
        "geometry_hypentropy_limits": hypentropy_limits(cfg.betas, seed=cfg.seed),
        "geometry_adam": adam_history_dependence(potentials=cfg.potentials, seed=cfg.seed),
    }
