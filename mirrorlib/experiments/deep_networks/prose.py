"""What ``book/deep_networks.md`` says about the sweep's tables, computed from them: the seeds
of each (network, trained potential), the weights left out of the analysis, the misses and
which of them were rerun, the size of the 3-norm's change measured in the weights, and the
dates of the stored records. Each function takes :func:`recovery_table` or :func:`collect`'s
tables (stored or just run) and returns plain words, no TeX, for the chapter to glue."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from mirrorlib.experiments.deep_networks.settings import RUN_KEYS
from mirrorlib.potentials import potential_in_words
from mirrorlib.words import and_list, count_of, number_in_words

_NETWORK_NAMES = {
    "mnist-cnn": "the MNIST CNN",
    "resnet-small": "the small ResNet",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_lite0": "EfficientNet-Lite0",
}


def network_name(architecture: str) -> str:
    """An architecture id as the chapter's prose names it: ``"mlp-32"`` -> ``"MLP-32"``,
    ``"rnn-100"`` -> ``"RNN-100"``, ``"mobilenet_v2"`` -> ``"MobileNetV2"``,
    ``"resnet-small"`` -> ``"the small ResNet"``; an id it does not know is returned as is."""
    if architecture in _NETWORK_NAMES:
        return _NETWORK_NAMES[architecture]
    kind, _, width = architecture.partition("-")
    return f"{kind.upper()}-{width}" if kind in ("mlp", "rnn") and width.isdigit() else architecture


def _label(architecture: str, objective: str) -> str:
    name = network_name(architecture)
    if objective == "supervised":
        return name
    return f"{name} (self-supervised)" if objective == "simsiam" else f"{name} ({objective})"


def largest_weight_change(runs: pd.DataFrame, trained_potential: str) -> str:
    """Over the (network, objective) pairs trained with ``trained_potential`` in a run table
    (:data:`COLUMNS`), the one whose seeds changed the weights most, ``||w - w0|| / ||w0||``
    (the 2-norm candidate's ``relative_change``): its median over seeds and the range, three
    significant digits (:func:`mirrorlib.words.number_in_words`), ``"a median of 9.63 × 10³
    over the 10 seeds of MobileNetV2, from 0.152 to 2.82 × 10¹⁴"`` (a mean would be one seed's
    value)."""
    rows = runs[(runs["trained_potential"] == trained_potential) & (runs["candidate"] == "2-norm")]
    per_pair = rows.groupby(["architecture", "objective"], sort=False)["relative_change"]
    (arch, objective), change = max(per_pair, key=lambda pair: pair[1].max())
    return (f"a median of {number_in_words(change.median())} over the {len(change)} seeds of "
            f"{_label(arch, objective)}, from {number_in_words(change.min())} to "
            f"{number_in_words(change.max())}")  # fmt: skip


def seeds_listing(recovery: pd.DataFrame) -> str:
    """The seeds behind each row of a :func:`recovery_table`, per network (and objective, when
    it is not ``supervised``): the networks whose trained potentials share a count grouped by
    it, then one count per trained potential for the others, ``"10 each for MLP-32 and
    MLP-128; EfficientNet-Lite0: 2-norm 3, 3-norm 3, negative entropy 5"``."""
    shared: dict[int, list[str]] = {}
    apart = []
    for (arch, objective), rows in recovery.groupby(["architecture", "objective"], sort=False):
        counts = rows.set_index("trained_potential")["n_seeds"]
        if counts.nunique() == 1:
            shared.setdefault(int(counts.iloc[0]), []).append(_label(arch, objective))
        else:
            each = ", ".join(f"{potential_in_words(pot)} {n}" for pot, n in counts.items())
            apart.append(f"{_label(arch, objective)}: {each}")
    grouped = [
        f"{n} for {names[0]}" if len(names) == 1 else f"{n} each for {and_list(names)}"
        for n, names in shared.items()
    ]
    return "; ".join(grouped + apart)


def _seeds_in_words(seeds: Collection[int]) -> str:
    """``"seed 2"`` or ``"seeds 2, 5 and 9"``, in increasing order."""
    seeds = sorted(int(s) for s in seeds)
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {and_list(map(str, seeds))}"


