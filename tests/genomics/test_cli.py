"""robustlab.genomics.cli: ``robustlab genomics simulate`` and the import-time promise of cli.py."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from robustlab.genomics.cli import genomics
from robustlab.genomics.data.simulate import SimulatedDataset


def invoke(*args):
    return CliRunner().invoke(genomics, [str(a) for a in args])


@pytest.mark.parametrize(("task", "targets"), [("koo2019", 1), ("koo_eddy2019", 12)])
def test_simulate_writes_a_loadable_npz(tmp_path, task, targets):
    out = tmp_path / f"{task}.npz"
    result = invoke("simulate", "--task", task, "--n", 120, "--seed", 3, "--length", 150, "--out", out)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{task}: 120 sequences of length 150") and str(out) in lines[0]
    ds = SimulatedDataset.load_npz(out)
    assert ds.x.shape == (120, 4, 150) and ds.y.shape == (120, targets) and ds.task == task
    np.testing.assert_array_equal(ds.mask, (ds.pwm_matrix != 0.25).any(axis=1))


def test_simulate_through_the_robustlab_command(tmp_path):
    from robustlab.common.cli import main

    out = tmp_path / "d.npz"
    result = CliRunner().invoke(main, ["genomics", "simulate", "--task", "koo2019", "--n", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(SimulatedDataset.load_npz(out)) == 10


@pytest.mark.parametrize("args", [
    ["--task", "nope"],
    ["--task", "koo2019", "--n", "0"],
    ["--task", "koo2019", "--n", "ten"],
    ["--task", "koo2019", "--length", "0"],
    ["--task", "koo2019", "--length", "20"],  # too short for 3 motifs
    ["--task", "koo2019", "--format", "h5"],
])
def test_bad_arguments_exit_2(tmp_path, args):
    result = invoke("simulate", *args, "--out", tmp_path / "x.npz")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "x.npz").exists()


def test_hdf5_output_is_refused(tmp_path):
    result = invoke("simulate", "--task", "koo2019", "--n", 10, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "HDF5" in result.output


def test_missing_out_is_a_usage_error():
    assert invoke("simulate", "--task", "koo2019").exit_code == 2


def test_cli_module_imports_nothing_heavy():
    code = "import sys, robustlab.genomics.cli; print(sorted({'numpy', 'torch', 'Bio'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- train, attribute, score ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """simulate -> train -> attribute (FASTA written from the NPZ) -> score, through the CLI."""
    tmp = tmp_path_factory.mktemp("pipeline")
    data = tmp / "d.npz"
    assert invoke("simulate", "--task", "koo2019", "--n", 300, "--out", data).exit_code == 0
    run = invoke("train", "--data", data, "--arch", "localnet", "--variant", "adversarial", "--epochs", 1,
                 "--adv-steps", 2, "--out", tmp / "model")
    ds = SimulatedDataset.load_npz(data)
    fasta = tmp / "s.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(ds.sequences())))
    attr = invoke("attribute", "--model", tmp / "model" / "model.pt", "--fasta", fasta, "--method", "saliency",
                  "--logos", 2, "--out", tmp / "attr")
    score = invoke("score", "--attributions", tmp / "attr" / "attributions.npz", "--data", data,
                   "--out", tmp / "score")
    return tmp, run, attr, score


def test_train_writes_the_engine_checkpoints_and_a_model_file(pipeline):
    import json

    from robustlab.common.modelfile import load_model
    from robustlab.genomics.models import LocalNet

    tmp, run, _, _ = pipeline
    assert run.exit_code == 0, run.output
    assert (tmp / "model" / "best.pt").is_file() and (tmp / "model" / "last.pt").is_file()
    assert "test AUROC" in run.output
    loaded = load_model(tmp / "model" / "model.pt")  # rebuilt from the file alone
    assert isinstance(loaded.model, LocalNet) and loaded.args["num_tasks"] == 1 and loaded.args["length"] == 200
    assert loaded.preprocessing["length"] == 200 and loaded.metadata["variant"] == "adversarial"
    record = json.loads((tmp / "model" / "run.json").read_text())
    assert record["command"] == "genomics train" and record["arch"] == "localnet" and record["epochs"] == 1


def test_attribute_writes_maps_and_logos(pipeline):
    tmp, _, attr, _ = pipeline
    assert attr.exit_code == 0, attr.output
    with np.load(tmp / "attr" / "attributions.npz") as z:
        assert z["attributions"].shape == (300, 4, 200) and np.isfinite(z["attributions"]).all()
    assert (tmp / "attr" / "logos.png").stat().st_size > 0


def test_score_writes_json_and_plot(pipeline):
    import json

    tmp, _, _, score = pipeline
    assert score.exit_code == 0, score.output
    report = json.loads((tmp / "score" / "scores.json").read_text())
    assert report["n_sequences"] == 150
    per_sequence = [v for v in report["auroc"] if v is not None]
    assert len(per_sequence) == report["summary"]["auroc"]["n"] == 150 - report["n_skipped"]
    assert report["summary"]["auroc"]["mean"] == pytest.approx(np.mean(per_sequence))
    assert (tmp / "score" / "auroc.png").is_file()
    assert (tmp / "score" / "logos.png").stat().st_size > 0  # logos beside the true motif positions
    assert "logos" in score.output
    assert report["rule"] == "koo2019"
    # --rule strict scores the same maps against the stricter mask (low-information motif columns left out)
    from robustlab.genomics.interpret import interpretability_scores, motif_mask, reduce_attribution

    strict = invoke("score", "--attributions", tmp / "attr" / "attributions.npz", "--data", tmp / "d.npz",
                    "--rule", "strict", "--logos", 0, "--out", tmp / "score-strict")
    assert strict.exit_code == 0, strict.output
    got = json.loads((tmp / "score-strict" / "scores.json").read_text())
    ds = SimulatedDataset.load_npz(tmp / "d.npz")
    npz = np.load(tmp / "attr" / "attributions.npz")
    pos = ds.y[:, 0] > 0.5
    mask, keep = motif_mask(ds.pwm_matrix[pos], rule="strict")
    want = interpretability_scores(reduce_attribution(npz["attributions"][pos], ds.x[pos]), mask, exclude=~keep)
    assert got["rule"] == "strict"
    assert got["summary"]["auroc"]["mean"] == pytest.approx(want["summary"]["auroc"]["mean"], abs=1e-12)


@pytest.mark.parametrize("args", [
    ["train", "--arch", "resnet"],
    ["train", "--variant", "mixup"],
    ["train", "--epochs", "0"],
    ["attribute", "--method", "nope"],
    ["score"],
])
def test_bad_train_attribute_score_arguments_exit_2(pipeline, args):
    tmp = pipeline[0]
    base = {"train": ["--data", tmp / "d.npz", "--out", tmp / "x"],
            "attribute": ["--model", tmp / "model" / "model.pt", "--fasta", tmp / "s.fa", "--out", tmp / "x"],
            "score": ["--data", tmp / "d.npz", "--out", tmp / "x"]}[args[0]]
    result = invoke(*args, *base)
    assert result.exit_code == 2, result.output


def test_attribute_with_a_training_checkpoint_names_the_model_file(pipeline):
    tmp = pipeline[0]
    result = invoke("attribute", "--model", tmp / "model" / "best.pt", "--fasta", tmp / "s.fa", "--out", tmp / "y")
    assert result.exit_code == 1, result.output
    assert "not a model file" in result.output and str(tmp / "model" / "model.pt") in result.output
    assert "Traceback" not in result.output and not (tmp / "y").exists()


def test_export_turns_a_training_checkpoint_into_the_same_model(pipeline):
    tmp = pipeline[0]
    result = invoke("export", "--checkpoint", tmp / "model" / "best.pt", "--arch", "localnet", "--variant",
                    "adversarial", "--out", tmp / "exported.pt")
    assert result.exit_code == 0, result.output
    maps = []
    for model in (tmp / "model" / "model.pt", tmp / "exported.pt"):
        out = tmp / f"attr-{model.stem}"
        assert invoke("attribute", "--model", model, "--fasta", tmp / "s.fa", "--logos", 0, "--out", out).exit_code == 0
        with np.load(out / "attributions.npz") as z:
            maps.append(z["attributions"])
    np.testing.assert_array_equal(maps[0], maps[1])
    wrong = invoke("export", "--checkpoint", tmp / "model" / "best.pt", "--arch", "distnet", "--variant", "standard",
                   "--out", tmp / "wrong.pt")
    assert wrong.exit_code == 1 and "do not fit DistNet" in wrong.output and not (tmp / "wrong.pt").exists()


@pytest.mark.parametrize("method", ["gradient_times_input", "integrated_gradients", "expected_gradients",
                                    "smoothgrad"])
def test_every_attribution_method_through_attribute_and_score(pipeline, method):
    import json

    tmp = pipeline[0]
    attr = invoke("attribute", "--model", tmp / "model" / "model.pt", "--fasta", tmp / "s.fa", "--method", method,
                  "--logos", 0, "--out", tmp / method)
    assert attr.exit_code == 0, attr.output
    with np.load(tmp / method / "attributions.npz") as z:
        maps, x = z["attributions"], z["x"]
        assert str(z["method"]) == method and maps.shape == (300, 4, 200) and np.isfinite(maps).all()
    if method in ("gradient_times_input", "integrated_gradients"):  # x input (zero baseline): 0 off the sequence
        assert np.all(maps[x == 0] == 0) and np.abs(maps).sum() > 0
    if method == "expected_gradients":  # (x - random one-hot baseline) x gradient: nonzero off the sequence too
        assert np.abs(maps[x == 0]).sum() > 0
    score = invoke("score", "--attributions", tmp / method / "attributions.npz", "--data", tmp / "d.npz",
                   "--out", tmp / f"{method}-score")
    assert score.exit_code == 0, score.output
    report = json.loads((tmp / f"{method}-score" / "scores.json").read_text())
    assert report["reduction"] == ("grad_times_input" if method == "smoothgrad" else "observed")
    assert report["summary"]["auroc"]["n"] == sum(v is not None for v in report["auroc"]) > 0
