"""Part 2 of the chapter "Log-normal weights and Dale's law": Dale's law in a trained
network. A ReLU MLP whose presynaptic neurons are each excitatory or inhibitory at
initialisation (:func:`dale_init_`, :class:`DaleMLP`) is trained on an image dataset with
exponentiated gradient, unconstrained gradient descent and sign-constrained gradient descent
(:func:`make_optimizers`, :func:`train_dale`), at learning rates chosen on a validation split
(:func:`select_learning_rates`); :func:`run_dale` reports, per method, seed and epoch, the
accuracies, the sign violations, the weights at exactly zero and the Delta-CDF of ``log|w|``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mirrorlib.data import ImageDataset, load_dataset
from mirrorlib.experiments.lognormal_dale.regression import (
    _floor,
    _nonzero_log,
    log_weight_delta_cdf,
)
from mirrorlib.experiments.lognormal_dale.settings import (
    DALE_METHODS,
    PRESETS,
    LognormalDaleConfig,
    _generator,
    _one_thread,
)
from mirrorlib.init import random_signs, signed_lognormal_
from mirrorlib.optim import MirrorDescent, SignConstrainedSGD
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf, paired_t_multiplier, paired_verdict

__all__ = [
    "DaleData",
    "DaleMLP",
    "DaleRun",
    "PairedComparison",
    "accuracy",
    "accuracy_verdict",
    "dale_init_",
    "load_data",
    "lognormality_verdict",
    "make_optimizers",
    "paired_by_seed",
    "run_dale",
    "select_learning_rates",
    "sign_statistics",
    "train_dale",
]


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


# --------------------------------------------------------------------------------------------
# Verdicts the chapter quotes: two rules compared at the last epoch, paired by seed

_SHORT_NAMES = {"eg": "EG", "gd": "GD", "sign_constrained_gd": "sign-constrained GD"}


class PairedComparison(NamedTuple):
    """What :func:`paired_by_seed` returns: ``difference``, the mean over ``n_seeds`` seeds of
    ``method - baseline``; ``se``, its standard error (NaN for one seed); ``verdict``,
    :func:`mirrorlib.stats.paired_verdict`'s word for ``method`` against ``baseline`` (``None``
    for one seed)."""

    n_seeds: int
    difference: float
    se: float
    verdict: str | None


def paired_by_seed(
    table: pd.DataFrame, column: str, method: str, baseline: str
) -> PairedComparison:
    """``column`` of ``method`` against ``baseline`` at the table's last epoch, paired by seed.

    ``table`` has one row per ``(method, seed, epoch)`` (a :class:`DaleRun` accuracy table, or
    its weight table cut to one layer and population). The verdict is a paired t interval at
    :data:`mirrorlib.stats.PAIRED_LEVEL`: ``"lower than"``, ``"higher than"`` or ``"not
    distinguishable from"``. Seeds missing for either rule are left out.
    """
    last = table[table["epoch"] == table["epoch"].max()]
    if last.duplicated(["method", "seed"]).any():
        raise InputError("need one row per (method, seed) at the last epoch")
    by_seed = last.pivot(index="seed", columns="method", values=column)
    missing = [m for m in (method, baseline) if m not in by_seed.columns]
    if missing:
        raise InputError(f"no rows for method(s) {missing}")
    pairs = by_seed[[method, baseline]].dropna()
    if pairs.empty:
        raise InputError(f"no seed has both {method!r} and {baseline!r}")
    if len(pairs) == 1:
        only = float(pairs[method].iloc[0] - pairs[baseline].iloc[0])
        return PairedComparison(1, only, math.nan, None)
    difference, se, verdict = paired_verdict(pairs[method], pairs[baseline])
    return PairedComparison(len(pairs), difference, se, verdict)


def _one_seed_words(difference: float, name: str, above: str, below: str, equal: str) -> str:
    """A one-seed difference in words, with no verdict: ``"0.0071 below GD's (one seed, no
    verdict)"``."""
    if difference == 0:
        return f"{equal} {name}'s (one seed, no verdict)"
    side = above if difference > 0 else below
    return f"{abs(difference):.4f} {side} {name}'s (one seed, no verdict)"