def runs_held(runs: pd.DataFrame) -> str:
    """What a run table (:data:`COLUMNS`) holds, per network (and objective), with the seeds
    of each trained potential: ``"EfficientNet-Lite0: 30 runs (seeds per trained potential:
    2-norm 10, 3-norm 10, negative entropy 10)"``, several networks joined by ``"; "``."""
    each_run = runs.drop_duplicates(list(RUN_KEYS))
    parts = []
    for (arch, objective), rows in each_run.groupby(["architecture", "objective"], sort=False):
        seeds = rows.groupby("trained_potential", sort=False)["seed"].nunique()
        each = ", ".join(f"{potential_in_words(pot)} {n}" for pot, n in seeds.items())
        runs_word = "run" if len(rows) == 1 else "runs"
        parts.append(f"{_label(arch, objective)}: {len(rows)} {runs_word} "
                     f"(seeds per trained potential: {each})")  # fmt: skip
    return "; ".join(parts)


def runs_by_seed(runs: pd.DataFrame) -> str:
    """The runs of a run table (:data:`COLUMNS`) by network and trained potential, with their
    seeds: ``"EfficientNet-Lite0 with the 3-norm, seeds 3, 4 and 5"``, joined by ``"; "``."""
    keys = ["architecture", "objective", "trained_potential"]
    return "; ".join(
        f"{_label(arch, objective)} with the {potential_in_words(pot)}, "
        f"{_seeds_in_words(rows['seed'].unique())}"
        for (arch, objective, pot), rows in runs.groupby(keys, sort=False)
    )


def retried_listing(runs: pd.DataFrame) -> str:
    """The runs of a run table (:data:`COLUMNS`) repeated at a smaller learning rate than the
    one chosen for their (network, objective, trained potential) (the largest rate among its
    seeds, since a retry only lowers it), grouped by rate: ``"MobileNetV2 with the negative
    entropy, seeds 2, 5 and 9: 0.1 instead of 1"``, or ``"none"``."""
    keys = ["architecture", "objective", "trained_potential"]
    each_run = runs.drop_duplicates([*keys, "seed"]).copy()
    each_run["chosen"] = each_run.groupby(keys)["lr"].transform("max")
    retried = each_run[each_run["lr"] < each_run["chosen"]]
    parts = []
    for (arch, objective, pot, lr, chosen), rows in retried.groupby(
        [*keys, "lr", "chosen"], sort=False
    ):
        which = _seeds_in_words(rows["seed"])
        parts.append(f"{_label(arch, objective)} with the {potential_in_words(pot)}, {which}: "
                     f"{lr:g} instead of {chosen:g}")  # fmt: skip
    return "; ".join(parts) or "none"


def capped_listing(runs: pd.DataFrame) -> str:
    """The supervised runs of a run table (:data:`COLUMNS`) that stopped at the cap on epochs
    short of 100 % training accuracy, grouped by trained potential and accuracy (and network,
    when the table holds several): ``"negative entropy, seeds 1 and 5, stopped at the cap of
    150 epochs at 99.95%"``; several groups share one cap at the end (``"...; ...: stopped at
    the cap of 150 epochs"``); ``"none"`` when every run reached 100 %."""
    each_run = runs.drop_duplicates(list(RUN_KEYS))
    capped = each_run[(each_run["objective"] == "supervised") & (each_run["train_accuracy"] < 1)]
    several = runs["architecture"].nunique() > 1
    capped = capped.assign(accuracy=[f"{a:.2%}" for a in capped["train_accuracy"]])
    keys = ["epochs", "architecture", "objective", "trained_potential", "accuracy"]
    groups = []
    for (cap, arch, objective, pot, accuracy), rows in capped.groupby(keys):
        which = _seeds_in_words(rows["seed"])
        name = potential_in_words(pot)
        who = f"{_label(arch, objective)} with the {name}" if several else name
        groups.append((int(cap), f"{who}, {which}", accuracy))
    caps = {cap for cap, _, _ in groups}
    if len(caps) != 1 or len(groups) == 1:
        return (
            "; ".join(
                f"{who}, stopped at the cap of {cap} epochs at {accuracy}"
                for cap, who, accuracy in groups
            )
            or "none"
        )
    return "; ".join(f"{who}, at {accuracy}" for _, who, accuracy in groups) + (
        f": stopped at the cap of {caps.pop()} epochs"
    )


