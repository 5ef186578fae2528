"""Finetuning by mirror descent, the training loop of the deep-network experiments
(:mod:`mirrorlib.experiments.deep_networks`, :mod:`mirrorlib.experiments.three_norm`).

:func:`finetune` trains a network over all its parameters with one potential (cross-entropy,
or any loss such as :class:`SimSiam`'s) on a cosine schedule, extended while the training
accuracy is below 100 %; :func:`augment` makes the random views of the self-supervised loss.
The settings come from a :class:`~mirrorlib.experiments.deep_networks.DeepNetworksConfig`
(``batch_size``, ``momentum``, ``epochs``, ``extra_epochs``, ``max_epochs``, ``stop_at_100``).

A long run can keep a checkpoint (``finetune(..., checkpoint=path)``): everything the next
epoch depends on (weights and buffers, the optimiser's state, the batch order's, the loss's
and torch's random states, the schedule), written atomically after an epoch, at most once
every ``checkpoint_seconds``. Started again with the same arguments, it goes on from there
and ends exactly as the uninterrupted run would. ``after_epoch`` lets a caller look at the
model after each epoch (:mod:`mirrorlib.experiments.deep_networks.batch_norm` does).
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirrorlib.optim import MirrorDescent
from mirrorlib.sweep import write_atomic

if TYPE_CHECKING:
    from mirrorlib.experiments.deep_networks import DeepNetworksConfig

__all__ = [
    "CHECKPOINT_SECONDS", "FinetuneResult", "SimSiam", "TwoViewLoss", "augment", "batches",
    "finetune",
]  # fmt: skip


CHECKPOINT_SECONDS = 60.0
"""How often, at most, :func:`finetune` writes its checkpoint (seconds between two)."""


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A random order of ``range(n)`` split into batches of ``batch_size``."""
    return list(torch.randperm(n, generator=generator).split(batch_size))


@dataclass
class FinetuneResult:
    """What :func:`finetune` did: epochs run, final training accuracy and mean loss;
    ``resumed_at``: the epoch its checkpoint resumed it from (0: it started afresh), after
    ``earlier_seconds`` of training up to that checkpoint."""

    epochs: int
    train_accuracy: float
    final_loss: float
    history: list[float] = field(default_factory=list)
    resumed_at: int = 0
    earlier_seconds: float = 0.0


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 512) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
        for i in range(0, len(y), batch)
    )
    return correct / len(y)


def _prefers_channels_last(model: nn.Module, x: Tensor) -> bool:
    """Images on the CPU into a convolutional network: convolutions run about twice as fast
    channels-last there (measured: MobileNetV2's forward and backward pass at 64 px, 1.1 s vs
    2.2 s per batch of 256 on one core). The arithmetic is the same up to rounding."""
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and any(isinstance(m, nn.Conv2d) for m in model.modules())
    )


def finetune(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    trained_potential: str,
    lr: float,
    cfg: DeepNetworksConfig,
    seed: int,
    epochs: int | None = None,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    after_epoch: Callable[[int, float, nn.Module, Tensor, Tensor], None] | None = None,
) -> FinetuneResult:
    """Train ``model`` (in place, on ``x``'s device) by mirror descent with
    ``trained_potential`` over all its parameters, to 100 % training accuracy.

    Cosine schedule per epoch over ``T = epochs`` (default ``cfg.epochs``), extended by
    ``cfg.extra_epochs`` up to ``cfg.max_epochs`` while the accuracy is below 1 (with
    ``cfg.stop_at_100`` it stops at the first epoch reaching 1). A convolutional network on
    the CPU is switched to channels-last memory (:func:`_prefers_channels_last`).
    ``loss_fn(model, xb, yb)`` replaces the cross-entropy (e.g. a self-supervised loss; the
    accuracy is then NaN and the run lasts ``T`` epochs; a loss with random state keeps it in
    ``state_dict()``, as :class:`TwoViewLoss` does). A loss that turns non-finite stops the
    run (accuracy 0).

    ``checkpoint``: a file to resume from when it holds a checkpoint of this same run (same
    potential, learning rate, seed, schedule and number of examples; any other file there is
    ignored and replaced), and to write one to after an epoch when ``checkpoint_seconds`` have
    passed since the last. The file is left in place; the caller removes it once the result
    is kept.

    ``after_epoch(epoch, loss, model, x, y)``: called after each epoch with its mean loss
    (``x`` as the model sees it), to look at the model without changing it or torch's random
    state.
    """
    supervised = loss_fn is None
    loss_fn = loss_fn or (lambda m, xb, yb: F.cross_entropy(m(xb), yb))
    if _prefers_channels_last(model, x):
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = MirrorDescent(
        model.parameters(), lr=lr, potential=trained_potential, momentum=cfg.momentum
    )
    gen = torch.Generator().manual_seed(seed)
    horizon = epochs or cfg.epochs
    max_epochs = max(cfg.max_epochs, horizon)
    epoch, acc, history = 0, 0.0, []
    run = {"potential": trained_potential, "lr": float(lr), "seed": int(seed),
           "horizon": horizon, "max_epochs": max_epochs, "extra_epochs": cfg.extra_epochs,
           "batch_size": cfg.batch_size, "momentum": cfg.momentum,
           "stop_at_100": bool(cfg.stop_at_100), "n": len(y), "supervised": supervised}  # fmt: skip
    saver = _Checkpoint(Path(checkpoint), run, checkpoint_seconds) if checkpoint else None
    resumed_at, earlier = 0, 0.0
    if saver is not None and (state := saver.load(model)) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and x.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], x.device)
        if state.get("loss") is not None:
            loss_fn.load_state_dict(state["loss"])  # type: ignore[attr-defined]
        epoch, horizon, acc = state["epoch"], state["horizon"], state["acc"]
        history, resumed_at, earlier = state["history"], state["epoch"], state["seconds"]
    started = time.perf_counter()

    def result(epochs_run: int, accuracy: float, loss: float) -> FinetuneResult:
        return FinetuneResult(epochs_run, accuracy, loss, history, resumed_at, earlier)

    while True:
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr * (1 + math.cos(math.pi * epoch / horizon)) / 2
        total, count = 0.0, 0
        for idx in batches(len(y), cfg.batch_size, gen):
            idx = idx.to(x.device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, x[idx], y[idx])
            if not torch.isfinite(loss):
                return result(epoch + 1, 0.0 if supervised else math.nan, math.inf)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        epoch += 1
        history.append(total / count)
        if after_epoch is not None:
            after_epoch(epoch, history[-1], model, x, y)
        if not supervised:
            if epoch >= horizon:
                return result(epoch, math.nan, history[-1])
        elif cfg.stop_at_100 or epoch == horizon:
            acc = _accuracy(model, x, y)
            if acc == 1.0:
                break
            if epoch == horizon:
                if horizon >= max_epochs:
                    break
                horizon = min(horizon + cfg.extra_epochs, max_epochs)
        if saver is not None and saver.due():
            cuda = x.device.type == "cuda"
            saver.save({
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(x.device) if cuda else None,
                "loss": loss_fn.state_dict() if hasattr(loss_fn, "state_dict") else None,
                "epoch": epoch, "horizon": horizon, "acc": acc, "history": list(history),
                "seconds": earlier + time.perf_counter() - started,
            })  # fmt: skip
    return result(epoch, acc, history[-1])


