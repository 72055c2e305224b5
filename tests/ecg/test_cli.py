"""The robustlab ecg commands end to end on the real MIT-BIH records: prepare, train (resumable), evaluate,
predict on any WFDB record, and the MRR as one model file."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from robustlab.common.cli import main

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _run(*args):
    return CliRunner().invoke(main, ["ecg", *map(str, args)])


def test_prepare_prints_the_counts_of_each_split(mitdb_root, beats_ds1, beats_ds2):
    result = _run("prepare", "--data", mitdb_root, "--no-progress")
    assert result.exit_code == 0, result.output
    for split, beats in (("DS1", beats_ds1), ("DS2", beats_ds2)):
        line = next(x for x in result.output.splitlines() if x.startswith(f"{split}:"))
        counts = beats.counts()
        for c in ("N", "S", "V", "F", "Q"):
            assert f"{c} {counts[c]}" in line, line
        totals = beats.report["totals"]
        assert f"of {totals['beats']} beat annotations left out: {totals['dropped']['edge']} edge" in line, line


@pytest.fixture(scope="module")
def cnn_run(mitdb_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn")
    result = _run("train", "--model", "cnn", "--data", mitdb_root, "--epochs", "1", "--max-n", "300", "--out", out,
                  "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_model_file_that_carries_its_preprocessing(cnn_run):
    from robustlab.common.modelfile import load_model
    from robustlab.ecg.models import ECGCNN

    out, output = cnn_run
    assert "validation macro-F1" in output
    loaded = load_model(out / "model.pt")
    assert isinstance(loaded.model, ECGCNN)
    pre = loaded.preprocessing
    assert (pre["kind"], pre["fs"], pre["before"], pre["after"], pre["lead"]) == ("beats", 360.0, 360, 360, "MLII")
    assert pre["classes"] == ["N", "S", "V", "F"] and pre["features"] is None
    meta = loaded.metadata
    from robustlab.ecg.data.mitdb import DS1

    assert meta["train_counts"]["N"] == 300 and set(meta["val_records"]) < set(DS1)  # held-out DS1 patients only


def test_train_refuses_a_used_folder_and_resumes_with_more_epochs(cnn_run, mitdb_root):
    out, _ = cnn_run
    again = _run("train", "--model", "cnn", "--data", mitdb_root, "--epochs", "1", "--max-n", "300", "--out", out,
                 "--no-progress")
    assert again.exit_code == 2 and "--resume" in again.output
    other = _run("train", "--model", "cnn", "--data", mitdb_root, "--epochs", "1", "--max-n", "400", "--out", out,
                 "--resume", "--no-progress")
    assert other.exit_code == 2 and "max_n" in other.output
    more = _run("train", "--model", "cnn", "--data", mitdb_root, "--epochs", "2", "--max-n", "300", "--out", out,
                "--resume", "--no-progress")
    assert more.exit_code == 0, more.output
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_evaluate_reports_aami_figures_on_ds2_and_robustness(cnn_run, mitdb_root, beats_ds2, tmp_path):
    out, _ = cnn_run
    result = _run("evaluate", "--model", out / "model.pt", "--data", mitdb_root, "--n-robust", "40", "--pgd-steps",
                  "1", "--pgd-eps", "0.05", "--snr", "6", "--perturbation", "powerline50", "--out", tmp_path / "ev",
                  "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    counts = beats_ds2.counts()
    assert {c: report["per_class"][c]["support"] for c in "NSVF"} == {c: counts[c] for c in "NSVF"}
    assert np.array(report["confusion"]).sum() == sum(counts[c] for c in "NSVF")
    assert report["protocol"].startswith("inter-patient")
    assert set(report["robustness"]) == {f"{k}_{m}" for k in ("clean", "powerline50@6dB", "pgd@0.05mV")
                                         for m in ("macro_f1", "accuracy")}
    assert report["robustness_subset"] == {"N": 10, "S": 10, "V": 10, "F": 10}
    assert (tmp_path / "ev" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "S Se" in result.output and "robustness" in result.output


def test_predict_any_record_with_or_without_annotations(cnn_run, mitdb_root, tmp_path):
    out, _ = cnn_run
    folder = tmp_path / "records"
    folder.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb_root / f"100.{ext}", folder / f"100.{ext}")
    for ext in ("hea", "dat"):  # no annotations: XQRS
        shutil.copy(mitdb_root / f"119.{ext}", folder / f"119.{ext}")
    result = _run("predict", "--model", out / "model.pt", "--record", folder, "--out", tmp_path / "pr")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "pr" / "beats.csv").open()))
    by_record = {r: [x for x in rows if x["record"] == r] for r in ("100", "119")}
    assert len(by_record["100"]) > 2200 and all(x["detector"] == "annotations (atr)" for x in by_record["100"])
    assert by_record["100"][0]["annotation"] in ("N", "A", "V")
    assert by_record["119"] and all(x["detector"].startswith("wfdb XQRS") for x in by_record["119"])
    for x in rows[:50]:
        assert abs(sum(float(x[f"p_{c}"]) for c in "NSVF") - 1) < 1e-3 and x["class"] in "NSVF"
        assert float(x["time_s"]) == pytest.approx(int(x["sample"]) / 360, abs=1e-3)
    for r in ("100", "119"):
        assert (tmp_path / "pr" / f"{r}.png").read_bytes()[:4] == b"\x89PNG"
    assert "XQRS" in result.output and "lead MLII" in result.output


def test_predict_names_the_leads_when_none_is_usable(cnn_run, tmp_path):
    import wfdb

    wfdb.wrsamp("odd", fs=360, units=["mV"], sig_name=["AVF"], p_signal=np.zeros((7200, 1)), fmt=["16"],
                write_dir=str(tmp_path))
    out, _ = cnn_run
    result = _run("predict", "--model", out / "model.pt", "--record", tmp_path / "odd.hea", "--out", tmp_path / "p")
    assert result.exit_code == 1 and "AVF" in result.output and "Traceback" not in result.output


def test_a_model_file_of_another_domain_is_refused(tmp_path, mitdb_root):
    from robustlab.common.modelfile import save_model
    from robustlab.common.models import MLP

    save_model(MLP(2, 2), tmp_path / "m.pt", preprocessing={"scale": 1.0})
    result = _run("evaluate", "--model", tmp_path / "m.pt", "--data", mitdb_root, "--out", tmp_path / "e")
    assert result.exit_code == 1 and "ecg train" in result.output


def test_the_mrr_is_one_model_file_that_evaluate_and_predict_rebuild(mitdb_root, tmp_path):
    from robustlab.common.modelfile import load_model
    from robustlab.ecg.models import MRRNet

    out = tmp_path / "mrr"
    result = _run("train", "--model", "mrr", "--data", mitdb_root, "--epochs", "1", "--max-n", "200", "--out", out,
                  "--no-progress")
    assert result.exit_code == 0, result.output
    assert all((out / name / "last.pt").is_file() for name in ("cnn", "resnet", "bigru", "cnn_lstm"))
    loaded = load_model(out / "model.pt")
    assert isinstance(loaded.model, MRRNet) and loaded.preprocessing["features"]["groups"]
    ev = _run("evaluate", "--model", out / "model.pt", "--data", mitdb_root, "--n-robust", "20", "--pgd-steps", "1",
              "--pgd-eps", "0.05", "--snr", "6", "--perturbation", "muscle", "--out", tmp_path / "ev", "--no-progress")
    assert ev.exit_code == 0, ev.output
    assert "pgd@0.05mV_macro_f1" in json.loads((tmp_path / "ev" / "report.json").read_text())["robustness"]
    pr = _run("predict", "--model", out / "model.pt", "--record", mitdb_root / "100.hea", "--out", tmp_path / "pr")
    assert pr.exit_code == 0, pr.output
