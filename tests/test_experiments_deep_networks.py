"""The deep-network protocol and its resumable sweep, on tiny settings (sklearn digits)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from tiny_settings import tiny_deep_networks_config

from mirrorlib import networks as nw
from mirrorlib import sweep as sw
from mirrorlib.experiments import deep_networks as dn
from mirrorlib.experiments import finetuning as ft
from mirrorlib.experiments.deep_networks import runs as dn_runs
from mirrorlib.experiments.deep_networks import sweeping as dn_sweeping
from mirrorlib.recovery import InputError

matplotlib.use("Agg")


def _tiny(**overrides) -> dn.DeepNetworksConfig:
    """An MLP pretrained on sklearn's training digits, finetuned on N = 150 held-out ones, in
    the three trained potentials of the ``ci`` preset."""
    lr_overrides = (("negative_entropy", (0.3,)), ("3-norm", (0.005,)))
    return tiny_deep_networks_config(**{"lr_overrides": lr_overrides, **overrides})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    cfg = _tiny()
    table = dn.run_sweep(cfg, out)
    return cfg, out, table


def test_the_sweep_writes_one_file_per_run_with_the_documented_columns(sweep):
    cfg, out, table = sweep
    specs = dn.run_specs(cfg)
    assert len(specs) == 3 * 2
    assert sorted(p.stem for p in (out / "runs").glob("*.csv")) == sorted(s.run_id for s in specs)
    assert tuple(table.columns) == dn.COLUMNS
    assert len(table) == len(specs) * len(dn.CANDIDATES)
    issue_columns = {"architecture", "n_weights", "n_samples", "objective", "trained_potential"}
    issue_columns |= {"candidate", "seed", "lr", "epochs", "train_accuracy", "delta_cdf"}
    assert issue_columns | {"relative_change"} <= set(table.columns)
    assert (table["n_weights"] == nw.n_analysed("mlp-32")).all()
    assert (table["n_samples"] == 150).all()
    assert not list((out / "runs").glob(".*tmp"))  # no half-written files left


def test_finetuning_reaches_full_training_accuracy_and_keeps_signs_under_ne(sweep):
    _, _, table = sweep
    own = table[table["candidate"] == table["trained_potential"]]
    assert (own["train_accuracy"] == 1.0).all()
    ne = own[own["trained_potential"] == "negative_entropy"]
    assert (ne["n_sign_flips"] == 0).all()
    assert not ne["excluded"].any()
    # a p-norm run that flipped a sign excludes negative entropy as a candidate
    flipped = table[(table["n_sign_flips"] > 0) & (table["candidate"] == "negative_entropy")]
    assert flipped["excluded"].all() and flipped["delta_cdf"].isna().all()


def test_the_trained_geometry_is_recovered_for_2norm_and_negative_entropy(sweep):
    _, _, table = sweep
    rec = dn.recovery_table(table).set_index("trained_potential")
    assert rec.loc["negative_entropy", "recovered"] == "negative_entropy"
    assert rec.loc["2-norm", "recovered"] == "2-norm"
    assert {"recovered", "correct", "p_best", "ruled_out", "seeds_correct"} <= set(rec.columns)
    summary = dn.summary(table)
    assert (summary["n_seeds"] == 2).all()


def test_an_interrupted_sweep_resumes_and_reruns_nothing_done(sweep, monkeypatch):
    cfg, out, table = sweep
    victim = dn.run_specs(cfg)[1]
    (out / "runs" / f"{victim.run_id}.csv").unlink()
    calls = []
    real = dn.finetune_run

    def counting(spec, *args, **kwargs):
        calls.append(spec.run_id)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(dn_sweeping, "finetune_run", counting)  # what the sweep calls
    again = dn.run_sweep(cfg, out)
    assert calls == [victim.run_id]
    key = ["trained_potential", "seed", "candidate"]
    pd.testing.assert_series_equal(
        again.set_index(key)["delta_cdf"], table.set_index(key)["delta_cdf"], rtol=1e-6
    )


def test_parts_split_the_sweep_without_overlap():
    cfg = dn.config("paper")
    specs = dn.run_specs(cfg)
    parts = [specs[i::3] for i in range(3)]
    ids = [s.run_id for part in parts for s in part]
    assert sorted(ids) == sorted(s.run_id for s in specs) and len(set(ids)) == len(ids)
    assert len({s.run_id for s in specs}) == len(specs)
    assert sum(s.objective == "simsiam" for s in specs) == 3 * cfg.n_seeds
    with pytest.raises(InputError, match="part"):
        dn.run_sweep(_tiny(), "/nonexistent", part=(3, 3))


def test_paper_config_follows_the_paper():
    cfg = dn.config("paper")
    assert cfg.n_seeds == 10 and cfg.batch_size == 256 and cfg.momentum == 0.9
    assert (cfg.epochs, cfg.extra_epochs, cfg.max_epochs) == (30, 30, 150)
    assert cfg.lrs == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    assert set(cfg.trained_potentials) == {"negative_entropy", "2-norm", "3-norm"}
    assert cfg.candidates == dn.CANDIDATES
    sizes = [nw.n_analysed(s.architecture) for s in cfg.networks]
    assert max(sizes) / min(sizes) > 100
    for setup in cfg.networks:
        if setup.architecture.startswith("rnn-"):
            hidden = int(setup.architecture.split("-")[1])
            assert dn.n_samples(setup) == hidden  # N = sqrt(H^2) = H, as in the appendix


def test_finetune_extends_the_cosine_until_full_accuracy_or_the_cap():
    torch.manual_seed(0)
    y = torch.arange(64) % 10
    x = torch.randn(10, 1, 28, 28)[y] + 0.3 * torch.randn(64, 1, 28, 28)  # noisy templates
    model = nw.build("mlp-32")
    cfg = _tiny(stop_at_100=False, epochs=2, extra_epochs=3, max_epochs=11, batch_size=16)
    res = ft.finetune(model, x, y, "2-norm", 1e-6, cfg, seed=0)  # far too small to fit
    assert res.epochs == 11 and res.train_accuracy < 0.5
    res = ft.finetune(nw.build("mlp-32"), x, y, "2-norm", 0.05, cfg, seed=0)
    assert res.epochs in (2, 5, 8, 11)  # accuracy is only checked at the end of a horizon
    assert res.train_accuracy == 1.0 or (res.epochs == 11 and res.train_accuracy > 0.9)


def test_a_diverging_run_is_recorded_not_raised():
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    res = ft.finetune(nw.build("mlp-32"), x, y, "2-norm", 1e6, _tiny(), seed=0)
    assert res.train_accuracy == 0.0 and math.isinf(res.final_loss)


def test_a_run_that_diverges_is_repeated_at_the_next_smaller_learning_rate(tmp_path, capsys):
    cfg = _tiny(lrs=(1e30, 1e25, 0.03), trained_potentials=("2-norm",), n_seeds=1)
    lr_file = tmp_path / "lr" / "mlp-32__supervised__2-norm.json"
    sw.write_file(lr_file, {"lr": 1e30}, sw.json_codec)
    table = dn.run_one(dn.RunSpec("mlp-32", "2-norm", 0), cfg, tmp_path)
    assert (table["lr"] == 0.03).all()  # 1e30 and 1e25 diverge: both are retried
    assert table["final_loss"].map(math.isfinite).all() and (table["train_accuracy"] > 0.9).all()
    printed = capsys.readouterr().out
    assert "diverged at lr = 1e+30; retrying at lr = 1e+25" in printed
    assert "diverged at lr = 1e+25; retrying at lr = 0.03" in printed
    # with nothing smaller left to try, the diverged run is recorded as such
    cfg = _tiny(lrs=(1e30,), trained_potentials=("2-norm",), n_seeds=1)
    table = dn.run_one(dn.RunSpec("mlp-32", "2-norm", 0), cfg, tmp_path / "other")
    assert (table["lr"] == 1e30).all() and (table["train_accuracy"] == 0).all()


def test_lr_search_picks_the_learning_rate_that_fits_and_caches_it(tmp_path):
    cfg = _tiny(lrs=(1e-7, 0.1), lr_overrides=(), search_epochs=10)
    setup = cfg.networks[0]
    assert dn.choose_lr(setup, "2-norm", cfg, tmp_path, "cpu") == 0.1
    cached = tmp_path / "lr" / "mlp-32__supervised__2-norm.json"
    assert cached.is_file()
    sw.write_file(cached, {"lr": 0.5}, sw.json_codec)
    assert dn.choose_lr(setup, "2-norm", cfg, tmp_path, "cpu") == 0.5


def test_simsiam_variant_runs_and_analyses_the_backbone(tmp_path):
    cfg = _tiny(objectives=("simsiam",), ssl_networks=("mlp-32",), n_seeds=1, ssl_epochs=2,
                trained_potentials=("2-norm",), lrs=(0.05,))  # fmt: skip
    table = dn.run_sweep(cfg, tmp_path)
    assert len(table) == len(dn.CANDIDATES)
    assert (table["objective"] == "simsiam").all()
    assert table["train_accuracy"].isna().all() and np.isfinite(table["final_loss"]).all()
    assert table["delta_cdf"].notna().sum() >= 4


def test_augment_shifts_within_bounds():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 14, 14] = 1
    out = ft.augment(x, gen, shift=3, noise=0.0)
    assert out.shape == x.shape
    for img in out:
        r, c = (img[0] == 1).nonzero()[0].tolist()
        assert abs(r - 14) <= 3 and abs(c - 14) <= 3


@pytest.mark.parametrize("name", ["rnn-100", "resnet-small", "mnist-cnn", "mobilenet_v2"])
def test_every_architecture_survives_a_tiny_finetune_and_analysis(name):
    if nw.ARCHITECTURES[name].pretrained_elsewhere:
        try:
            base = nw.load_pretrained(name)
        except nw.NetworkUnavailable as err:
            pytest.skip(str(err))
    else:
        base = nw.build(name)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    setup = dn.NetworkSetup(name, "digits")
    size = 32 if nw.ARCHITECTURES[name].channels == 3 else None
    x = nw.prepare_images(torch.rand(16, 1, 28, 28), name, size)
    y = torch.arange(16) % 10
    model, _ = dn_runs._prepare_model(base, setup, "supervised", y, 0, "cpu")
    cfg = _tiny(epochs=1, max_epochs=1, batch_size=8)
    res = ft.finetune(model, x, y, "negative_entropy", 0.1, cfg, seed=0)
    assert res.epochs == 1
    scan, info = dn.analyse(
        nw.analysed_weights(base, name), nw.analysed_weights(model, name), dn.CANDIDATES, 0
    )
    assert info["n_sign_flips"] == 0 and info["n_weights"] > 0
    assert scan["delta_cdf"].notna().all()


def test_figures_draw_from_the_table(sweep):
    from mirrorlib.plotting import deep_networks as plots

    _, _, table = sweep
    ax = plots.plot_delta_cdf_vs_size(table)
    assert len(ax.lines) >= 1
    names = {dn.network_name(a).removeprefix("the ") for a in table["architecture"]}
    legend = {t.get_text() for t in ax.figure.legends[0].get_texts()}
    assert names <= legend and not legend & set(table["architecture"]) - names
    axes = plots.plot_candidate_scan(table)
    assert axes.size >= 1 and len(axes.flat[0].lines) >= 3
    titles = {a.get_title().split("\n")[0] for a in axes.flat}
    assert titles == names


def test_restored_runs_and_rates_are_not_run_again(sweep, tmp_path):
    _, _, table = sweep
    cfg = _tiny(lrs=(0.01, 0.03))  # the 2-norm's rate is searched here
    assert dn.restore_runs(cfg, tmp_path, table) == (6, 1)
    assert dn.restore_runs(cfg, tmp_path, table) == (0, 0)  # kept
    pd.testing.assert_frame_equal(dn.collect(tmp_path, cfg), table)
    assert dn.choose_lr(cfg.setup("mlp-32"), "2-norm", cfg, tmp_path, "cpu") == 0.03
    assert dn.execute_sweep(cfg, tmp_path).ran() == []
    with pytest.raises(InputError, match="not one per candidate"):
        dn.restore_runs(cfg, tmp_path, table.iloc[:-1])


def test_stored_runs_keep_their_provenance_and_grow_only_by_new_runs(sweep, tmp_path):
    from dataclasses import replace

    from mirrorlib.stored import Provenance, read_stored

    _, _, table = sweep
    record = Provenance("abc1234fed", "cmd", "cpu: test", "2.13", "2026-12-07 01:00 UTC", 0, "")
    first = table[table["seed"] == 0]
    runs_s = first.drop_duplicates("trained_potential")["seconds"].sum()
    stored, added = dn.store_runs(first, "t", replace(record, note="A test."), 60.0, tmp_path)
    assert added == 3 and stored.wall_time_s == round(runs_s + 60.0, 1)
    assert stored.note == (
        f"{dn.runs_held(first)}. The wall time is the sum of the runs' own times and the "
        "learning-rate searches' (60 seconds). A test."
    )
    assert dn.runs_held(first) == (
        "MLP-32: 3 runs (seeds per trained potential: 2-norm 1, 3-norm 1, negative entropy 1)"
    )
    again, kept = read_stored("deep_networks", "t", tmp_path)
    pd.testing.assert_frame_equal(again, first.reset_index(drop=True))
    assert kept == stored
    # the second seed joins; the first seed's rows come back unchanged
    grown, added = dn.store_runs(table, "t", replace(record, commit="fff9999aaa"), 5.0, tmp_path)
    all_s = table.drop_duplicates(["trained_potential", "seed"])["seconds"].sum()
    assert added == 3 and grown.commit == "fff9999aaa"
    assert grown.wall_time_s == pytest.approx(stored.wall_time_s - runs_s + all_s, abs=0.11)
    assert grown.note.startswith(f"{dn.runs_held(table)}. 3 of them (MLP-32 with the 2-norm, "
                                 "seed 1; MLP-32 with the 3-norm, seed 1; MLP-32 with the "
                                 "negative entropy, seed 1) were stored at commit fff9999, "
                                 "joining the 3 stored at commit abc1234 on 2026-12-07 01:00 "
                                 "UTC, whose "
                                 f"record read: \u201c{stored.note}\u201d")  # fmt: skip
    assert dn.store_runs(table, "t", record, 0.0, tmp_path) == (grown, 0)  # nothing new
    rounded = table.copy()
    rounded["delta_cdf"] *= 1 + 1e-14  # within 1e-12 relative: the same run
    assert dn.store_runs(rounded, "t", record, 0.0, tmp_path) == (grown, 0)
    p_best = table.loc[0, "p_best"]
    for column, value in (
        ("delta_cdf", table.loc[0, "delta_cdf"] + 1e-9),
        ("best", "another"),
        ("excluded", not table.loc[0, "excluded"]),
        ("p_best", 0.5 if pd.isna(p_best) else float("nan")),
    ):
        changed = table.copy()
        changed.loc[0, column] = value
        with pytest.raises(InputError, match=rf"differs from the stored table t \({column} "):
            dn.store_runs(changed, "t", record, 0.0, tmp_path)
    with pytest.raises(InputError, match="which the sweep folder lacks: add --from-stored"):
        dn.store_runs(table[table["seed"] == 1], "t", record, 0.0, tmp_path)
    with pytest.raises(InputError, match="no finished runs to store as t"):
        dn.store_runs(table.iloc[:0], "t", record, 0.0, tmp_path)
    assert read_stored("deep_networks", "t", tmp_path)[1] == grown


def test_a_sweep_folder_refuses_runs_of_other_settings(sweep):
    cfg, out, _ = sweep
    with pytest.raises(InputError, match="other settings"):
        dn.run_sweep(_tiny(lrs=(0.5,)), out)
    assert dn.sweep_folder("r", cfg) == dn.sweep_folder("r", _tiny())
    assert dn.sweep_folder("r", cfg) != dn.sweep_folder("r", _tiny(seed=1))


def test_learning_rate_overrides_by_network_objective_and_potential():
    cfg = _tiny(
        lrs=(0.1,),
        lr_overrides=(
            ("mlp-32:simsiam:2-norm", (0.5,)),
            ("mlp-32:2-norm", (0.2,)),
            ("negative_entropy", (1.0,)),
        ),
    )
    assert cfg.lr_grid("mlp-32", "2-norm") == (0.2,)
    assert cfg.lr_grid("mlp-32", "2-norm", "simsiam") == (0.5,)
    assert cfg.lr_grid("mlp-32", "3-norm", "simsiam") == (0.1,)
    assert cfg.lr_grid("rnn-100", "negative_entropy") == (1.0,)


def test_finetune_subcommand_lists_slices_and_rejects_bad_parts(capsys):
    from mirrorlib import cli

    assert cli.main(["finetune", "--scale", "ci", "--part", "2/3", "--list"]) == 0
    slice_ids = capsys.readouterr().out.split()
    all_ids = [spec.run_id for spec in dn.run_specs(dn.config("ci"))]
    assert slice_ids == all_ids[1::3]
    for bad in ("3/2", "0/2", "x"):
        assert cli.main(["finetune", "--part", bad, "--list"]) == 2
        assert "--part must be i/k" in capsys.readouterr().err


def test_finetune_list_keeps_only_the_named_networks(capsys):
    from mirrorlib import cli

    assert cli.main(["finetune", "--scale", "ci", "--networks", "mnist-cnn", "--list"]) == 0
    ids = capsys.readouterr().out.split()
    expected = [s.run_id for s in dn.run_specs(dn.config("ci")) if s.architecture == "mnist-cnn"]
    assert ids == expected and len(ids) > 0
    assert (
        dn.select_specs(dn.config("ci"), (1, 2), ["mnist-cnn"])
        == [s for s in dn.run_specs(dn.config("ci")) if s.architecture == "mnist-cnn"][1::2]
    )
    assert cli.main(["finetune", "--scale", "ci", "--networks", "rnn-10000", "--list"]) == 2
    err = capsys.readouterr().err
    assert "no network(s) rnn-10000 in this sweep; choose from rnn-100" in err


def test_a_cnn_on_the_cpu_is_finetuned_channels_last_and_analysed_in_logical_order():
    torch.manual_seed(0)
    y = torch.arange(32) % 10
    x = torch.randn(10, 1, 28, 28)[y] + 0.3 * torch.randn(32, 1, 28, 28)
    assert not ft._prefers_channels_last(nw.build("mlp-32"), x.flatten(1))
    base = nw.build("mnist-cnn")
    plain = {k: v.clone() for k, v in base.state_dict().items()}
    model = nw.build("mnist-cnn")
    model.load_state_dict(plain)
    assert ft._prefers_channels_last(model, x)
    cfg = _tiny(stop_at_100=False, epochs=1, max_epochs=1, batch_size=16)
    ft.finetune(model, x, y, "ne", 1e-3, cfg, seed=0)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    after = nw.analysed_weights(model, "mnist-cnn")
    assert all(w.is_contiguous() for w in after.values())
    for key, w in after.items():  # same weights, logical order: NE moved each one a little
        ratio = w / plain[key].double()
        assert torch.all(ratio > 0) and float((ratio - 1).abs().max()) < 0.5


# --------------------------------------------------------------------------- checkpoints


class _Interrupted(Exception):
    pass


def _interrupt_after(monkeypatch, epochs: int) -> None:
    """Make the next :func:`finetune` stop (raise) when it starts epoch ``epochs + 1``."""
    real, started = ft.batches, []

    def counting(*args):
        started.append(1)
        if len(started) > epochs:
            raise _Interrupted
        return real(*args)

    monkeypatch.setattr(ft, "batches", counting)


def _small_cnn() -> torch.nn.Module:
    """Convolution, batch norm and dropout: weights, buffers and torch's random state."""
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
        nn.Linear(4 * 26 * 26, 10),
    )  # fmt: skip


