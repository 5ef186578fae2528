"""Which geometry made this change? The experiments of the chapter "The wrong-potential test"
(``book/wrong_potential.md``, the paper's Fig 3 and a power analysis beyond it).

No network is trained. Weights ``w0`` are drawn, moved by a Gaussian change in the dual space of
a *true* potential, ``w = from_dual(to_dual(w0) + sigma xi)``
(:func:`mirrorlib.recovery.simulate_after`), and every *hypothesised* potential is scored by the
Delta-CDF of its own dual change (:func:`mirrorlib.recovery.scan_geometry`).

- :func:`run_fig3`: the paper's Fig 3. Per ``w0`` law (normal or signed log-normal), true
  potential and seed, the Delta-CDF of every candidate (negative entropy, p-norms, hyperbolic
  entropies), uncentred (the paper's statistic) and centred (the library's default).
- :func:`truth_beats_candidate`, :func:`best_candidate_share`, :func:`summarise_fig3`: from the
  Fig 3 table, how often the true potential scores lower than each candidate on the same data,
  how often each candidate is the best, and where each panel's minimum sits.
- :func:`run_neighbours`, :func:`neighbour_advantage`: Fig 3's draw repeated over many more
  seeds, only for each truth and its nearest candidates (``p +- 0.1``): the expected advantage
  of the truth over its neighbours, and how many seeds a mean curve needs to resolve it.
- :func:`run_recovery_power`: how often a two-candidate scan picks the true potential (and
  rules the alternative out with its bootstrap) as a function of the number of synapses and of
  the size of the change.
- :func:`smallest_n`: from the power table, the fewest synapses reaching a target rate.
- :func:`kurtosis_wrong_potential`: the first-order theory, the kurtosis of the scale mixture
  a wrong potential sees for log-normal ``w0``.

All functions are deterministic: the same configuration gives the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from mirrorlib.experiments import preset, requirement
from mirrorlib.init import signed_lognormal_
from mirrorlib.potentials import (
    HyperbolicEntropy,
    NegativeEntropy,
    PNorm,
    potential,
    potential_in_words,
)
from mirrorlib.recovery import MIN_WEIGHTS, scan_geometry, simulate_after
from mirrorlib.stats import delta_cdf_floor, paired_verdict
from mirrorlib.words import and_list, count_of

__all__ = [
    "FIG3_COLUMNS",
    "NEIGHBOUR_COLUMNS",
    "POWER_COLUMNS",
    "PRESETS",
    "W0_LAWS",
    "WrongPotentialConfig",
    "best_candidate_share",
    "config",
    "fig3_candidates",
    "kurtosis_wrong_potential",
    "neighbour_advantage",
    "neighbour_rows",
    "neighbour_summary",
    "power_summary",
    "run_fig3",
    "run_neighbours",
    "run_recovery_power",
    "sample_w0",
    "smallest_n",
    "summarise_fig3",
    "truth_beats_candidate",
]

W0_LAWS = ("normal", "lognormal")
"""Laws of the weights before the change: N(0, 1/100), or signed log-normal with
``E|w| = std|w| = 0.1`` (:func:`mirrorlib.init.signed_lognormal_`)."""

FIG3_COLUMNS = (
    "init",
    "true_potential",
    "candidate",
    "family",
    "p",
    "beta",
    "seed",
    "centered",
    "n",
    "delta_cdf",
    "relative_change",
    "excluded",
    "floor_mean",
    "floor_std",
)
"""Columns of :func:`run_fig3`'s table."""

POWER_COLUMNS = (
    "pair",
    "true_potential",
    "alternative",
    "exponent_gap",
    "change_scale",
    "n",
    "repetitions",
    "relative_change",
    "p_correct",
    "ruled_out",
    "delta_cdf_true",
    "delta_cdf_alternative",
    "floor",
)
"""Columns of :func:`run_recovery_power`'s table."""

NEIGHBOUR_COLUMNS = (
    "init",
    "true_potential",
    "centered",
    "neighbour",
    "n_seeds",
    "mean_gap",
    "se_gap",
    "z",
    "verdict",
    "share_truth_lower",
    "seeds_needed",
)
"""Columns of :func:`neighbour_advantage`'s table."""


