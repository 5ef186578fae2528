"""What synapse measurements can tell us: the experiments of ``book/synapse_data.md``.

The model of synapse sizes after learning, ``w = (phi')^{-1}(phi'(w0) + xi)``, its likelihood
and its maximum-likelihood fits live in :mod:`mirrorlib.synapse_law`; this module holds only the
chapter's settings (:data:`PRESETS`, :func:`config`) and experiments. Import the model's
names from :mod:`mirrorlib.synapse_law` itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mirrorlib.connectome import load_witvliet, paired_counts
from mirrorlib.experiments import preset, requirement
from mirrorlib.potentials import PNorm, potential
from mirrorlib.recovery import DEFAULT_CANDIDATES, scan_geometry
from mirrorlib.synapse_law import (
    MIN_VOLUMES,
    N_DORKENWALD,
    POTENTIALS,
    PUBLISHED_FITS,
    W0_MODELS,
    FitResult,
    fit,
    fit_counts,
    sample_published_fit,
)

__all__ = [
    "PRESETS",
    "SynapseDataConfig",
    "candidate_p",
    "config",
    "profile_over_p",
    "run_aic_vs_n",
    "run_connectome_fits",
    "run_connectome_scan",
    "run_count_calibration",
    "run_known_w0_power",
    "run_volume_fits",
    "sample_size_words",
    "secondary_maxima",
    "smallest_n",
    "summarise_power",
]


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SynapseDataConfig:
    """Settings of the chapter (see :data:`PRESETS`).

    Volumes: ``n_volumes`` samples from each group in ``groups`` of :data:`PUBLISHED_FITS`;
    every model in ``potentials`` x ``w0_models``, ``n_starts`` starts each. ``aic_n``: sample
    sizes for Delta-AIC (2-norm vs negative entropy) and ``aic_reps`` draws at each.
    Profile: p-norms on ``profile_p``, on the first ``profile_n`` samples. Known ``w0``:
    truths ``power_truths``, ``power_n`` synapses, ``power_reps`` repetitions, change
    ``power_change`` x std of ``phi'(w0)``,
    ``n_boot`` bootstrap replicates. Connectome: Witvliet animals ``before`` and ``after``,
    ``scan_boot`` replicates; calibration with ``calib_truths`` and ``calib_reps``.
    """

    n_volumes: int = N_DORKENWALD
    groups: tuple[str, ...] = ("all",)
    potentials: tuple[str, ...] = POTENTIALS
    w0_models: tuple[str, ...] = W0_MODELS
    n_starts: int = 2
    aic_n: tuple[int, ...] = (30, 50, 100, 200)
    aic_reps: int = 5
    profile_p: tuple[float, ...] = (1.02, 1.05, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0)
    profile_n: tuple[int, ...] = (200, N_DORKENWALD)
    power_truths: tuple[str, ...] = ("negative_entropy", "2-norm")
    power_n: tuple[int, ...] = (100, 300, 1000, 3000)
    power_reps: int = 10
    power_change: float = 0.3
    n_boot: int = 40
    before: int = 1
    after: int = 8
    scan_boot: int = 200
    calib_truths: tuple[str, ...] = ("negative_entropy", "1.5-norm", "2-norm", "3-norm")
    calib_reps: int = 10
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self):
        need = requirement("synapse-data")

        need(self.n_volumes >= MIN_VOLUMES, f"n_volumes must be >= {MIN_VOLUMES}")
        for g in self.groups:
            need(g in PUBLISHED_FITS, f"unknown group {g!r}; choose from {sorted(PUBLISHED_FITS)}")
        for p in self.potentials:
            need(p in POTENTIALS, f"unknown potential {p!r}; choose from {POTENTIALS}")
        for m in self.w0_models:
            need(m in W0_MODELS, f"unknown w0 model {m!r}; choose from {W0_MODELS}")
        need(all(p > 1 for p in self.profile_p), "every p in profile_p must be > 1")
        need(all(n <= self.n_volumes for n in self.profile_n), "profile_n must be <= n_volumes")
        need(all(n >= 100 for n in self.power_n), "each power_n must be >= 100")
        need(all(n >= MIN_VOLUMES for n in self.aic_n), f"each aic_n must be >= {MIN_VOLUMES}")
        need(self.power_change > 0, "power_change must be > 0")
        need(
            min(self.n_starts, self.power_reps, self.calib_reps, self.aic_reps) >= 1, "counts >= 1"
        )
        need(self.n_boot >= 1 and self.scan_boot >= 1, "bootstrap replicates must be >= 1")
        need(0 < self.confidence < 1, "confidence must be in (0, 1)")


PRESETS: dict[str, SynapseDataConfig] = {
    "ci": SynapseDataConfig(groups=("all", "single", "dual")),
    "paper": SynapseDataConfig(
        groups=("all", "single", "dual"),
        n_starts=3,
        aic_n=(30, 50, 100, 200, 500, 1000),
        aic_reps=30,
        power_n=(100, 200, 300, 500, 1000, 2000, 3000, 5000),
        power_reps=50,
        n_boot=100,
        scan_boot=1000,
        calib_reps=50,
    ),
}
"""``ci``: the three groups of fits (all synapses, single and dual connections), 10
repetitions for the power and calibration studies. ``paper``: the same groups, 30-50
repetitions and more bootstrap replicates."""


def config(scale: str = "ci", **overrides) -> SynapseDataConfig:
    """The preset ``scale`` with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the synapse-data chapter")


