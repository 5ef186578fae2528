"""The scan on a user's own weights: absent synapses, few changes, no Gaussian candidate, the
bootstrap's arguments and edge, and model objects, integer and reshaped tensors as input."""

import warnings

import numpy as np
import pytest
import torch

from mirrorlib import InputError, dual_change, flatten_weights, recovery, scan_geometry
from mirrorlib.recovery import simulate_after


def signed_lognormal(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(-1, 0.5, n) * rng.choice([-1, 1], n)


def test_zeros_that_stay_zero_are_left_out_and_negative_entropy_is_scored():
    """30 % absent synapses (0 before and after), data made by negative entropy: it used to be
    excluded for 'weights exactly zero' and the 1.1-norm named best at 14x the floor."""
    w0 = signed_lognormal(4000)
    absent = np.random.default_rng(1).random(w0.size) < 0.3
    w0[absent] = 0
    w1 = simulate_after(w0, "ne", 0.05, seed=1)
    assert np.all(w1[absent] == 0)
    cands = ["ne", "1.1-norm", "2-norm"]
    df = scan_geometry(w0, w1, cands, n_boot=0)
    present = scan_geometry(w0[~absent], w1[~absent], cands, n_boot=0)
    assert df.attrs["best"] == "negative_entropy" and not df["excluded"].any()
    np.testing.assert_array_equal(df["delta_cdf"], present["delta_cdf"])
    assert df.attrs["n_zero_dropped"] == absent.sum()
    assert df.attrs["n_weights"] == (~absent).sum() == present.attrs["n_weights"]
    assert (
        f"{absent.sum()} weight(s) exactly 0 before and after were left out"
        in (df.attrs["verdict"])
    )
    assert "n_zero_dropped" in present.attrs and present.attrs["n_zero_dropped"] == 0


def test_a_weight_going_to_zero_excludes_negative_entropy_and_the_verdict_says_so():
    w0 = signed_lognormal(2000)
    w1 = simulate_after(w0, "ne", 0.05, seed=1)
    w1[:3] = 0
    df = scan_geometry(w0, w1, ["ne", "2-norm"], n_boot=0).set_index("potential")
    assert df.loc["negative_entropy", "excluded"]
    assert "3 weight(s) went to or from exactly 0" in df.loc["negative_entropy", "note"]
    assert (
        "negative_entropy excluded: 3 weight(s) went to or from exactly 0" in (df.attrs["verdict"])
    )
    with pytest.raises(InputError, match="went to or from exactly 0"):
        dual_change(w0, w1, "ne")
    w0[:3] = 0
    with pytest.raises(InputError, match="no dual value at 0: 3 weight"):
        dual_change(w0, w1, "ne")


def test_fewer_changed_weights_than_the_minimum_is_an_input_error():
    w0 = signed_lognormal(300)
    w1 = w0.copy()
    w1[:3] += 0.1
    with pytest.raises(InputError, match="only 3 of 300 weights changed: at least 100 changed"):
        scan_geometry(w0, w1, n_boot=0)
    w1[:100] += 0.1
    assert scan_geometry(w0, w1, ["2-norm"], n_boot=0).attrs["n_unchanged"] == 200


def test_a_large_share_of_unchanged_weights_is_stated():
    """250 of 5000 weights change (a 2-norm change): the atom at 0 alone keeps every Delta-CDF
    above 0.627 x 0.95^2, so the verdict says so and names no recovery."""
    rng = np.random.default_rng(0)
    w0 = signed_lognormal(5000)
    w1 = w0.copy()
    moved = rng.choice(w0.size, 250, replace=False)
    w1[moved] += 0.02 * rng.standard_normal(250)
    df = scan_geometry(w0, w1, ["ne", "2-norm", "3-norm"], n_boot=0)
    assert df.attrs["frac_unchanged"] == 0.95 and df.attrs["n_unchanged"] == 4750
    bound = np.sqrt(2 * np.pi) / 4 * 0.95**2
    assert df["delta_cdf"].min() >= bound
    assert "95.0% of the weights did not change" in df.attrs["verdict"]
    assert f"above {bound:.4f}" in df.attrs["verdict"]
    assert df.attrs["verdict"].startswith("no candidate makes the change Gaussian")
    all_moved = scan_geometry(w0, simulate_after(w0, "2-norm", 0.02, seed=1), ["2-norm"], n_boot=0)
    assert "did not change" not in all_moved.attrs["verdict"]


def test_the_verdict_names_a_best_only_within_the_floors_spread():
    w0 = signed_lognormal(5000)
    gaussian = scan_geometry(w0, simulate_after(w0, "2-norm", 0.01, seed=1), n_boot=0)
    assert gaussian.attrs["best_within_floor"] and gaussian.attrs["verdict"].startswith("best: ")
    laplace = np.random.default_rng(3).laplace(size=w0.size)
    heavy = scan_geometry(w0, w0 + 0.01 * laplace, n_boot=0)
    floor, spread = heavy.attrs["floor"], heavy.attrs["floor_std"]
    best = heavy["delta_cdf"].iloc[0]
    assert best > floor + recovery.FLOOR_SPREADS * spread and not heavy.attrs["best_within_floor"]
    assert heavy.attrs["best"] == "2-norm"  # the attribute keeps naming the least bad
    assert heavy.attrs["verdict"].startswith(
        f"no candidate makes the change Gaussian; best: 2-norm (Delta-CDF {best:.4f}, "
        f"{best / floor:.1f} times the floor"
    )
    assert "small-change" not in heavy.attrs["verdict"]


def test_a_change_as_large_as_the_weights_is_flagged():
    w0 = signed_lognormal(5000)
    df = scan_geometry(w0, np.random.default_rng(1).permutation(w0), n_boot=0)
    assert df.attrs["weight_change"] > 1.3
    assert "outside the small-change regime" in df.attrs["verdict"]


def test_the_floors_spread_rule_is_rare_for_gaussian_samples():
    """The level of FLOOR_SPREADS: Gaussian samples of 1000 values exceed it in about 1 of
    1000 draws (200 draws here: at most 2)."""
    mean, std = recovery.delta_cdf_floor(1000, True, spread=True)
    rng = np.random.default_rng(5)
    scores = [recovery.delta_cdf(rng.standard_normal(1000), True) for _ in range(200)]
    assert sum(s > mean + recovery.FLOOR_SPREADS * std for s in scores) <= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": "20"}, "n_boot must be an integer"),
        ({"n_boot": 20.5}, "n_boot must be an integer"),
        ({"n_boot": True}, "n_boot must be an integer"),
        ({"n_boot": -1}, "n_boot must be 0 .* or at least 20"),
        ({"n_boot": 1}, "n_boot must be 0 .* or at least 20 for claims at 95%"),
        ({"n_boot": 19}, "at least 20"),
        ({"n_boot": 99, "confidence": 0.99}, "at least 100"),
        ({"n_boot": 20, "max_boot_size": 0}, "max_boot_size must be an integer >= 2, got 0"),
        ({"n_boot": 20, "max_boot_size": -3}, "max_boot_size"),
        ({"n_boot": 20, "max_boot_size": 1}, "max_boot_size"),
        ({"n_boot": 20, "max_boot_size": 2.5}, "max_boot_size"),
    ],
)
def test_bad_bootstrap_arguments(kwargs, message):
    w0 = signed_lognormal(300)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)
    with pytest.raises(InputError, match=message):
        scan_geometry(w0, w1, ["2-norm", "2.1-norm"], **kwargs)


