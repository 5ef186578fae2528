"""The Bregman projection's solvers (:mod:`mirrorlib.projection`) on the problems of the
central-limit scan where the dual Newton used to stall (found at the paper's
scale; the solvers' agreement with the dense reference on smaller problems is tested in
``test_experiments_dual_gaussian.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mirrorlib import projection as P
from mirrorlib.experiments import dual_gaussian as dg
from mirrorlib.potentials import potential


def clt_problem(kind: str, D: int, alpha: float, seed: int):
    N = int(np.power(float(D), alpha))
    return dg.clt_problem(dg.config("paper"), kind, N, D, seed)


def optimality_gap(pot, X, y, w0, proj) -> tuple[float, float]:
    """``max |X w - y|`` and ``max |grad_phi(w) - grad_phi(w0) - X^T a| / max |grad_phi(w0)|``."""
    theta0 = pot.to_dual(w0)
    stationarity = pot.to_dual(proj.w) - theta0 - X.T @ proj.a
    return float((X @ proj.w - y).abs().max()), float(stationarity.abs().max() / theta0.abs().max())


@pytest.mark.parametrize(
    ("kind", "D", "seed"),
    [
        # a decrease of psi near a residual of 3e-9 is below float64 resolution: the Armijo test
        # alone backtracked to steps of 1e-6 for 70 iterations (94 in all, ending at 1.5e-9);
        # taking the steps that lower the residual there, it ends in about 22
        ("short", 11100, 3),
        # the stored scan of session 6 had no projection here (stalled at 1.7e-7 > accept)
        ("binary", 20000, 0),
    ],
)
def test_3_norm_projection_goes_on_below_the_resolution_of_the_dual_objective(kind, D, seed):
    X, y, w0 = clt_problem(kind, D, 0.75, seed)
    pot = potential("3-norm")
    proj = P.bregman_projection(X, y, w0, pot)
    assert proj.converged and proj.iterations <= 40
    residual, stationarity = optimality_gap(pot, X, y, w0, proj)
    assert residual <= 1e-11 and stationarity <= 1e-11
    assert dg.row_space_residual(X, pot.to_dual(proj.w) - pot.to_dual(w0)) < 1e-10


def test_dual_newton_stops_at_the_rounding_floor():
    # long-range inputs, D = 20000, N = 1681, seed 3, the 2-norm: the residual reaches 5e-11,
    # where a decrease of psi is below float64 resolution; the solve used to go on for 40 idle
    # steps (49 in all); it now takes the steps that lower the residual and stops at the floor
    X, y, w0 = clt_problem("long", 20000, 0.75, 3)
    pot = potential("2-norm")
    proj = P.bregman_projection(X, y, w0, pot)
    assert proj.converged and proj.iterations <= 15
    residual, stationarity = optimality_gap(pot, X, y, w0, proj)
    assert residual <= 1e-10 and stationarity <= 1e-12
    exact = P.linearised_solution(X, y, w0, pot)  # the 2-norm's projection in closed form
    assert float((proj.w - exact).abs().max()) <= 1e-9 * float((exact - w0).abs().max())


def test_projection_on_one_thread_or_two_gives_the_same_point():
    X, y, w0 = clt_problem("short", 1898, 0.75, 0)
    torch.set_num_threads(1)
    one = P.bregman_projection(X, y, w0, "3-norm").w
    torch.set_num_threads(2)
    two = P.bregman_projection(X, y, w0, "3-norm").w
    assert float((one - two).abs().max()) <= 1e-9 * float((one - w0).abs().max())
