"""What synapses tell us, and what gradient descent does not: the experiments of the chapter
"Introduction — what synapses tell us" (``book/biology.md``).

Two facts about synapses are compared with the weights of small trained networks:

- *Dale's law*: all outgoing synapses of a neuron share one sign. Measured per presynaptic unit
  by :func:`sign_structure` (does every nonzero outgoing weight have the same sign?).
- *Log-normal strengths*: the logarithm of synaptic strength is roughly Gaussian. Measured by
  the skewness and the Delta-CDF of ``log|w|`` (:func:`weight_statistics`); for Gaussian weights
  ``log|w|`` has a long left tail, with skewness :func:`gaussian_log_abs_skewness` ~ -1.535.

:func:`run` trains a one-hidden-layer ReLU network on a real dataset (scikit-learn's digits by
default) three ways: plain SGD from a standard Gaussian (He) initialisation, plain SGD from a
signed log-normal initialisation that obeys Dale's law, and exponentiated gradient (mirror
descent with the negative entropy) from that same initialisation. It returns a table of
statistics per network and layer, and the weights of one example network for the figures.

:data:`DORKENWALD_2022` holds the published two-component fit of log10 spine-head volumes
(Dorkenwald et al. 2022, eLife 11:e76120) used as the biological reference;
:func:`mixture_statistics` computes its skewness and Delta-CDF exactly, from the fit alone
(these are properties of the fit, not of the measured synapses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import integrate, special

from mirrorlib.data import load_dataset
from mirrorlib.experiments import cpu_threads, preset, requirement
from mirrorlib.init import signed_lognormal_
from mirrorlib.optim import MirrorDescent
from mirrorlib.recovery import InputError
from mirrorlib.stats import delta_cdf, delta_cdf_floor

__all__ = [
    "PRESETS",
    "DORKENWALD_2022",
    "DORKENWALD_2022_N",
    "LAYERS",
    "MODELS",
    "STATS_COLUMNS",
    "SUMMARY_COLUMNS",
    "WEIGHT_COLUMNS",
    "BiologyConfig",
    "BiologyRun",
    "config",
    "gaussian_log_abs_density",
    "gaussian_log_abs_skewness",
    "mixture_density",
    "mixture_statistics",
    "reference_table",
    "run",
    "sign_structure",
    "skewness",
    "summarise",
    "train_network",
    "weight_statistics",
]

MODELS: dict[str, tuple[str, str]] = {
    "gd_gaussian": ("gaussian", "2-norm"),
    "gd_lognormal_dale": ("lognormal_dale", "2-norm"),
    "eg_lognormal_dale": ("lognormal_dale", "negative_entropy"),
}
"""The trained networks: name -> (initialisation, potential of the learning rule).
``"gaussian"``: ``w ~ N(0, 2 / fan_in)`` (He et al. 2015). ``"lognormal_dale"``: signed
log-normal magnitudes with one sign per presynaptic unit (:func:`mirrorlib.init.signed_lognormal_`
with ``dale=True``). ``"2-norm"`` is plain SGD; ``"negative_entropy"`` is exponentiated gradient.
Both networks with the log-normal initialisation start from the same weights."""

_INITS = ("gaussian", "lognormal_dale")

LAYERS = ("hidden", "readout")
"""``"hidden"``: the input-to-hidden weight (presynaptic units: the input pixels);
``"readout"``: the hidden-to-output weight (presynaptic units: the hidden units)."""

DORKENWALD_2022: tuple[dict[str, float | str], ...] = (
    {"component": "S", "weight": 0.77, "mean_log10": -1.42, "sd_log10": 0.24},
    {"component": "L", "weight": 0.23, "mean_log10": -0.77, "sd_log10": 0.22},
)
"""Dorkenwald et al. (2022): log10 spine-head volume (um^3) of L2/3 pyramidal-to-pyramidal
synapses in mouse V1 is fitted by a mixture of two Gaussians, a small (S) and a large (L)
component: mixture weight, mean and standard deviation of each."""

DORKENWALD_2022_N = 1960
"""The number of synapses behind the fit of :data:`DORKENWALD_2022`."""

STATS_COLUMNS = (
    "model",
    "init",
    "rule",
    "hidden_units",
    "seed",
    "stage",
    "layer",
    "train_accuracy",
    "test_accuracy",
    "n_weights",
    "n_zero",
    "n_presynaptic",
    "mean",
    "std",
    "fraction_negative",
    "skew_w",
    "skew_log_abs",
    "delta_cdf_w",
    "floor_w",
    "delta_cdf_log_abs",
    "floor_log_abs",
    "same_sign_fraction",
    "majority_sign_share",
    "sign_flip_fraction",
    "relative_change",
)
"""Columns of :func:`run`'s statistics table (see :func:`weight_statistics`)."""

