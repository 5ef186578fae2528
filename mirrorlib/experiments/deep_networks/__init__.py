"""Recovering the geometry of finetuned deep networks: the experiments of the chapter
``book/deep_networks.md`` (the paper's Fig 4 and its RNN and self-supervised appendices).

A pretrained network is finetuned by mirror descent with a known (*trained*) potential on
``N = round(sqrt(D))`` examples, ``D`` the number of analysed weights, until it classifies
them all correctly; then every *candidate* potential is scored by the Delta-CDF of its dual
change ``grad_phi(w_after) - grad_phi(w_before)`` over the analysed weights
(:func:`mirrorlib.recovery.scan_geometry`). The geometry is recovered when the trained
potential scores lowest.

The code lives in five modules, all re-exported here:
:mod:`~mirrorlib.experiments.deep_networks.settings` (the networks, the protocol's presets and
the runs), :mod:`~mirrorlib.experiments.deep_networks.runs` (one run: data, pretrained network,
learning-rate search, finetuning, scoring),
:mod:`~mirrorlib.experiments.deep_networks.sweeping` (the sweep's tasks, its folder, and its
results as tables), :mod:`~mirrorlib.experiments.deep_networks.batch_norm` (how far the
batch norm's running statistics lag behind the weights during a run) and
:mod:`~mirrorlib.experiments.deep_networks.prose` (what the chapter says about the tables,
computed from them).

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

from mirrorlib.experiments.deep_networks.batch_norm import (
    LAG_COLUMNS,
    recalibrated,
    running_statistics_lag,
)
from mirrorlib.experiments.deep_networks.prose import (
    capped_listing,
    largest_weight_change,
    misses_in_words,
    network_name,
    not_rerun,
    retried_listing,
    runs_by_seed,
    runs_held,
    seeds_listing,
    three_norm_weight_change,
    zero_weights_listing,
)
from mirrorlib.experiments.deep_networks.runs import (
    analyse,
    choose_lr,
    finetune_run,
    n_samples,
    pretrain,
    pretrained_network,
    run_one,
    search_lr,
)
from mirrorlib.experiments.deep_networks.settings import (
    CANDIDATES,
    COLUMNS,
    PRESETS,
    RUN_KEYS,
    DeepNetworksConfig,
    NetworkSetup,
    RunSpec,
    config,
    run_specs,
)
from mirrorlib.experiments.deep_networks.sweeping import (
    STORED_CHAPTER,
    STORED_SWEEPS,
    check_folder,
    collect,
    execute_sweep,
    network_table,
    recovery_table,
    restore_runs,
    run_sweep,
    search_seconds,
    select_specs,
    store_runs,
    stored_sweep,
    summary,
    sweep_folder,
    sweep_tasks,
)

__all__ = [
    "LAG_COLUMNS",
    "analyse",
    "largest_weight_change",
    "misses_in_words",
    "n_samples",
    "network_name",
    "not_rerun",
    "retried_listing",
    "runs_by_seed",
    "runs_held",
    "capped_listing",
    "seeds_listing",
    "three_norm_weight_change",
    "zero_weights_listing",
    "CANDIDATES",
    "COLUMNS",
    "PRESETS",
    "RUN_KEYS",
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
    "recalibrated",
    "recovery_table",
    "STORED_CHAPTER",
    "STORED_SWEEPS",
    "store_runs",
    "stored_sweep",
    "run_one",
    "run_specs",
    "restore_runs",
    "run_sweep",
    "running_statistics_lag",
    "search_lr",
    "search_seconds",
    "select_specs",
    "summary",
    "sweep_folder",
    "sweep_tasks",
]
