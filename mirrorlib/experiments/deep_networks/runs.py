"""One run of the deep-network sweep: the data and the pretrained networks, the learning-rate
search, finetuning by mirror descent with the trained potential, and the scoring of every
candidate potential (:func:`analyse`, :func:`finetune_run`, :func:`run_one`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirrorlib import networks as nw
from mirrorlib import sweep
from mirrorlib.data import load_dataset
from mirrorlib.experiments import cpu_threads
from mirrorlib.experiments.deep_networks.settings import (
    COLUMNS,
    DeepNetworksConfig,
    NetworkSetup,
    RunSpec,
)
from mirrorlib.experiments.finetuning import SimSiam, TwoViewLoss, batches, finetune
from mirrorlib.potentials import potential as make_potential
from mirrorlib.recovery import InputError, scan_geometry
from mirrorlib.stats import delta_cdf

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
    (self-supervised: the lowest final loss). Returns ``{"lr", "grid", "trials", "seconds"}``
    (the search's wall time)."""
    start = time.perf_counter()
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
            "trials": [{k: v for k, v in s.items() if k != "key"} for s in scores],
            "seconds": time.perf_counter() - start}  # fmt: skip


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
    return ssl.to(device), TwoViewLoss(seed + 1)


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
    checkpoint: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Run ``spec``: finetune the pretrained network (weights ``state``; None: its checkpoint)
    at ``lr`` (a value, or :func:`search_lr`'s record) and score the candidates; one row per
    candidate (:data:`COLUMNS`). With ``checkpoint`` (a file), the finetuning keeps its
    progress there and an interrupted run resumes from it (:func:`finetune`); ``seconds`` then
    counts the training of the earlier attempts up to their last checkpoint.

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
        res = finetune(
            model, x, y, spec.trained_potential, lr, cfg, spec.seed, epochs, loss_fn, checkpoint
        )
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
    seconds = time.perf_counter() - start + res.earlier_seconds
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


# --------------------------------------------------------------------------- stored steps


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
