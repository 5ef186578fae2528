"""Why a network with batch norm can take long to reach 100 % training accuracy under the
protocol: the accuracy is measured in eval mode, with the running statistics of its batch
norm, and these follow the batches' statistics slowly when the momentum is small
(EfficientNet-Lite0's TensorFlow checkpoint: :data:`mirrorlib.networks.TF_BATCH_NORM_MOMENTUM`).

:func:`recalibrated` re-estimates the running statistics on the training images without
changing a weight; :func:`running_statistics_lag` finetunes one run of the protocol and, every
few epochs, measures the training accuracy with the running statistics as they are and with
recalibrated ones. Where the second is at 100 % and the first is not, the weights already fit
the examples and the statistics are what the measured accuracy waits for.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import torch
from torch import Tensor, nn

from mirrorlib import networks as nw
from mirrorlib.experiments.deep_networks.runs import (
    _finetune_data,
    _network,
    _prepare_model,
    _pretrained_state,
    n_samples,
)
from mirrorlib.experiments.deep_networks.settings import DeepNetworksConfig
from mirrorlib.experiments.finetuning import _accuracy, finetune
from mirrorlib.recovery import InputError
from mirrorlib.threads import cpu_threads

__all__ = ["LAG_COLUMNS", "recalibrated", "running_statistics_lag"]

LAG_COLUMNS = (
    "architecture", "trained_potential", "seed", "lr", "bn_momentum", "epoch", "train_loss",
    "accuracy_running", "accuracy_recalibrated", "seconds",
)  # fmt: skip


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrated(model: nn.Module, x: Tensor, batch_size: int) -> nn.Module:
    """A copy of ``model`` whose batch-norm running statistics are re-estimated on ``x``: the
    mean over batches of ``batch_size`` (in order) of each batch's mean and unbiased variance,
    as batch norm computes them in training (momentum ``None``: a cumulative average). The
    weights are unchanged; every other module stays in eval mode (no dropout)."""
    twin = copy.deepcopy(model).eval()
    norms = _batch_norms(twin)
    if not norms:
        raise InputError("the model has no batch norm to recalibrate")
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for i in range(0, len(x), batch_size):
        twin(x[i : i + batch_size])
    return twin.eval()


def running_statistics_lag(
    cfg: DeepNetworksConfig,
    architecture: str,
    trained_potential: str,
    lr: float,
    seed: int = 0,
    momenta: Sequence[float | None] = (None,),
    epochs: int | None = None,
    every: int = 1,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    stop_after: int | None = None,
) -> pd.DataFrame:
    """Finetune ``architecture`` with ``trained_potential`` at ``lr`` (seed ``seed``) as one
    run of the protocol does, over the first ``epochs`` epochs of its cosine (default
    ``cfg.epochs``, where the protocol first measures the accuracy), once per batch-norm
    momentum in ``momenta`` (None: the network's own). Every ``every`` epochs, and at the last,
    a row (:data:`LAG_COLUMNS`): the epoch's mean training loss and the training accuracy with
    the running statistics (``accuracy_running``, what the protocol measures) and with
    recalibrated ones (``accuracy_recalibrated``, :func:`recalibrated`); ``seconds`` since the
    run started. ``cache_dir``: where a network pretrained here is stored
    (:func:`~mirrorlib.experiments.deep_networks.pretrained_network`); a network loaded from
    its checkpoint needs none. ``stop_after``: run only the first epochs of that schedule (the
    rows of a longer run, to check them)."""
    setup = cfg.setup(architecture)
    horizon = epochs or cfg.epochs
    run_cfg = replace(cfg, epochs=horizon, max_epochs=horizon, stop_at_100=False)
    if every < 1 or (stop_after is not None and stop_after < 1):
        raise InputError(f"every and stop_after must be at least 1, got {every}, {stop_after}")
    if any(m is not None and not 0 < m <= 1 for m in momenta):
        raise InputError(f"a batch-norm momentum is in (0, 1], got {list(momenta)}")
    if cache_dir is None and not nw.architecture(architecture).pretrained_elsewhere:
        raise InputError(f"{architecture} is pretrained here: give a cache_dir to keep it in")
    x, y = _finetune_data(setup, n_samples(setup), seed)
    x, y = x.to(device), y.to(device)
    rows: list[dict] = []
    with cpu_threads(cfg.threads or None):
        base = _network(setup, _pretrained_state(setup, cfg, cache_dir, device))
        for momentum in momenta:
            torch.manual_seed(seed)
            model, _ = _prepare_model(base, setup, "supervised", y, seed, device)
            norms = _batch_norms(model)
            if not norms:
                raise InputError(f"{architecture} has no batch norm")
            for m in norms:
                m.momentum = m.momentum if momentum is None else momentum
            key = {"architecture": architecture, "trained_potential": trained_potential,
                   "seed": seed, "lr": lr, "bn_momentum": norms[0].momentum}  # fmt: skip
            look = _Look(key, every, horizon, stop_after or horizon, cfg.batch_size)
            try:
                finetune(model, x, y, trained_potential, lr, run_cfg, seed, after_epoch=look)
            except _Stopped:
                pass
            rows += look.rows
    return pd.DataFrame(rows, columns=list(LAG_COLUMNS))


class _Stopped(Exception):
    pass


class _Look:
    """``finetune``'s ``after_epoch`` for :func:`running_statistics_lag`: a row (``key`` and
    the measurements) every ``every`` epochs and at ``last``; stops the run after ``stop``."""

    def __init__(self, key: dict, every: int, last: int, stop: int, batch_size: int):
        self.key, self.every, self.last, self.stop = key, every, last, stop
        self.batch_size, self.rows, self.start = batch_size, [], time.perf_counter()

    def __call__(self, epoch: int, loss: float, model: nn.Module, x: Tensor, y: Tensor) -> None:
        if epoch % self.every == 0 or epoch == self.last:
            self.rows.append({
                **self.key, "epoch": epoch, "train_loss": loss,
                "accuracy_running": _accuracy(model, x, y),
                "accuracy_recalibrated": _accuracy(recalibrated(model, x, self.batch_size), x, y),
                "seconds": time.perf_counter() - self.start,
            })  # fmt: skip
        if epoch >= self.stop:
            raise _Stopped


# --------------------------------------------------------------------------- the stored run

STORED_NAME = "running_statistics_lag"
"""The stored table of :func:`store_paper`, in ``results/paper/deep_networks/``."""

PAPER_LAG = {
    "architecture": "efficientnet_lite0", "trained_potential": "negative_entropy", "seed": 0,
    "momenta": (None, 0.1), "every": 2,
}  # fmt: skip
"""The stored run: EfficientNet-Lite0's first negative-entropy run of the ``paper`` sweep, with
its checkpoint's batch-norm momentum and with PyTorch's default, measured every 2 epochs."""

STORE_COMMAND = (
    'python -c "from mirrorlib.experiments.deep_networks import batch_norm; '
    'batch_norm.store_paper()"'
)


def paper_lag_lr() -> float:
    """The learning rate of the stored run: the one the ``paper`` sweep's search chose for it
    (the ``lr`` of that run in the stored sweep table)."""
    from mirrorlib.stored import read_stored

    sweep, _ = read_stored("deep_networks", "sweep_runs_efficientnet")
    run = sweep[
        (sweep["trained_potential"] == PAPER_LAG["trained_potential"])
        & (sweep["seed"] == PAPER_LAG["seed"])
    ]
    return float(run["lr"].iloc[0])


def store_paper(note: str = "", root: str | os.PathLike | None = None) -> float:
    """Run :data:`PAPER_LAG` at the ``paper`` preset on one thread and store its table
    (:data:`STORED_NAME`) with its provenance; returns the wall time in seconds."""
    from mirrorlib.experiments.deep_networks.settings import config
    from mirrorlib.stored import Provenance, write_stored

    start = time.perf_counter()
    table = running_statistics_lag(config("paper", threads=1), lr=paper_lag_lr(), **PAPER_LAG)
    wall = time.perf_counter() - start
    record = Provenance.of_this_run(STORE_COMMAND, wall, note=note)
    write_stored(table, "deep_networks", STORED_NAME, record, root=root)
    return wall
