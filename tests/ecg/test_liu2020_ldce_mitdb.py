"""The liu2020_ldce_mitdb recipe: the noise matrix, the grid, and its smoke profile on the real MIT-BIH."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robustlab.common.recipes import get_recipe
from robustlab.ecg.recipes.liu2020_ldce_mitdb import (
    CONFUSIONS,
    PROFILES,
    RECIPE,
    confusion_matrix_noise,
    grid,
)


def test_registered_with_three_profiles_and_five_seeds():
    assert get_recipe("liu2020_ldce_mitdb") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert grid(PROFILES["quick"]) == [{"noise": 0.3, "test": t, "seed": s} for t in ("DS2", "DS1") for s in range(5)]


def test_the_intra_patient_test_set_is_held_out_per_class():
    from robustlab.ecg.recipes.liu2020_ldce_mitdb import _capped, held_out

    y = np.repeat(np.arange(4), [400, 80, 120, 20])
    rest, held = held_out(y, np.random.default_rng(0))
    assert np.intersect1d(rest, held).size == 0 and len(rest) + len(held) == len(y)
    assert np.bincount(y[held], minlength=4).tolist() == [100, 20, 30, 5]
    pool = _capped(y, 50, np.random.default_rng(1), among=rest)
    assert np.intersect1d(pool, held).size == 0
    assert np.bincount(y[pool], minlength=4).tolist() == [50, 50, 50, 15]


def test_the_noise_matrix_is_class_conditional_at_the_rate():
    C = confusion_matrix_noise(0.3)
    assert np.allclose(C.sum(1), 1.0) and np.allclose(np.diag(C), 0.7)
    assert C[0, 1] == pytest.approx(0.2) and C[0, 2] == pytest.approx(0.1) and C[1, 0] == pytest.approx(0.3)
    assert C[2, 3] == pytest.approx(0.15) and C[3, 2] == pytest.approx(0.2)
    assert all(abs(sum(v.values()) - 1) < 1e-12 for v in CONFUSIONS.values())


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, mitdb_root, monkeypatch, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MITDB", str(mitdb_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    for label in ("cross-entropy", "GLC", "cleanlab filter + retrain", "LDCE (hard)", "balanced acc (final)",
                  "MIT-BIH, class-conditional 30%, tested on DS2 (other patients)"):
        assert label in md, label
    run = json.loads(next((out / "runs").glob("*.json")).read_text())
    m = run["metrics"]
    assert m["noise_rate"] == pytest.approx(0.3, abs=0.12)
    for method in ("ce", "glc", "cleanlab", "ldce"):
        assert 0.0 <= m[f"{method}/final_balanced"] <= 1.0
    assert len(run["extras"]["ldce/items_final"]) == 80  # 20 test beats of each class
