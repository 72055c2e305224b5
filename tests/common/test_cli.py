"""robustlab.common.cli: lazy entry-point commands, exit codes, info, recipes, reproduce and merge."""

import importlib.metadata
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from robustlab.common.cli import main, reproduce_command
from robustlab.common.recipes import Paper, PaperNumbers, Recipe

MOONS = "khalooei2022_moons"


def robustlab(*args, env=None, timeout=120):
    """Run the installed ``robustlab`` script (or its function when the script is missing)."""
    script = Path(sys.executable).with_name("robustlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from robustlab.common.cli import main; main()"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=full_env, timeout=timeout)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- a tiny recipe registered for the duration of a test ------------------------------------------------------


@dataclass(frozen=True)
class ToyProfile:
    seeds: int = 2
    scale: float = 1.0


def _toy_recipe(offset=0.0):
    return Recipe(
        name="toy_table", paper=Paper(authors="Doe, J.", title="Toy", venue="Nowhere", year=2020), table="Toy table",
        profiles={"smoke": ToyProfile(seeds=1), "quick": ToyProfile(), "paper": ToyProfile(seeds=4)},
        grid=lambda p: [{"row": r, "seed": s} for r in ("a", "b") for s in range(p.seeds)],
        run=lambda spec, p: {"acc": (0.5 if spec["row"] == "a" else 0.8) * p.scale + offset},
        paper_numbers=PaperNumbers(values={}, source="Figure 1", missing="plots only"), rows="row",
    )