WEIGHT_COLUMNS = ("model", "layer", "pre", "post", "w")
"""Columns of :func:`run`'s weight table: one row per trained weight of the example network."""


@dataclass(frozen=True)
class BiologyConfig:
    """Settings of the chapter's experiment (see :data:`PRESETS`).

    A ``dataset`` (:func:`mirrorlib.data.load_dataset`) is learnt by a ReLU network with one
    hidden layer of each size in ``hidden_sizes``, for ``n_seeds`` seeds ``seed, seed + 1, ...``,
    by each network of ``models``. Training: ``epochs`` passes of minibatches of
    ``batch_size``, cross-entropy, no momentum or weight decay, learning rate ``lr_gd`` (plain
    SGD) or ``lr_eg`` (exponentiated gradient) on the weights and ``lr_bias`` (SGD) on the biases,
    which start at zero. The log-normal initialisation has ``E|w| = lognormal_mean``,
    ``std|w| = lognormal_std`` and a fraction ``p_excitatory`` of positive presynaptic units.
    The weights of the network ``(seed, hidden_sizes[0])`` are returned for the figures.
    """

    dataset: str = "digits"
    hidden_sizes: tuple[int, ...] = (100,)
    n_seeds: int = 3
    seed: int = 0
    models: tuple[str, ...] = tuple(MODELS)
    epochs: int = 20
    batch_size: int = 32
    lr_gd: float = 0.05
    lr_eg: float = 0.5
    lr_bias: float = 0.05
    lognormal_mean: float = 0.1
    lognormal_std: float = 0.1
    p_excitatory: float = 0.8

    def __post_init__(self):
        _check(self)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.seed + s for s in range(self.n_seeds))


def _check(cfg: BiologyConfig) -> None:
    """Raise :class:`InputError` naming the first bad setting."""

    need = requirement("biology")

    need(len(cfg.hidden_sizes) > 0, "hidden_sizes is empty")
    need(all(int(h) == h and h >= 2 for h in cfg.hidden_sizes), "hidden sizes must be >= 2")
    need(cfg.n_seeds >= 1, f"n_seeds must be >= 1, got {cfg.n_seeds}")
    need(len(cfg.models) > 0, "models is empty")
    for name in cfg.models:
        need(name in MODELS, f"unknown model {name!r}; choose from {tuple(MODELS)}")
    need(cfg.epochs >= 1, f"epochs must be >= 1, got {cfg.epochs}")
    need(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    for name in ("lr_gd", "lr_eg", "lr_bias", "lognormal_mean"):
        value = getattr(cfg, name)
        need(math.isfinite(value) and value > 0, f"{name} must be finite and > 0, got {value}")
    need(cfg.lognormal_std >= 0, f"lognormal_std must be >= 0, got {cfg.lognormal_std}")
    need(0 <= cfg.p_excitatory <= 1, f"p_excitatory must be in [0, 1], got {cfg.p_excitatory}")


PRESETS: dict[str, BiologyConfig] = {
    "ci": BiologyConfig(),
    "paper": BiologyConfig(hidden_sizes=(100, 300, 1000), n_seeds=10, epochs=40),
}
"""``ci``: a 100-unit hidden layer, 3 seeds, 20 epochs on the 1,438 training digits (seconds).
``paper``: hidden layers of 100, 300 and 1000 units, 10 seeds, 40 epochs (minutes on a CPU)."""


def config(scale: str = "ci", **overrides) -> BiologyConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the biology chapter")


# --- statistics -------------------------------------------------------------------------------


def _as_numpy(w, name: str = "w") -> np.ndarray:
    """A float64 copy of ``w`` (numpy array or torch tensor), checked finite and non-empty."""
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    arr = np.asarray(w)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} has non-finite values")
    return arr


