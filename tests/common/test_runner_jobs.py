"""run_recipe(jobs=N): the runs of a shard in spawned worker processes give the results of jobs=1.

The moons recipe's smoke profile is run once in this process (jobs=1) and once in two workers (jobs=2); the
resume, shard and error tests reuse those folders. The worker errors use a tiny recipe without torch, registered
by a distribution written to a temporary folder on sys.path: spawned workers see sys.path, so they find it by its
name through the registry as they find an installed recipe.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import textwrap
import time

import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe, run_recipe

MOONS = "khalooei2022_moons"
FILES = ("results.md", "results.csv")


def _records(folder):
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))}


def _results(folder):
    """What must not depend on jobs: each run's status, metrics and extras (exact floats), and the table files."""
    runs = {rid: (rec["status"], rec.get("metrics"), rec.get("extras")) for rid, rec in _records(folder).items()}
    return runs, {name: (folder / name).read_text() for name in FILES}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run_recipe(MOONS, profile="smoke", out_dir=out, progress=False, jobs=1)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    return out, run_recipe(MOONS, profile="smoke", out_dir=out, progress=False, jobs=2)


@pytest.fixture(autouse=True)
def _no_worker_left():
    yield
    assert multiprocessing.active_children() == [], "worker processes left running"


def test_two_workers_give_the_results_of_one_process(serial, parallel):
    (s_out, s), (p_out, p) = serial, parallel
    assert s.complete and p.complete and s.grid_size == p.grid_size == 5
    assert p.ran == s.ran == p.finished  # grid order, whatever the order in which the workers finished
    assert _results(p_out) == _results(s_out)
    records = _records(p_out)
    assert all(rec["platform"]["torch_threads"] == 1 for rec in records.values())  # one thread per worker
    assert (p_out / "profile.json").read_text() == (s_out / "profile.json").read_text()


