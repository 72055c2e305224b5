"""robustlab.common.recipes: the Recipe model, the registry and the runner (resume, shards, merge, profiles).

The recipe here is a tiny one that needs no torch: its runs return numbers computed from the spec.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass

import pytest

from robustlab.common.config import bounded
from robustlab.common.errors import ConfigError, DivergenceError, NonFiniteLossError, RobustlabError
from robustlab.common.recipes import (
    Paper,
    PaperNumbers,
    Recipe,
    get_recipe,
    mean_std_table,
    merge_results,
    recipe_names,
    run_id,
    run_recipe,
    write_results,
)

BASE = {"a": 0.5, "b": 0.8, "c": 0.1}


@dataclass(frozen=True)
class ToyProfile:  # ranges declared, not checked by the class itself: Recipe and the runner check them
    rows: tuple[str, ...] = bounded(("a", "b"), choices=tuple(BASE), min_len=1, unique=True)
    seeds: int = bounded(2, ge=1)
    scale: float = bounded(1.0, gt=0)


PAPER = Paper(authors="Doe, J.", title="A toy table", venue="Nowhere", year=2020)
NUMBERS = PaperNumbers(values={("a", "acc"): 0.55}, source="Table 1", missing="the paper gives no such number")


def make_recipe(calls=None, *, fail_on=None, diverge_on=(), offset=0.0, numbers=NUMBERS, **kwargs):
    calls = [] if calls is None else calls

    def grid(p):
        return [{"row": r, "seed": s} for r in p.rows for s in range(p.seeds)]

    def run(spec, p):
        calls.append(run_id(spec))
        if run_id(spec) == fail_on:
            raise RuntimeError("boom")
        if run_id(spec) in diverge_on:
            raise DivergenceError(f"the training loss grew from 0.69 to 3.1e+06 at epoch 2 ({run_id(spec)})")
        acc = BASE[spec["row"]] * p.scale + 0.01 * spec["seed"] + offset
        return {"acc": acc, "loss": 1.0 - acc, "curve": [acc, acc / 2]}

    profiles = kwargs.pop("profiles", None) or {"smoke": ToyProfile(seeds=1), "quick": ToyProfile(),
                                                 "paper": ToyProfile(rows=("a", "b", "c"), seeds=5)}
    return Recipe(name="toy_table", paper=PAPER, table="Toy table 1", profiles=profiles, grid=grid, run=run,
                  paper_numbers=numbers, rows="row", **kwargs)


def runs_in(folder):
    return sorted(p.stem for p in (folder / "runs").glob("*.json"))


GRID = ["row=a_seed=0", "row=a_seed=1", "row=b_seed=0", "row=b_seed=1"]


def test_every_run_writes_its_json_and_the_results(tmp_path):
    calls = []
    report = run_recipe(make_recipe(calls), profile="quick", out_dir=tmp_path, progress=False)
    assert calls == GRID
    assert runs_in(tmp_path) == sorted(GRID)
    assert report.complete and report.ran == GRID and report.skipped == []
    record = json.loads((tmp_path / "runs" / "row=b_seed=1.json").read_text())
    assert record["spec"] == {"row": "b", "seed": 1}
    assert record["index"] == 3 and record["run_id"] == "row=b_seed=1"
    assert record["profile"] == {"name": "quick", "values": {"rows": ["a", "b"], "seeds": 2, "scale": 1.0}}
    assert record["metrics"] == pytest.approx({"acc": 0.81, "loss": 0.19})
    assert record["extras"] == {"curve": pytest.approx([0.81, 0.405])}
    assert record["seconds"] >= 0 and "python" in record["versions"] and "robustlab-common" in record["versions"]
    for name in ("profile.json", "results.md", "results.csv", "results.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.files == [tmp_path / "results.md", tmp_path / "results.csv", tmp_path / "results.png"]


def test_rerun_skips_finished_runs(tmp_path):
    calls = []
    recipe = make_recipe(calls)
    run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    report = run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    assert len(calls) == 4
    assert report.ran == [] and report.skipped == GRID and report.complete


def test_a_failing_run_keeps_earlier_results_and_the_rerun_completes(tmp_path):
    calls = []
    with pytest.raises(RuntimeError, match="boom"):
        run_recipe(make_recipe(calls, fail_on="row=b_seed=0"), profile="quick", out_dir=tmp_path, progress=False)
    assert calls == GRID[:3]
    assert runs_in(tmp_path) == GRID[:2]
    calls.clear()
    report = run_recipe(make_recipe(calls), profile="quick", out_dir=tmp_path, progress=False)
    assert calls == GRID[2:]
    assert report.complete and report.skipped == GRID[:2] and report.ran == GRID[2:]


def test_shards_cover_the_grid_once_and_merge_equals_a_full_run(tmp_path):
    calls = []
    recipe = make_recipe(calls)
    r0 = run_recipe(recipe, profile="quick", out_dir=tmp_path / "s0", shard=(0, 2), progress=False)
    r1 = run_recipe(recipe, profile="quick", out_dir=tmp_path / "s1", shard=(1, 2), progress=False)
    assert sorted(calls) == sorted(GRID) and len(calls) == len(set(calls))
    assert set(r0.ran).isdisjoint(r1.ran)
    assert not r0.complete and "Incomplete: 2 of 4 runs are missing" in (tmp_path / "s0" / "results.md").read_text()

    merged = merge_results(recipe, tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    assert merged.complete and sorted(merged.copied) == sorted(GRID)
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "full", progress=False)
    for name in ("results.md", "results.csv"):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "full" / name).read_text()

    # Shards may also share one folder.
    calls.clear()
    for i in range(3):
        run_recipe(recipe, profile="quick", out_dir=tmp_path / "shared", shard=(i, 3), progress=False)
    assert sorted(calls) == sorted(GRID)
    assert (tmp_path / "shared" / "results.md").read_text() == (tmp_path / "full" / "results.md").read_text()


def test_merge_into_a_shard_folder_and_identical_duplicates(tmp_path):
    recipe = make_recipe()
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "s0", shard=(0, 2), progress=False)
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "s1", shard=(1, 2), progress=False)
    report = merge_results(recipe, tmp_path / "s0", [tmp_path / "s0", tmp_path / "s1", tmp_path / "s1"])
    assert report.complete and sorted(report.copied) == ["row=a_seed=1", "row=b_seed=1"]


def test_merge_refuses_conflicting_duplicates(tmp_path):
    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path / "x", progress=False)
    run_recipe(make_recipe(offset=0.1), profile="quick", out_dir=tmp_path / "y", progress=False)
    with pytest.raises(RobustlabError, match="conflicting results for run 'row=a_seed=0'") as err:
        merge_results(make_recipe(), tmp_path / "m", [tmp_path / "x", tmp_path / "y"])
    assert "acc" in str(err.value)


def test_merge_refuses_mixed_profiles_and_non_result_folders(tmp_path):
    recipe = make_recipe()
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "q", progress=False)
    run_recipe(recipe, profile="smoke", out_dir=tmp_path / "s", progress=False)
    with pytest.raises(RobustlabError, match="different profiles"):
        merge_results(recipe, tmp_path / "m", [tmp_path / "q", tmp_path / "s"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RobustlabError, match="no profile.json"):
        merge_results(recipe, tmp_path / "m", [tmp_path / "empty"])


def test_a_folder_of_another_profile_is_refused(tmp_path):
    calls = []
    recipe = make_recipe(calls)
    run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    with pytest.raises(RobustlabError, match="holds results of profile 'quick'") as err:
        run_recipe(recipe, profile="smoke", out_dir=tmp_path, progress=False)
    assert "seeds 2 vs 1" in str(err.value)
    with pytest.raises(RobustlabError, match="scale 1.0 vs 2.0"):
        run_recipe(recipe, profile="quick", out_dir=tmp_path, overrides=["scale=2"], progress=False)
    assert len(calls) == 4  # nothing ran
    stored = json.loads((tmp_path / "profile.json").read_text())
    assert stored == {"recipe": "toy_table", "profile": "quick", "values": {"rows": ["a", "b"], "seeds": 2, "scale": 1.0}}


def test_overrides_and_run_files_change_the_profile(tmp_path):
    calls = []
    run_recipe(make_recipe(calls), profile="quick", out_dir=tmp_path / "o", overrides=["seeds=1", "rows=b"],
               progress=False)
    assert calls == ["row=b_seed=0"]
    toml = tmp_path / "run.toml"
    toml.write_text("seeds = 1\nscale = 2.0\n")
    calls.clear()
    run_recipe(make_recipe(calls), profile="quick", out_dir=tmp_path / "t", config=toml, overrides=["rows=a"],
               progress=False)
    record = json.loads((tmp_path / "t" / "runs" / "row=a_seed=0.json").read_text())
    assert calls == ["row=a_seed=0"] and record["metrics"]["acc"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="'sedes'"):
        run_recipe(make_recipe(), profile="quick", out_dir=tmp_path / "bad", overrides=["sedes=1"], progress=False)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), ("a", 2)])
def test_bad_shard_is_a_config_error(tmp_path, shard):
    with pytest.raises(ConfigError, match="shard"):
        run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, shard=shard, progress=False)


def test_unknown_profile_lists_the_profiles(tmp_path):
    with pytest.raises(ConfigError, match="smoke, quick, paper"):
        run_recipe(make_recipe(), profile="huge", out_dir=tmp_path, progress=False)


def test_results_md_sets_the_paper_numbers_beside_ours(tmp_path):
    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)
    md = (tmp_path / "results.md").read_text()
    assert "| row | runs | acc | acc (paper) | loss | loss (paper) |" in md
    assert "| a | 2 | 0.505 ± 0.007 | 0.550 | 0.495 ± 0.007 | n/r |" in md
    assert "the paper gives no such number" in md
    assert "Runs: 4 of 4 finished." in md and "Incomplete" not in md
    assert "Doe, J. (2020). A toy table. Nowhere." in md
    assert "Profile `quick`: rows=(a, b), seeds=2, scale=1.0" in md
    csv_text = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_text[0] == "row,runs,acc_mean,acc_std,acc_paper,loss_mean,loss_std,loss_paper"
    assert csv_text[1].startswith("a,2,0.505,") and ",0.55," in csv_text[1]


def test_without_published_numbers_the_table_says_so(tmp_path):
    none = PaperNumbers(values={}, source="Figure 2", missing="the paper reports this as a plot only")
    run_recipe(make_recipe(numbers=none, row_labels={"a": "Row A"}), profile="smoke", out_dir=tmp_path,
               progress=False)
    md = (tmp_path / "results.md").read_text()
    assert "| row | runs | acc | loss | paper |" in md
    assert "| Row A | 1 | 0.500 | 0.500 | n/r |" in md
    assert "the paper reports this as a plot only" in md


def test_write_results_rerenders_a_folder(tmp_path):
    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)
    (tmp_path / "results.md").unlink()
    report = write_results(make_recipe(), tmp_path)
    assert report.complete and (tmp_path / "results.md").exists()


def test_a_changed_grid_is_detected(tmp_path):
    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)
    path = tmp_path / "runs" / "row=a_seed=0.json"
    record = json.loads(path.read_text())
    record["spec"]["seed"] = 7
    path.write_text(json.dumps(record))
    with pytest.raises(RobustlabError, match="the recipe changed"):
        run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)
    path.write_text("{ not json")
    with pytest.raises(RobustlabError, match="cannot read the run file"):
        run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)


def test_recipe_checks_its_profiles():
    with pytest.raises(ValueError, match="paper"):
        Recipe(name="x", paper=PAPER, table="t", profiles={"smoke": ToyProfile(), "quick": ToyProfile()},
               grid=lambda p: [], run=lambda s, p: {}, paper_numbers=NUMBERS, rows="row")
    with pytest.raises(TypeError, match="dataclass"):
        Recipe(name="x", paper=PAPER, table="t", profiles={"smoke": 1, "quick": 2, "paper": 3},
               grid=lambda p: [], run=lambda s, p: {}, paper_numbers=NUMBERS, rows="row")
    with pytest.raises(ValueError, match="lower_snake_case"):
        dataclasses.replace(make_recipe(), name="Bad Name")
    with pytest.raises(ValueError, match="why"):
        PaperNumbers(values={}, source="Figure 1", missing=" ")


def test_default_summarize_follows_replace(tmp_path):
    recipe = dataclasses.replace(make_recipe(), row_labels={"a": "Row A"})
    run_recipe(recipe, profile="smoke", out_dir=tmp_path, progress=False)
    assert "| Row A | 1 |" in (tmp_path / "results.md").read_text()


def test_duplicate_run_ids_are_refused(tmp_path):
    recipe = Recipe(name="dup", paper=PAPER, table="t",
                    profiles={"smoke": ToyProfile(), "quick": ToyProfile(), "paper": ToyProfile()},
                    grid=lambda p: [{"row": "a"}, {"row": "a"}], run=lambda s, p: {"acc": 1.0},
                    paper_numbers=NUMBERS, rows="row")
    with pytest.raises(RobustlabError, match="same id"):
        run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)


@pytest.mark.parametrize(
    "spec, expected",
    [({"regime": "erm", "seed": 0}, "regime=erm_seed=0"), ({"eps": 0.1, "n": 3}, "eps=0.1_n=3"),
     ({"model": "a/b c"}, "model=a-b-c"), ({"id": "custom", "x": 1}, "custom")],
)
def test_run_id(spec, expected):
    assert run_id(spec) == expected


def test_mean_std_table_statistics():
    results = [{"index": i, "spec": {"row": r}, "metrics": {"m": v}}
               for i, (r, v) in enumerate([("b", 1.0), ("a", 2.0), ("a", 4.0)])]
    table = mean_std_table(results, rows="row", paper=NUMBERS)
    assert [rec["row"] for rec in table.records] == ["b", "a"]  # grid order
    a = table.records[1]
    assert a["m_mean"] == 3.0 and a["m_std"] == pytest.approx(math.sqrt(2))
    assert table.rows[0][2] == "1.000" and table.rows[1][2] == "3.000 ± 1.414"


def test_registry_lists_and_loads_recipes():
    assert "khalooei2022_moons" in recipe_names()
    assert get_recipe("khalooei2022_moons").name == "khalooei2022_moons"
    with pytest.raises(ConfigError, match="khalooei2022_moons"):
        get_recipe("no_such_recipe")
    assert recipe_names(package="robustlab.no_such_domain") == []


@pytest.mark.parametrize(
    ("env", "shard"),
    [({}, None),
     ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (0, 4)),
     ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, (2, 3)),
     ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
       "SLURM_ARRAY_TASK_STEP": "2"}, (3, 4))],
)
def test_shard_from_a_slurm_job_array(env, shard):
    from robustlab.common.recipes import shard_from_env

    assert shard_from_env(env) == shard


@pytest.mark.parametrize("env", [{"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
                                 {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2"},
                                 {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2",
                                  "SLURM_ARRAY_TASK_STEP": "2"}])
def test_bad_slurm_variables_are_named(env):
    from robustlab.common.recipes import shard_from_env

    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK"):
        shard_from_env(env)


# -- validation before anything is written ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, says",
    [("seeds=0", "seeds must be >= 1, got 0"), ("scale=-1", "scale must be > 0, got -1.0"),
     ("rows=", "rows must hold at least 1 value"), ("rows=[]", "rows must hold at least 1 value"),
     ("rows=a,z", "unknown rows ['z']"), ("rows=a,a", "rows holds 'a' more than once")],
)
def test_a_bad_value_is_refused_before_anything_is_written(tmp_path, override, says):
    calls = []
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=re.escape(says)):
        run_recipe(make_recipe(calls), profile="quick", out_dir=out, overrides=[override], progress=False)
    assert calls == [] and not out.exists()
    toml = tmp_path / "run.toml"
    key, _, value = override.partition("=")
    rows = [v for v in value.strip("[]").split(",") if v]
    toml.write_text(f"{key} = {rows if key == 'rows' else value}\n")
    with pytest.raises(ConfigError, match=f"run.toml: {re.escape(says)}"):
        run_recipe(make_recipe(calls), profile="quick", out_dir=out, config=toml, progress=False)
    assert calls == [] and not out.exists()


def test_a_recipe_checks_the_ranges_of_its_profiles():
    with pytest.raises(ConfigError, match="recipe 'toy_table', profile 'smoke': seeds must be >= 1, got 0"):
        make_recipe(profiles={"smoke": ToyProfile(seeds=0), "quick": ToyProfile(), "paper": ToyProfile()})


@dataclass(frozen=True)
class LooseProfile:  # no ranges declared: only the runner's empty-grid check stands between it and a 0-run sweep
    rows: tuple[str, ...] = ("a",)
    seeds: int = 1
    scale: float = 1.0


def test_an_empty_grid_is_refused_naming_the_values_that_emptied_it(tmp_path):
    recipe = make_recipe(profiles={"smoke": LooseProfile(), "quick": LooseProfile(), "paper": LooseProfile()})
    with pytest.raises(ConfigError, match=r"no run.*rows=\(\)"):
        run_recipe(recipe, profile="quick", out_dir=tmp_path / "a", overrides=["rows="], progress=False)
    with pytest.raises(ConfigError, match=r"no run.*seeds=0") as err:
        run_recipe(recipe, profile="quick", out_dir=tmp_path / "b", overrides=["seeds=0"], progress=False)
    assert "rows" not in str(err.value).split("no run")[1]  # only the value that emptied it is named
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- a folder without finished runs is never locked ---------------------------------------------------------------


def test_a_folder_without_finished_runs_takes_other_values(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="boom"):
        run_recipe(make_recipe(fail_on="row=a_seed=0"), profile="quick", out_dir=tmp_path, progress=False)
    assert (tmp_path / "profile.json").exists() and runs_in(tmp_path) == []
    capsys.readouterr()
    calls = []
    report = run_recipe(make_recipe(calls), profile="quick", out_dir=tmp_path, overrides=["scale=2"], progress=False)
    assert report.complete and calls == GRID
    assert json.loads((tmp_path / "profile.json").read_text())["values"]["scale"] == 2.0
    err = capsys.readouterr().err
    assert "no run had finished" in err and "scale 1.0 vs 2.0" in err
    # Once a run has finished there, the folder holds that profile only.
    with pytest.raises(RobustlabError, match="scale 2.0 vs 1.0"):
        run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=False)


def test_an_unreadable_profile_json_without_runs_is_replaced(tmp_path):
    tmp_path.joinpath("profile.json").write_text("{ half written")
    report = run_recipe(make_recipe(), profile="smoke", out_dir=tmp_path, progress=False)
    assert report.complete and json.loads((tmp_path / "profile.json").read_text())["profile"] == "smoke"
    tmp_path.joinpath("profile.json").write_text("{ half written")
    with pytest.raises(RobustlabError, match="cannot read the profile file"):
        run_recipe(make_recipe(), profile="smoke", out_dir=tmp_path, progress=False)


# -- diverged runs ------------------------------------------------------------------------------------------------


def test_a_diverged_run_is_recorded_as_diverged_and_left_out_of_the_table(tmp_path):
    calls = []
    recipe = make_recipe(calls, diverge_on={"row=a_seed=1"})
    report = run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    assert calls == GRID and report.ran == GRID and report.complete
    assert report.diverged == ["row=a_seed=1"] and report.finished == GRID
    record = json.loads((tmp_path / "runs" / "row=a_seed=1.json").read_text())
    assert record["status"] == "diverged" and "metrics" not in record and "extras" not in record
    assert record["reason"] == "DivergenceError: the training loss grew from 0.69 to 3.1e+06 at epoch 2 (row=a_seed=1)"
    assert record["spec"] == {"row": "a", "seed": 1} and record["profile"]["name"] == "quick"
    assert json.loads((tmp_path / "runs" / "row=a_seed=0.json").read_text())["status"] == "ok"

    # The mean of row a is that of its one result; the cell and a note say a run diverged.
    a = report.table.records[0]
    assert a["row"] == "a" and a["acc_mean"] == pytest.approx(0.5) and a["runs"] == 1 and a["diverged"] == 1
    md = (tmp_path / "results.md").read_text()
    assert "| a | 1 (+1 diverged) | 0.500 | 0.550 |" in md
    assert "| b | 2 | 0.805 ± 0.007 |" in md
    assert "Runs: 4 of 4 finished; 1 diverged (left out of the table): row=a_seed=1." in md
    assert "Diverged, left out of the means: a: 1 of 2 runs (row=a_seed=1: DivergenceError: the training loss " \
           "grew from 0.69 to 3.1e+06 at epoch 2 (row=a_seed=1))" in md
    csv_text = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("row,runs,") and csv_text[0].endswith(",diverged")

    # A diverged run is done: running the same command again does not run it again.
    calls.clear()
    again = run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    assert calls == [] and again.skipped == GRID and again.diverged == ["row=a_seed=1"]


def test_a_row_whose_runs_all_diverged_and_a_folder_of_diverged_runs_only(tmp_path):
    a_runs = {"row=a_seed=0", "row=a_seed=1"}
    report = run_recipe(make_recipe(diverge_on=a_runs | {"row=b_seed=0"}, fail_on=None), profile="quick",
                        out_dir=tmp_path / "x", progress=False)
    assert [rec["row"] for rec in report.table.records] == ["b"]
    md = (tmp_path / "x" / "results.md").read_text()
    assert "a: 2 of 2 runs" in md and "b: 1 of 2 runs" in md
    report = run_recipe(make_recipe(diverge_on=set(GRID)), profile="quick", out_dir=tmp_path / "y", progress=False)
    assert report.table is None and report.complete and report.diverged == GRID
    md = (tmp_path / "y" / "results.md").read_text()
    assert "No result: all 4 finished runs diverged" in md and not (tmp_path / "y" / "results.csv").exists()


def test_a_non_finite_loss_is_a_divergence_and_other_errors_still_stop_the_sweep(tmp_path):
    def run(spec, p):
        if spec["seed"] == 1:
            raise NonFiniteLossError("the training loss is nan at epoch 1, step 3")
        if spec["row"] == "b":
            raise FloatingPointError("a bug, not a divergence")
        return {"acc": 0.5}

    recipe = dataclasses.replace(make_recipe(), run=run)
    with pytest.raises(FloatingPointError, match="a bug"):
        run_recipe(recipe, profile="quick", out_dir=tmp_path, progress=False)
    assert runs_in(tmp_path) == ["row=a_seed=0", "row=a_seed=1"]
    assert json.loads((tmp_path / "runs" / "row=a_seed=1.json").read_text())["reason"].startswith(
        "NonFiniteLossError: the training loss is nan")


def test_merge_keeps_diverged_runs_and_refuses_a_diverged_and_a_finished_copy(tmp_path):
    recipe = make_recipe(diverge_on={"row=a_seed=1"})
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "s0", shard=(0, 2), progress=False)
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "s1", shard=(1, 2), progress=False)
    merged = merge_results(recipe, tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"])
    assert merged.complete and merged.diverged == ["row=a_seed=1"]
    run_recipe(recipe, profile="quick", out_dir=tmp_path / "full", progress=False)
    for name in ("results.md", "results.csv"):
        assert (tmp_path / "m" / name).read_text() == (tmp_path / "full" / name).read_text()

    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path / "ok", progress=False)
    with pytest.raises(RobustlabError, match="conflicting results for run 'row=a_seed=1'.*status"):
        merge_results(recipe, tmp_path / "m2", [tmp_path / "full", tmp_path / "ok"])


def test_a_run_file_that_is_neither_a_result_nor_diverged_is_refused(tmp_path):
    run_recipe(make_recipe(), profile="smoke", out_dir=tmp_path, progress=False)
    path = tmp_path / "runs" / "row=a_seed=0.json"
    record = json.loads(path.read_text())
    del record["metrics"]
    path.write_text(json.dumps(record))
    with pytest.raises(RobustlabError, match="not a run record"):
        write_results(make_recipe(), tmp_path)


def test_a_sweep_logged_to_a_file_writes_one_progress_line_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ROBUSTLAB_PROGRESS", raising=False)
    run_recipe(make_recipe(), profile="quick", out_dir=tmp_path, progress=True)  # stderr captured: not a terminal
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("toy_table [quick]")]
    assert len(lines) == len(GRID), lines
    assert lines[-1].startswith(f"toy_table [quick]: run {len(GRID)}/{len(GRID)} (100%)")


def test_a_paper_without_a_verified_year_prints_nd():
    assert Paper(authors="Doe, J.", title="T", venue="V", year=0).citation() == "Doe, J. (n.d.). T. V."
    assert PAPER.citation().startswith("Doe, J. (2020). A toy table.")