def _assert_same_run(a: ft.FinetuneResult, b: ft.FinetuneResult, ma, mb) -> None:
    assert (a.epochs, a.train_accuracy, a.final_loss, a.history) == (
        b.epochs, b.train_accuracy, b.final_loss, b.history,
    )  # fmt: skip
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_an_interrupted_finetune_resumes_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    torch.manual_seed(0)
    y = torch.arange(48) % 10
    x = torch.randn(10, 1, 28, 28)[y] + 0.5 * torch.randn(48, 1, 28, 28)
    cfg = _tiny(stop_at_100=False, epochs=3, extra_epochs=2, max_epochs=9, batch_size=16)
    torch.manual_seed(7)
    whole = ft.finetune(full := _small_cnn(), x, y, "negative_entropy", 0.02, cfg, seed=3)
    assert whole.epochs > 3  # the schedule was extended: the checkpoint must carry the horizon

    path = tmp_path / "run.pt"
    _interrupt_after(monkeypatch, 4)
    torch.manual_seed(7)
    with pytest.raises(_Interrupted):
        ft.finetune(_small_cnn(), x, y, "negative_entropy", 0.02, cfg, 3, None, None, path, 0.0)
    monkeypatch.undo()
    torch.manual_seed(123)  # another random state, and other weights: both come from the file
    other = _small_cnn()
    torch.nn.init.normal_(other[0].weight)
    again = ft.finetune(other, x, y, "negative_entropy", 0.02, cfg, 3, None, None, path, 0.0)
    assert again.resumed_at == 4 and again.earlier_seconds > 0
    _assert_same_run(whole, again, full, other)
    assert path.is_file()  # the caller removes it once the result is kept