def _seed(*keys) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


# ----------------------------------------------------------------------------- experiments


def run_volume_fits(
    volumes: dict[str, np.ndarray], cfg: SynapseDataConfig | None = None
) -> list[FitResult]:
    """Every ``(potential, w0_model)`` of ``cfg`` fitted to each named volume set."""
    cfg = cfg or PRESETS["ci"]
    return [
        fit(v, pot, model, cfg.n_starts, dataset=name)
        for name, v in volumes.items()
        for model in cfg.w0_models
        for pot in cfg.potentials
    ]


def run_aic_vs_n(cfg: SynapseDataConfig | None = None, group: str = "all") -> pd.DataFrame:
    """Delta-AIC (2-norm minus negative entropy, two-constant ``w0``) on fresh samples of each
    size in ``aic_n``: columns ``n, rep, delta_aic``."""
    cfg = cfg or PRESETS["ci"]
    rows = []
    for n in cfg.aic_n:
        for rep in range(cfg.aic_reps):
            v = sample_published_fit(group, n, _seed(cfg.seed, 1, n, rep))
            ll = {
                p: fit(v, p, "two_constants", cfg.n_starts).aic
                for p in ("2-norm", "negative_entropy")
            }
            rows.append({"n": n, "rep": rep, "delta_aic": ll["2-norm"] - ll["negative_entropy"]})
    return pd.DataFrame(rows)


def profile_over_p(
    w, p_grid, w0_model: str = "two_constants", n_starts: int = 2, dataset: str = ""
) -> pd.DataFrame:
    """Maximised log-likelihood of the p-norm models on ``p_grid`` and of negative entropy
    (``p = 1``, its limit: ``(w^(p-1) - 1)/(p-1) -> log w``): ``dataset, potential, p,
    log_likelihood, aic``."""
    rows = []
    for name in ["negative_entropy", *(f"{p:g}-norm" for p in p_grid)]:
        r = fit(w, name, w0_model, n_starts, dataset)
        p = 1.0 if name == "negative_entropy" else float(name.split("-")[0])
        rows.append(
            {
                "dataset": dataset,
                "potential": name,
                "p": p,
                "log_likelihood": r.log_likelihood,
                "aic": r.aic,
            }
        )
    return pd.DataFrame(rows)