def skewness(x) -> float:
    """Sample skewness ``g1 = m3 / m2^(3/2)``, with ``m_k`` the central moments (the biased
    estimator, as ``scipy.stats.skew``). 0 for a symmetric sample; NaN if all values are equal."""
    x = _as_numpy(x, "x").ravel()
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0:
        return float("nan")
    return float(np.mean(d**3) / m2**1.5)


def gaussian_log_abs_skewness() -> float:
    """Skewness of ``log|w|`` for Gaussian ``w ~ N(0, s^2)``, whatever ``s``.

    ``log|w| = log s + (log chi^2_1) / 2`` and the cumulants of ``log chi^2_1`` are
    ``psi^(k-1)(1/2)`` (polygamma functions), so the skewness is
    ``psi''(1/2) / psi'(1/2)^(3/2) = -14 zeta(3) / (pi^2 / 2)^(3/2)`` ~ -1.535.
    A log-normal ``|w|`` has skewness 0 of ``log|w|``.
    """
    return float(special.polygamma(2, 0.5) / special.polygamma(1, 0.5) ** 1.5)


def gaussian_log_abs_density(t) -> np.ndarray:
    """Density at ``t`` of the standardised ``log|w|`` for Gaussian ``w`` (any scale).

    For ``z ~ N(0, 1)``, ``u = log|z|`` has density ``2 phi(e^u) e^u``, mean
    ``(psi(1/2) + log 2) / 2`` and variance ``psi'(1/2) / 4 = pi^2 / 8``; the density of
    ``(u - mean) / sd`` at ``t`` is ``sd`` times that of ``u`` at ``mean + sd t``.
    """
    t = np.asarray(t, dtype=np.float64)
    mean = (special.digamma(0.5) + math.log(2.0)) / 2
    sd = math.sqrt(special.polygamma(1, 0.5) / 4)
    u = mean + sd * t
    return sd * 2 * np.exp(u - 0.5 * np.exp(2 * u)) / math.sqrt(2 * math.pi)


def mixture_density(t, components: pd.DataFrame | None = None) -> np.ndarray:
    """Density at ``t`` of the standardised Gaussian mixture ``(x - mean) / sd`` (by default the
    log10 spine volumes of :data:`DORKENWALD_2022`; ``mean`` and ``sd`` as in
    :func:`mixture_statistics`)."""
    pi, m, s = _check_mixture(reference_table() if components is None else components)
    mu = float(np.sum(pi * m))
    sd = math.sqrt(float(np.sum(pi * (s**2 + (m - mu) ** 2))))
    x = mu + sd * np.asarray(t, dtype=np.float64)[..., None]
    dens = np.sum(pi * np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)), axis=-1)
    return sd * dens