def test_a_checkpoint_of_another_run_or_a_damaged_one_is_not_resumed_from(
    tmp_path, monkeypatch, capsys
):
    y = torch.arange(32) % 10
    x = torch.randn(32, 1, 28, 28)
    cfg = _tiny(stop_at_100=False, epochs=3, max_epochs=3, batch_size=16)
    torch.manual_seed(1)
    fresh = ft.finetune(model := _small_cnn(), x, y, "2-norm", 0.02, cfg, seed=0)
    path = tmp_path / "run.pt"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(_Interrupted):  # the same run at another learning rate
        ft.finetune(_small_cnn(), x, y, "2-norm", 0.05, cfg, 0, None, None, path, 0.0)
    monkeypatch.undo()
    for damage in (None, "another network", b"not a checkpoint"):
        if damage == "another network":  # same run settings, other parameters
            ckpt = torch.load(path, weights_only=True)
            ckpt["state"]["model"] = nw.build("mlp-32").state_dict()
            ckpt["run"]["lr"] = 0.02
            torch.save(ckpt, path)
        elif damage is not None:
            path.write_bytes(damage)
        torch.manual_seed(1)
        again = ft.finetune(other := _small_cnn(), x, y, "2-norm", 0.02, cfg, 0, None, None, path)
        assert again.resumed_at == 0
        _assert_same_run(fresh, again, model, other)
    err = capsys.readouterr().err
    assert "a checkpoint of another run; starting afresh" in err and "not resumed from" in err