@pytest.fixture
def toy(monkeypatch):
    """Register ``toy_table`` (module ``robustlab_test_toy_recipe``) beside the installed recipes."""
    import robustlab.common.recipes.registry as registry

    module = types.ModuleType("robustlab_test_toy_recipe")
    module.RECIPE = _toy_recipe()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = registry.entry_points

    def entry_points(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "robustlab.recipes":
            eps.append(EntryPoint(name="toy_table", value=f"{module.__name__}:RECIPE", group="robustlab.recipes"))
        return eps

    monkeypatch.setattr(registry, "entry_points", entry_points)
    return module


@pytest.fixture
def extra_commands(monkeypatch):
    """Add command entry points that fail to load, or that are not click commands."""
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "robustlab.cli":
            eps.append(EntryPoint(name="ecgx", value="robustlab_no_such_module.cli:ecg", group="robustlab.cli"))
            eps.append(EntryPoint(name="notcmd", value="os:sep", group="robustlab.cli"))
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


# -- help and loading -------------------------------------------------------------------------------------------


def test_help_lists_the_common_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("info", "reproduce", "merge", "recipes"):
        assert f"\n  {name} " in result.output


def test_installed_script_help_and_version():
    result = robustlab("--help")
    assert result.returncode == 0, result.stderr
    assert "reproduce" in result.stdout and "Traceback" not in result.stderr
    version = robustlab("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"robustlab {importlib.metadata.version('robustlab-common')}"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from robustlab.common.cli import main\n"
        "for args in (['--help'], ['reproduce', '--help'], ['merge', '--help'], ['info', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'robustlab.common.engine') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('LIGHT')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LIGHT" in result.stdout


def test_a_broken_entry_point_is_listed_not_fatal(extra_commands):
    result = invoke("--help")
    assert result.exit_code == 0
    assert "ecgx" in result.output and "[broken]" in result.output
    assert "ModuleNotFoundError" in result.output and "notcmd" in result.output
    assert "Traceback" not in result.output

    result = invoke("ecgx", "train", "--epochs", "3")
    assert result.exit_code == 1
    assert "Error: the command 'ecgx' is broken" in result.output
    assert isinstance(result.exception, SystemExit)
    result = invoke("notcmd")
    assert result.exit_code == 1 and "not a click command" in result.output
    assert invoke("info", "--help").exit_code == 0  # the rest still works


# -- usage errors: exit 2, no traceback ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [
        (["reproduce", "no_such_recipe"], "registered recipes: "),
        (["reproduce", MOONS, "--shard", "2/2"], "out of range"),
        (["reproduce", MOONS, "--shard", "1/0"], "out of range"),
        (["reproduce", MOONS, "--shard", "x"], "not of the form i/n"),
        (["reproduce", MOONS, "--profile", "huge"], "its profiles: smoke, quick, paper"),
        (["reproduce", MOONS, "--set", "epohs=3"], "did you mean 'epochs'"),
        (["reproduce", MOONS, "--set", "epochs=abc"], "expected int"),
        (["reproduce", MOONS, "--set", "noequals"], "key=value"),
        (["reproduce", MOONS, "--set", "regimes=erm,bogus"], "unknown regimes"),
        (["reproduce", MOONS, "--threads", "0"], "--threads"),
        (["info", "--bogus"], "No such option"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, args, says):
    out = tmp_path / "out"
    if args[0] == "reproduce":
        args = [*args, "--out", out]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert says in result.output
    if "registered recipes" in says:  # every registered recipe is listed, whatever the installed domains
        assert MOONS in result.output.split("registered recipes: ", 1)[1]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_reproduce_without_out_and_merge_of_a_missing_folder(tmp_path):
    assert invoke("reproduce", MOONS).exit_code == 2
    result = invoke("merge", MOONS, "--out", tmp_path / "m", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize(
    "args",
    [["reproduce", "no_such_recipe", "--out", "OUT"], ["reproduce", MOONS, "--out", "OUT", "--shard", "3/2"],
     ["reproduce", MOONS, "--out", "OUT", "--set", "epochs=abc"]],
)
def test_installed_script_exits_2_without_traceback(tmp_path, args):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = robustlab(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "Error:" in result.stderr


# -- robustlab errors: exit 1, a message, no traceback -----------------------------------------------------------


def test_a_robustlab_error_is_a_message_with_exit_1(tmp_path, toy):
    out = tmp_path / "out"
    assert invoke("reproduce", "toy_table", "--out", out, "--no-progress").exit_code == 0
    result = invoke("reproduce", "toy_table", "--out", out, "--set", "scale=2", "--no-progress")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Error:" in result.output and "holds results of profile 'quick'" in result.output
    assert "scale 1.0 vs 2.0" in result.output
    result = invoke("reproduce", "toy_table", "--profile", "smoke", "--out", out, "--no-progress")
    assert result.exit_code == 1 and "never mixed" in result.output


def test_a_domain_group_gets_the_same_error_handling(monkeypatch):
    from robustlab.common.errors import DataError

    @click.group(name="fakedomain")
    def fakedomain():
        """A domain group."""

    @fakedomain.command()
    def fail():
        raise DataError("record 100 of MITDB is truncated")

    module = types.ModuleType("robustlab_test_fake_domain")
    module.fakedomain = fakedomain
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "robustlab.cli":
            eps.append(EntryPoint(name="fakedomain", value=f"{module.__name__}:fakedomain", group="robustlab.cli"))
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "fakedomain" in invoke("--help").output
    result = invoke("fakedomain", "fail")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: record 100 of MITDB is truncated" in result.output


# -- info and recipes ---------------------------------------------------------------------------------------------


def test_info_prints_versions_and_the_data_folder_without_creating_it(tmp_path):
    data = tmp_path / "not" / "there"
    result = robustlab("info", env={"ROBUSTLAB_DATA": str(data)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert importlib.metadata.version("torch") in out
    assert importlib.metadata.version("numpy") in out
    version = re.escape(importlib.metadata.version("robustlab-common"))
    assert re.search(rf"^robustlab-common\s+{version}$", out, re.M), out
    assert str(data) in out and "not created yet" in out
    assert "python" in out and "device" in out and "torch threads" in out
    assert MOONS in out
    assert not data.exists() and not data.parent.exists()


def test_recipes_lists_paper_and_profiles(toy):
    result = invoke("recipes")
    assert result.exit_code == 0
    assert MOONS in result.output and "Khalooei" in result.output
    assert "profiles: smoke, quick, paper" in result.output
    assert "toy_table" in result.output
    verbose = invoke("recipes", "-v")
    assert "quick: seeds=2, scale=1.0" in verbose.output


# -- reproduce and merge ------------------------------------------------------------------------------------------


def test_reproduce_in_shards_and_merge(tmp_path, toy):
    for i in range(2):
        result = invoke("reproduce", "toy_table", "--out", tmp_path / f"s{i}", "--shard", f"{i}/2", "--no-progress")
        assert result.exit_code == 0, result.output
        assert "2/4 runs finished" in result.output and "2 missing" in result.output
    result = invoke("merge", "toy_table", "--out", tmp_path / "all", tmp_path / "s0", tmp_path / "s1")
    assert result.exit_code == 0, result.output
    assert "4/4 runs finished (4 copied from 2 folder(s))" in result.output
    md = (tmp_path / "all" / "results.md").read_text()
    assert "Runs: 4 of 4 finished." in md and "| row | runs | acc | paper |" in md
    again = invoke("reproduce", "toy_table", "--out", tmp_path / "all", "--no-progress")
    assert again.exit_code == 0 and "0 ran now, 4 of this shard were already done" in again.output


def test_merge_conflict_is_an_error_message(tmp_path, toy):
    assert invoke("reproduce", "toy_table", "--out", tmp_path / "x", "--no-progress").exit_code == 0
    toy.RECIPE = _toy_recipe(offset=0.05)
    assert invoke("reproduce", "toy_table", "--out", tmp_path / "y", "--no-progress").exit_code == 0
    result = invoke("merge", "toy_table", "--out", tmp_path / "m", tmp_path / "x", tmp_path / "y")
    assert result.exit_code == 1 and "conflicting results for run" in result.output
    assert isinstance(result.exception, SystemExit)


def test_reproduce_reads_a_toml_run_file(tmp_path, toy):
    run_file = tmp_path / "run.toml"
    run_file.write_text("seeds = 1\n")
    result = invoke("reproduce", "toy_table", "--config", run_file, "--out", tmp_path / "o", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2/2 runs finished" in result.output
    run_file.write_text("sedes = 1\n")
    result = invoke("reproduce", "toy_table", "--config", run_file, "--out", tmp_path / "p", "--no-progress")
    assert result.exit_code == 2 and "run.toml" in result.output and "'sedes'" in result.output


def test_a_domain_reproduce_command_offers_only_its_recipes(tmp_path):
    command = reproduce_command(package="robustlab.no_such_domain")
    result = CliRunner().invoke(command, [MOONS, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown recipe" in result.output


def test_reproduce_takes_its_shard_from_a_slurm_job_array(tmp_path, toy, monkeypatch):
    for task in (1, 2):  # sbatch --array=1-2: task ids 1 and 2 are shards 0/2 and 1/2
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
        monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
        result = invoke("reproduce", "toy_table", "--out", tmp_path / "all", "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"shard {task - 1}/2 from the Slurm job array" in result.output
        assert f"{2 * task}/4 runs finished" in result.output
    ids = sorted(p.stem for p in (tmp_path / "all" / "runs").glob("*.json"))
    assert len(ids) == 4
    # an explicit --shard wins over the job array
    result = invoke("reproduce", "toy_table", "--out", tmp_path / "one", "--shard", "0/4", "--no-progress")
    assert result.exit_code == 0 and "1/4 runs finished" in result.output
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "9")
    result = invoke("reproduce", "toy_table", "--out", tmp_path / "bad", "--no-progress")
    assert result.exit_code == 1 and "SLURM_ARRAY_TASK_ID=9" in result.output
