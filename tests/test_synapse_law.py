"""The core model of synapse sizes, used directly as a user with their own data would."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mirrorlib
from mirrorlib import synapse_law
from mirrorlib.potentials import HyperbolicEntropy, potential
from mirrorlib.recovery import InputError
from mirrorlib.synapse_law.fitting import _starts


def test_fit_a_published_fit_sample_directly(tmp_path):
    # A user's measurements: here, samples of Dorkenwald et al.'s fit written to a CSV file.
    volumes = synapse_law.sample_published_fit("all", n=400, seed=3)
    csv = tmp_path / "volumes.csv"
    pd.DataFrame({"volume_um3": volumes}).to_csv(csv, index=False)
    w = synapse_law.load_volumes_csv(csv)
    np.testing.assert_allclose(w, volumes)

    fits = [
        synapse_law.fit(w, name, "two_constants", n_starts=1, dataset="mine")
        for name in ("negative_entropy", "2-norm")
    ]
    best = fits[0]
    assert isinstance(best, synapse_law.FitResult)
    assert best.n == 400
    assert best.n_params == synapse_law.n_free_params("negative_entropy", "two_constants") == 4
    assert best.aic == pytest.approx(2 * best.n_params - 2 * best.log_likelihood)
    assert np.all(np.isfinite(best.log_density(w)))
    # The generator is the negative entropy with two constants: its dual coordinate is
    # log w + 1, so the fitted means and mixture weight are those of the published fit.
    (m1, s1, p1), (m2, s2, _) = synapse_law.PUBLISHED_FITS["all"]
    small, large = sorted((best.params["m1"], best.params["m2"]))
    pi = best.params["pi"] if best.params["m1"] < best.params["m2"] else 1 - best.params["pi"]
    assert small == pytest.approx(m1 * math.log(10) + 1, abs=0.25)
    assert large == pytest.approx(m2 * math.log(10) + 1, abs=0.25)
    assert pi == pytest.approx(p1, abs=0.15)
    assert best.params["s"] == pytest.approx(0.5 * (s1 + s2) * math.log(10), rel=0.3)

    table = synapse_law.fits_table(fits)
    assert list(table.columns) == list(synapse_law.FIT_COLUMNS)
    assert synapse_law.delta_aic(table, "mine") > 0  # the Euclidean geometry loses


def test_core_module_does_not_import_the_experiments():
    root = Path(mirrorlib.__file__).resolve().parent.parent
    code = (
        "import sys, mirrorlib.synapse_law; "
        "print(sorted(m for m in sys.modules if m.startswith('mirrorlib.experiments')))"
    )
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_the_chapter_module_does_not_re_export_the_model():
    # The model's names have one home, mirrorlib.synapse_law; the chapter's module lists only
    # its own settings and experiments.
    from mirrorlib.experiments import synapse_data as sd

    assert not set(synapse_law.__all__) & set(sd.__all__)


# ----------------------------------------------------------------------------- off the support

CONSTANT_X = [0.3, math.log(0.4)]  # raw (m, log s) of a constant-w0 model


@pytest.mark.parametrize("name", ["negative_entropy", "1.5-norm", "3-norm"])
def test_log_density_is_minus_inf_where_w_is_not_positive(name):
    # The model is the law of positive, surviving sizes: no density at w <= 0 (the 2-norm gave
    # log p(-1) = 11.1 and a "density" integrating to 7.6e6 over w < 0).
    w = np.array([[-1.0, 0.0], [0.5, np.inf]])
    got = synapse_law.log_density(w, name, "constant", CONSTANT_X)
    assert got.shape == w.shape
    assert got[0, 0] == got[0, 1] == got[1, 1] == -np.inf
    assert got[1, 0] == synapse_law.log_density(np.array([0.5]), name, "constant", CONSTANT_X)[0]
    assert np.isfinite(got[1, 0])
    with pytest.raises(InputError, match="missing"):
        synapse_law.log_density([0.5, np.nan], name, "constant", CONSTANT_X)


def test_fitted_density_is_zero_off_the_positive_axis():
    v = synapse_law.sample_published_fit("all", 100, seed=0)
    r = synapse_law.fit(v, "2-norm", "constant", n_starts=1, dataset="d")
    got = r.log_density([-1.0, 0.0, 0.1])
    assert got[0] == got[1] == -np.inf and np.isfinite(got[2])
    table = synapse_law.density_table([r], [-1.0, 0.0, 0.1, 1.0])
    assert table["density"].tolist()[:2] == [0.0, 0.0]
    assert np.all(table["density"].to_numpy()[2:] > 0)
    empty = synapse_law.density_table([], [0.1, 1.0])
    assert empty.empty and list(empty.columns) == list(table.columns)


@pytest.mark.parametrize("counts", [[0.0, 1.0], [1.5], [-2.0, 3.0], [1.0, np.inf]])
def test_count_log_likelihood_is_minus_inf_outside_the_counts(counts):
    # Counts are whole numbers >= 1: anything else has probability 0 (k = 0 and k = 1.5 were
    # scored -0.028 and -0.82).
    assert synapse_law.count_log_likelihood(counts, "2-norm", "constant", [0.0, 0.0]) == -np.inf
    assert np.isfinite(synapse_law.count_log_likelihood([1, 2], "2-norm", "constant", [0, 0]))


def test_count_log_likelihood_refuses_missing_counts():
    with pytest.raises(InputError, match="missing"):
        synapse_law.count_log_likelihood([1.0, np.nan], "2-norm", "constant", [0.0, 0.0])


# ----------------------------------------------------------------------------- bad arguments

VOLUMES = synapse_law.sample_published_fit("all", 60, seed=2)
COUNTS = np.array([1, 1, 2, 1, 3, 1, 2, 5, 1, 1, 2, 4, 1, 1, 2, 1, 1, 3, 2, 1], dtype=float)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: synapse_law.fit(VOLUMES, "2-norm", "gauss"),
            ValueError,
            "unknown w0 model 'gauss'",
        ),
        (lambda: synapse_law.fit_counts(COUNTS, "2-norm", "gauss"), ValueError, "'gauss'"),
        (lambda: synapse_law.fit_counts(COUNTS, "2-norm", "lognormal"), ValueError, "counts"),
        (lambda: synapse_law.fit(VOLUMES, None, "constant"), TypeError, "potential name"),
        (lambda: synapse_law.fit(VOLUMES, "foo", "constant"), ValueError, "unknown potential"),
        (lambda: synapse_law.fit(VOLUMES, "2-norm", "constant", 0), ValueError, "n_starts"),
        (lambda: synapse_law.fit(VOLUMES, "2-norm", "constant", 1.5), ValueError, "n_starts"),
        (lambda: synapse_law.fit([], "2-norm", "constant"), InputError, "only 0 values"),
        (lambda: synapse_law.fit(np.ones(50), "2-norm", "constant"), InputError, "barely vary"),
        (
            lambda: synapse_law.fit(np.ones(50), "negative_entropy", "two_constants"),
            InputError,
            "barely vary",
        ),
        (
            lambda: synapse_law.fit(1 + 1e-9 * np.arange(50), "ne", "constant"),
            InputError,
            "barely vary",
        ),
        (lambda: synapse_law.fit_counts(np.ones(30), "ne"), InputError, "counts barely vary"),
        (
            lambda: synapse_law.log_density(VOLUMES, "2-norm", "constant", [0.0]),
            ValueError,
            r"takes 2 raw parameters \(m, log s\); got shape \(1,\)",
        ),
        (
            lambda: synapse_law.log_density(VOLUMES, "hypentropy", "two_constants", [0, 1, 0, 0]),
            ValueError,
            "takes 5 raw parameters",
        ),
        (lambda: synapse_law.log_density(VOLUMES, "2-norm", "gauss", [0, 0]), ValueError, "gauss"),
        (
            lambda: synapse_law.count_log_likelihood(COUNTS, "ne", "lognormal", [0, 0, 0, 0]),
            ValueError,
            "counts are fitted with the constant or two_constants law of w0, not 'lognormal'",
        ),
        (
            lambda: synapse_law.count_log_likelihood(COUNTS, "ne", "constant", [0, 0], scale=0),
            ValueError,
            "scale",
        ),
        (lambda: synapse_law.n_free_params("foo", "constant"), ValueError, "unknown potential"),
        (lambda: synapse_law.n_free_params("2-norm", "gauss"), ValueError, "'gauss'"),
        (
            lambda: synapse_law.density_table([], [0.1, np.nan]),
            InputError,
            "w_grid: 1 missing value",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_delta_aic_names_what_is_missing_and_what_is_there():
    table = pd.DataFrame(
        {
            "dataset": ["d", "d", "d"],
            "w0_model": ["constant", "constant", "lognormal"],
            "potential": ["negative_entropy", "2-norm", "3-norm"],
            "aic": [1.0, 3.5, 0.0],
        }
    )
    assert synapse_law.delta_aic(table, "d", "constant", "2.0-norm", "ne") == 2.5
    with pytest.raises(
        ValueError, match=r"no fit of 3-norm .*potentials fitted: negative_entropy, 2-norm"
    ):
        synapse_law.delta_aic(table, "d", "constant", "3-norm")
    with pytest.raises(ValueError, match=r"no fits of dataset 'e'.*\['d'\]"):
        synapse_law.delta_aic(table, "e", "constant")
    with pytest.raises(ValueError, match=r"w0 model 'two_constants'.*\['constant', 'lognormal'\]"):
        synapse_law.delta_aic(table, "d")
    with pytest.raises(ValueError, match="2 fits of 2-norm"):
        synapse_law.delta_aic(pd.concat([table, table.iloc[[1]]]), "d", "constant")


# ----------------------------------------------------------------------------- one vocabulary


def test_fit_reads_the_names_potential_reads():
    # fit refused "ne" while fit_counts took it; both now resolve names through potential()
    # and write the table names ("negative_entropy", "2-norm", "hypentropy").
    reference = synapse_law.fit(VOLUMES, "negative_entropy", "constant", n_starts=1)
    for name in ("ne", "Negative_Entropy", potential("ne")):
        r = synapse_law.fit(VOLUMES, name, "constant", n_starts=1)
        assert r.potential == "negative_entropy"
        assert r.log_likelihood == reference.log_likelihood
    by_object = synapse_law.fit(VOLUMES, potential("2-norm"), "constant", n_starts=1)
    by_name = synapse_law.fit(VOLUMES, "2.0-norm", "constant", n_starts=1)
    assert by_object.potential == by_name.potential == "2-norm"
    assert by_object.log_likelihood == by_name.log_likelihood
    counts = synapse_law.fit_counts(COUNTS, potential("ne"), n_starts=1)
    assert counts.potential == "negative_entropy"
    assert synapse_law.n_free_params("ne", "lognormal") == 2
    assert synapse_law.n_free_params(potential("2.5-norm"), "constant") == 2
    assert synapse_law.n_free_params("HYPENTROPY", "constant") == 3


def test_the_potential_is_passed_as_potential():
    # The argument was ``potential_name`` here; it is ``potential`` in every public function.
    r = synapse_law.fit(VOLUMES, potential="2-norm", w0_model="constant", n_starts=1)
    assert r.potential == "2-norm"
    counts = synapse_law.fit_counts(COUNTS, potential="ne", n_starts=1)
    assert counts.potential == "negative_entropy"
    assert synapse_law.n_free_params(potential="hypentropy", w0_model="constant") == 3
    logp = synapse_law.log_density(VOLUMES, potential="2-norm", w0_model="constant", x=r.x)
    assert np.all(np.isfinite(logp))
    loglik = synapse_law.count_log_likelihood(
        COUNTS, potential="ne", w0_model="constant", x=counts.x, scale=counts.scale
    )
    assert loglik == pytest.approx(counts.log_likelihood)


@pytest.mark.parametrize("name", ["hypentropy(beta=0.1)", "hypentropy(1)", HyperbolicEntropy(1.0)])
def test_a_fixed_hypentropy_scale_is_refused(name):
    # The model fits beta; a fixed one (which potential() accepts) is not silently refitted.
    with pytest.raises(ValueError, match="fixed beta is not supported"):
        synapse_law.fit(VOLUMES, name, "constant")
    with pytest.raises(ValueError, match="fixed beta is not supported"):
        synapse_law.n_free_params(name, "constant")


@pytest.mark.parametrize("w0_model, per_scale", [("constant", 2), ("two_constants", 3)])
def test_hypentropy_starts_at_each_scale_of_beta(w0_model, per_scale):
    v = synapse_law.sample_published_fit("all", 300, seed=0)
    starts = _starts(v, "hypentropy", w0_model, 3)
    betas = [round(float(np.exp(s[-1])), 6) for s in starts]
    assert betas == [1.0] * per_scale + [0.1] * per_scale + [10.0] * per_scale
    # each scale's starts are its own dual moments, not another scale's shifted
    dual = np.asarray(HyperbolicEntropy(0.1).to_dual(v))
    assert starts[per_scale][0] == pytest.approx(
        dual.mean() if w0_model == "constant" else np.sort(dual)[: int(0.75 * dual.size)].mean()
    )
    assert len(_starts(v, "hypentropy", w0_model, 1)) == 3