def test_an_interrupted_simsiam_run_resumes_with_its_views(tmp_path, monkeypatch):
    base = nw.build("mlp-32")
    setup = dn.NetworkSetup("mlp-32", "digits", new_head=False)
    y = torch.arange(32) % 10
    x = torch.randn(32, 1, 28, 28)
    cfg = _tiny(batch_size=16)

    def run(path=None):
        torch.manual_seed(0)
        model, loss = dn_runs._prepare_model(base, setup, "simsiam", y, 0, "cpu")
        res = ft.finetune(model, x, y, "2-norm", 0.05, cfg, 0, 4, loss, path, 0.0)
        return res, model

    whole, full = run()
    path = tmp_path / "ssl.pt"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(_Interrupted):
        run(path)
    monkeypatch.undo()
    again, model = run(path)
    assert again.resumed_at == 2
    _assert_same_run(whole, again, full, model)


# --------------------------------------------------------------------------- batch norm


def test_recalibrated_statistics_are_the_mean_of_the_batches_and_nothing_else_changes():
    torch.manual_seed(0)
    model = _small_cnn()
    model[1].running_mean.fill_(5.0)  # stale statistics, as after pretraining elsewhere
    x = torch.randn(40, 1, 28, 28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = dn.recalibrated(model, x, batch_size=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    features = [model[0](x[i : i + 16]).detach() for i in range(0, 40, 16)]  # 16, 16, 8
    means = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    variances = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features]).mean(0)
    bn = twin[1]
    assert torch.allclose(bn.running_mean, means, atol=1e-6)
    assert torch.allclose(bn.running_var, variances, rtol=1e-5)
    assert not twin.training and not bn.training
    weights = {k: v for k, v in twin.state_dict().items() if "running" not in k and "num" not in k}
    assert all(torch.equal(before[k], v) for k, v in weights.items())
    with pytest.raises(ValueError, match="no batch norm"):
        dn.recalibrated(nw.build("mlp-32"), x.flatten(1), 16)


