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