def sign_structure(w) -> pd.DataFrame:
    """The signs of each presynaptic unit's outgoing weights.

    ``w`` has shape ``(out, in, ...)`` (torch's layout): the outgoing weights of presynaptic unit
    ``j`` are ``w[:, j, ...]``. One row per unit ``j`` (column ``pre``) with ``n_out`` (its
    weights), ``n_positive``, ``n_negative`` (exact zeros count in neither),
    ``fraction_positive = n_positive / (n_positive + n_negative)`` (NaN if all are zero) and
    ``same_sign``: true when no two nonzero outgoing weights differ in sign, i.e. the unit obeys
    Dale's law (vacuously for a unit whose weights are all zero).
    """
    arr = _as_numpy(w)
    if arr.ndim < 2:
        raise InputError(
            f"sign_structure needs a weight of shape (out, in, ...), got shape {arr.shape}"
        )
    per_unit = np.moveaxis(arr, 1, 0).reshape(arr.shape[1], -1)
    n_pos = (per_unit > 0).sum(axis=1)
    n_neg = (per_unit < 0).sum(axis=1)
    nonzero = n_pos + n_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(nonzero > 0, n_pos / np.maximum(nonzero, 1), np.nan)
    return pd.DataFrame(
        {
            "pre": np.arange(arr.shape[1]),
            "n_out": per_unit.shape[1],
            "n_positive": n_pos,
            "n_negative": n_neg,
            "fraction_positive": fraction,
            "same_sign": (n_pos == 0) | (n_neg == 0),
        }
    )


def weight_statistics(w, w0=None) -> dict[str, float]:
    """Summary statistics of one weight tensor ``w`` of shape ``(out, in, ...)``.

    - ``n_weights``, ``n_zero``, ``n_presynaptic`` (``w.shape[1]``), ``mean``, ``std``,
      ``fraction_negative``;
    - ``skew_w`` = :func:`skewness` of ``w``, ``skew_log_abs`` = skewness of ``log|w|`` over the
      nonzero weights (about -1.535 for Gaussian weights, 0 for log-normal magnitudes);
    - ``delta_cdf_w``: the paper's uncentred Delta-CDF of ``w`` against N(0, 1)
      (:func:`mirrorlib.stats.delta_cdf`); ``delta_cdf_log_abs``: the centred Delta-CDF of
      ``log|w|`` (for a log-normal ``|w|`` it sits at the finite-sample floor, which
      :func:`run` adds to its table);
    - ``same_sign_fraction``: the fraction of presynaptic units whose outgoing weights all share
      a sign (:func:`sign_structure`; 1 under Dale's law), ``majority_sign_share``: the mean over
      units of the share of their nonzero outgoing weights that have the unit's majority sign;
    - with ``w0`` (the same shape, before learning): ``sign_flip_fraction``, the fraction of
      weights whose sign differs from ``w0``'s, and ``relative_change = ||w - w0|| / ||w0||``
      (both NaN without ``w0``).
    """
    arr = _as_numpy(w)
    signs = sign_structure(arr)
    flat = arr.ravel()
    if flat.size < 2 or not np.std(flat) > 0:
        raise InputError("weight_statistics needs at least 2 weights that are not all equal")
    nonzero = flat[flat != 0]
    log_abs = np.log(np.abs(nonzero))
    log_ok = log_abs.size >= 2 and np.std(log_abs) > 0
    nz = signs["n_positive"] + signs["n_negative"]
    majority = np.maximum(signs["n_positive"], signs["n_negative"]) / nz.where(nz > 0)
    stats = {
        "n_weights": int(flat.size),
        "n_zero": int(flat.size - nonzero.size),
        "n_presynaptic": int(arr.shape[1]),
        "mean": float(flat.mean()),
        "std": float(flat.std(ddof=1)),
        "fraction_negative": float(np.mean(flat < 0)),
        "skew_w": skewness(flat),
        "skew_log_abs": skewness(log_abs) if log_ok else float("nan"),
        "delta_cdf_w": delta_cdf(flat),
        "delta_cdf_log_abs": delta_cdf(log_abs, centered=True) if log_ok else float("nan"),
        "same_sign_fraction": float(signs["same_sign"].mean()),
        "majority_sign_share": float(majority.mean()),
        "sign_flip_fraction": float("nan"),
        "relative_change": float("nan"),
    }
    if w0 is not None:
        before = _as_numpy(w0, "w0")
        if before.shape != arr.shape:
            raise InputError(f"w0 has shape {before.shape} but w has shape {arr.shape}")
        stats["sign_flip_fraction"] = float(np.mean(np.sign(before) != np.sign(arr)))
        norm0 = float(np.linalg.norm(before))
        change = float(np.linalg.norm(arr - before))
        stats["relative_change"] = change / norm0 if norm0 > 0 else float("nan")
    return stats