def accuracy_verdict(
    accuracy: pd.DataFrame,
    method: str = "eg",
    baselines: tuple[str, ...] = ("gd", "sign_constrained_gd"),
) -> str:
    """``method``'s final test accuracy against each baseline, in words for the chapter:
    ``"lower than GD's (-0.0071 ± 0.0009) and not distinguishable from sign-constrained GD's
    (-0.0025 ± 0.0030)"`` (``method`` minus baseline, mean ± one standard error over seeds,
    the word from :func:`paired_by_seed`); with one seed, ``"0.0071 below GD's (one seed, no
    verdict)"``. ``accuracy`` is a :class:`DaleRun` accuracy table."""
    parts = []
    for baseline in baselines:
        out = paired_by_seed(accuracy, "test_acc", method, baseline)
        name = _SHORT_NAMES.get(baseline, baseline)
        if out.verdict is None:
            parts.append(_one_seed_words(out.difference, name, "above", "below", "equal to"))
        else:
            parts.append(f"{out.verdict} {name}'s ({out.difference:+.4f} ± {out.se:.4f})")
    return " and ".join(parts)


def accuracy_resolution(
    accuracy: pd.DataFrame,
    method: str = "eg",
    baselines: tuple[str, ...] = ("gd", "sign_constrained_gd"),
) -> str:
    """What :func:`accuracy_verdict`'s seeds can resolve, in words: ``"with 5 seeds a
    difference counts only beyond 2.8 standard errors"`` (:func:`mirrorlib.stats.
    paired_t_multiplier`), ending ``", so this run cannot separate EG from GD or from
    sign-constrained GD"`` when no baseline is separated; ``"one seed gives no interval"``."""
    outs = [paired_by_seed(accuracy, "test_acc", method, baseline) for baseline in baselines]
    n_seeds = min(out.n_seeds for out in outs)
    if n_seeds == 1:
        return "one seed gives no interval"
    words = (
        f"with {n_seeds} seeds a difference counts only beyond "
        f"{paired_t_multiplier(n_seeds):.1f} standard errors"
    )
    if all(out.verdict == "not distinguishable from" for out in outs):
        names = " or from ".join(_SHORT_NAMES.get(b, b) for b in baselines)
        words += f", so this run cannot separate {_SHORT_NAMES.get(method, method)} from {names}"
    return words


def lognormality_verdict(
    weights: pd.DataFrame, method: str = "gd", baseline: str = "eg", layer: int = 1
) -> str:
    """Are ``method``'s excitatory weights of ``layer`` closer to log-normal than
    ``baseline``'s at the last epoch? :func:`paired_by_seed` on the centred Delta-CDF of
    ``log|w|`` (lower is more log-normal), in words with ``method`` minus ``baseline``, mean ±
    one standard error: ``"*closer* to log-normal than EG's (-0.0290 ± 0.0050)"``, ``"further
    from log-normal than EG's (...)"``, ``"neither closer to log-normal than EG's nor further
    from it (...)"``, or, with one seed, ``"0.0290 closer to log-normal than EG's (one seed, no
    verdict)"``. ``weights`` is a :class:`DaleRun` weight table."""
    part = weights[(weights["layer"] == layer) & (weights["population"] == "excitatory")]
    out = paired_by_seed(part, "delta_cdf_log", method, baseline)
    name = _SHORT_NAMES.get(baseline, baseline)
    if out.verdict is None:
        return _one_seed_words(
            out.difference,
            name,
            "further from log-normal than",
            "closer to log-normal than",
            "as close to log-normal as",
        )
    numbers = f"({out.difference:+.4f} ± {out.se:.4f})"
    return {
        "lower than": f"*closer* to log-normal than {name}'s {numbers}",
        "higher than": f"further from log-normal than {name}'s {numbers}",
        "not distinguishable from": (
            f"neither closer to log-normal than {name}'s nor further from it {numbers}"
        ),
    }[out.verdict]