def zero_weights_listing(runs: pd.DataFrame) -> str:
    """The networks of a run table (:data:`COLUMNS`) whose pretrained weights hold exact zeros,
    which :func:`analyse` leaves out: ``"EfficientNet-Lite0 (6,127 of its 3,328,992 weights,
    leaving 3,322,865)"`` (the most any of its runs dropped), or ``"none"``."""
    most = runs.groupby("architecture", sort=False)[["n_zero_dropped", "n_weights"]].max()
    parts = []
    for arch, zeros, analysed in most.itertuples():
        if zeros > 0:
            parts.append(f"{network_name(arch)} ({int(zeros):,} of its "
                         f"{int(zeros + analysed):,} weights, "
                         f"leaving {int(analysed):,})")  # fmt: skip
    return "; ".join(parts) or "none"


def misses_in_words(recovery: pd.DataFrame) -> str:
    """The missed rows of a :func:`recovery_table` (the recovered potential is not the trained
    one): ``"every miss is the same: the 3-norm read as the 2.5-norm, on MLP-32 and MLP-128"``,
    ``"the misses differ: MLP-32: the 3-norm read as the 2.5-norm; ..."`` or
    ``"no pair is missed"``."""
    misses = recovery[~recovery["correct"]]
    if misses.empty:
        return "no pair is missed"
    kinds = list(dict.fromkeys(zip(misses["trained_potential"], misses["recovered"], strict=True)))
    labels = [_label(r.architecture, r.objective) for r in misses.itertuples()]
    if len(kinds) == 1:
        trained, read = kinds[0]
        return (f"every miss is the same: the {potential_in_words(trained)} read as the "
                f"{potential_in_words(read)}, on {and_list(labels)}")  # fmt: skip
    return "the misses differ: " + "; ".join(
        f"{label}: the {potential_in_words(r.trained_potential)} read as the "
        f"{potential_in_words(r.recovered)}"
        for label, r in zip(labels, misses.itertuples(), strict=True)
    )


def not_rerun(recovery: pd.DataFrame, rerun: Collection[str]) -> tuple[str, str]:
    """Two sentences on the missed rows of a :func:`recovery_table` whose network is not among
    ``rerun`` (the networks the 3-norm investigation reran): which were not rerun, and that
    their misses stay unexplained; ``("Every network missed ... was rerun.", "")`` when none."""
    misses = recovery[~recovery["correct"] & ~recovery["architecture"].isin(list(rerun))]
    labels = list(dict.fromkeys(_label(r.architecture, r.objective) for r in misses.itertuples()))
    if not labels:
        return "Every network missed at the `paper` protocol was rerun.", ""
    names = and_list(labels)
    one = len(labels) == 1
    return (
        f"The other network{'' if one else 's'} missed at the `paper` protocol, {names}, "
        f"{'was' if one else 'were'} not rerun.",
        f"The miss{'' if one else 'es'} on {names} {'was' if one else 'were'} not rerun and "
        f"{'stays' if one else 'stay'} unexplained here.",
    )


def three_norm_weight_change(recovery: pd.DataFrame) -> tuple[str, str]:
    """The size of the 3-norm's change measured in the weights (``weight_change`` of a
    :func:`recovery_table`, ``||w - w0|| / ||w0||``, the same units for every potential):

    - in how many (network, objective) pairs it exceeds the 2-norm's, ``"8 of the 11"``
      (:func:`mirrorlib.words.count_of`);
    - a sentence saying whether it sets the missed 3-norm pairs apart from those read
      correctly: their ranges overlap, or the misses are the larger or the smaller changes.
    """
    keys = ["architecture", "objective"]
    change = recovery.pivot_table(index=keys, columns="trained_potential", values="weight_change")
    both = change[["2-norm", "3-norm"]].dropna()
    more = count_of(int((both["3-norm"] > both["2-norm"]).sum()), len(both))
    three = recovery[recovery["trained_potential"] == "3-norm"]
    missed = three.loc[~three["correct"], "weight_change"]
    read = three.loc[three["correct"], "weight_change"]

    def span(values: pd.Series) -> str:
        return f"{values.min():.3f} to {values.max():.3f}"

    if missed.empty:
        return more, "Every 3-norm pair is read correctly, whatever the size of its change."
    if read.empty:
        return more, f"Every 3-norm pair is misread, at changes of {span(missed)}."
    if missed.min() > read.max():
        verdict = "the misses are the largest changes"
    elif missed.max() < read.min():
        verdict = "the misses are the smallest changes"
    else:
        verdict = "the size does not set the misses apart"
    return more, (
        f"Across networks {verdict}: the misread 3-norm pairs changed their weights by "
        f"{span(missed)} (mean over seeds), those read correctly by {span(read)}."
    )