def reference_table() -> pd.DataFrame:
    """:data:`DORKENWALD_2022` as a table: ``component``, ``weight``, ``mean_log10``,
    ``sd_log10``."""
    return pd.DataFrame(list(DORKENWALD_2022))


def _check_mixture(components: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    needed = {"weight", "mean_log10", "sd_log10"}
    if not needed <= set(components.columns):
        raise InputError(f"a mixture table needs the columns {sorted(needed)}")
    pi = components["weight"].to_numpy(float)
    m = components["mean_log10"].to_numpy(float)
    s = components["sd_log10"].to_numpy(float)
    if len(pi) == 0 or np.any(pi < 0) or not math.isclose(pi.sum(), 1.0, abs_tol=1e-9):
        raise InputError(f"mixture weights must be >= 0 and sum to 1, got {pi.tolist()}")
    if np.any(s <= 0) or not np.all(np.isfinite(np.r_[m, s])):
        raise InputError("mixture means must be finite and standard deviations > 0")
    return pi, m, s


def mixture_statistics(components: pd.DataFrame | None = None) -> dict[str, float]:
    """Exact statistics of a Gaussian mixture ``x ~ sum_k pi_k N(m_k, s_k^2)`` (by default the
    log10 spine volumes of :data:`DORKENWALD_2022`).

    With ``mu = sum pi_k m_k`` and ``d_k = m_k - mu``: variance ``sum pi_k (s_k^2 + d_k^2)``,
    third central moment ``sum pi_k (d_k^3 + 3 d_k s_k^2)``, hence ``skew``; ``delta_cdf`` is the
    population (infinite-sample) centred Delta-CDF, ``integral |F((t - mu) / sd) - Phi(t)| dt``
    with ``F`` the mixture's CDF, by adaptive quadrature. A single Gaussian gives 0 for both.
    Also returns the mixture's ``mean`` and ``sd``.
    """
    pi, m, s = _check_mixture(reference_table() if components is None else components)
    mu = float(np.sum(pi * m))
    d = m - mu
    var = float(np.sum(pi * (s**2 + d**2)))
    third = float(np.sum(pi * (d**3 + 3 * d * s**2)))
    sd = math.sqrt(var)

    def gap(t: float) -> float:
        x = mu + sd * t
        return abs(float(np.sum(pi * special.ndtr((x - m) / s))) - float(special.ndtr(t)))

    area, _ = integrate.quad(gap, -np.inf, np.inf, limit=400, epsabs=1e-10)
    return {"mean": mu, "sd": sd, "skew": third / var**1.5, "delta_cdf": float(area)}


# --- training --------------------------------------------------------------------------------


def _init_weight(weight: torch.Tensor, init: str, cfg: BiologyConfig, g: torch.Generator) -> None:
    with torch.no_grad():
        if init == "gaussian":
            weight.normal_(0.0, math.sqrt(2.0 / weight.shape[1]), generator=g)
        else:
            signed_lognormal_(
                weight,
                mean=cfg.lognormal_mean,
                std=cfg.lognormal_std,
                dale=True,
                p_excitatory=cfg.p_excitatory,
                generator=g,
            )


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train_network(
    model_name: str,
    hidden: int,
    seed: int,
    cfg: BiologyConfig,
    data: tuple[torch.Tensor, ...] | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Train one network of :data:`MODELS` and return its weights before and after.

    ``data = (x_train, y_train, x_test, y_test)`` with flattened inputs (loaded from
    ``cfg.dataset`` if omitted). The initial weights depend on ``(init, hidden, seed)`` only and
    the minibatch order on ``seed`` only, so the two log-normal networks start from the same
    weights and see the same batches. Returns a dict with ``init`` and ``trained`` (each a dict
    layer -> float64 numpy weight) and ``accuracy`` (stage -> (train, test)).
    """
    if model_name not in MODELS:
        raise InputError(f"unknown model {model_name!r}; choose from {tuple(MODELS)}")
    init, rule = MODELS[model_name]
    x, y, x_test, y_test = data if data is not None else _load(cfg.dataset)
    x, y, x_test, y_test = (t.to(device) for t in (x, y, x_test, y_test))
    n_in, n_out = x.shape[1], int(max(y.max(), y_test.max())) + 1
    stream = np.random.SeedSequence([seed, hidden, _INITS.index(init)]).generate_state(1)[0]
    g = torch.Generator().manual_seed(int(stream))
    first, second = torch.nn.Linear(n_in, hidden), torch.nn.Linear(hidden, n_out)
    for layer in (first, second):
        _init_weight(layer.weight, init, cfg, g)
        torch.nn.init.zeros_(layer.bias)
    net = torch.nn.Sequential(first, torch.nn.ReLU(), second).to(device)
    weights = {"hidden": first.weight, "readout": second.weight}
    before = {k: v.detach().cpu().double().numpy().copy() for k, v in weights.items()}
    accuracy = {"init": (_accuracy(net, x, y), _accuracy(net, x_test, y_test))}
    lr = cfg.lr_gd if rule == "2-norm" else cfg.lr_eg
    opt = MirrorDescent(
        [
            {"params": list(weights.values()), "potential": rule, "lr": lr},
            {"params": [first.bias, second.bias], "potential": "2-norm", "lr": cfg.lr_bias},
        ],
        lr=lr,
        fast=False,
    )
    order = torch.Generator().manual_seed(int(seed))
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=order).to(device)
        for start in range(0, len(x), cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    accuracy["trained"] = (_accuracy(net, x, y), _accuracy(net, x_test, y_test))
    after = {k: v.detach().cpu().double().numpy().copy() for k, v in weights.items()}
    return {"init": before, "trained": after, "accuracy": accuracy}


def _load(name: str) -> tuple[torch.Tensor, ...]:
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    return (
        train.images.reshape(len(train), -1),
        train.labels,
        test.images.reshape(len(test), -1),
        test.labels,
    )


def _with_floors(stats: dict[str, float]) -> dict[str, float]:
    """Add the finite-sample floors of both Delta-CDFs (``floor_w`` uncentred for the
    ``n_weights`` values, ``floor_log_abs`` centred for the nonzero ones); cached per size."""
    n_log = stats["n_weights"] - stats["n_zero"]
    log_ok = math.isfinite(stats["delta_cdf_log_abs"])
    return {
        **stats,
        "floor_w": delta_cdf_floor(stats["n_weights"]),
        "floor_log_abs": delta_cdf_floor(n_log, centered=True) if log_ok else float("nan"),
    }


@dataclass(frozen=True)
class BiologyRun:
    """:func:`run`'s two tables: ``stats`` (:data:`STATS_COLUMNS`) and ``weights``
    (:data:`WEIGHT_COLUMNS`)."""

    stats: pd.DataFrame
    weights: pd.DataFrame


def _weight_rows(model: str, layer: str, w: np.ndarray) -> pd.DataFrame:
    post, pre = np.indices(w.shape)
    return pd.DataFrame(
        {"model": model, "layer": layer, "pre": pre.ravel(), "post": post.ravel(), "w": w.ravel()}
    )


def run(cfg: BiologyConfig | None = None, device: str | torch.device = "cpu") -> BiologyRun:
    """Train every network of ``cfg`` and summarise its weights before and after training.

    ``stats``: one row per ``(model, hidden_units, seed, stage, layer)`` with ``stage`` in
    ``("init", "trained")``, the accuracies of that stage on the training and test sets, the
    statistics of :func:`weight_statistics` (for ``"trained"``, relative to the initial weights)
    and the finite-sample floors ``floor_w`` and ``floor_log_abs`` of its two Delta-CDFs
    (:func:`mirrorlib.stats.delta_cdf_floor`: the expected value for exact Gaussian samples).
    ``weights``: the trained weights of every model for ``(cfg.seed, cfg.hidden_sizes[0])``.
    Deterministic: the same configuration gives the same tables. Runs torch on one thread
    (restored afterwards): on networks this small, more threads only slow it down.
    """
    cfg = cfg or PRESETS["ci"]
    with cpu_threads(1):  # the networks are tiny: more threads only add overhead
        return _run(cfg, device)


def _run(cfg: BiologyConfig, device: str | torch.device) -> BiologyRun:
    data = _load(cfg.dataset)
    rows, example = [], []
    for hidden in cfg.hidden_sizes:
        for seed in cfg.seeds:
            for name in cfg.models:
                out = train_network(name, hidden, seed, cfg, data=data, device=device)
                init, rule = MODELS[name]
                for stage in ("init", "trained"):
                    train_acc, test_acc = out["accuracy"][stage]
                    for layer in LAYERS:
                        w = out[stage][layer]
                        w0 = out["init"][layer] if stage == "trained" else None
                        rows.append(
                            {
                                "model": name,
                                "init": init,
                                "rule": rule,
                                "hidden_units": hidden,
                                "seed": seed,
                                "stage": stage,
                                "layer": layer,
                                "train_accuracy": train_acc,
                                "test_accuracy": test_acc,
                                **_with_floors(weight_statistics(w, w0)),
                            }
                        )
                if hidden == cfg.hidden_sizes[0] and seed == cfg.seed:
                    example += [_weight_rows(name, k, out["trained"][k]) for k in LAYERS]
    stats = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    weights = pd.concat(example, ignore_index=True)[list(WEIGHT_COLUMNS)]
    return BiologyRun(stats, weights)


SUMMARY_COLUMNS = (
    "train_accuracy",
    "test_accuracy",
    "sign_flip_fraction",
    "same_sign_fraction",
    "fraction_negative",
    "skew_w",
    "skew_log_abs",
    "delta_cdf_w",
    "floor_w",
    "delta_cdf_log_abs",
    "floor_log_abs",
    "relative_change",
)
"""The statistics that :func:`summarise` averages."""


def summarise(stats: pd.DataFrame, stage: str = "trained") -> pd.DataFrame:
    """Mean over seeds of :data:`SUMMARY_COLUMNS`, per ``(model, hidden_units, layer)``, for one
    ``stage`` of a :func:`run` statistics table; ``n_seeds`` says how many seeds were averaged.
    Models keep the order of :data:`MODELS`."""
    missing = sorted({"model", "hidden_units", "layer", "stage", *SUMMARY_COLUMNS} - set(stats))
    if missing:
        raise InputError(f"not a biology statistics table: missing {', '.join(missing)}")
    sub = stats[stats["stage"] == stage]
    if sub.empty:
        raise InputError(f"no rows with stage {stage!r}")
    keys = ["model", "hidden_units", "layer"]
    out = sub.groupby(keys, sort=False)[list(SUMMARY_COLUMNS)].mean()
    out.insert(0, "n_seeds", sub.groupby(keys, sort=False).size())
    order = {name: k for k, name in enumerate(MODELS)}
    out = out.reset_index()
    out = out.sort_values(
        ["model", "hidden_units", "layer"],
        key=lambda col: col.map(order) if col.name == "model" else col,
        kind="stable",
    )
    return out.reset_index(drop=True)