def test_looking_after_each_epoch_leaves_the_training_as_it_was():
    y = torch.arange(32) % 10
    x = torch.randn(32, 1, 28, 28)
    cfg = _tiny(stop_at_100=False, epochs=3, max_epochs=3, batch_size=16)
    torch.manual_seed(1)
    plain = ft.finetune(a := _small_cnn(), x, y, "negative_entropy", 0.02, cfg, seed=0)
    seen = []

    def look(epoch, loss, model, xs, ys):
        seen.append((epoch, loss))
        dn.recalibrated(model, xs, 8)
        ft._accuracy(model, xs, ys)

    torch.manual_seed(1)
    b = _small_cnn()
    looked = ft.finetune(b, x, y, "negative_entropy", 0.02, cfg, 0, after_epoch=look)
    _assert_same_run(plain, looked, a, b)
    assert seen == list(enumerate(plain.history, start=1))


def test_the_running_statistics_lag_table_has_a_row_per_look_and_momentum(tmp_path):
    setup = dn.NetworkSetup(
        "resnet-small", "digits", pretrain_data="digits", new_head=False, n_samples=48
    )
    cfg = _tiny(networks=(setup,), pretrain_epochs=1, pretrain_examples=64, epochs=3)
    table = dn.running_statistics_lag(
        cfg, "resnet-small", "2-norm", 0.03, momenta=(None, 0.5), every=2, cache_dir=tmp_path
    )
    assert tuple(table.columns) == dn.LAG_COLUMNS
    # its own momentum, then the one given; every 2nd epoch, and the last
    looks = [(0.1, 2), (0.1, 3), (0.5, 2), (0.5, 3)]
    assert list(zip(table["bn_momentum"], table["epoch"], strict=True)) == looks
    assert table[["accuracy_running", "accuracy_recalibrated"]].stack().between(0, 1).all()
    # training normalises by each batch's own statistics: the momentum changes the running
    # statistics only, so the losses (and weights) are the same under both
    first, second = (g["train_loss"].to_numpy() for _, g in table.groupby("bn_momentum"))
    assert np.array_equal(first, second)
    assert (table["accuracy_recalibrated"] > table["accuracy_running"]).any()
    with pytest.raises(InputError, match="give a cache_dir"):
        dn.running_statistics_lag(cfg, "resnet-small", "2-norm", 0.03)
    with pytest.raises(InputError, match="every and stop_after must be at least 1"):
        dn.running_statistics_lag(cfg, "resnet-small", "2-norm", 0.03, every=0)
    with pytest.raises(InputError, match="momentum is in"):
        dn.running_statistics_lag(cfg, "resnet-small", "2-norm", 0.03, momenta=(0.0,))