@dataclass(frozen=True)
class WrongPotentialConfig:
    """Settings of the chapter's two experiments (see :data:`PRESETS`).

    Fig 3: ``n_weights`` weights per draw, each law in ``w0_laws``, each potential in
    ``true_potentials``; the change is ``sigma = change_factor * |to_dual(change_ref)|`` in the
    true potential's dual space; candidates are negative entropy, ``p_grid`` and hyperbolic
    entropy with each scale in ``betas``; ``n_seeds`` draws. The neighbour check repeats the
    draw for ``neighbour_seeds`` further seeds with only the truths' nearest candidates.

    Power: for each ``(true, alternative)`` in ``pairs``, each target relative change in
    ``changes`` (``sigma = change * rms(to_dual(w0))``) and each number of synapses in
    ``n_synapses``, ``repetitions`` draws of ``power_w0`` weights, each scanned with
    ``n_boot`` bootstrap replicates at ``confidence``.
    """

    n_weights: int = 1000
    w0_laws: tuple[str, ...] = W0_LAWS
    true_potentials: tuple[str, ...] = ("negative_entropy", "2-norm", "3-norm")
    p_grid: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11, 31))
    betas: tuple[float, ...] = (0.01, 0.1, 1.0)
    change_factor: float = 0.1
    change_ref: float = 0.1
    n_seeds: int = 30
    neighbour_seeds: int = 200
    pairs: tuple[tuple[str, str], ...] = (
        ("negative_entropy", "1.2-norm"),
        ("negative_entropy", "1.5-norm"),
        ("negative_entropy", "2-norm"),
        ("negative_entropy", "3-norm"),
        ("2-norm", "2.5-norm"),
        ("2-norm", "3-norm"),
    )
    changes: tuple[float, ...] = (0.05, 0.1, 0.3)
    n_synapses: tuple[int, ...] = (100, 300, 1000, 3000)
    repetitions: int = 20
    n_boot: int = 40
    confidence: float = 0.95
    power_w0: str = "lognormal"
    seed: int = 0

    def __post_init__(self):
        _check(self)


def _check(cfg: WrongPotentialConfig) -> None:
    """Raise ``ValueError`` naming the first bad setting."""

    need = requirement("wrong-potential")

    need(cfg.n_weights >= MIN_WEIGHTS, f"n_weights must be >= {MIN_WEIGHTS}, got {cfg.n_weights}")
    need(cfg.n_seeds >= 1, f"n_seeds must be >= 1, got {cfg.n_seeds}")
    need(cfg.neighbour_seeds >= 2, f"neighbour_seeds must be >= 2, got {cfg.neighbour_seeds}")
    need(cfg.repetitions >= 1, f"repetitions must be >= 1, got {cfg.repetitions}")
    need(cfg.n_boot >= 1, f"n_boot must be >= 1 (the power needs the bootstrap), got {cfg.n_boot}")
    need(0 < cfg.confidence < 1, f"confidence must be in (0, 1), got {cfg.confidence}")
    for law in (*cfg.w0_laws, cfg.power_w0):
        need(law in W0_LAWS, f"unknown w0 law {law!r}; choose from {W0_LAWS}")
    need(len(cfg.n_synapses) > 0, "n_synapses is empty")
    for n in cfg.n_synapses:
        need(int(n) == n and n >= MIN_WEIGHTS, f"each n_synapses must be >= {MIN_WEIGHTS}, got {n}")
    for value, label in [(c, "changes") for c in cfg.changes] + [
        (cfg.change_factor, "change_factor"),
        (cfg.change_ref, "change_ref"),
    ]:
        need(math.isfinite(value) and value > 0, f"{label} must be finite and > 0, got {value}")
    need(all(p > 1 for p in cfg.p_grid), f"every p in p_grid must be > 1, got {cfg.p_grid}")
    need(all(b > 0 for b in cfg.betas), f"every beta must be > 0, got {cfg.betas}")
    names = list(cfg.true_potentials) + [name for pair in cfg.pairs for name in pair]
    for name in names:
        try:
            potential(name)
        except (ValueError, TypeError) as err:
            need(False, str(err))
    for true, alternative in cfg.pairs:
        need(
            potential(true).name != potential(alternative).name,
            f"a pair needs two different potentials, got ({true!r}, {alternative!r})",
        )


PRESETS: dict[str, WrongPotentialConfig] = {
    "ci": WrongPotentialConfig(),
    "paper": WrongPotentialConfig(
        n_synapses=(100, 150, 200, 300, 500, 700, 1000, 2000, 3000, 5000),
        neighbour_seeds=3000,
        repetitions=100,
        n_boot=200,
    ),
}
"""``ci``: Fig 3 at the paper's settings (cheap: no bootstrap), the neighbour check over 200
seeds, and a coarse power grid, 4 sample sizes with 20 repetitions per cell and 40 bootstrap
replicates (under a minute on one core). ``paper``: Fig 3 unchanged; the neighbour check over
3000 seeds; 10 sample sizes from 100 to 5000, 100 repetitions per cell
and 200 bootstrap replicates (about half an hour on one core)."""