def secondary_maxima(profile: pd.DataFrame) -> pd.DataFrame:
    """The local maxima of one likelihood profile over ``p`` besides its highest point.

    ``profile``: columns ``p`` and ``log_likelihood`` (one row per ``p``, as
    :func:`profile_over_p` gives). A local maximum is a grid point above both its neighbours
    in ``p`` (the ends of the grid have one neighbour and are not counted). Returns columns
    ``p`` and ``drop`` (the global maximum minus its log-likelihood), smallest drop first.
    """
    missing = sorted({"p", "log_likelihood"} - set(profile))
    if missing:
        raise ValueError(f"not a profile over p: missing {', '.join(missing)}")
    if profile["p"].duplicated().any():
        raise ValueError("a profile over p has one row per p; select one sample size first")
    ll = profile.set_index("p")["log_likelihood"].sort_index()
    values = ll.to_numpy()
    inner = (values[1:-1] > values[:-2]) & (values[1:-1] > values[2:])
    peaks = ll.iloc[1:-1][inner]
    peaks = peaks[peaks.index != ll.idxmax()]
    table = pd.DataFrame({"p": peaks.index.to_numpy(), "drop": ll.max() - peaks.to_numpy()})
    return table.sort_values("drop", kind="stable").reset_index(drop=True)


def candidate_p(name: str) -> float:
    """The exponent ``p`` of a p-norm candidate; 1 for negative entropy (its limit)."""
    pot = potential(name)
    return pot.p if isinstance(pot, PNorm) else 1.0


def run_known_w0_power(cfg: SynapseDataConfig | None = None) -> pd.DataFrame:
    """With ``w0`` known: can :func:`~mirrorlib.recovery.scan_geometry` name the potential?

    ``w0``: volumes drawn from the published all-synapse fit; ``w``: a Gaussian change of
    ``power_change x std(phi'(w0))`` in the true potential's dual space
    (``from_dual(phi'(w0) + sigma xi)``). Candidates: negative entropy and p = 1.1 ... 3.0.
    One row per (truth, n, rep): ``best``, ``truth_best``, ``truth_in_set`` (the truth is
    among the candidates the bootstrap cannot tell from the best), ``n_in_set``,
    ``set_width`` (largest ``|p - p_truth|`` in that set, negative entropy as ``p = 1``) and
    ``two_norm_out`` / ``ne_out`` (2-norm / negative entropy ruled out, by the bootstrap or
    by exclusion) and ``ne_excluded`` (negative entropy excluded outright: a weight changed
    sign).
    """
    cfg = cfg or PRESETS["ci"]
    rows = []
    for t, truth in enumerate(cfg.power_truths):
        pot = potential(truth)
        for n in cfg.power_n:
            for rep in range(cfg.power_reps):
                seed = _seed(cfg.seed, 2, t, n, rep)
                w0 = sample_published_fit("all", n, seed)
                sigma = cfg.power_change * float(np.std(pot.to_dual(w0)))
                xi = np.random.default_rng(seed + 1).standard_normal(n)
                w = pot.from_dual(pot.to_dual(w0) + sigma * xi, np.sign(w0))
                scan = scan_geometry(
                    w0,
                    w,
                    DEFAULT_CANDIDATES,
                    n_boot=cfg.n_boot,
                    confidence=cfg.confidence,
                    seed=seed,
                )
                in_set = scan[scan["indistinguishable"].fillna(False).astype(bool)]
                names = set(in_set["potential"])
                p_truth = candidate_p(truth)
                rows.append(
                    {
                        "truth": pot.name,
                        "n": n,
                        "rep": rep,
                        "best": scan.attrs["best"],
                        "truth_best": scan.attrs["best"] == pot.name,
                        "truth_in_set": pot.name in names,
                        "n_in_set": len(names),
                        "set_width": max(abs(candidate_p(c) - p_truth) for c in names),
                        "two_norm_out": "2.0-norm" not in names and "2-norm" not in names,
                        "ne_out": "negative_entropy" not in names,
                        "ne_excluded": bool(
                            scan.loc[scan["potential"] == "negative_entropy", "excluded"].iloc[0]
                        ),
                    }
                )
    return pd.DataFrame(rows)