# --------------------------------------------------------------------------- the chapter's words


def test_analyse_leaves_out_zero_weights_and_its_2norm_change_is_the_weight_change():
    gen = torch.Generator().manual_seed(0)
    before = {"a": torch.rand(40, 30, generator=gen, dtype=torch.float64) + 0.1}
    before["a"][0, :7] = 0.0
    after = {"a": before["a"] * (1 + 0.1 * torch.rand(40, 30, generator=gen, dtype=torch.float64))}
    scan, info = dn.analyse(before, after, ["negative_entropy", "2-norm", "3-norm"], n_boot=0)
    assert (info["n_weights"], info["n_zero_dropped"]) == (40 * 30 - 7, 7)
    w0, w1 = before["a"].numpy().ravel(), after["a"].numpy().ravel()
    kept = w0 != 0
    two = scan.set_index("potential").loc["2-norm", "relative_change"]
    ratio = np.linalg.norm(w1[kept] - w0[kept]) / np.linalg.norm(w0[kept])
    assert two == pytest.approx(ratio, rel=1e-12)
    # with the zeros left out, negative entropy stays a candidate
    assert not scan.set_index("potential").loc["negative_entropy", "excluded"]


def _scan_rows(arch, pot, seed, changes, best, objective="supervised"):
    """Rows of a run table for one run: candidate -> (delta_cdf, relative_change)."""
    return [
        {"architecture": arch, "n_weights": 100, "n_samples": 10, "objective": objective,
         "trained_potential": pot, "candidate": cand, "seed": seed, "epochs": 5,
         "train_accuracy": 1.0, "delta_cdf": d, "relative_change": r, "p_best": 0.5,
         "indistinguishable": cand == best, "best": best}
        for cand, (d, r) in changes.items()
    ]  # fmt: skip