def config(scale: str = "ci", **overrides) -> WrongPotentialConfig:
    """The preset ``scale`` (``"ci"`` or ``"paper"``) with fields replaced by ``overrides``."""
    return preset(PRESETS, scale, overrides, "the wrong-potential test")


def _stream_seed(*keys: int) -> int:
    """A 32-bit seed for the random stream named by ``keys`` (independent streams)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def sample_w0(law: str, n: int, seed: int) -> np.ndarray:
    """``n`` float64 weights before learning, drawn from ``law`` with a torch generator.

    ``"normal"``: N(0, 1/100). ``"lognormal"``: signed log-normal with ``E|w| = std|w| = 0.1``
    and random signs (:func:`mirrorlib.init.signed_lognormal_`).
    """
    if law not in W0_LAWS:
        raise ValueError(f"unknown w0 law {law!r}; choose from {W0_LAWS}")
    generator = torch.Generator().manual_seed(int(seed))
    if law == "normal":
        return (torch.randn(n, generator=generator, dtype=torch.float64) / 10).numpy()
    w0 = torch.empty(n, dtype=torch.float64)
    return signed_lognormal_(w0, mean=0.1, std=0.1, generator=generator).numpy()


def fig3_candidates(cfg: WrongPotentialConfig) -> list[str]:
    """Names of the hypothesised potentials of Fig 3: NE, the p-grid, hyperbolic entropies."""
    names = [NegativeEntropy(), *(PNorm(p) for p in cfg.p_grid)]
    names += [HyperbolicEntropy(b) for b in cfg.betas]
    return [pot.name for pot in names]


def _describe(name: str) -> dict:
    pot = potential(name)
    if isinstance(pot, PNorm):
        return {"family": "p-norm", "p": pot.p, "beta": math.nan}
    if isinstance(pot, HyperbolicEntropy):
        return {"family": "hypentropy", "p": math.nan, "beta": pot.beta}
    return {"family": "negative_entropy", "p": math.nan, "beta": math.nan}


def run_fig3(cfg: WrongPotentialConfig | None = None) -> pd.DataFrame:
    """The paper's Fig 3: Delta-CDF of every hypothesised potential's dual change.

    For each law of ``w0`` and seed ``seed + s`` (``s < n_seeds``), ``n_weights`` weights are
    drawn (:func:`sample_w0`) and, with the same standard normal ``xi`` for every true
    potential, moved to ``from_dual(to_dual(w0) + change_factor |to_dual(change_ref)| xi)``.
    Each candidate's exact Delta-CDF comes from :func:`mirrorlib.recovery.scan_geometry`
    (no bootstrap), uncentred and centred.

    One row per ``(w0, true_potential, seed, centered, candidate)`` with the columns of
    :data:`FIG3_COLUMNS`: ``family`` (``negative_entropy``, ``p-norm``, ``hypentropy``), ``p``
    or ``beta`` (NaN when not applicable), ``delta_cdf`` and ``relative_change`` (the
    candidate's ``||dual change|| / ||to_dual(w0)||``; both NaN when ``excluded``: negative
    entropy cannot have produced a sign change), and the finite-sample floor of ``n``
    Gaussian values for that statistic (``floor_mean``, ``floor_std``).
    """
    cfg = cfg or PRESETS["ci"]
    candidates = fig3_candidates(cfg)
    described = {name: _describe(name) for name in candidates}
    n = cfg.n_weights
    floors = {c: delta_cdf_floor(n, centered=c, spread=True) for c in (False, True)}
    rows = []
    for law in cfg.w0_laws:
        for s in range(cfg.n_seeds):
            seed = cfg.seed + s
            w0 = sample_w0(law, n, seed)
            for true in cfg.true_potentials:
                pot = potential(true)
                sigma = cfg.change_factor * abs(float(pot.to_dual(np.float64(cfg.change_ref))))
                w = simulate_after(w0, pot, sigma, seed=seed)
                for centered in (False, True):
                    scan = scan_geometry(w0, w, candidates, n_boot=0, centered=centered)
                    scores = scan.set_index("potential")
                    for name in candidates:
                        rows.append(
                            {
                                "init": law,
                                "true_potential": pot.name,
                                "candidate": name,
                                **described[name],
                                "seed": seed,
                                "centered": centered,
                                "n": n,
                                "delta_cdf": float(scores.at[name, "delta_cdf"]),
                                "relative_change": float(scores.at[name, "relative_change"]),
                                "excluded": bool(scores.at[name, "excluded"]),
                                "floor_mean": floors[centered][0],
                                "floor_std": floors[centered][1],
                            }
                        )
    return pd.DataFrame(rows, columns=list(FIG3_COLUMNS))


def _neighbours(name: str) -> list[str]:
    """The candidates nearest to ``name`` on Fig 3's scan: ``p +- 0.1`` (NE's is the 1.1-norm)."""
    pot = potential(name)
    if isinstance(pot, NegativeEntropy):
        return [PNorm(1.1).name]
    if isinstance(pot, PNorm):
        return [PNorm(round(q, 10)).name for q in (pot.p - 0.1, pot.p + 0.1) if q > 1]
    raise ValueError(f"no neighbours on the scan for {name!r}: a p-norm or negative entropy")


def run_neighbours(cfg: WrongPotentialConfig | None = None) -> pd.DataFrame:
    """Fig 3's draw over ``cfg.neighbour_seeds`` more seeds, scoring only the truths' neighbours.

    The seeds follow Fig 3's (``seed + n_seeds`` onwards), so the draws are new; the candidates
    are every true potential and its nearest candidates on the scan (``p +- 0.1``; the
    1.1-norm for negative entropy). The table has :func:`run_fig3`'s columns; summarise it with
    :func:`neighbour_advantage`.
    """
    cfg = cfg or PRESETS["ci"]
    near = {
        round(q, 10)
        for t in cfg.true_potentials
        for q in (_exponent(t), *(potential(c).p for c in _neighbours(t)))
        if q > 1
    }
    wide = replace(
        cfg,
        p_grid=tuple(sorted(near)),
        betas=(),
        n_seeds=cfg.neighbour_seeds,
        seed=cfg.seed + cfg.n_seeds,
    )
    return run_fig3(wide)


def _with_truth(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``delta_cdf_truth``: the true potential's score on the same draw (the same
    law, truth, statistic and seed), for comparisons paired by seed."""
    keys = ["init", "true_potential", "centered", "seed"]
    truth = table[table["candidate"] == table["true_potential"]][[*keys, "delta_cdf"]]
    return table.merge(truth, on=keys, suffixes=("", "_truth"))