def summarise_power(table: pd.DataFrame) -> pd.DataFrame:
    """Means over repetitions of :func:`run_known_w0_power`, per ``(truth, n)``."""
    cols = [
        "truth_best",
        "truth_in_set",
        "n_in_set",
        "set_width",
        "two_norm_out",
        "ne_out",
        "ne_excluded",
    ]
    return table.groupby(["truth", "n"], sort=False)[cols].mean().reset_index()


def smallest_n(
    table: pd.DataFrame, column: str, level: float, truth: str | None = None, below: bool = False
) -> int | None:
    """The smallest ``n`` of a table with columns ``n`` and ``column`` (one row per ``n``, or
    per ``(truth, n)`` with ``truth`` given) from which on ``column >= level`` (``<= level``
    with ``below``) at every larger ``n`` too; ``None`` if the largest ``n`` misses it."""
    rows = table if truth is None else table[table["truth"] == truth]
    values = rows.set_index("n")[column].sort_index()
    ok = values <= level if below else values >= level
    if len(ok) == 0 or not bool(ok.iloc[-1]):
        return None
    failing = ok.index[~ok.to_numpy()]
    later = ok.index if len(failing) == 0 else ok.index[ok.index > failing.max()]
    return int(later.min())


def sample_size_words(n: int | None, sizes: Collection[int]) -> str:
    """A :func:`smallest_n` result in words, given the ``sizes`` simulated: ``'1000
    synapses'``; ``'at most 100 synapses (the fewest simulated)'`` when ``n`` is the
    smallest, since fewer were not tried; ``'more than the largest size simulated (3000)'``
    for ``None``."""
    if n is None:
        return f"more than the largest size simulated ({max(sizes)})"
    if n == min(sizes):
        return f"at most {n} synapses (the fewest simulated)"
    return f"{n} synapses"


def at_both_scales(build: str, stored: str) -> str:
    """Two :func:`sample_size_words`, this build's and the stored paper-scale run's, in one
    phrase: ``'300 synapses in both'`` when they are the same, else ``'1000 synapses in this
    build and 300 synapses in the stored run'``."""
    if build == stored:
        return f"{build} in both"
    return f"{build} in this build and {stored} in the stored run"


def secondary_maxima_words(peaks: pd.DataFrame) -> str:
    """:func:`secondary_maxima` in words, every peak listed (no TeX, for glue):
    ``'no other local maximum'``, ``'one more local maximum, at 2.4, lower by 3 in
    log-likelihood'`` or ``'2 more local maxima, at 1.8 and 2.4, lower by 3 and 5 in
    log-likelihood'``."""
    if peaks.empty:
        return "no other local maximum"
    where = " and ".join(f"{p:g}" for p in peaks["p"])
    drops = " and ".join(f"{drop:.0f}" for drop in peaks["drop"])
    count = "one more local maximum" if len(peaks) == 1 else f"{len(peaks)} more local maxima"
    return f"{count}, at {where}, lower by {drops} in log-likelihood"


