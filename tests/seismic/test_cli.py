"""The robustlab seismic commands end to end on the real PNW data at a tiny scale: prepare, train (resumable, a
held-out fold), predict on a folder, and the error contract (exit 2 for a bad option, 1 for bad data, no
traceback)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from robustlab.common.cli import main
from robustlab.common.testing import shared_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def pnw_root():
    return shared_data("seismic", "pnw_eq_vs_explosion")


def _run(*args):
    return CliRunner().invoke(main, ["seismic", *map(str, args)])


def test_prepare_prints_counts_and_skip_reasons(pnw_root):
    from robustlab.seismic.data.pnw import load_pnw

    result = _run("prepare", "--data", pnw_root, "--no-progress")
    assert result.exit_code == 0, result.output
    ts = load_pnw(pnw_root, progress=False)
    lab = ts.meta[ts.meta["y"] >= 0]
    line = result.output
    assert f"PNW: {len(lab)} labelled traces of {lab['event_id'].nunique()} events" in line
    for kind, n in ts.reason_counts().items():
        assert f"{n} {kind}" in line


_TINY = ("--epochs", "1", "--max-unlabelled", "64", "--labelled-fraction", "0.25", "--no-progress")


@pytest.fixture(scope="module")
def eaat_run(pnw_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("eaat")
    result = _run("train", "--data", pnw_root, "--regime", "eaat", "--repeat", "0", "--fold", "1", *_TINY,
                  "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_model_file_and_test_fold_metrics(eaat_run):
    from robustlab.common.modelfile import load_model
    from robustlab.seismic.models import SpectrogramCNN

    out, output = eaat_run
    assert "test fold 0/1: event balanced accuracy" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["event"]["balanced_accuracy"] <= 1 and metrics["n_test"] > 0
    assert metrics["n_unlabelled"] == 64 and metrics["ood_calibration"] == "held-out unreviewed events"
    loaded = load_model(out / "model.pt")
    assert isinstance(loaded.model, SpectrogramCNN), "the default network: the 2D CNN on log-mel spectrograms"
    pre = loaded.preprocessing
    assert pre["kind"] == "seismic_waveform" and pre["classes"] == ["earthquake", "explosion"]
    assert pre["config"]["rate"] == 20.0 and pre["ood"]["threshold"] > 0
    assert not set(loaded.metadata["labelled_events"]) & set(loaded.metadata["test_events"])


def test_train_refuses_a_used_folder_and_resumes_with_more_epochs(eaat_run, pnw_root):
    out, _ = eaat_run
    again = _run("train", "--data", pnw_root, "--regime", "eaat", "--repeat", "0", "--fold", "1", *_TINY,
                 "--out", out)
    assert again.exit_code == 2 and "--resume" in again.output
    other = _run("train", "--data", pnw_root, "--regime", "vat", "--repeat", "0", "--fold", "1", *_TINY,
                 "--out", out, "--resume")
    assert other.exit_code == 2 and "regime" in other.output
    more = _run("train", "--data", pnw_root, "--regime", "eaat", "--repeat", "0", "--fold", "1", "--epochs", "2",
                *_TINY[2:], "--out", out, "--resume")
    assert more.exit_code == 0, more.output
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


@pytest.mark.parametrize("args, code, needle", [
    (("--regime", "fixmatch"), 2, "fixmatch"),
    (("--labelled-fraction", "0"), 2, "labelled-fraction"),
    (("--repeat", "0"), 2, "--fold"),
    (("--repeat", "7", "--fold", "0"), 2, "repeat 7"),
    (("--regularizer-only",), 2, "regularizer_only"),
])
def test_train_bad_options_exit_2_naming_the_value(pnw_root, tmp_path, args, code, needle):
    result = _run("train", "--data", pnw_root, "--epochs", "1", "--no-progress", "--out", tmp_path / "o", *args)
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_predict_on_a_folder_and_bad_inputs(eaat_run, pnw_root, tmp_path):
    out, _ = eaat_run
    labels = pd.read_csv(pnw_root / "labels.csv")
    rows = labels[(labels["sampling_rate"] >= 40) & (labels["n_traces_in_file"] == 1)].head(4)
    folder = tmp_path / "in"
    folder.mkdir()
    for f in rows["file"]:
        shutil.copy(pnw_root / f, folder / f.split("/")[-1])
    (folder / "junk.mseed").write_text("not a waveform")
    catalog = tmp_path / "catalog.csv"
    rows.assign(file=rows["file"].str.split("/").str[-1])[["file", "event_id", "origin_time"]].to_csv(catalog,
                                                                                                    index=False)
    result = _run("predict", "--model", out / "model.pt", folder, "--catalog", catalog, "--out", tmp_path / "p",
                  "--no-progress")
    assert result.exit_code == 0, result.output
    assert "4 traces" in result.output and "window from the catalog origin" in result.output
    traces = pd.read_csv(tmp_path / "p" / "traces.csv")
    assert len(traces) == 4 and traces["p_explosion"].between(0, 1).all()
    skipped = pd.read_csv(tmp_path / "p" / "skipped.csv")
    reasons = dict(zip(skipped["file"], skipped["reason"]))
    assert "not miniSEED/SAC" in reasons["junk.mseed"]
    # bad data: exit 1 naming the file; a model file of another kind
    (tmp_path / "bad.csv").write_text("x\n1\n")
    bad = _run("predict", "--model", out / "model.pt", folder, "--catalog", tmp_path / "bad.csv", "--out",
               tmp_path / "q", "--no-progress")
    assert bad.exit_code == 1 and "bad.csv" in bad.output and "origin_time" in bad.output
    assert "Traceback" not in bad.output
    (tmp_path / "fake.pt").write_bytes(b"not a model")
    fake = _run("predict", "--model", tmp_path / "fake.pt", folder, "--out", tmp_path / "r", "--no-progress")
    assert fake.exit_code == 1 and "fake.pt" in fake.output and "Traceback" not in fake.output


def test_reproduce_serves_the_seismic_recipes_only():
    from robustlab.common.recipes.registry import recipe_names

    assert recipe_names("robustlab.seismic") == ["linville2020"]
    result = _run("reproduce", "no_such_recipe", "--out", "unused")
    assert result.exit_code == 2 and "linville2020" in result.output and "Traceback" not in result.output
