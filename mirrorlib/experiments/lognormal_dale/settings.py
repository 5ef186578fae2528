"""Settings of the chapter "Log-normal weights and Dale's law" (``book/lognormal_dale.md``),
shared by both of its parts: the laws of the starting weights of Part 1 (:data:`INITS`) and the
learning rules of Part 2 (:data:`DALE_METHODS`), the configuration :class:`LognormalDaleConfig`
with its ``ci`` and ``paper`` presets (:data:`PRESETS`, :func:`config`), and the two helpers
every experiment of the chapter uses: :func:`_one_thread`, which runs it with the configured
number of torch threads, and :func:`_generator`, its independent seeded random streams.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from mirrorlib.experiments import cpu_threads, preset, requirement
from mirrorlib.potentials import potential

__all__ = [
    "DALE_METHODS",
    "INITS",
    "METHOD_LABELS",
    "PRESETS",
    "W0_SECOND_MOMENT",
    "LognormalDaleConfig",
    "config",
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