def test_a_rerun_with_workers_runs_only_the_missing_runs(serial, parallel, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(parallel[0], out)
    gone = parallel[1].ran[1], parallel[1].ran[3]
    (out / "runs" / f"{gone[0]}.json").unlink()
    (out / "runs" / f"{gone[1]}.json").unlink()
    # an interrupted run leaves at most the temporary file of an atomic write: it is not a result
    (out / "runs" / f".{gone[1]}.json.x1y2z3.tmp").write_text('{"run_id": "half')
    report = run_recipe(MOONS, profile="smoke", out_dir=out, progress=False, jobs=2)
    assert report.ran == list(gone)
    assert report.skipped == [rid for rid in parallel[1].ran if rid not in gone]
    assert report.complete and _results(out) == _results(serial[0])


def test_a_shard_with_workers_runs_only_its_runs(serial, tmp_path):
    report = run_recipe(MOONS, profile="smoke", out_dir=tmp_path, shard=(1, 2), progress=False, jobs=2)
    assert report.ran == [serial[1].ran[1], serial[1].ran[3]] and report.skipped == []
    assert sorted(_records(tmp_path)) == sorted(report.ran)
    full = _results(serial[0])[0]
    assert _results(tmp_path)[0] == {rid: full[rid] for rid in report.ran}
    assert all(rec["shard"] == "1/2" for rec in _records(tmp_path).values())


# -- errors and divergence in a worker ---------------------------------------------------------------------------

TOY = "jobs_toy_recipe"
TOY_MODULE = textwrap.dedent('''
    import os
    import time
    from dataclasses import dataclass
    from pathlib import Path

    from robustlab.common.errors import DivergenceError
    from robustlab.common.recipes import Paper, PaperNumbers, Recipe


    @dataclass(frozen=True)
    class Profile:
        runs: int = 4
        fail: int = -1     # this run raises a ValueError
        odd: int = -1      # this run raises an exception that pickle cannot rebuild
        diverge: int = -1  # this run raises a DivergenceError
        slow: int = -1     # this run sleeps a minute


    class OddError(Exception):
        def __init__(self, left, right):
            super().__init__(f"{left} and {right}")


    def run(spec, p):
        x = spec["x"]
        if x == p.slow:
            time.sleep(60)
        if x == p.fail:
            folder = os.environ.get("JOBS_TOY_RUNS")  # wait for the runs before this one to be written
            deadline = time.monotonic() + 30
            while folder and len(list(Path(folder).glob("*.json"))) < x and time.monotonic() < deadline:
                time.sleep(0.05)
            raise ValueError(f"boom in run x={x}")
        if x == p.odd:
            raise OddError("left", "right")
        if x == p.diverge:
            raise DivergenceError(f"the training loss grew from 0.7 to 3e+06 (x={x})")
        return {"value": x / 3, "pid": str(os.getpid())}


    RECIPE = Recipe(
        name="jobs_toy_recipe", paper=Paper(authors="Doe, J.", title="Toy", venue="Nowhere", year=2020),
        table="Toy", profiles={"smoke": Profile(), "quick": Profile(), "paper": Profile()},
        grid=lambda p: [{"row": "a", "x": x} for x in range(p.runs)], run=run,
        paper_numbers=PaperNumbers(values={}, source="none", missing="a test recipe"), rows="row",
    )
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """``jobs_toy_recipe``, registered by a distribution in a folder on sys.path (which spawned workers inherit)."""
    site = tmp_path / "site"
    (site / "jobs_toy_recipe-0.dist-info").mkdir(parents=True)
    (site / "jobs_toy_recipe.py").write_text(TOY_MODULE)
    (site / "jobs_toy_recipe-0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jobs-toy-recipe\nVersion: 0\n")
    (site / "jobs_toy_recipe-0.dist-info" / "entry_points.txt").write_text(
        f"[robustlab.recipes]\n{TOY} = jobs_toy_recipe:RECIPE\n")
    monkeypatch.syspath_prepend(str(site))
    yield get_recipe(TOY)
    sys.modules.pop("jobs_toy_recipe", None)


def test_an_error_in_a_worker_reaches_the_caller_and_stops_the_other_workers(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JOBS_TOY_RUNS", str(tmp_path / "runs"))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^boom in run x=2$") as err:
        run_recipe(TOY, profile="smoke", out_dir=tmp_path, overrides=["fail=2", "slow=3"], progress=False, jobs=2)
    assert time.perf_counter() - t0 < 45  # the worker sleeping in run x=3 was stopped, not waited for
    assert "Traceback" in str(err.value.__cause__) and "boom in run x=2" in str(err.value.__cause__)
    assert sorted(_records(tmp_path)) == ["row=a_x=0", "row=a_x=1"]  # what finished before stays
    assert all(rec["extras"]["pid"] != str(os.getpid()) for rec in _records(tmp_path).values())
    assert "jobs_toy_recipe: run row=a_x=2 (grid index 2) failed; the 2 finished runs are kept in " \
           f"{tmp_path / 'runs'}; run the same command again to resume (the runs stopped in progress, row=a_x=3, run " \
           "again then)" in capsys.readouterr().err


def test_an_exception_pickle_cannot_rebuild_comes_back_by_type_name_and_message(toy, tmp_path):
    with pytest.raises(RuntimeError, match=r"jobs_toy_recipe\.OddError: left and right"):
        run_recipe(TOY, profile="smoke", out_dir=tmp_path, overrides=["odd=0"], progress=False, jobs=2)


def test_a_diverged_run_in_a_worker_is_recorded_as_in_this_process(toy, tmp_path, capsys):
    serial = run_recipe(TOY, profile="smoke", out_dir=tmp_path / "s", overrides=["diverge=1"], progress=False, jobs=1)
    capsys.readouterr()
    report = run_recipe(TOY, profile="smoke", out_dir=tmp_path / "p", overrides=["diverge=1"], progress=False, jobs=2)
    assert report.diverged == serial.diverged == ["row=a_x=1"] and report.ran == serial.ran
    record = _records(tmp_path / "p")["row=a_x=1"]
    assert record["status"] == "diverged" and record["reason"].startswith("DivergenceError: the training loss grew")
    assert "run row=a_x=1 diverged" in capsys.readouterr().err
    assert (tmp_path / "p" / "results.md").read_text() == (tmp_path / "s" / "results.md").read_text()


def test_jobs_is_checked_before_anything_is_written(tmp_path):
    from dataclasses import replace

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match=f"jobs must be an integer >= 1.*got {bad!r}"):
            run_recipe(MOONS, profile="smoke", out_dir=tmp_path / "a", progress=False, jobs=bad)
    copy = replace(get_recipe(MOONS), description="changed")  # not what a worker would load by the name
    with pytest.raises(ConfigError, match="jobs=2 .* another object than the registered"):
        run_recipe(copy, profile="smoke", out_dir=tmp_path / "b", progress=False, jobs=2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_default_is_one_worker_per_core_and_this_process_for_a_gpu(monkeypatch):
    from types import SimpleNamespace

    from robustlab.common.errors import ConfigError
    from robustlab.common.recipes.runner import _default_jobs, _usable_cores

    assert _default_jobs(SimpleNamespace(device="cpu")) == 1  # ROBUSTLAB_JOBS=1, set for the test suite
    monkeypatch.setenv("ROBUSTLAB_JOBS", "3")
    assert _default_jobs(SimpleNamespace(device="cuda")) == 3
    monkeypatch.setenv("ROBUSTLAB_JOBS", "two")
    with pytest.raises(ConfigError, match="ROBUSTLAB_JOBS='two'"):
        _default_jobs(SimpleNamespace())
    monkeypatch.delenv("ROBUSTLAB_JOBS")
    cores = _usable_cores()
    assert cores == (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    assert _default_jobs(SimpleNamespace(device="cpu")) == _default_jobs(SimpleNamespace()) == cores
    assert _default_jobs(SimpleNamespace(device="cuda:1")) == _default_jobs(SimpleNamespace(device="mps")) == 1