def test_recovery_table_gives_the_weight_change_from_the_2norm_candidate():
    rows = []
    for seed, (two, three) in enumerate([(0.1, 0.3), (0.2, 0.5)]):
        rows += _scan_rows("net", "3-norm", seed, {"2-norm": (0.2, two), "3-norm": (0.1, three)},
                           "3-norm")  # fmt: skip
    rows += _scan_rows("other", "3-norm", 0, {"3-norm": (0.1, 0.4)}, "3-norm")
    rec = dn.recovery_table(pd.DataFrame(rows)).set_index("architecture")
    assert rec.loc["net", "weight_change"] == pytest.approx(0.15)
    assert rec.loc["net", "relative_change"] == pytest.approx(0.4)
    assert math.isnan(rec.loc["other", "weight_change"])  # no 2-norm candidate


def _recovery(rows):
    cols = ["architecture", "objective", "trained_potential", "recovered", "n_seeds",
            "weight_change"]  # fmt: skip
    rec = pd.DataFrame(rows, columns=cols)
    rec["correct"] = rec["recovered"] == rec["trained_potential"]
    return rec


def test_seeds_listing_counts_per_potential_only_where_they_differ():
    rec = _recovery([
        ("mlp", "supervised", "2-norm", "2-norm", 10, 0.1),
        ("mlp", "supervised", "3-norm", "3-norm", 10, 0.1),
        ("cnn", "simsiam", "2-norm", "2-norm", 4, 0.1),
        ("eff", "supervised", "2-norm", "2-norm", 3, 0.1),
        ("eff", "supervised", "negative_entropy", "negative_entropy", 5, 0.1),
    ])  # fmt: skip
    assert (
        dn.seeds_listing(rec)
        == "10 for mlp; 4 for cnn (self-supervised); eff: 2-norm 3, negative entropy 5"
    )
    rec.loc[2, ["n_seeds", "objective"]] = [10, "supervised"]
    assert dn.seeds_listing(rec) == "10 each for mlp and cnn; eff: 2-norm 3, negative entropy 5"


def test_retried_listing_groups_the_seeds_repeated_at_one_rate():
    runs = pd.DataFrame({
        "architecture": "mobilenet_v2", "objective": "supervised",
        "trained_potential": ["negative_entropy"] * 5 + ["2-norm"] * 2,
        "seed": [1, 2, 5, 9, 9, 1, 2], "lr": [1.0, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5],
    })  # fmt: skip
    assert dn.retried_listing(runs) == (
        "MobileNetV2 with the negative entropy, seeds 2, 5 and 9: 0.1 instead of 1"
    )
    assert dn.retried_listing(runs[runs["seed"] != 9].iloc[:2]) == (
        "MobileNetV2 with the negative entropy, seed 2: 0.1 instead of 1"
    )
    assert dn.retried_listing(runs[runs["trained_potential"] == "2-norm"]) == "none"


def test_capped_listing_groups_the_seeds_stopped_at_the_cap():
    runs = pd.DataFrame({
        "architecture": "efficientnet_lite0", "objective": "supervised",
        "trained_potential": ["negative_entropy"] * 4 + ["2-norm"] * 2,
        "seed": [1, 1, 5, 7, 0, 3], "epochs": [150, 150, 150, 150, 60, 150],
        "train_accuracy": [0.999452, 0.999452, 0.999452, 1.0, 1.0, 0.998],
    })  # fmt: skip
    assert dn.capped_listing(runs) == (
        "2-norm, seed 3, at 99.80%; negative entropy, seeds 1 and 5, at 99.95%: "
        "stopped at the cap of 150 epochs"
    )
    assert dn.capped_listing(runs[runs["trained_potential"] == "negative_entropy"]) == (
        "negative entropy, seeds 1 and 5, stopped at the cap of 150 epochs at 99.95%"
    )
    two = pd.concat([runs, runs.assign(architecture="mlp-32")])
    assert dn.capped_listing(two[two["seed"] == 3]) == (
        "EfficientNet-Lite0 with the 2-norm, seed 3, at 99.80%; MLP-32 with the 2-norm, "
        "seed 3, at 99.80%: stopped at the cap of 150 epochs"
    )
    assert dn.capped_listing(runs[runs["train_accuracy"] == 1]) == "none"


def test_zero_weights_listing_adds_the_dropped_weights_back():
    runs = pd.DataFrame({"architecture": ["a", "a", "b"], "n_zero_dropped": [0, 0, 6127],
                         "n_weights": [50, 50, 3322865]})  # fmt: skip
    assert dn.zero_weights_listing(runs) == "b (6,127 of its 3,328,992 weights, leaving 3,322,865)"
    assert dn.zero_weights_listing(runs[runs["architecture"] == "a"]) == "none"


def test_stored_efficientnet_runs_analyse_the_network_table_weights_less_its_zeros():
    runs, _ = dn.stored_sweep()
    eff = runs[runs["architecture"] == "efficientnet_lite0"]
    assert eff["n_zero_dropped"].nunique() == 1 and eff["n_zero_dropped"].iloc[0] > 0
    total = eff["n_weights"] + eff["n_zero_dropped"]
    assert (total == nw.n_analysed("efficientnet_lite0")).all()


