"""(e) A wide network finetuned from pretrained weights, against its linearisation: the last
experiment of the dual-gaussian chapter (:mod:`mirrorlib.experiments.dual_gaussian`)."""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor

from mirrorlib.experiments import cpu_threads
from mirrorlib.experiments.dual_gaussian.settings import (
    _DEEP,
    DualGaussianConfig,
    config,
    density_histogram,
    seeded_generator,
)
from mirrorlib.optim import MirrorDescent
from mirrorlib.potentials import Potential, potential
from mirrorlib.projection import SMALL_WORK, inverse_curvature
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf, delta_cdf_floor


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
        gen = seeded_generator(cfg.seed, _DEEP, width, s)
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
                hist = density_histogram(diff / diff.std(ddof=1))
                hists.append(hist.assign(width=width, potential=pot.name))