def neighbour_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The part of a :func:`run_neighbours` table that :func:`neighbour_advantage` reads: each
    truth's own rows and those of its neighbours, columns ``init, true_potential, centered,
    seed, candidate, delta_cdf`` (what the chapter stores at the ``paper`` scale)."""
    keep = [
        candidate == true or candidate in _neighbours(true)
        for true, candidate in zip(table["true_potential"], table["candidate"], strict=True)
    ]
    columns = ["init", "true_potential", "centered", "seed", "candidate", "delta_cdf"]
    return table.loc[keep, columns].reset_index(drop=True)


def neighbour_advantage(table: pd.DataFrame) -> pd.DataFrame:
    """From a :func:`run_neighbours` (or :func:`run_fig3`) table: the truth against each neighbour.

    Paired by seed, ``gap = delta_cdf(neighbour) - delta_cdf(truth)``. One row per ``(init,
    true_potential, centered, neighbour)`` with the columns of :data:`NEIGHBOUR_COLUMNS`:
    ``mean_gap`` (> 0: the truth is lower in expectation), its standard error ``se_gap`` and
    ``z = mean_gap / se_gap``; ``verdict``, :func:`mirrorlib.stats.paired_verdict`'s word for
    the truth's score against the neighbour's (a paired t interval at
    :data:`mirrorlib.stats.PAIRED_LEVEL`: ``"lower than"`` when the interval of the gap lies
    above 0); ``share_truth_lower`` (fraction of seeds) and
    ``seeds_needed``, the seeds a mean curve needs for the gap to reach two standard errors
    (``z = 2``), ``ceil(4 sd^2 / mean_gap^2)`` (infinite when ``mean_gap <= 0``).
    """
    merged = _with_truth(table)
    rows = []
    for (law, true, centered), panel in merged.groupby(
        ["init", "true_potential", "centered"], sort=False
    ):
        for name in _neighbours(true):
            pair = panel[panel["candidate"] == name]
            if pair.empty:
                continue
            gap = pair["delta_cdf"] - pair["delta_cdf_truth"]
            n, mean, sd = len(gap), float(gap.mean()), float(gap.std(ddof=1))
            se = sd / math.sqrt(n)
            _, _, verdict = paired_verdict(pair["delta_cdf_truth"], pair["delta_cdf"])
            rows.append(
                {
                    "init": law,
                    "true_potential": true,
                    "centered": bool(centered),
                    "neighbour": name,
                    "n_seeds": n,
                    "mean_gap": mean,
                    "se_gap": se,
                    "z": mean / se if se > 0 else math.nan,
                    "verdict": verdict,
                    "share_truth_lower": float((gap > 0).mean()),
                    "seeds_needed": math.ceil(4 * sd**2 / mean**2) if mean > 0 else math.inf,
                }
            )
    return pd.DataFrame(rows, columns=list(NEIGHBOUR_COLUMNS))


def truth_beats_candidate(table: pd.DataFrame) -> pd.DataFrame:
    """From a :func:`run_fig3` table: how often the truth scores lower than each candidate.

    Paired by seed (same data for every candidate). One row per ``(w0, true_potential,
    centered, candidate)`` other than the truth, with ``family``, ``p``, ``beta``,
    ``n_seeds``, ``fraction`` = share of seeds where ``delta_cdf(truth) < delta_cdf
    (candidate)`` (an excluded candidate counts as beaten) and ``distance``, the exponent gap
    ``|q - p|`` between candidate and truth (negative entropy as ``p = 1``; NaN for
    hyperbolic entropy).
    """
    merged = _with_truth(table)
    merged = merged[merged["candidate"] != merged["true_potential"]]
    beaten = merged["excluded"] | (merged["delta_cdf_truth"] < merged["delta_cdf"])
    merged = merged.assign(beaten=beaten.astype(float))
    group = ["init", "true_potential", "centered", "candidate", "family", "p", "beta"]
    out = merged.groupby(group, sort=False, dropna=False)["beaten"].agg(["size", "mean"])
    out = out.reset_index().rename(columns={"size": "n_seeds", "mean": "fraction"})
    gaps = {
        (t, c): round(abs(_exponent(c) - _exponent(t)), 10)
        for t, c in set(zip(out["true_potential"], out["candidate"], strict=True))
    }
    out["distance"] = [
        gaps[t, c] for t, c in zip(out["true_potential"], out["candidate"], strict=True)
    ]
    return out


def best_candidate_share(
    table: pd.DataFrame, families: tuple[str, ...] = ("negative_entropy", "p-norm")
) -> pd.DataFrame:
    """From a :func:`run_fig3` table: how often each candidate scores lowest in a seed.

    Only candidates of ``families`` compete (by default negative entropy and the p-norms, the
    paper's scan). One row per ``(w0, true_potential, centered, candidate)`` that was best in
    at least one seed, with ``p`` and ``share`` (fraction of seeds).
    """
    keys = ["init", "true_potential", "centered"]
    pool = table[table["family"].isin(families) & table["delta_cdf"].notna()]
    best = pool.loc[pool.groupby([*keys, "seed"], sort=False)["delta_cdf"].idxmin()]
    seeds = table.groupby(keys, sort=False)["seed"].nunique().rename("n_seeds")
    counts = best.groupby([*keys, "candidate", "p"], sort=False, dropna=False).size()
    out = counts.rename("count").reset_index().merge(seeds.reset_index(), on=keys)
    out["share"] = out["count"] / out["n_seeds"]
    return out.drop(columns=["count", "n_seeds"])


def summarise_fig3(
    table: pd.DataFrame, families: tuple[str, ...] = ("negative_entropy", "p-norm")
) -> pd.DataFrame:
    """One row per panel and statistic of Fig 3: where the curve's minimum sits.

    Columns ``w0, true_potential, centered``; ``truth_mean`` and ``truth_std`` (Delta-CDF of
    the true potential over seeds); ``floor_mean``, ``floor_std``; ``mean_curve_best`` (the
    candidate of ``families`` with the lowest mean) and ``mean_curve_gap`` (its mean minus the
    truth's: 0 when the truth is lowest); ``share_truth_best`` (fraction of seeds in which the
    truth scores lowest, :func:`best_candidate_share`).
    """
    keys = ["init", "true_potential", "centered"]
    pool = table[table["family"].isin(families)]
    means = pool.groupby([*keys, "candidate"], sort=False)["delta_cdf"].mean().dropna()
    shares = best_candidate_share(table, families)
    rows = []
    for key, panel in table.groupby(keys, sort=False):
        truth = panel[panel["candidate"] == key[1]]["delta_cdf"]
        curve = means.loc[key]
        won = shares[
            (shares[keys] == pd.Series(key, index=keys)).all(axis=1)
            & (shares["candidate"] == key[1])
        ]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "truth_mean": float(truth.mean()),
                "truth_std": float(truth.std(ddof=1)),
                "floor_mean": float(panel["floor_mean"].iloc[0]),
                "floor_std": float(panel["floor_std"].iloc[0]),
                "mean_curve_best": str(curve.idxmin()),
                "mean_curve_gap": float(curve.min() - truth.mean()),
                "share_truth_best": float(won["share"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _exponent(name: str) -> float:
    """The power of ``|w|`` in ``phi''``, plus 2: ``p`` for a p-norm, 1 for negative entropy."""
    pot = potential(name)
    if isinstance(pot, PNorm):
        return pot.p
    if isinstance(pot, NegativeEntropy):
        return 1.0
    return math.nan


def kurtosis_wrong_potential(true: str, alternative: str, sigma_log: float) -> float:
    """First-order kurtosis of the dual change an ``alternative`` potential sees.

    If ``log|w0|`` is normal with standard deviation ``sigma_log``, the alternative's dual
    change is ``c |w0|^d xi`` with ``d`` the exponent gap (:func:`_exponent`), a log-normal
    scale mixture of Gaussians whose kurtosis is ``3 exp(4 d^2 sigma_log^2)`` (3 is Gaussian).
    """
    gap = _exponent(alternative) - _exponent(true)
    return 3.0 * math.exp(4.0 * gap**2 * sigma_log**2)


def run_recovery_power(cfg: WrongPotentialConfig | None = None) -> pd.DataFrame:
    """How many synapses does it take to tell two potentials apart?

    For repetition ``r`` a draw of ``max(n_synapses)`` weights from ``power_w0`` and a
    standard normal ``xi`` are shared by every pair, change size and sample size (smaller
    samples are the first ``n`` synapses). The true potential's dual value moves by
    ``sigma xi`` with ``sigma = change * rms(to_dual(w0))`` over the whole draw, so ``change``
    is the relative change ``||dual change|| / ||to_dual(w0)||`` the experiment is built for.
    :func:`mirrorlib.recovery.scan_geometry` (centred, ``n_boot`` replicates) then compares
    the two candidates.

    One row per ``(pair, change, n)`` with the columns of :data:`POWER_COLUMNS`:
    ``exponent_gap`` (``q - p``, negative entropy counting as ``p = 1``), ``relative_change``
    (mean measured in the true dual space), ``p_correct`` (fraction of repetitions where the
    truth has the lower Delta-CDF), ``ruled_out`` (fraction where, in addition, the bootstrap
    finds the alternative worse at ``confidence``), the mean Delta-CDF of both, and the
    centred finite-sample floor for ``n`` values.
    """
    cfg = cfg or PRESETS["ci"]
    n_max = int(max(cfg.n_synapses))
    cells: dict[tuple, list] = {}
    for r in range(cfg.repetitions):
        seed = _stream_seed(cfg.seed, 1, r)
        w0_full = sample_w0(cfg.power_w0, n_max, seed)
        for true, alternative in cfg.pairs:
            pot, alt = potential(true), potential(alternative)
            dual0 = pot.to_dual(w0_full)
            for change in cfg.changes:
                sigma = change * float(np.sqrt(np.mean(dual0**2)))
                w_full = simulate_after(w0_full, pot, sigma, seed=seed)
                for n in cfg.n_synapses:
                    scan = scan_geometry(
                        w0_full[:n],
                        w_full[:n],
                        [pot, alt],
                        n_boot=cfg.n_boot,
                        confidence=cfg.confidence,
                        seed=seed,
                    ).set_index("potential")
                    truth_best = scan.attrs["best"] == pot.name
                    ruled = truth_best and (
                        bool(scan.at[alt.name, "excluded"])
                        or not bool(scan.at[alt.name, "indistinguishable"])
                    )
                    cells.setdefault((pot.name, alt.name, change, int(n)), []).append(
                        (
                            scan.at[pot.name, "relative_change"],
                            truth_best,
                            ruled,
                            scan.at[pot.name, "delta_cdf"],
                            scan.at[alt.name, "delta_cdf"],
                            scan.attrs["floor"],
                        )
                    )
    rows = []
    for (true, alternative, change, n), values in cells.items():
        rel, best, ruled, d_true, d_alt, floor = np.asarray(values, dtype=float).T
        rows.append(
            {
                "pair": f"{true} vs {alternative}",
                "true_potential": true,
                "alternative": alternative,
                "exponent_gap": round(_exponent(alternative) - _exponent(true), 10),
                "change_scale": change,
                "n": n,
                "repetitions": len(values),
                "relative_change": float(rel.mean()),
                "p_correct": float(best.mean()),
                "ruled_out": float(ruled.mean()),
                "delta_cdf_true": float(np.nanmean(d_true)),
                "delta_cdf_alternative": float(np.nanmean(d_alt)),
                "floor": float(floor[0]),
            }
        )
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS))


def smallest_n(table: pd.DataFrame, criterion: str = "ruled_out", level: float = 0.9):
    """The fewest synapses (on the table's grid) at which ``criterion`` reaches ``level``.

    ``table`` from :func:`run_recovery_power`; ``criterion`` is ``"p_correct"`` or
    ``"ruled_out"``. The rate must stay at or above ``level`` for every larger ``n`` too.
    Returns a frame with one row per pair (in table order) and one column per ``change``;
    NaN where even the largest ``n`` falls short.
    """
    if criterion not in ("p_correct", "ruled_out"):
        raise ValueError(f"criterion must be 'p_correct' or 'ruled_out', got {criterion!r}")
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")

    def first_n(cell: pd.DataFrame) -> float:
        cell = cell.sort_values("n")
        ok = (cell[criterion] >= level).to_numpy()
        tail_ok = np.flip(np.logical_and.accumulate(np.flip(ok)))
        return float(cell["n"].to_numpy()[tail_ok][0]) if tail_ok.any() else math.nan

    out = (
        table.groupby(["pair", "change_scale"], sort=False)[["n", criterion]]
        .apply(first_n)
        .unstack("change_scale")
    )
    out = out.reindex(list(dict.fromkeys(table["pair"])))
    out.columns = [float(c) for c in out.columns]
    out.index.name, out.columns.name = "pair", "change_scale"
    return out


def _pair_words(true: str, neighbour: str) -> str:
    """``"the 3-norm against the 2.9-norm"``: a comparison in plain words (no TeX)."""
    return f"the {potential_in_words(true)} against the {potential_in_words(neighbour)}"


def neighbour_summary(advantage: pd.DataFrame) -> dict[str, object]:
    """What the chapter reads from a :func:`neighbour_advantage` table: ``rows``; ``positive``
    (``mean_gap > 0``); ``significant``, the comparisons whose ``verdict`` is ``"lower than"``
    (the truth lower by the paired t interval) and ``unresolved``, the others;
    ``positive_count`` and ``significant_count``, those counts out of ``rows`` in words (``"all
    20"``, ``"17 of the 20"``); ``above_zero``, the end of a sentence on the resolved ones:
    ``"lies above zero"``, then ``"; it does not for"`` the unresolved ones in words per
    ``(truth, neighbour)`` with their count and range of ``z`` where any are left; ``weakest``,
    the ``(truth, neighbour)`` pair with the smallest ``z`` in words, and ``weakest_z_min/max``,
    the range of
    ``z`` over that pair's comparisons; ``gap_min/max`` (``|mean_gap|``); ``need_min/max``
    (finite ``seeds_needed``); ``share_max`` (``share_truth_lower``); ``sd_ratio``, the
    smallest seed-to-seed sd of the gap over ``|mean_gap|``; ``everywhere``, whether every
    comparison is resolved in the truth's favour."""
    finite = advantage["seeds_needed"].replace(math.inf, math.nan)
    spread = advantage["se_gap"] * np.sqrt(advantage["n_seeds"])  # sd of the paired gap
    resolved = advantage["verdict"] == "lower than"
    by_pair = advantage.groupby(["true_potential", "neighbour"], sort=False)
    unresolved = []
    for (true, neighbour), rows in by_pair:
        z_open = rows.loc[~resolved[rows.index], "z"]
        if len(z_open):
            low, high = f"{z_open.min():.2f}", f"{z_open.max():.2f}"
            share = (
                "every comparison"
                if len(z_open) == len(rows)
                else f"{len(z_open)} of its {len(rows)} comparisons"
            )
            unresolved.append(
                f"{_pair_words(true, neighbour)} in {share} "
                f"(mean gap {low if low == high else f'{low} to {high}'} standard errors)"
            )
    weakest_true, weakest_neighbour = advantage.loc[
        advantage["z"].idxmin(), ["true_potential", "neighbour"]
    ]
    weakest = by_pair.get_group((weakest_true, weakest_neighbour))["z"]
    positive, significant = int((advantage["mean_gap"] > 0).sum()), int(resolved.sum())
    return {
        "rows": len(advantage),
        "positive": positive,
        "significant": significant,
        "unresolved": int((~resolved).sum()),
        "positive_count": count_of(positive, len(advantage)),
        "significant_count": count_of(significant, len(advantage)),
        "above_zero": "lies above zero"
        + (f"; it does not for {and_list(unresolved)}" if unresolved else ""),
        "weakest": _pair_words(weakest_true, weakest_neighbour),
        "weakest_z_min": float(weakest.min()),
        "weakest_z_max": float(weakest.max()),
        "gap_min": float(advantage["mean_gap"].abs().min()),
        "gap_max": float(advantage["mean_gap"].abs().max()),
        "need_min": float(finite.min()),
        "need_max": float(finite.max()),
        "share_max": float(advantage["share_truth_lower"].max()),
        "sd_ratio": float((spread / advantage["mean_gap"].abs()).min()),
        "everywhere": bool(resolved.all()),
    }


POWER_QUOTED = {
    "ne15": "negative_entropy vs 1.5-norm",
    "n225": "2-norm vs 2.5-norm",
    "ne12": "negative_entropy vs 1.2-norm",
}
"""The pairs whose smallest sample size :func:`power_summary` quotes, by key."""


def power_summary(
    power: pd.DataFrame, repetitions: int, level: float = 0.9
) -> tuple[pd.DataFrame, dict[str, object]]:
    """What the chapter reads from a :func:`run_recovery_power` table (``repetitions`` per cell).

    Returns :func:`smallest_n` for ``ruled_out`` at ``level``, and a dict: ``n_max`` and
    ``n_min`` (the grid of ``n``); ``n90_{key}`` for the pairs of :data:`POWER_QUOTED` at the
    middle change (NaN: more than ``n_max``); ``n90_far``, the most any pair with an exponent
    gap of 1 or more needs; ``same_gap``, the largest difference in ``ruled_out`` between pairs
    with the same gap (0.5: negative entropy vs 1.5-norm and 2-norm vs 2.5-norm; 1: negative
    entropy vs 2-norm and 2-norm vs 3-norm); ``small_vs_mid``, the largest difference between
    the smallest and middle change; ``large_gain``, the most the largest change adds to the
    smaller two's lower rate; ``rate_se``, the largest sampling error of a rate,
    ``0.5 / sqrt(repetitions)``; ``change_lo/mid/hi``. A table without those pairs or
    without exactly three change scales raises ``ValueError`` naming what is missing.
    """
    same_gap = [
        ("negative_entropy vs 1.5-norm", "2-norm vs 2.5-norm"),
        ("negative_entropy vs 2-norm", "2-norm vs 3-norm"),
    ]
    wanted = {*POWER_QUOTED.values(), *(pair for pairs in same_gap for pair in pairs)}
    missing = sorted(wanted - set(power["pair"]))
    if missing:
        raise ValueError(f"the power table lacks the pair(s) {missing} that the summary reads")
    changes = sorted(power["change_scale"].unique())
    if len(changes) != 3:
        raise ValueError(f"the power table needs 3 change scales, got {changes}")
    needed = smallest_n(power, "ruled_out", level)
    lo, mid, hi = changes
    values: dict[str, object] = {"n_max": int(power["n"].max()), "n_min": int(power["n"].min())}
    for key, pair in POWER_QUOTED.items():
        values[f"n90_{key}"] = float(needed.loc[pair, mid])
    far = power.loc[power["exponent_gap"].abs() >= 1, "pair"].unique()
    values["n90_far"] = float(needed.loc[far].max().max())
    rates = power.pivot_table(index=["change_scale", "n"], columns="pair", values="ruled_out")
    values["same_gap"] = max(float((rates[a] - rates[b]).abs().max()) for a, b in same_gap)
    by = power.pivot_table(index=["pair", "n"], columns="change_scale", values="ruled_out")
    values["small_vs_mid"] = float((by[lo] - by[mid]).abs().max())
    values["large_gain"] = float((by[hi] - by[[lo, mid]].min(axis=1)).max())
    values["rate_se"] = 0.5 / math.sqrt(repetitions)
    values |= {"change_lo": float(lo), "change_mid": float(mid), "change_hi": float(hi)}
    return needed, values