def test_misses_in_words_says_whether_the_misses_are_alike():
    alike = _recovery([
        ("a", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("b", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("c", "supervised", "2-norm", "2-norm", 10, 0.1),
    ])  # fmt: skip
    assert dn.misses_in_words(alike) == (
        "every miss is the same: the 3-norm read as the 2.5-norm, on a and b"
    )
    differ = _recovery([
        ("a", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("c", "simsiam", "2-norm", "1.5-norm", 10, 0.1),
    ])  # fmt: skip
    assert dn.misses_in_words(differ) == (
        "the misses differ: a: the 3-norm read as the 2.5-norm; "
        "c (self-supervised): the 2-norm read as the 1.5-norm"
    )
    assert dn.misses_in_words(alike[alike["correct"]]) == "no pair is missed"


def test_not_rerun_names_the_missed_networks_left_out_of_the_reruns():
    rec = _recovery([
        ("mlp-32", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("mobilenet_v2", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("resnet-small", "supervised", "3-norm", "2.5-norm", 10, 0.1),
        ("rnn-100", "supervised", "3-norm", "3-norm", 10, 0.1),
    ])  # fmt: skip
    first, then = dn.not_rerun(rec, {"mlp-32"})
    assert first == (
        "The other networks missed at the `paper` protocol, MobileNetV2 and the small ResNet, "
        "were not rerun."
    )
    assert then == (
        "The misses on MobileNetV2 and the small ResNet were not rerun and stay unexplained here."
    )
    first, then = dn.not_rerun(rec, {"mlp-32", "resnet-small"})
    assert first.startswith("The other network missed") and "MobileNetV2, was not" in first
    assert then.endswith("was not rerun and stays unexplained here.")
    assert dn.not_rerun(rec, {"mlp-32", "mobilenet_v2", "resnet-small"})[1] == ""


def test_three_norm_weight_change_compares_like_with_like():
    rows = [
        ("a", "supervised", "2-norm", "2-norm", 10, 0.10),
        ("a", "supervised", "3-norm", "2.5-norm", 10, 0.30),
        ("b", "supervised", "2-norm", "2-norm", 10, 0.20),
        ("b", "supervised", "3-norm", "3-norm", 10, 0.05),
        ("c", "supervised", "2-norm", "2-norm", 10, 0.10),
        ("c", "supervised", "3-norm", "3-norm", 10, 0.40),
    ]
    more, verdict = dn.three_norm_weight_change(_recovery(rows))
    assert more == "2 of the 3"
    assert verdict == (
        "Across networks the size does not set the misses apart: the misread 3-norm pairs "
        "changed their weights by 0.300 to 0.300 (mean over seeds), those read correctly by "
        "0.050 to 0.400."
    )
    rows[5] = ("c", "supervised", "3-norm", "3-norm", 10, 0.25)
    assert "the misses are the largest changes" in dn.three_norm_weight_change(_recovery(rows))[1]
    rows[1] = ("a", "supervised", "3-norm", "3-norm", 10, 0.30)
    assert dn.three_norm_weight_change(_recovery(rows))[1].startswith("Every 3-norm pair is read")


def test_prose_names_the_networks_and_potentials_as_the_chapter_writes_them():
    names = [dn.network_name(s.architecture) for s in dn.config("paper").networks]
    assert names == [
        "RNN-100", "MLP-32", "MLP-128", "the small ResNet", "the MNIST CNN",
        "MLP-512", "RNN-1000", "MLP-1024", "MobileNetV2", "EfficientNet-Lite0",
    ]  # fmt: skip
    assert dn.network_name("mlp-wide") == "mlp-wide"
    rec = _recovery([
        ("mobilenet_v2", "supervised", "negative_entropy", "2-norm", 10, 0.1),
        ("mnist-cnn", "simsiam", "3-norm", "negative_entropy", 10, 0.1),
    ])  # fmt: skip
    assert dn.misses_in_words(rec) == (
        "the misses differ: MobileNetV2: the negative entropy read as the 2-norm; "
        "the MNIST CNN (self-supervised): the 3-norm read as the negative entropy"
    )


def test_largest_weight_change_quotes_median_and_range_not_the_mean():
    runs = pd.DataFrame({
        "architecture": ["a"] * 3 + ["b"] * 4,
        "objective": "supervised",
        "trained_potential": "negative_entropy",
        "candidate": "2-norm",
        "relative_change": [0.1, 0.2, 0.3, 0.05, 1.0, 2.0, 3.0e14],
    })  # fmt: skip
    other = runs.assign(candidate="3-norm", relative_change=1e20)
    words = dn.largest_weight_change(pd.concat([runs, other]), "negative_entropy")
    assert words == "a median of 1.5 over the 4 seeds of b, from 0.05 to 3.00 × 10¹⁴"