def test_the_fewest_resamples_are_accepted():
    w0 = signed_lognormal(300)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)
    assert recovery.min_resamples(0.95) == 20 and recovery.min_resamples(0.9) == 10
    df = scan_geometry(w0, w1, ["2-norm", "2.1-norm"], n_boot=20)
    assert df["indistinguishable"].map(lambda v: isinstance(v, bool)).all()
    assert (
        scan_geometry(w0, w1, ["2-norm", "2.1-norm"], n_boot=10, confidence=0.9).attrs[
            "n_boot_kept"
        ]
        == 10
    )


def test_one_name_is_one_candidate_and_the_same_potential_twice_is_refused():
    w0 = signed_lognormal(300)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)
    assert scan_geometry(w0, w1, "2-norm", n_boot=0)["potential"].tolist() == ["2-norm"]
    assert scan_geometry(w0, w1, "ne", n_boot=0)["potential"].tolist() == ["negative_entropy"]
    with pytest.raises(InputError, match="'2-norm' and '2.0-norm' are the same potential"):
        scan_geometry(w0, w1, ["2-norm", "2.0-norm"], n_boot=0)


def _fixed_replicates(monkeypatch, replicates):
    """Make the bootstrap return ``replicates`` (candidate index -> values)."""

    def fake(diffs, observed, n_boot, max_size, seed, centered):
        return {k: np.asarray(replicates[k], float) for k in diffs}

    monkeypatch.setattr(recovery, "_bootstrap", fake)