def run_connectome_scan(
    cfg: SynapseDataConfig | None = None, data_dir: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The geometry scan on C. elegans chemical synapse counts, before (animal ``before``) and
    after (``after``) development, over the connections present in both.

    Returns ``(pairs, scan)``: the paired counts (:func:`mirrorlib.connectome.paired_counts`)
    and the :func:`~mirrorlib.recovery.scan_geometry` table (negative entropy, p = 1.1 ... 3.0)
    on the raw counts.
    """
    cfg = cfg or PRESETS["ci"]
    early = load_witvliet(cfg.before, data_dir=data_dir)
    late = load_witvliet(cfg.after, data_dir=data_dir)
    pairs = paired_counts(early, late)
    pairs.attrs.update(n_before=len(early), n_after=len(late))
    scan = scan_geometry(
        pairs["before"].to_numpy(float),
        pairs["after"].to_numpy(float),
        DEFAULT_CANDIDATES,
        n_boot=cfg.scan_boot,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    return pairs, scan


def run_connectome_fits(
    counts: dict[str, np.ndarray], cfg: SynapseDataConfig | None = None
) -> list[FitResult]:
    """Discretised fits of synapse counts: every potential x (constant, two_constants) ``w0``."""
    cfg = cfg or PRESETS["ci"]
    models = [m for m in cfg.w0_models if m != "lognormal"]
    return [
        fit_counts(k, pot, model, cfg.n_starts, dataset=name)
        for name, k in counts.items()
        for model in models
        for pot in cfg.potentials
    ]


def run_count_calibration(
    pairs: pd.DataFrame, cfg: SynapseDataConfig | None = None
) -> pd.DataFrame:
    """Does the scan still find a known potential when weights are read as integer counts?

    For each truth in ``calib_truths``: latent starting weights ``w0`` from a log-normal fitted
    (discretised) to the observed early counts; ``phi'(w) = phi'(w0) + mu + s xi`` with ``mu``
    and ``s`` the mean and std of the truth's dual change in the observed pairs; counts are
    ``round(w0)`` and ``round(w)``, kept when both are >= 1 (a connection seen in both animals)
    until as many pairs as observed. Each repetition scans three versions of the same draw,
    to separate the two departures from the theory's setting: ``latent_all`` (the first ``n``
    continuous pairs, no selection), ``latent_kept`` (continuous values of the kept pairs: the
    selection alone) and ``counts_kept`` (their counts: selection and rounding).
    Rows: ``truth, rep, data, best, best_p`` (negative entropy as 1), ``truth_best,
    truth_rank, best_delta_cdf, floor, truth_in_set``.
    """
    cfg = cfg or PRESETS["ci"]
    before = pairs["before"].to_numpy(float)
    after = pairs["after"].to_numpy(float)
    n = before.size
    lognormal = fit_counts(before, "negative_entropy", "constant", cfg.n_starts)
    a = lognormal.params["m"] - 1.0  # theta = log w + 1 ~ N(m, s^2)
    b = lognormal.params["s"]
    rows = []
    for t, truth in enumerate(cfg.calib_truths):
        pot = potential(truth)
        change = np.asarray(pot.to_dual(after) - pot.to_dual(before))
        mu, s = float(change.mean()), float(change.std())
        for rep in range(cfg.calib_reps):
            rng = np.random.default_rng(_seed(cfg.seed, 3, t, rep))
            w0 = np.exp(a + b * rng.standard_normal(20 * n))
            w = pot.from_dual(pot.to_dual(w0) + mu + s * rng.standard_normal(w0.size), np.sign(w0))
            k0, k1 = np.round(w0), np.round(w)
            keep = np.flatnonzero((k0 >= 1) & (k1 >= 1))[:n]
            if keep.size < n:
                raise RuntimeError("too few simulated connections survive: raise the oversampling")
            variants = (
                ("latent_all", (w0[:n], w[:n])),
                ("latent_kept", (w0[keep], w[keep])),
                ("counts_kept", (k0[keep], k1[keep])),
            )
            for data, (x0, x1) in variants:
                scan = scan_geometry(
                    x0,
                    x1,
                    DEFAULT_CANDIDATES,
                    n_boot=cfg.n_boot,
                    confidence=cfg.confidence,
                    seed=cfg.seed + rep,
                )
                ranked = scan.set_index("potential")
                in_set = ranked["indistinguishable"].fillna(False).astype(bool)
                rows.append(
                    {
                        "truth": pot.name,
                        "rep": rep,
                        "data": data,
                        "best": scan.attrs["best"],
                        "best_p": candidate_p(scan.attrs["best"]),
                        "truth_best": scan.attrs["best"] == pot.name,
                        "truth_rank": int(ranked.at[pot.name, "rank"]),
                        "best_delta_cdf": float(scan["delta_cdf"].iloc[0]),
                        "floor": float(scan.attrs["floor"]),
                        "truth_in_set": bool(in_set.get(pot.name, False)),
                    }
                )
    return pd.DataFrame(rows)
