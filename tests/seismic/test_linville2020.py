"""The linville2020 recipe: registration, profiles and grids, the splits, the claims and targets in its table,
and its smoke profile on the real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.seismic.recipes.linville2020 import (
    DEPARTURES,
    PROFILES,
    RECIPE,
    SSL,
    TARGETS,
    Linville2020Profile,
    ba_items,
    grid,
    pnw_split,
    split_key,
    summarize,
)


def test_registered_with_three_profiles():
    assert get_recipe("linville2020") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert TARGETS == {0.1: 0.62, 0.25: 0.65, 1.0: 0.70}
    assert RECIPE.paper.year == 2021 and "10.1785/0220200195" in RECIPE.paper.url
    assert len(DEPARTURES) >= 5 and any("shadow" in d for d in DEPARTURES)


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    pnw = [s for s in quick if s["task"] == "pnw"]
    # six run kinds x four fractions x repeat 0's five folds x one seed, the expensive runs first
    assert len(pnw) == 6 * 4 * 5 and {s["repeat"] for s in pnw} == {0} and {s["fold"] for s in pnw} == set(range(5))
    assert {s["fraction"] for s in pnw} == {0.1, 0.25, 0.5, 1.0} and {s["seed"] for s in pnw} == {0}
    assert pnw[0]["method"] == "eaat" and pnw[-1]["method"] == "baselines"
    assert len({s["id"] for s in quick}) == len(quick)
    assert sum(s["task"] == "ipoc" for s in quick) == 4 * 5
    paper = grid(PROFILES["paper"])
    assert sum(s["task"] == "pnw" for s in paper) == 8 * 4 * 3 * 5 * 3
    assert PROFILES["paper"].device == "auto" and PROFILES["paper"].max_unlabelled == 0
    assert PROFILES["paper"].alpha == 0.999 and PROFILES["quick"].consistency_weight == 3.0
    smoke = grid(PROFILES["smoke"])
    # without the unreviewed events the 100 % fraction would leave SSL without a pool: never in the grid then
    assert not PROFILES["smoke"].unreviewed and len(smoke) <= 20
    no_pool = grid(Linville2020Profile(unreviewed=False, fractions=(1.0,), tasks=("pnw",), seeds=1, repeats=(0,)))
    assert {s["method"] for s in no_pool}.isdisjoint(SSL)


@pytest.mark.parametrize("field, value", [("methods", ("supervised", "fixmatch")), ("fractions", (0.0,)),
                                          ("fractions", (1.5,)), ("folds", (5,)), ("repeats", (3,)), ("seeds", 0),
                                          ("alpha", 1.5), ("model", "resnet")])
def test_bad_profile_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        Linville2020Profile(**{field: value})


def _toy_meta():
    """20 labelled events (15 earthquakes, 5 explosions; 2 traces each) and 3 unreviewed events."""
    rows = []
    for i in range(20):
        for _ in range(2):
            rows.append({"event_id": f"e{i:02d}", "y": int(i >= 15)})
    for i in range(3):
        rows.append({"event_id": f"u{i}", "y": -1})
    meta = pd.DataFrame(rows)
    folds = pd.DataFrame({"seed": 0, "event_id": [f"e{i:02d}" for i in range(20)], "fold": [i % 4 for i in range(20)]})
    return meta, folds


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_splits_are_grouped_by_event(fraction):
    meta, folds = _toy_meta()
    idx = pnw_split(meta, folds, 0, 1, fraction, seed=0)
    ev = meta["event_id"].to_numpy()
    lab, unl, test = (set(ev[idx[k]]) for k in ("labelled", "unlabelled", "test"))
    assert test == {f"e{i:02d}" for i in range(20) if i % 4 == 1}
    assert not (lab & test) and not (unl & test) and not (lab & unl)
    assert {"u0", "u1", "u2"} <= unl  # the unreviewed events are always in the pool
    assert set(idx["labelled_events"]) == lab and (meta["y"].to_numpy()[idx["labelled"]] >= 0).all()
    ys = {int(meta.loc[meta.event_id == e, "y"].iloc[0]) for e in lab}
    assert ys == {0, 1}  # at least one event per class
    if fraction == 1.0:
        assert unl == {"u0", "u1", "u2"} and len(lab) == 15
    # the draw depends on the split and the seed, never on the method
    again = pnw_split(meta, folds, 0, 1, fraction, seed=0)
    assert np.array_equal(again["labelled"], idx["labelled"])


def test_balanced_accuracy_items():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    p = rng.random(40)
    assert ba_items(y, p).mean() == pytest.approx(balanced_accuracy_score(y, p >= 0.5))


def _pnw_record(method, fraction, fold, ba_correct, n_events=20, index=0):
    """A PNW run whose first ``ba_correct`` events of 20 (10 per class, alternating) are right."""
    y = [i % 2 for i in range(n_events)]
    p = [float(y[i]) if i < ba_correct else 1.0 - y[i] for i in range(n_events)]
    ba = float(ba_items(y, p).mean())
    spec = {"task": "pnw", "method": method, "fraction": fraction, "repeat": 0, "fold": fold, "seed": 0}
    if method == "baselines":
        metrics = {f"{b}/{m}": ba for b in ("station", "noise", "features")
                   for m in ("event_ba", "event_f1", "trace_ba", "trace_f1")}
        extras = {"y_event": y, **{f"{b}/p_event": p for b in ("station", "noise", "features")}}
    else:
        metrics = {m: ba for m in ("event_ba", "event_f1", "trace_ba", "trace_f1")}
        extras = {"y_event": y, "p_event": p}
    return {"spec": spec, "metrics": metrics, "extras": extras, "index": index}


def test_the_claims_follow_the_splits():
    p = Linville2020Profile(tasks=("pnw",), fractions=(0.1, 1.0), repeats=(0,), seeds=1,
                            methods=("baselines", "supervised", "eaat_lo", "mean_teacher", "vat", "eaat"))
    results = []
    for k in range(5):
        for f in (0.1, 1.0):
            results += [_pnw_record("baselines", f, k, 16), _pnw_record("supervised", f, k, 10 + k % 2),
                        _pnw_record("eaat_lo", f, k, 12 + k % 2), _pnw_record("eaat", f, k, 17 + k % 2),
                        _pnw_record("mean_teacher", f, k, 6 + k % 2), _pnw_record("vat", f, k, 11 + k % 2)]
    table = summarize(results, p)
    notes = "\n".join(table.notes)
    assert "2D CNN (log-mel) + EAAT beats 2D CNN (log-mel), supervised at 10 % labels" in notes
    assert "mean 0.870 vs 0.520" in notes and "-> reproduced" in notes
    assert "2D CNN (log-mel) + MeanTeacher beats 2D CNN (log-mel), supervised at 10 % labels" in notes and "-> not reproduced" in notes
    assert "SSL beats supervised at 10 % (any of 3 regimes" in notes
    assert "with all labels + the unreviewed pool" in notes
    # the regularizer's share: EAAT gains +0.350, its labelled-only variant +0.100 -> 29 %
    assert "the regime gains +0.350 over supervised, the labelled-only variant +0.100 (29% of it)" in notes
    assert "Target >= 0.62 event balanced accuracy at 10 %: 2D CNN (log-mel) + MeanTeacher 0.320 (NOT met)" in notes
    assert "2D CNN (log-mel) + EAAT 0.870 (met)" in notes and "Target > 0.70" in notes
    assert "Against station identity only (one-hot + LR) (0.800) at 10 %" in notes
    md = table.to_markdown()
    assert "| PNW eq/explosion | station identity only (one-hot + LR) | event balanced accuracy | 5 |" in md
    assert "0.54 (10 %)" in md and "0.76 (100 %)" in md and "targets: ≥ 0.62 (10 %)" in md
    assert any("Departure:" in n for n in table.notes)
    few = "\n".join(summarize([r for r in results if r["spec"]["fold"] < 2], p).notes)
    assert "reproduced." not in few.replace("not reproduced", "") and "undecided at this power" in few


@pytest.mark.parametrize("regime, variant, expected", [
    (17, 8, "no share: the labelled-only variant does worse than supervised"),
    (12, 15, "the regularizer alone gains more than the regime"),
    (10, 14, "no share: the regime gains nothing here"),
])
def test_the_regularizer_share_is_a_share_only_of_a_gain(regime, variant, expected):
    p = Linville2020Profile(tasks=("pnw",), fractions=(0.1,), repeats=(0,), seeds=1,
                            methods=("supervised", "eaat_lo", "eaat"))
    results = []
    for k in range(5):
        results += [_pnw_record("supervised", 0.1, k, 10), _pnw_record("eaat_lo", 0.1, k, variant),
                    _pnw_record("eaat", 0.1, k, regime)]
    notes = "\n".join(summarize(results, p).notes)
    assert f"({expected});" in notes and "% of it" not in notes


def test_ipoc_rows():
    p = Linville2020Profile(tasks=("ipoc",))
    results = []
    for s in range(3):
        results.append({"spec": {"task": "ipoc", "method": "features", "seed": s}, "index": s,
                        "metrics": {"lr/macro_f1": 0.4, "lr/recall_ID": 0.9, "lr/recall_UP": 0.33,
                                    "rf/macro_f1": 0.5 + 0.01 * s, "rf/recall_ID": 1.0, "rf/recall_UP": 0.0}})
        results.append({"spec": {"task": "ipoc", "method": "supervised", "seed": s}, "index": 10 + s,
                        "metrics": {"cnn/macro_f1": 0.3, "cnn/recall_ID": 0.8, "cnn/recall_UP": 0.67}})
    md = summarize(results, p).to_markdown()
    assert "| IPOC source region | waveform features + random forest | macro-F1 | 3 | 0.510 ± 0.010 | macro-F1 0.57 |" in md
    assert "ID 0.90 ± 0.00 / UP 0.33 ± 0.00" in md and "2D CNN (log-mel), supervised" in md


def test_split_keys_are_distinct():
    keys = {split_key(r, k, s) for r in range(3) for k in range(5) for s in range(10)}
    assert len(keys) == 150


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, one_thread):
    from robustlab.common.recipes import run_recipe
    from robustlab.common.testing import shared_data

    pnw = shared_data("seismic", "pnw_eq_vs_explosion")
    ipoc = shared_data("seismic", "ipoc_source_region")
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False,
                        overrides=[f"pnw_root={pnw}", f"ipoc_root={ipoc}"])
    assert report.complete
    md = (out / "results.md").read_text()
    for label in ("station identity only", "pre-origin noise only", "waveform features + LR",
                  "2D CNN (log-mel), supervised", "2D CNN (log-mel) + EAAT", "IPOC source region", "Departure:"):
        assert label in md, label
    assert "undecided at this power" in md  # two folds: never a verdict
    run = json.loads(next((out / "runs").glob("pnw_eaat_f25_*.json")).read_text())
    m = run["metrics"]
    assert 0.0 <= m["event_ba"] <= 1.0 and m["n_test_events"] >= 15 and m["n_labelled_explosions"] >= 1
    assert len(run["extras"]["p_event"]) == m["n_test_events"]
    base = json.loads(next((out / "runs").glob("pnw_baselines_f25_*.json")).read_text())
    assert base["extras"]["y_event"] == run["extras"]["y_event"]  # the same test events
