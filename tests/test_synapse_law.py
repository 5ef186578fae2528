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
