"""The wang2020 recipe: registration, profiles, the claims and targets in its table, and its smoke profile."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.ecg.recipes.wang2020 import (
    CHANNELS,
    PROFILES,
    RECIPE,
    TARGETS,
    Wang2020Profile,
    grid,
    summarize,
)


def test_registered_with_three_profiles_and_a_grid_of_tasks_and_seeds():
    assert get_recipe("wang2020") is RECIPE and get_recipe("wang2020", package="robustlab.ecg") is RECIPE
    specs = grid(PROFILES["quick"])
    assert [s["id"] for s in specs] == [f"{t}_seed={s}" for t in ("mitdb", "cinc2021") for s in range(5)]
    assert PROFILES["paper"].device == "auto" and PROFILES["paper"].max_n == 0
    assert PROFILES["quick"].seeds >= 5 and TARGETS == {"macro_f1": 0.65, "V_f1": 0.90, "S_f1": 0.60}


@pytest.mark.parametrize("field, value", [("channels", ("cnn", "transformer")), ("seeds", 0), ("pgd_eps", (-0.1,)),
                                          ("val_fraction", 1.0), ("regime", "mixup")])
def test_bad_profile_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        Wang2020Profile(**{field: value})


def _record(seed: int, row_values: dict[str, float]) -> dict:
    metrics = {}
    for row, v in row_values.items():
        for m in ("macro_f1", "N_f1", "S_f1", "V_f1", "F_f1", "S_se", "S_pp", "V_se", "V_pp"):
            metrics[f"{row}/{m}"] = v
    return {"spec": {"task": "mitdb", "seed": seed}, "metrics": metrics, "index": seed}


def test_the_claims_follow_the_seeds():
    p = Wang2020Profile(tasks=("mitdb",), heads=("gbdt",), n_robust=0)
    base = {c: 0.5 for c in CHANNELS}
    results = [_record(s, {**base, "cnn": 0.7, "mrr_gbdt": 0.6 + 0.01 * s, "mrr_gbdt_nofeat": 0.55,
                           "features_gbdt": 0.6 + 0.01 * s}) for s in range(5)]
    notes = "\n".join(summarize(results, p).notes)
    assert "beats 1D ResNet (beat, 360 Hz) in DS2 macro-F1': +0.120" in notes and "-> reproduced" in notes
    assert "beats 1D CNN (beat, 360 Hz) in DS2 macro-F1': -0.080" in notes and "-> not reproduced" in notes
    assert "vs the hand-crafted features alone: +0.000" in notes
    assert "'the MRR beats every single channel model' (all 4 comparisons above): not reproduced" in notes
    assert "Target macro f1 >= 0.65 for the MRR: measured 0.620" in notes and "NOT met" in notes
    few = "\n".join(summarize(results[:2], p).notes)
    assert "undecided at this power" in few and "reproduced." not in few
    assert "every single channel model' (all 4 comparisons above): undecided at this power" in few


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(mitdb_root, cinc_root, tmp_path):
    from robustlab.ecg.cli import ecg

    out = tmp_path / "w"
    result = CliRunner().invoke(ecg, ["reproduce", "wang2020", "--profile", "smoke", "--set",
                                      f"mitdb_root={mitdb_root}", "--set", f"cinc_root={cinc_root}", "--out",
                                      str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    md = (out / "results.md").read_text()
    for label in ("1D CNN", "1D ResNet", "BiGRU", "CNN-LSTM", "MRR (gbdt): embeddings + hand-crafted",
                  "MRR (gbdt): embeddings only", "hand-crafted features only (gbdt)", "de Chazal et al. 2004",
                  "CinC 2021 sample"):
        assert label in md, label
    assert md.count("undecided at this power") >= 4 and "Target S f1 >= 0.60" in md and "0.9238" in md
    run = json.loads((out / "runs" / "mitdb_seed-0.json").read_text()) if (out / "runs" / "mitdb_seed-0.json").exists() \
        else json.loads(next((out / "runs").glob("mitdb*.json")).read_text())
    m = run["metrics"]
    assert 600 <= m["n_train"] < 700 and 600 <= m["n_test"] < 700  # train_limit=test_limit=600, rare classes floored
    for key in ("cnn", "mrr_gbdt", "mrr_mlp_nofeat", "features_gbdt"):
        assert 0.0 <= m[f"{key}/macro_f1"] <= 1.0
    assert sum(map(sum, run["extras"]["confusion"]["cnn"])) == m["n_test"]
    assert "cnn/robust_powerline50@6dB_macro_f1" in m and "mrr_gbdt/robust_pgd-transfer@0.05mV_macro_f1" in m
    cinc = json.loads(next((out / "runs").glob("cinc2021*.json")).read_text())
    assert cinc["metrics"]["n_labels"] >= 1 and 0.0 <= cinc["metrics"]["mrr_logreg/macro_auroc"] <= 1.0
