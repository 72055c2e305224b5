"""`robustlab vision train`: a patch classifier from prepare-mias patches, with classic or GAN augmentation, scored
on held-out patients; its model file, report and figure; resuming; clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from robustlab.common.cli import main

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def patches(mini_mias_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("mias") / "patches.npz"
    result = CliRunner().invoke(main, ["vision", "prepare-mias", "--data", str(mini_mias_root), "--size", "16",
                                       "--lesion-crops", "1", "--min-side", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def invoke(*args):
    return CliRunner().invoke(main, ["vision", *map(str, args)])


def test_train_real_then_gan_augmented(patches, tmp_path, one_thread):
    out = tmp_path / "real"
    result = invoke("train", "--patches", patches, "--steps", "4", "--width", "2", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["n_synthetic"] == 0 and report["classes"] == ["normal", "abnormal"]
    assert 0 <= report["auroc"] <= 1 and 0 <= report["gradcam_auroc"] <= 1
    assert (out / "model.pt").is_file() and (out / "gradcam.png").stat().st_size > 1000
    from robustlab.common.modelfile import load_model

    loaded = load_model(out / "model.pt")
    assert loaded.preprocessing["patch_size"] == 16 and loaded.preprocessing["kind"] == "mammogram_patches"

    # a second run into the same folder needs --resume; with it, more steps continue the run
    again = invoke("train", "--patches", patches, "--steps", "4", "--width", "2", "--out", out, "--no-progress")
    assert again.exit_code != 0 and "--resume" in again.output
    before = len((out / "train" / "metrics.jsonl").read_text().splitlines())
    more = invoke("train", "--patches", patches, "--steps", "80", "--width", "2", "--out", out, "--resume",
                  "--no-progress")
    assert more.exit_code == 0, more.output
    assert len((out / "train" / "metrics.jsonl").read_text().splitlines()) > before  # the run went on

    gan = tmp_path / "gan"
    result = invoke("train-gan", "--patches", patches, "--epochs", "1", "--width", "4", "--latent-dim", "8",
                    "--out", gan, "--no-progress")
    assert result.exit_code == 0, result.output
    aug = tmp_path / "aug"
    result = invoke("train", "--patches", patches, "--augment", "gan", "--gan-model", gan / "generator.pt",
                    "--ratio", "0.5", "--steps", "4", "--width", "2", "--out", aug, "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((aug / "report.json").read_text())
    assert report["n_synthetic"] == pytest.approx(0.5 * report["n_train"], abs=2)

    # a GAN trained on every patient has seen the held-out ones: refused
    seen_all = tmp_path / "gan_all"
    result = invoke("train-gan", "--patches", patches, "--epochs", "1", "--width", "4", "--latent-dim", "8",
                    "--holdout", "0", "--out", seen_all, "--no-progress")
    assert result.exit_code == 0, result.output
    result = invoke("train", "--patches", patches, "--augment", "gan", "--gan-model", seen_all / "generator.pt",
                    "--steps", "4", "--width", "2", "--out", tmp_path / "leak", "--no-progress")
    assert result.exit_code == 2 and "same --holdout and --seed" in result.output


def test_train_errors(patches, tmp_path):
    result = invoke("train", "--patches", patches, "--augment", "gan", "--out", tmp_path / "a")
    assert result.exit_code == 2 and "--gan-model" in result.output
    not_a_gan = tmp_path / "real"
    invoke("train", "--patches", patches, "--steps", "1", "--width", "2", "--out", not_a_gan, "--no-progress")
    result = invoke("train", "--patches", patches, "--augment", "gan", "--gan-model", not_a_gan / "model.pt",
                    "--out", tmp_path / "b", "--no-progress")
    assert result.exit_code == 1 and "train-gan" in result.output and "model.pt" in result.output
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    result = invoke("train", "--patches", bad, "--out", tmp_path / "c")
    assert result.exit_code == 1 and "bad.npz" in result.output