class _Checkpoint:
    """The checkpoint file of one run: ``run`` (what identifies it) is stored with the state,
    and a file of another run, or one that cannot be read, is not resumed from."""

    def __init__(self, path: Path, run: dict, every: float):
        self.path, self.run, self.every = path, run, every
        self.last = time.monotonic()

    def load(self, model: nn.Module) -> dict | None:
        """The saved state, when the file holds one of this run for ``model``'s parameters."""
        if not self.path.is_file():
            return None
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            kept = {k: tuple(v.shape) for k, v in saved["state"]["model"].items()}
            same = saved["run"] == self.run and kept == shapes
        except Exception as err:  # truncated, or not a checkpoint: start afresh
            print(f"{self.path}: not resumed from ({err}); starting afresh", file=sys.stderr)
            return None
        if not same:
            print(f"{self.path}: a checkpoint of another run; starting afresh", file=sys.stderr)
            return None
        print(f"{self.path}: resuming after epoch {saved['state']['epoch']}", file=sys.stderr)
        return saved["state"]

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save({"run": self.run, "state": state}, buffer)
        write_atomic(self.path, buffer.getvalue())
        self.last = time.monotonic()


# --------------------------------------------------------------------------- self-supervised


class SimSiam(nn.Module):
    """SimSiam (Chen & He 2021) around a backbone whose classifier is removed: projector
    ``f -> 256 -> 256`` and predictor ``256 -> 64 -> 256`` (new, randomly initialised); the loss
    of two views is ``-(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2``."""

    def __init__(self, backbone: nn.Module, n_features: int, dim: int = 256):
        super().__init__()
        self.backbone = backbone
        self.projector = nn.Sequential(
            nn.Linear(n_features, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim),
            nn.BatchNorm1d(dim),
        )  # fmt: skip
        self.predictor = nn.Sequential(
            nn.Linear(dim, dim // 4), nn.BatchNorm1d(dim // 4), nn.ReLU(), nn.Linear(dim // 4, dim)
        )

    def loss(self, view1: Tensor, view2: Tensor) -> Tensor:
        z1, z2 = self.projector(self.backbone(view1)), self.projector(self.backbone(view2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        cos = F.cosine_similarity
        return -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean()) / 2


class TwoViewLoss:
    """``loss_fn`` for :func:`finetune` of a two-view model (:class:`SimSiam`):
    ``model.loss(augment(x), augment(x))``, the views drawn from its own generator (seeded with
    ``seed``), whose state :func:`finetune`'s checkpoint keeps (``state_dict``)."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return model.loss(augment(x, self.generator), augment(x, self.generator))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def augment(x: Tensor, generator: torch.Generator, shift: int = 3, noise: float = 0.1) -> Tensor:
    """A random view: each image shifted by up to ``shift`` pixels (zero padding, in units of
    the input's size / 28), plus Gaussian noise of ``noise`` times the input's std."""
    n, _, h, w = x.shape
    s = max(1, round(shift * h / 28))
    padded = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(x.device)
    cols = (dx.view(n, 1) + torch.arange(w)).to(x.device)
    out = padded[torch.arange(n, device=x.device).view(n, 1, 1, 1),
                 torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1),
                 rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]  # fmt: skip
    eps = torch.randn(out.shape, generator=generator).to(x.device)
    return out + noise * float(x.std()) * eps
