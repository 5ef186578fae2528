"""The Bregman projection onto an affine set: where mirror descent on an underdetermined linear
regression ends (Gunasekar et al. 2018).

    w* = argmin_w D_phi(w, w0)   subject to   X w = y,        X: N x D, N < D.

Its optimality conditions are ``grad_phi(w*) = grad_phi(w0) + X^T a`` and ``X w* = y``: ``N``
unknowns ``a`` instead of ``D``. The solvers:

- :func:`bregman_projection`: damped Newton on the dual problem in ``a``, each step solved
  matrix-free by conjugate gradients in float32. The fast path.
- :func:`bregman_projection_dense`: the same dual Newton with the ``N x N`` Hessian formed and
  solved in float64: the reference the fast path is tested against.
- :func:`bregman_projection_scipy`: a generic constrained solver (SLSQP), an independent check
  for small problems.
- :func:`linearised_solution`: the mirror map replaced by its tangent at ``w0`` (small changes).
- :func:`sign_feasible`: whether negative entropy (which keeps every sign) can fit at all.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import optimize
from torch import Tensor

from mirrorlib.potentials import NegativeEntropy, Potential
from mirrorlib.potentials import potential as make_potential
from mirrorlib.threads import cpu_threads

__all__ = [
    "SMALL_WORK",
    "Projection",
    "bregman_projection",
    "bregman_projection_dense",
    "bregman_projection_scipy",
    "inverse_curvature",
    "linearised_solution",
    "sign_feasible",
]


def inverse_curvature(potential: Potential, w: Tensor, cap: float = 1e12) -> Tensor:
    """``dw / dtheta = 1 / phi''(w)``, capped at ``cap`` (the 3-norm's is infinite at 0)."""
    return (1.0 / potential.hess_diag(w)).clamp(max=cap)


def linearised_solution(X: Tensor, y: Tensor, w0: Tensor, potential: str | Potential) -> Tensor:
    """The small-change solution: the mirror map replaced by its tangent at ``w0``.

    With ``grad_phi(w) ~ grad_phi(w0) + H0 (w - w0)``, ``H0 = diag(phi''(w0))``, the Bregman
    projection becomes a weighted least-norm problem with the solution

        w_lin = w0 + H0^-1 X^T (X H0^-1 X^T)^-1 (y - X w0),

    which is also the first full Newton step of :func:`bregman_projection_dense` from ``a = 0``.
    Exact for the 2-norm.
    """
    pot = make_potential(potential)
    X, y, w0 = X.double(), y.double(), w0.double()
    d0 = inverse_curvature(pot, w0)
    gram = (X * d0) @ X.T
    a = torch.linalg.solve(gram, y - X @ w0)
    return w0 + d0 * (X.T @ a)


class Projection(NamedTuple):
    """The outcome of :func:`bregman_projection`."""

    w: Tensor
    a: Tensor
    iterations: int
    residual: float
    converged: bool


def _from_dual(pot: Potential, theta: Tensor, sign: Tensor) -> Tensor:
    return pot.from_dual(theta, sign)


def bregman_projection(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential: str | Potential,
    tol: float = 1e-11,
    max_iter: int = 300,
    accept: float = 1e-7,
    stall: int = 40,
    cg_dtype: torch.dtype = torch.float32,
) -> Projection:
    """``w* = argmin D_phi(w, w0)`` s.t. ``X w = y``: matrix-free Newton-CG on the dual problem.

    The dual problem, its gradient ``X w(a) - y`` and the stopping rules are those of the
    reference :func:`bregman_projection_dense`, which it is tested against. Each Newton
    direction solves ``X diag(h) X^T s = grad`` by conjugate gradients, never forming the
    ``N x N`` matrix: one product costs ``2 N D`` multiply-adds (in ``cg_dtype``), against
    ``N^2 D`` to form it. The solve stops at a relative residual
    ``min(0.5, sqrt(||grad|| / ||y||))``, floored at ``1e-3`` (inexact Newton). The curvature
    ``h_i`` is the secant of the separable map ``w_i(theta_i)`` between the last two iterates
    (the tangent ``1 / phi''(w_i)`` on the first step and where ``theta_i`` barely moved): for
    the 3-norm, whose ``w = sign(theta) |theta|^(1/2)`` makes tangent Newton overshoot every
    ``theta_i`` near 0 to ``-theta_i`` and stall, the secant lands on it. ``a``, ``w(a)``, the
    gradient and the Armijo test stay in float64, so ``X w = y`` is met to ``tol`` as before.
    """
    pot = make_potential(potential)
    X, y, w0 = X.double(), y.double(), w0.double()
    with cpu_threads(1 if X.shape[0] * X.shape[1] < CG_SMALL_WORK else None):
        return _newton(X, y, w0, pot, tol, max_iter, accept, stall, X.to(cg_dtype))


def bregman_projection_dense(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    potential: str | Potential,
    tol: float = 1e-11,
    max_iter: int = 300,
    accept: float = 1e-7,
    stall: int = 40,
) -> Projection:
    """``w* = argmin D_phi(w, w0)`` s.t. ``X w = y``, by damped Newton on the dual problem: the
    reference that :func:`bregman_projection` is checked against.

    The optimality conditions are ``grad_phi(w*) = grad_phi(w0) + X^T a`` and ``X w* = y``.
    With ``w(a) = (grad_phi)^-1(grad_phi(w0) + X^T a)`` (signs of ``w0`` kept for negative
    entropy), ``a`` minimises the convex dual

        psi(a) = sum_i phi*(theta0_i + (X^T a)_i) - a . y,   phi*(t) = t w(t) - phi(w(t)),

    with gradient ``X w(a) - y`` and Hessian ``X diag(1/phi''(w)) X^T``, formed (``N^2 D``
    multiply-adds) and solved exactly in float64. Newton steps with Armijo backtracking from
    ``a = 0`` until ``max |X w - y| <= tol`` (or ``max_iter`` steps, or no decrease is possible
    in floating point, or the residual has not fallen by 10 % in ``stall`` steps, or, once it
    is below ``accept``, has not halved in :data:`FLOOR_STALL` steps). Where the change of
    ``psi`` is below its float64 resolution (:data:`PSI_RESOLUTION`), the Armijo test cannot
    see a decrease: there a step is taken if it lowers the residual (without this rule the
    3-norm and even the 2-norm stalled near ``1e-9``-``1e-11`` on the paper's largest
    problems).
    ``converged``: ``max |X w - y| <= accept``.
    It is False when no interpolating ``w`` exists in the potential's domain (negative entropy:
    none has the signs of ``w0``; ``psi`` is then unbounded below). The 3-norm's ``phi*`` has
    an infinite second derivative at 0, so Newton slows down near the end: ``accept`` is looser
    than ``tol``.
    """
    pot = make_potential(potential)
    X, y, w0 = X.double(), y.double(), w0.double()
    small = X.shape[0] ** 2 * X.shape[1] < SMALL_WORK
    with cpu_threads(1 if small else None):
        return _newton(X, y, w0, pot, tol, max_iter, accept, stall, None)


SMALL_WORK = 1 << 27
"""Below this many multiply-adds per Newton step (``N^2 D``), and for networks narrower than
``sqrt`` of it, the computations run on one CPU thread: for small problems, torch's threads
cost more in synchronisation than they save (and stall on a busy machine)."""

CG_SMALL_WORK = 1 << 26
"""Below this many multiply-adds per product with ``X`` (``N D``), Newton-CG runs on one CPU
thread (see :data:`SMALL_WORK`)."""

CG_MIN_RTOL = 1e-3
"""Floor of the conjugate-gradient solve's relative residual: tighter solves cost more
products than the Newton steps they save, and float32 products stop helping near ``1e-6``."""


def _conjugate_gradient(matvec, b: Tensor, rtol: float, max_iter: int) -> Tensor:
    """``x`` with ``||A x - b|| <= rtol ||b||`` for the positive semi-definite ``A = matvec``,
    from ``x = 0`` (at most ``max_iter`` products; stops early if a direction has no
    curvature)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = float(r @ r)
    stop = rtol**2 * rr
    for _ in range(max_iter):
        Ap = matvec(p)
        curvature = float(p @ Ap)
        if not curvature > 0:
            break
        alpha = rr / curvature
        x.add_(p, alpha=alpha)
        r.sub_(Ap, alpha=alpha)
        rr_new = float(r @ r)
        if rr_new <= stop:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x if bool(x.any()) else b.clone()


def _newton(
    X: Tensor,
    y: Tensor,
    w0: Tensor,
    pot: Potential,
    tol,
    max_iter,
    accept,
    stall,
    X_cg: Tensor | None,
) -> Projection:
    """The Newton iteration of both projections (arguments already checked): dense float64
    solves when ``X_cg`` is None, else Newton-CG with products by ``X_cg`` and secant
    curvature (:func:`bregman_projection`)."""
    sign = torch.sign(w0)
    theta0 = pot.to_dual(w0)
    y_norm = max(float(y.norm()), 1e-300)

    def at(a: Tensor) -> tuple[Tensor, Tensor, float]:
        theta = theta0 + X.T @ a
        w = _from_dual(pot, theta, sign)
        psi = float((theta * w - pot.phi(w)).sum() - a @ y)
        return theta, w, psi

    a = torch.zeros(X.shape[0], dtype=torch.float64)
    theta, w, psi = at(a)
    previous: tuple[Tensor, Tensor] | None = None
    residual = _residual(X, w, y)
    history = [residual]
    for iteration in range(1, max_iter + 1):
        if residual <= tol:
            return Projection(w, a, iteration - 1, residual, True)
        grad = X @ w - y
        curvature = inverse_curvature(pot, w)
        if X_cg is None:
            hess = (X * curvature) @ X.T
            try:
                step = torch.linalg.solve(hess, grad)
            except RuntimeError:
                break
        else:
            if previous is not None:
                d_theta, d_w = theta - previous[0], w - previous[1]
                moved = d_theta.abs() > 1e-6 * theta.abs()
                secant = d_w / torch.where(moved, d_theta, torch.ones_like(d_theta))
                curvature = torch.where(moved, secant.clamp(0.0, 1e12), curvature)
            h = curvature.to(X_cg.dtype)

            def matvec(v: Tensor, h: Tensor = h) -> Tensor:
                return (X_cg @ (h * (X_cg.T @ v.to(X_cg.dtype)))).double()

            rtol = max(min(0.5, math.sqrt(float(grad.norm()) / y_norm)), CG_MIN_RTOL)
            step = _conjugate_gradient(matvec, grad, rtol, 10 * X.shape[0] + 10)
        slope = float(grad @ step)
        resolution = PSI_RESOLUTION * abs(psi)
        t = 1.0
        while t > 1e-12:
            theta_new, w_new, psi_new = at(a - t * step)
            if math.isfinite(psi_new) and psi_new <= psi - 1e-4 * t * slope:
                break
            # Below the resolution of psi in float64 the Armijo test says nothing: there a step
            # is taken if it lowers the residual.
            if abs(psi_new - psi) <= resolution and _residual(X, w_new, y) < residual:
                break
            t *= 0.5
        else:  # no decrease: rounding, or an unbounded dual
            return Projection(w, a, iteration, residual, residual <= accept)
        previous = (theta, w)
        a = a - t * step
        theta, w, psi = theta_new, w_new, psi_new
        residual = _residual(X, w, y)
        history.append(residual)
        if _stalled(history, stall, accept):
            return Projection(w, a, iteration, residual, residual <= accept)
    return Projection(w, a, max_iter, residual, residual <= accept)


PSI_RESOLUTION = 1e-14
"""Relative changes of the dual objective below this are rounding, not decrease."""

FLOOR_STALL = 5
"""Once the residual is below ``accept``, this many steps without halving it end the solve:
the residual has reached the rounding floor of ``X w`` (instead of ``stall`` steps)."""


def _residual(X: Tensor, w: Tensor, y: Tensor) -> float:
    return float((X @ w - y).abs().max())


def _stalled(history: list[float], stall: int, accept: float) -> bool:
    """No 10 % fall of the residual in ``stall`` steps, or, below ``accept``, no halving in
    :data:`FLOOR_STALL` steps."""
    last = history[-1]
    if len(history) > FLOOR_STALL and last <= accept and last > 0.5 * history[-1 - FLOOR_STALL]:
        return True
    return len(history) > stall and last > 0.9 * history[-1 - stall]


def bregman_projection_scipy(
    X: Tensor, y: Tensor, w0: Tensor, potential: str | Potential
) -> np.ndarray:
    """``argmin D_phi(w, w0)`` s.t. ``X w = y`` by a generic solver: SciPy's SLSQP.

    Objective ``sum_i D_phi(w_i, w0_i)`` (:meth:`Potential.bregman`) with its gradient
    ``grad_phi(w) - grad_phi(w0)``, the equality constraint ``X w - y`` with Jacobian ``X``,
    started at ``w0``. For negative entropy, whose domain is the orthant of ``w0``'s signs
    ``s``, the solver works on ``u`` with ``w = s exp(u)`` (chain rule on both gradients) rather
    than with bounds at zero, where the objective's slope is infinite. An independent check of
    :func:`bregman_projection`, for small problems only (``ftol = 1e-14``).
    """
    pot = make_potential(potential)
    Xn, yn = X.double().numpy(), y.double().numpy()
    w0n = w0.double().numpy()
    theta0 = pot.to_dual(w0n)
    if isinstance(pot, NegativeEntropy):
        sign = np.sign(w0n)

        def to_w(u: np.ndarray) -> np.ndarray:
            return sign * np.exp(u)

        def dw(u: np.ndarray) -> np.ndarray:
            return sign * np.exp(u)

        start = np.log(np.abs(w0n))
    else:

        def to_w(u: np.ndarray) -> np.ndarray:
            return u

        def dw(u: np.ndarray) -> np.ndarray:
            return np.ones_like(u)

        start = w0n
    result = optimize.minimize(
        lambda u: float(np.sum(pot.bregman(to_w(u), w0n))),
        start,
        jac=lambda u: (pot.to_dual(to_w(u)) - theta0) * dw(u),
        constraints=[
            {"type": "eq", "fun": lambda u: Xn @ to_w(u) - yn, "jac": lambda u: Xn * dw(u)}
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return to_w(result.x)


def sign_feasible(X: Tensor, y: Tensor, w0: Tensor) -> bool:
    """Whether some ``w`` with the signs of ``w0`` (zero allowed) solves ``X w = y``: a linear
    programme (SciPy's HiGHS), the certificate that negative entropy can or cannot fit."""
    sign = np.sign(w0.double().numpy())
    bounds = [(0, None) if s > 0 else (None, 0) for s in sign]
    result = optimize.linprog(
        np.zeros(len(sign)),
        A_eq=X.double().numpy(),
        b_eq=y.double().numpy(),
        bounds=bounds,
        method="highs",
    )
    return bool(result.status == 0)