@pytest.mark.parametrize(("n_as_good", "called_worse"), [(11, False), (9, True)])
def test_the_bootstrap_decision_around_its_edge(monkeypatch, n_as_good, called_worse):
    """The documented rule at 200 resamples and 95 %: a runner-up at least as good as the best
    in 11 of them is never called worse, in 9 always (10: the interpolated quantile decides)."""
    w0 = signed_lognormal(300)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)
    cands = ["2-norm", "2.1-norm"]
    observed = scan_geometry(w0, w1, cands, n_boot=0)
    best, other = observed["potential"].tolist()
    replicates = {cands.index(best): np.zeros(200)}
    replicates[cands.index(other)] = [-1e-9] * n_as_good + [1.0] * (200 - n_as_good)
    _fixed_replicates(monkeypatch, replicates)
    df = scan_geometry(w0, w1, cands, n_boot=200).set_index("potential")
    assert df.loc[other, "p_best"] == n_as_good / 200
    assert bool(df.loc[other, "indistinguishable"]) is (not called_worse)
    assert ("worse" in df.loc[other, "note"]) is called_worse


def test_exact_ties_share_p_best_evenly(monkeypatch):
    w0 = signed_lognormal(300)
    w1 = simulate_after(w0, "2-norm", 0.05, seed=1)
    _fixed_replicates(monkeypatch, {0: np.r_[np.zeros(10), np.ones(10)], 1: np.zeros(20)})
    df = scan_geometry(w0, w1, ["2-norm", "2.1-norm"], n_boot=20).set_index("potential")
    assert df.loc["2-norm", "p_best"] == 0.25 and df.loc["2.1-norm", "p_best"] == 0.75
    assert df["indistinguishable"].all()


def test_integer_tensors_in_state_dicts_are_read_as_float():
    """An integer 'w' used to be skipped like num_batches_tracked ('no weights left')."""
    ints = torch.arange(1, 401).reshape(40, 10)
    before = {"w": ints, "bn.num_batches_tracked": torch.tensor(7)}
    after = {
        "w": ints + (torch.arange(400) % 3 == 0).reshape(40, 10),
        "bn.num_batches_tracked": torch.tensor(9),
    }
    b, a, names = flatten_weights(before, after)
    assert names == ["w"] and b.dtype == np.float64
    np.testing.assert_array_equal(b, ints.reshape(-1).numpy())
    b2, a2, _ = flatten_weights({"w": ints.double()}, {"w": after["w"]})
    np.testing.assert_array_equal(a2, a)
    with pytest.raises(InputError, match=r"before\['mask'\] has dtype torch.bool"):
        flatten_weights({**before, "mask": ints > 5}, {**after, "mask": ints > 5})


def test_a_reshaped_tensor_is_named_with_both_shapes():
    wb = torch.randn(40, 10, generator=torch.Generator().manual_seed(0))
    b = torch.randn(300, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match=r"tensor 'w' has shape \(40, 10\) before and \(400,\)"):
        scan_geometry({"w": wb, "b": b}, {"w": (wb + 0.01).reshape(-1), "b": b + 0.01})


def test_model_objects_are_refused_with_what_to_pass():
    m1, m2 = torch.nn.Linear(20, 10), torch.nn.Linear(20, 10)
    for before, after in [
        (m1, m2),
        (list(m1.parameters()), list(m2.parameters())),
        (m1.named_parameters(), m2.named_parameters()),
        (list(m1.named_parameters()), list(m2.named_parameters())),
    ]:
        with pytest.raises(InputError, match=r"pass model.state_dict\(\)"):
            scan_geometry(before, after, n_boot=0)
    # parameters that require grad, in a dict, are detached and read
    big1, big2 = torch.nn.Linear(30, 20), torch.nn.Linear(30, 20)
    df = scan_geometry(dict(big1.named_parameters()), dict(big2.named_parameters()), n_boot=0)
    assert df.attrs["n_weights"] == 600
    rows_before = [[0.1 * (i + 1), 0.2] for i in range(100)]
    rows_after = [[0.1 * (i + 1) + 0.01, 0.25] for i in range(100)]
    nested = scan_geometry(rows_before, rows_after, "2-norm", n_boot=0)
    assert nested.attrs["n_weights"] == 200


def test_extreme_scales_leak_no_warning():
    w0 = signed_lognormal(1000)
    w1 = simulate_after(w0, "2-norm", 0.01, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = scan_geometry(w0 * 1e300, w1 * 1e300, n_boot=0)
    overflow = df[df["note"].str.contains("overflow")]
    assert len(overflow) > 0 and "overflow float64" in df.attrs["verdict"]
    assert not df[~df["excluded"]]["delta_cdf"].isna().any()


@pytest.mark.parametrize(
    ("w0", "change", "message"),
    [
        (np.r_[np.nan, np.ones(9)], 0.1, "w0 contains non-finite"),
        (np.r_[np.inf, np.ones(9)], 0.1, "w0 contains non-finite"),
        (np.ones(10), float("nan"), "change must be finite"),
        (np.ones(10), float("inf"), "change must be finite"),
    ],
)
def test_simulate_after_refuses_non_finite_input(w0, change, message):
    with pytest.raises(InputError, match=message):
        simulate_after(w0, "ne", change)
