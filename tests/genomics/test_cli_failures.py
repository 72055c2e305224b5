"""robustlab genomics: what a user hits with bad inputs, kills and misuse; each failure of issue 8 as a test."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from robustlab.genomics.cli import genomics
from robustlab.genomics.data.simulate import SimulatedDataset


def invoke(*args):
    return CliRunner().invoke(genomics, [str(a) for a in args])


def assert_clean(result, code, *named):
    """Exit ``code``, no traceback, an ``Error:`` line naming every item of ``named``."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Error" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for item in named:
        assert str(item) in result.output, (item, result.output)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    assert invoke("simulate", "--task", "koo2019", "--n", 200, "--out", tmp / "d.npz").exit_code == 0
    run = invoke("train", "--data", tmp / "d.npz", "--epochs", 1, "--no-progress", "--out", tmp / "k")
    assert run.exit_code == 0, run.output
    ds = SimulatedDataset.load_npz(tmp / "d.npz")
    (tmp / "s.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(ds.sequences()[:10])))
    return tmp


# -- 1. lost work: --resume -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_killed_mid_run_resumes_bit_identically(tmp_path):
    from robustlab.common.checkpoint import load_checkpoint
    from robustlab.common.testing import kill_command_mid_run

    data = tmp_path / "d.npz"
    assert invoke("simulate", "--task", "koo2019", "--n", 1500, "--out", data).exit_code == 0
    robustlab = shutil.which("robustlab", path=os.path.dirname(sys.executable))
    args = ["genomics", "train", "--data", str(data), "--variant", "adversarial", "--adv-steps", "3",
            "--epochs", "5", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([robustlab, *args, "--out", str(tmp_path / "whole")], check=True, env=env, timeout=300,
                   capture_output=True)
    killed = tmp_path / "killed"
    done = kill_command_mid_run([robustlab, *args, "--out", str(killed)], killed, after_epoch=1, epochs=5,
                                timeout=300)
    again = subprocess.run([robustlab, *args, "--out", str(killed)], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # refused without --resume, nothing lost
    assert int(load_checkpoint(killed / "last.pt")["epoch"]) == done
    subprocess.run([robustlab, *args, "--out", str(killed), "--resume"], check=True, env=env, timeout=300,
                   capture_output=True)
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 5
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert (tmp_path / "whole" / "metrics.csv").read_text().splitlines()[1:] != []


def test_resume_with_other_options_names_them(trained):
    result = invoke("train", "--data", trained / "d.npz", "--epochs", 1, "--lr", 0.01, "--batch-size", 50,
                    "--no-progress", "--resume", "--out", trained / "k")
    assert_clean(result, 2, "lr: 0.001 there, 0.01 now", "batch_size: 100 there, 50 now")


def test_resume_of_a_finished_run_changes_nothing(trained):
    before = (trained / "k" / "last.pt").read_bytes()
    result = invoke("train", "--data", trained / "d.npz", "--epochs", 1, "--no-progress", "--resume",
                    "--out", trained / "k")
    assert result.exit_code == 0, result.output
    assert (trained / "k" / "last.pt").read_bytes() == before


def test_resume_with_more_epochs_continues_a_finished_run(tmp_path, trained):
    import json

    from robustlab.common.checkpoint import load_checkpoint

    shutil.copytree(trained / "k", tmp_path / "k")
    fewer = invoke("train", "--data", trained / "d.npz", "--epochs", 1, "--seed", 1, "--no-progress", "--resume",
                   "--out", tmp_path / "k")
    assert_clean(fewer, 2, "seed: 0 there, 1 now")
    more = invoke("train", "--data", trained / "d.npz", "--epochs", 2, "--no-progress", "--resume",
                  "--out", tmp_path / "k")
    assert more.exit_code == 0, more.output
    assert load_checkpoint(tmp_path / "k" / "last.pt")["epoch"] == 2
    assert json.loads((tmp_path / "k" / "run.json").read_text())["epochs"] == 2
    back = invoke("train", "--data", trained / "d.npz", "--epochs", 1, "--no-progress", "--resume",
                  "--out", tmp_path / "k")
    assert_clean(back, 2, "epochs: 2 there, 1 now")


def test_resume_of_a_run_without_its_options_is_refused(tmp_path, trained):
    shutil.copytree(trained / "k", tmp_path / "k")
    (tmp_path / "k" / "run.json").unlink()
    result = invoke("train", "--data", trained / "d.npz", "--epochs", 1, "--no-progress", "--resume",
                    "--out", tmp_path / "k")
    assert_clean(result, 2, "run.json")


# -- 2. bare tracebacks from domain commands ------------------------------------------------------------------


def _bad_model_files(tmp):
    import pickle

    evil = tmp / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp / "pwned"),))

    torch.save({"format": "robustlab-model", "weights": Evil()}, evil)
    good = (tmp / "k" / "model.pt").read_bytes()
    files = {"truncated.pt": good[: len(good) // 2], "html.pt": b"<!DOCTYPE html><html>503</html>", "empty.pt": b"",
             "pickle.pt": pickle.dumps({"a": 1})}
    for name, content in files.items():
        (tmp / name).write_bytes(content)
    return [evil, *(tmp / n for n in files)]


def test_attribute_with_broken_model_files_fails_cleanly(trained):
    for path in _bad_model_files(trained):
        result = invoke("attribute", "--model", path, "--fasta", trained / "s.fa", "--out", trained / "never")
        assert_clean(result, 1, path)
        assert "weights_only=False" not in result.output and "weights_only` set to `False" not in result.output
    assert not (trained / "pwned").exists() and not (trained / "never").exists()


def test_attribute_with_a_model_file_of_another_kind_of_network_is_named(trained):
    from robustlab.common.modelfile import save_model
    from robustlab.common.models import MLP

    save_model(MLP(800, 1), trained / "mlp.pt")
    result = invoke("attribute", "--model", trained / "mlp.pt", "--fasta", trained / "s.fa", "--out", trained / "never")
    assert_clean(result, 1, trained / "mlp.pt", "MLP")


def test_score_with_a_non_npz_attributions_file_fails_cleanly(trained):
    for name, content in (("a.npz", b"<html>not found</html>"), ("b.npz", b""), ("c.npz", b"PK\x03\x04broken")):
        (trained / name).write_bytes(content)
        result = invoke("score", "--attributions", trained / name, "--data", trained / "d.npz",
                        "--out", trained / "never")
        assert_clean(result, 1, trained / name)
    np.savez(trained / "d2.npz", attributions=np.zeros((2, 4, 5)))
    assert_clean(invoke("score", "--attributions", trained / "d2.npz", "--data", trained / "d.npz",
                        "--out", trained / "never"), 1, "'x'")


def test_a_device_this_machine_lacks_is_a_usage_error(trained):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 'cuda' is a valid device here")
    for device in ("cuda", "cuda:3", "banana"):
        result = invoke("train", "--data", trained / "d.npz", "--device", device, "--out", trained / "never")
        assert_clean(result, 2, repr(device))
    assert not (trained / "never").exists()


def test_an_unwritable_out_is_refused_before_any_compute(trained, monkeypatch):
    import robustlab.genomics.training as training

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(training, "train", must_not_train)
    (trained / "a-file").write_text("")
    for out in (trained / "a-file", trained / "a-file" / "sub"):
        result = invoke("train", "--data", trained / "d.npz", "--out", out)
        assert_clean(result, 2, out)
    result = invoke("simulate", "--task", "koo2019", "--n", 10, "--out", trained / "a-file" / "x.npz")
    assert_clean(result, 2, trained / "a-file")


# -- 6. silent divergence -------------------------------------------------------------------------------------


def test_a_diverging_run_stops_with_a_clear_error(trained):
    result = invoke("train", "--data", trained / "d.npz", "--lr", 1e9, "--epochs", 3, "--no-progress",
                    "--out", trained / "diverged")
    assert_clean(result, 1, "diverged")
    assert not (trained / "diverged" / "model.pt").exists()


# -- 7. messages ----------------------------------------------------------------------------------------------


def test_ragged_fasta_is_refused_with_a_hint_the_cli_user_can_follow(trained):
    (trained / "ragged.fa").write_text(">a\nACGTACGT\n>b\nACG\n")
    result = invoke("attribute", "--model", trained / "k" / "model.pt", "--fasta", trained / "ragged.fa",
                    "--out", trained / "never")
    assert_clean(result, 1, trained / "ragged.fa")
    assert "--pad-to" not in result.output


def test_fasta_of_another_length_than_the_model_is_named(trained):
    (trained / "short.fa").write_text(">a\n" + "ACGT" * 25 + "\n")
    result = invoke("attribute", "--model", trained / "k" / "model.pt", "--fasta", trained / "short.fa",
                    "--out", trained / "never")
    assert_clean(result, 1, "length 100", "length 200")


def test_a_target_beyond_the_models_outputs_is_a_usage_error(trained):
    result = invoke("attribute", "--model", trained / "k" / "model.pt", "--fasta", trained / "s.fa", "--target", 1,
                    "--out", trained / "never")
    assert_clean(result, 2, "1 output")
