"""Run a recipe's grid into a folder, resumably and in shards, and write its table and plot.

Layout of an output folder::

    DIR/profile.json        recipe, profile name and every profile value (a folder holds one profile only)
    DIR/runs/<run_id>.json  one finished run: spec, profile values, status "ok", metrics, extras, timing,
                            versions; or a diverged one: status "diverged" and the reason, no metrics
    DIR/results.md          the table with the paper's numbers beside ours, what diverged and what is missing
    DIR/results.csv         the same numbers, unformatted
    DIR/results.png         the recipe's plot

The profile (with its ``--set`` and run-file values) is checked in full before anything is written: ranges,
devices, a grid of at least one run. Each file is written atomically, so a killed sweep leaves only finished runs
behind, and running the same command again skips them. ``robustlab <domain> reproduce`` calls the same functions
as ``robustlab reproduce``.

The runs of a shard run one after another in this process (``jobs=1``) or in ``jobs`` worker processes started
with ``spawn``, one torch thread each; every run file is written by this process, and the results are the same
either way.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import platform
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustlab.common.config import apply_overrides, check_values, load_toml
from robustlab.common.errors import ConfigError, DivergenceError, RobustlabError
from robustlab.common.io import _json_default, atomic_path, atomic_write_json, atomic_write_text
from robustlab.common.recipes.base import Recipe, Table, run_id
from robustlab.common.recipes.registry import get_recipe

__all__ = ["RecipeReport", "merge_results", "resolve_profile", "run_recipe", "shard_from_env", "write_results"]

Overrides = Sequence[str] | Mapping[str, Any]


@dataclass
class RecipeReport:
    """What a call of :func:`run_recipe`, :func:`merge_results` or :func:`write_results` did.

    Attributes:
        out_dir: the results folder.
        profile: the profile's name.
        grid_size: runs in the whole grid.
        finished: ids of the runs finished in ``out_dir`` (all shards), diverged ones included: they are done.
        ran: ids of the runs computed by this call (diverged ones included).
        skipped: ids of this shard's runs that were already finished and not run again.
        copied: ids of the runs copied in by :func:`merge_results`.
        missing: ids of grid runs without a result in ``out_dir``.
        diverged: ids of the finished runs that diverged (recorded with ``status: "diverged"``, left out of the
            table and the plot; a note under the table lists them).
        table: the summary table, or None while no run has a result.
        files: the files written (``results.md``, ``results.csv``, ``results.png``).
    """

    out_dir: Path
    profile: str
    grid_size: int
    finished: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    table: Table | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every run of the grid has a result."""
        return not self.missing


@dataclass(frozen=True)
class _Run:
    index: int
    id: str
    spec: dict[str, Any]


# -- public functions -------------------------------------------------------------------------------------------


def resolve_profile(
    recipe: Recipe, profile: str, *, overrides: Overrides = (), config: str | os.PathLike | None = None
) -> Any:
    """The profile ``profile`` of ``recipe`` with a TOML run file and then ``overrides`` applied, checked in full.

    Checked: every value against the range its field declares (:func:`~robustlab.common.config.check_values`),
    devices against this machine (``device=cuda`` without a GPU is refused), and the grid, which must hold at
    least one run. :func:`run_recipe` calls it before it writes anything.

    Raises:
        ConfigError: unknown profile (the message lists the recipe's profiles), a bad key or value in the run
            file or the overrides (the message names the field, the value and its range), a device this machine
            does not have, or an empty grid (the message names the empty or zero values).
    """
    if profile not in recipe.profiles:
        raise ConfigError(
            f"recipe {recipe.name!r} has no profile {profile!r}; its profiles: {', '.join(recipe.profiles)}"
        )
    p = recipe.profiles[profile]
    if config is not None:
        p = apply_overrides(p, load_toml(config), source=str(config))
    if overrides:
        p = apply_overrides(p, overrides)
    check_values(p, devices=True)
    if not _grid(recipe, p):
        raise _empty_grid(recipe, profile, p)
    return p


def run_recipe(
    recipe: Recipe | str,
    *,
    profile: str = "quick",
    out_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    overrides: Overrides = (),
    config: str | os.PathLike | None = None,
    progress: bool = True,
    jobs: int | None = None,
) -> RecipeReport:
    """Run the runs of ``recipe``'s grid that belong to ``shard`` and are not finished yet, then write the table.

    Args:
        recipe: a :class:`Recipe` or a registered recipe's name.
        profile: ``"smoke"``, ``"quick"``, ``"paper"`` or another profile of the recipe.
        out_dir: the results folder (created if needed). It may already hold runs of the same profile (they are
            skipped: a killed sweep resumes) but not of another one. A ``profile.json`` of other values (or an
            unreadable one) in a folder where no run has finished yet is replaced, and a line on stderr says so.
        shard: ``(i, n)``: run only the runs whose grid index ``% n == i``. Shards may share ``out_dir`` or use
            their own folders, merged afterwards with :func:`merge_results`.
        overrides: ``key=value`` strings (or a mapping) changing profile values.
        config: a TOML run file of profile values, applied before ``overrides``.
        progress: show a progress bar over the runs (one bar for the shard, also with several workers).
        jobs: worker processes running the shard's runs side by side. Default: one per usable core
            (``len(os.sched_getaffinity(0))``), but 1 when the profile's ``device`` is a GPU (``cuda``, ``mps``,
            or ``auto`` on a machine with CUDA: the workers would share it); never more than there are runs to
            do. ``1`` runs them one after another in this process, with this process's torch threads. With more,
            each worker is a ``spawn``-ed process with one torch thread (``torch.set_num_threads(1)``,
            ``set_num_interop_threads(1)``, ``OMP_NUM_THREADS=MKL_NUM_THREADS=1``) that loads the recipe by its
            name through the registry, gets the resolved profile and returns each run's record; this process
            writes the run files as they come back, draws the one progress bar and writes the table. Each run
            seeds itself, so the results are those of ``jobs=1`` with one thread, digit for digit (with more
            threads, a recipe whose sums split across threads can differ in the last digits); ``ran`` is in grid
            order whatever the order in which the runs finish. Starting a worker costs seconds (it imports torch
            and the recipe). A script calling this with ``jobs > 1`` needs the usual
            ``if __name__ == "__main__":`` guard (the workers import the script's module).

    Returns:
        A :class:`RecipeReport`.

    Raises:
        ConfigError: unknown profile, bad override, a value out of its range, a device this machine does not
            have, an empty grid, a bad shard, a ``jobs`` below 1, or ``jobs > 1`` for a recipe a worker cannot
            load by its name (not registered by an installed distribution, or another object than the registered
            one); all are found before anything is written, so a bad value never leaves a ``profile.json``
            behind. With the default ``jobs`` such a recipe runs in this process.
        RobustlabError: ``out_dir`` holds finished runs of another profile (or other profile values), a stored
            run file is unreadable or does not match the grid, or a worker process died (killed, out of memory).

    A run that raises :class:`~robustlab.common.errors.DivergenceError` (the engine's verdict on a loss that grew
    by orders of magnitude or weights no longer finite) is written as a diverged run, ``status: "diverged"`` with
    the reason and no metrics, and the sweep goes on; such a run counts as done (delete its file to run it
    again), is left out of the table's means and is listed under the table. Any other exception stops the sweep:
    the runs finished before it stay on disk, and running the same call again continues from there. A worker's
    exception is raised here with its type and message (its traceback in the worker is the ``__cause__``); the
    runs still in progress in the other workers are stopped, as on Ctrl-C, and run again on resume.
    """
    from robustlab.common.progress import progress as progress_display

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    i, n = _check_shard(shard)
    _check_jobs(jobs)
    p = resolve_profile(recipe, profile, overrides=overrides, config=config)  # everything checked: nothing written yet
    workers = jobs if jobs is not None else _default_jobs(p)
    if workers > 1:
        why = _why_not_loadable(recipe)
        if why and jobs is not None:
            raise ConfigError(f"jobs={jobs} runs the runs in worker processes that load recipe {recipe.name!r} by its "
                              f"name through the registry, but {why}; use jobs=1 (--jobs 1) to run it in this process")
        if why:
            workers = 1
    out = Path(out_dir)
    asked = _profile_record(recipe, profile, p)
    grid = _grid(recipe, p)
    write_profile = _claim_folder(out, asked)
    existing = _load_runs(out, asked)
    _check_runs_fit_grid(out, existing, grid)
    if write_profile:
        atomic_write_json(out / "profile.json", asked)

    todo = [r for r in grid if r.index % n == i]
    skipped = [r.id for r in todo if r.id in existing]
    pending = [r for r in todo if r.id not in existing]
    ran: list[_Run] = []
    shard_text = f" shard {i}/{n}" if n > 1 else ""
    # in a log: a line after every run (a run takes seconds to hours)
    bar = progress_display(total=len(todo), initial=len(skipped), unit="run", enabled=progress,
                           desc=f"{recipe.name} [{profile}{shard_text}]", dynamic_ncols=True, file=sys.stderr,
                           points=[k / len(todo) for k in range(1, len(todo) + 1)] if todo else ())

    def finished(r: _Run, record: dict[str, Any]) -> None:
        path = out / "runs" / f"{r.id}.json"
        atomic_write_json(path, record)
        if _is_diverged(record):
            bar.write(f"{recipe.name}: run {r.id} diverged ({record['reason']}); recorded as diverged in {path} "
                      "and left out of the table (delete that file to run it again)", file=sys.stderr)
        ran.append(r)
        bar.update(1)

    def failed(r: _Run, stopped: Sequence[_Run] = ()) -> None:
        also = f" (the runs stopped in progress, {', '.join(s.id for s in stopped)}, run again then)" if stopped else ""
        bar.write(
            f"{recipe.name}: run {r.id} (grid index {r.index}) failed; the {len(existing) + len(ran)} "
            f"finished runs are kept in {out / 'runs'}; run the same command again to resume{also}",
            file=sys.stderr,
        )

    try:
        if min(workers, len(pending)) > 1:
            _run_in_workers(recipe, pending, p, asked, (i, n), len(grid), min(workers, len(pending)), bar,
                            finished, failed)
        else:
            for r in pending:
                bar.set_postfix_str(r.id, refresh=True)
                try:
                    record = _execute(recipe, r, p, asked, (i, n), len(grid))
                except Exception:
                    failed(r)
                    raise
                finished(r, record)
    finally:
        bar.close()
    report = write_results(recipe, out)
    report.ran, report.skipped = [r.id for r in sorted(ran, key=lambda r: r.index)], skipped
    return report


def merge_results(
    recipe: Recipe | str, out_dir: str | os.PathLike, shard_dirs: Sequence[str | os.PathLike]
) -> RecipeReport:
    """Copy the run files of shard folders into ``out_dir/runs`` and write the table and plot there.

    Args:
        recipe: a :class:`Recipe` or a registered recipe's name.
        out_dir: the merged results folder (created if needed; it may be one of the shard folders).
        shard_dirs: results folders written by :func:`run_recipe` with the same profile.

    Raises:
        RobustlabError: a folder is not a results folder of this recipe, the folders hold different profiles,
            or two folders hold different results for the same run (the message names both files).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not shard_dirs:
        raise ConfigError("merge_results needs at least one shard folder")
    out = Path(out_dir)
    ref: dict[str, Any] | None = None
    ref_dir: Path | None = None
    for d in map(Path, shard_dirs):
        stored = _read_profile(d)
        if stored is None:
            raise RobustlabError(f"{d} holds no profile.json: it is not a results folder of 'robustlab reproduce'")
        if stored.get("recipe") != recipe.name:
            raise RobustlabError(f"{d} holds results of recipe {stored.get('recipe')!r}, not {recipe.name!r}")
        if ref is None:
            ref, ref_dir = stored, d
        elif stored != ref:
            raise RobustlabError(
                f"{d} and {ref_dir} hold results of different profiles: {_profile_diff(ref, stored)}; "
                "only results of one profile can be merged"
            )
    assert ref is not None
    p = _profile_from_record(recipe, ref)
    grid = _grid(recipe, p)
    write_profile = _claim_folder(out, ref)
    existing = _load_runs(out, ref)
    _check_runs_fit_grid(out, existing, grid)
    if write_profile:
        atomic_write_json(out / "profile.json", ref)
    copied: list[str] = []
    for d in map(Path, shard_dirs):
        runs = _load_runs(d, ref)
        _check_runs_fit_grid(d, runs, grid)
        for rid, (path, record) in runs.items():
            if rid in existing:
                have_path, have = existing[rid]
                diff = _result_diff(have, record)
                if diff:
                    raise RobustlabError(
                        f"conflicting results for run {rid!r}: {have_path} and {path} differ in {diff}; "
                        "remove the one to discard and merge again"
                    )
                continue
            dest = out / "runs" / f"{rid}.json"
            atomic_write_text(dest, path.read_text(encoding="utf-8"))
            existing[rid] = (dest, record)
            copied.append(rid)
    report = write_results(recipe, out)
    report.copied = copied
    return report


def write_results(recipe: Recipe | str, out_dir: str | os.PathLike) -> RecipeReport:
    """(Re)write ``results.md``, ``results.csv`` and ``results.png`` from the runs in ``out_dir``.

    The table and the plot show the runs with results; diverged runs are counted in the ``runs`` cell of their
    row (``1 (+1 diverged)``), in a ``diverged`` column of ``results.csv`` and in a note naming each with its
    reason.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    out = Path(out_dir)
    stored = _read_profile(out)
    if stored is None:
        raise RobustlabError(f"{out} holds no profile.json: it is not a results folder of 'robustlab reproduce'")
    p = _profile_from_record(recipe, stored)
    grid = _grid(recipe, p)
    runs = _load_runs(out, stored)
    in_grid = {r.id for r in grid}
    records = [runs[r.id][1] for r in grid if r.id in runs]
    results = [rec for rec in records if not _is_diverged(rec)]
    diverged = [rec for rec in records if _is_diverged(rec)]
    stray = sorted(rid for rid in runs if rid not in in_grid)
    missing = [r.id for r in grid if r.id not in runs]
    report = RecipeReport(out_dir=out, profile=stored["profile"], grid_size=len(grid),
                          finished=[rec["run_id"] for rec in records], missing=missing,
                          diverged=[rec["run_id"] for rec in diverged])

    lines = [f"# {recipe.name}", "", recipe.table, "", f"Paper: {recipe.paper.citation()}", ""]
    values = ", ".join(f"{k}={_show(v)}" for k, v in _jsonable(dataclasses.asdict(p)).items())  # field order
    lines += [f"Profile `{stored['profile']}`: {values}", ""]
    if diverged:
        lines.append(f"Runs: {len(records)} of {len(grid)} finished; {len(diverged)} diverged (left out of the "
                     f"table): {_first(report.diverged)}.")
    else:
        lines.append(f"Runs: {len(records)} of {len(grid)} finished.")
    if missing:
        lines.append(
            f"**Incomplete: {len(missing)} of {len(grid)} runs are missing** ({_first(missing)}); run the missing shards "
            "with the same command, or `robustlab merge` their folders into this one."
        )
    if stray:
        lines.append(f"Ignored {len(stray)} run files that are not in this profile's grid: {', '.join(stray)}.")
    lines.append("")
    if results:
        table = recipe.summarize(results, p)
        if diverged:
            table = _mark_diverged(table, recipe.rows, grid, diverged)
        report.table = table
        lines.append(table.to_markdown().rstrip("\n"))
        atomic_write_text(out / "results.csv", table.to_csv())
        report.files.append(out / "results.csv")
        _plot(recipe, results, out / "results.png")
        report.files.append(out / "results.png")
    elif diverged:
        lines.append(f"No result: all {len(records)} finished runs diverged. {_diverged_note(recipe.rows, grid, diverged)}")
    else:
        lines.append("No run has finished yet.")
    if recipe.description:
        lines += ["", "## Protocol", "", recipe.description.strip(), ""]
    atomic_write_text(out / "results.md", "\n".join(lines).rstrip() + "\n")
    report.files.insert(0, out / "results.md")
    return report


# -- internals --------------------------------------------------------------------------------------------------


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The shard ``(i, n)`` of a Slurm job array task, or None outside a job array.

    A job array ``sbatch --array=0-3`` (or ``1-4``, or ``0-6:2``) runs one task per shard: ``i`` is the task's
    position in the array (``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP``) and ``n``
    is ``SLURM_ARRAY_TASK_COUNT``.

    Raises:
        ConfigError: the variables are not integers or give a position outside ``0 .. n-1``.
    """
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")
    try:
        task, count = int(env[names[0]]), int(env[names[1]])
        low, step = int(env.get(names[2], "0")), int(env.get(names[3], "1"))
    except ValueError:
        shown = ", ".join(f"{k}={env.get(k)!r}" for k in names if k in env)
        raise ConfigError(f"the Slurm job array variables are not integers: {shown}") from None
    if step < 1 or (task - low) % step:
        raise ConfigError(f"SLURM_ARRAY_TASK_ID={task} is not on the array's grid (min {low}, step {step})")
    i = (task - low) // step
    if count < 1 or not 0 <= i < count:
        raise ConfigError(f"SLURM_ARRAY_TASK_ID={task} (min {low}, step {step}) gives shard {i}, outside 0..{count - 1} "
                          f"of SLURM_ARRAY_TASK_COUNT={count}")
    return i, count


def _check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be a pair (i, n) of integers, got {shard!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n} is invalid: need n >= 1 and 0 <= i < n")
    return i, n


def _first(ids: Sequence[str], n: int = 12) -> str:
    return ", ".join(ids[:n]) + (f", … ({len(ids) - n} more)" if len(ids) > n else "")


def _empty_grid(recipe: Recipe, name: str, profile: Any) -> ConfigError:
    values = _jsonable(dataclasses.asdict(profile))
    suspects = [f"{k}={_show(v)}" for k, v in values.items()
                if v in ([], {}, "") or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)]
    why = (f"the empty or zero values that may cause it: {', '.join(suspects)}" if suspects
           else f"its values: {', '.join(f'{k}={_show(v)}' for k, v in values.items())}")
    return ConfigError(f"recipe {recipe.name!r} with profile {name!r} has no run to do (an empty grid); {why}")


def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(obj, default=_json_default))


def _profile_record(recipe: Recipe, name: str, profile: Any) -> dict[str, Any]:
    return {"recipe": recipe.name, "profile": name, "values": _jsonable(dataclasses.asdict(profile))}


def _profile_from_record(recipe: Recipe, stored: Mapping[str, Any]) -> Any:
    name = stored.get("profile")
    if name not in recipe.profiles:
        raise RobustlabError(
            f"the results folder holds profile {name!r}, which recipe {recipe.name!r} no longer has "
            f"(its profiles: {', '.join(recipe.profiles)})"
        )
    try:
        p = apply_overrides(recipe.profiles[name], stored.get("values", {}), source="profile.json")
    except ConfigError as e:
        raise RobustlabError(f"the stored profile no longer fits recipe {recipe.name!r}: {e}") from None
    return p


def _read_record(path: Path, keys: tuple[str, ...], what: str, hint: str = "") -> dict[str, Any]:
    """A JSON object with at least ``keys``, or a RobustlabError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RobustlabError(f"cannot read the {what} file {path}: {e}{hint}") from None
    if not isinstance(data, dict) or not set(keys) <= set(data):
        names = ", ".join(repr(k) for k in keys)
        raise RobustlabError(f"{path} is not a {what} record (needs {names}){hint}")
    return data


def _read_profile(out: Path) -> dict[str, Any] | None:
    path = out / "profile.json"
    return _read_record(path, ("recipe", "profile", "values"), "profile") if path.exists() else None


def _profile_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    parts = []
    for key in ("recipe", "profile"):
        if a.get(key) != b.get(key):
            parts.append(f"{key} {a.get(key)!r} vs {b.get(key)!r}")
    va, vb = a.get("values", {}), b.get("values", {})
    for k in list(va) + [k for k in vb if k not in va]:
        if va.get(k) != vb.get(k):
            parts.append(f"{k} {_show(va.get(k))} vs {_show(vb.get(k))}")
    return ", ".join(parts) or "no difference"


def _has_run_files(out: Path) -> bool:
    folder = out / "runs"
    return folder.is_dir() and any(folder.glob("*.json"))


def _claim_folder(out: Path, asked: Mapping[str, Any]) -> bool:
    """Whether ``out/profile.json`` is to be (re)written for the profile ``asked``.

    A folder without ``profile.json`` is claimed. One whose ``profile.json`` holds other values (or cannot be
    read) is claimed only while no run has finished there (nothing would be lost; a line on stderr says so);
    with finished runs it is refused (RobustlabError naming the differing values).
    """
    has_runs = _has_run_files(out)
    try:
        stored = _read_profile(out)
    except RobustlabError as e:
        if has_runs:
            raise
        print(f"{e}; no run has finished in {out}: replacing it", file=sys.stderr)
        return True
    if stored is None:
        return True
    if dict(stored) == dict(asked):
        return False
    if has_runs:
        _check_same_profile(out, stored, asked)
    print(f"{out / 'profile.json'} holds other values, but no run had finished there (stored vs asked: "
          f"{_profile_diff(stored, asked)}): replacing it with the values asked", file=sys.stderr)
    return True


def _check_same_profile(out: Path, stored: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    if dict(stored) == dict(asked):
        return
    if stored.get("recipe") != asked.get("recipe"):
        raise RobustlabError(
            f"{out} holds results of recipe {stored.get('recipe')!r}, not {asked.get('recipe')!r}; "
            "choose another output folder"
        )
    raise RobustlabError(
        f"{out} holds results of profile {stored.get('profile')!r} with other values than those asked "
        f"(stored vs asked: {_profile_diff(stored, asked)}); results of different profiles are never mixed: "
        "choose another output folder, or delete this one to start over"
    )


def _grid(recipe: Recipe, profile: Any) -> list[_Run]:
    runs, seen = [], {}
    for index, spec in enumerate(recipe.grid(profile)):
        if not isinstance(spec, Mapping):
            raise TypeError(f"recipe {recipe.name!r}: grid() must return dicts, got {type(spec).__name__}")
        try:
            plain = _jsonable(dict(spec))
        except TypeError as e:
            raise TypeError(f"recipe {recipe.name!r}: run spec {dict(spec)!r} is not plain JSON: {e}") from None
        rid = run_id(plain)
        if rid in seen:
            raise RobustlabError(
                f"recipe {recipe.name!r}: grid runs {seen[rid]} and {index} have the same id {rid!r}"
            )
        seen[rid] = index
        runs.append(_Run(index=index, id=rid, spec=plain))
    return runs


def _load_runs(out: Path, profile: Mapping[str, Any]) -> dict[str, tuple[Path, dict[str, Any]]]:
    runs: dict[str, tuple[Path, dict[str, Any]]] = {}
    folder = out / "runs"
    if not folder.is_dir():
        return runs
    hint = "; delete it to run that run again"
    for path in sorted(folder.glob("*.json")):
        record = _read_record(path, ("run_id", "spec"), "run", hint)
        status = record.get("status", "ok")
        if not (status == "diverged" or (status == "ok" and isinstance(record.get("metrics"), dict))):
            raise RobustlabError(f"{path} is not a run record (needs 'metrics', or 'status': 'diverged'; its "
                                 f"status: {status!r}){hint}")
        stored = record.get("profile", {})
        if stored.get("name") != profile["profile"] or stored.get("values") != profile["values"]:
            raise RobustlabError(
                f"{path} was run with other profile values than {out / 'profile.json'} "
                f"({_profile_diff({'profile': stored.get('name'), 'values': stored.get('values', {})}, profile)}); "
                "results of different profiles are never mixed"
            )
        runs[record["run_id"]] = (path, record)
    return runs


def _check_runs_fit_grid(out: Path, runs: Mapping[str, tuple[Path, dict]], grid: list[_Run]) -> None:
    by_id = {r.id: r for r in grid}
    for rid, (path, record) in runs.items():
        r = by_id.get(rid)
        if r is not None and record["spec"] != r.spec:
            raise RobustlabError(
                f"{path} holds the spec {record['spec']!r} but the grid's run {rid!r} is {r.spec!r}; "
                "the recipe changed since: delete the file (or the folder) to run it again"
            )


def _execute(recipe: Recipe, r: _Run, profile: Any, asked: Mapping[str, Any], shard: tuple[int, int],
             grid_size: int) -> dict[str, Any]:
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "recipe": recipe.name,
        "run_id": r.id,
        "index": r.index,
        "grid_size": grid_size,
        "shard": f"{shard[0]}/{shard[1]}",
        "spec": r.spec,
        "profile": {"name": asked["profile"], "values": asked["values"]},
    }
    try:
        result = recipe.run(dict(r.spec), profile)
    except DivergenceError as e:
        record.update(status="diverged", reason=f"{type(e).__name__}: {e}")
    else:
        record.update(status="ok", **_outcome(recipe, r, result))
    record.update(seconds=round(time.perf_counter() - t0, 4), started=started.isoformat(timespec="seconds"),
                  versions=_versions(), platform=_platform())
    return record


def _outcome(recipe: Recipe, r: _Run, result: Any) -> dict[str, Any]:
    """A run's ``metrics`` (its numbers) and ``extras`` (anything else JSON holds)."""
    if not isinstance(result, Mapping):
        raise TypeError(f"recipe {recipe.name!r}: run() must return a dict of metrics, got {type(result).__name__}")
    metrics: dict[str, float] = {}
    extras: dict[str, Any] = {}
    for k, v in result.items():
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if isinstance(v, (int, float)):  # bools count as 0/1
            metrics[str(k)] = float(v)
        else:
            extras[str(k)] = v
    try:
        extras = _jsonable(extras)
    except TypeError as e:
        raise TypeError(f"recipe {recipe.name!r}: run {r.id!r} returned a value that is not JSON: {e}") from None
    return {"metrics": metrics, "extras": extras}


# -- worker processes (jobs > 1) ----------------------------------------------------------------------------------

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
"""Set to 1 in every worker before anything is imported. NUMBA_NUM_THREADS matters as much as torch's setting:
numba's OpenMP layer (memelite's Tomtom, modisco-lite) shares libgomp with torch, and once it has started a team
of threads, the idle team member spins through torch's later work and made a DistNet epoch up to 4x slower."""
"""Environment variables set to 1 in a worker before it imports torch: one thread per worker."""


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it, else every core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def _check_jobs(jobs: int | None) -> None:
    """Raise a ConfigError unless ``jobs`` is None or an integer >= 1."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be an integer >= 1 (worker processes; None: one per usable core), got {jobs!r}")


def _default_jobs(profile: Any) -> int:
    """``ROBUSTLAB_JOBS`` when set; else one worker per usable core, or 1 (this process) when the profile's
    ``device`` is a GPU, which N workers would share."""
    env = os.environ.get("ROBUSTLAB_JOBS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"ROBUSTLAB_JOBS={env!r}: expected an integer >= 1 (worker processes)")
        return int(env)
    device = getattr(profile, "device", None)
    if isinstance(device, str) and device != "cpu":
        if device != "auto":
            return 1
        import torch

        if torch.cuda.is_available():  # "auto" is CUDA when there is one
            return 1
    return _usable_cores()


def _why_not_loadable(recipe: Recipe) -> str | None:
    """None when a spawned worker finds ``recipe`` itself by its name through the registry, else why it cannot."""
    from robustlab.common.recipes.registry import RECIPE_GROUP, recipe_entry_points

    ep = recipe_entry_points().get(recipe.name)
    if ep is None:
        return f"no installed distribution registers a recipe named {recipe.name!r} (entry-point group {RECIPE_GROUP})"
    if getattr(ep, "dist", None) is None:
        return f"recipe {recipe.name!r} ({ep.value}) is registered in this process only, not by an installed distribution"
    try:
        loaded = get_recipe(recipe.name)
    except RobustlabError as e:
        return str(e)
    if loaded is not recipe:
        return (f"the recipe given is another object than the registered {recipe.name!r} ({ep.value}), e.g. a copy "
                "changed with dataclasses.replace")
    return None


def _run_in_workers(recipe: Recipe, pending: Sequence[_Run], profile: Any, asked: Mapping[str, Any],
                    shard: tuple[int, int], grid_size: int, workers: int, bar: Any,
                    finished: Callable[[_Run, dict[str, Any]], None],
                    failed: Callable[[_Run, Sequence[_Run]], None]) -> None:
    """Run ``pending`` in ``workers`` spawned processes, one run each at a time, started in grid order.

    ``finished`` gets each record in this process as its run comes back; the first failing run (in grid order
    among those that came back together) goes to ``failed`` with the runs still in progress, the workers are
    stopped and its exception is raised here. Any exit other than the end of the runs (an error, Ctrl-C) stops
    the workers; their runs in progress are lost and run again on resume.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
    queue = deque(pending)
    running: dict[Future, _Run] = {}
    done_all = False
    try:
        while queue or running:
            while queue and len(running) < workers:
                r = queue.popleft()
                running[executor.submit(_worker_run, recipe.name, r, profile, asked, shard, grid_size)] = r
            bar.set_postfix_str(", ".join(r.id for r in running.values()), refresh=True)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            error: tuple[_Run, BaseException] | None = None
            for future in sorted(done, key=lambda f: running[f].index):
                r = running.pop(future)
                exc = future.exception()
                if exc is None:
                    finished(r, future.result())
                elif error is None:
                    error = (r, exc)
            if error is not None:
                r, exc = error
                failed(r, sorted(running.values(), key=lambda s: s.index))
                if isinstance(exc, BrokenProcessPool):
                    lost = ", ".join(s.id for s in sorted([r, *running.values()], key=lambda s: s.index))
                    raise RobustlabError(
                        f"a worker process of recipe {recipe.name!r} died while running {lost} (killed, out of "
                        f"memory, or a crash in native code: {exc}); run the same command again to resume, with "
                        "jobs=1 (--jobs 1) to run in this process"
                    ) from exc
                raise exc
        done_all = True
    finally:
        _shutdown(executor, terminate=not done_all)


def _shutdown(executor: Any, *, terminate: bool) -> None:
    """Shut ``executor`` down; with ``terminate``, stop its worker processes first (SIGTERM, SIGKILL after 5 s)."""
    if terminate:
        # concurrent.futures has no public handle on its processes before Python 3.14 (terminate_workers)
        procs = list((getattr(executor, "_processes", None) or {}).values())
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + 5.0
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
    executor.shutdown(wait=True, cancel_futures=True)


def _worker_init(parent: int) -> None:
    """Set up a spawned worker: one torch thread, Ctrl-C left to the parent, exit when the parent is gone."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers on Ctrl-C
    for name in _THREAD_VARS:
        os.environ[name] = "1"
    try:
        import torch
    except ModuleNotFoundError:  # a recipe without torch
        pass
    else:
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # inter-op work already started in this process: the intra-op setting is what counts
            pass
    threading.Thread(target=_exit_with_parent, args=(parent,), name="robustlab-exit-with-parent", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (killed without the chance to stop it): no orphan keeps running."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


@functools.cache
def _worker_recipe(name: str) -> Recipe:
    try:
        return get_recipe(name)
    except RobustlabError as e:
        raise RobustlabError(f"a worker process could not load recipe {name!r} by its name: {e}") from None


def _worker_run(name: str, r: _Run, profile: Any, asked: Mapping[str, Any], shard: tuple[int, int],
                grid_size: int) -> dict[str, Any]:
    """One run in a worker: its record, as :func:`_execute` makes it in the parent with ``jobs=1``."""
    recipe = _worker_recipe(name)
    try:
        return _execute(recipe, r, profile, asked, shard, grid_size)
    except Exception as e:
        _check_sendable(e)
        raise


def _check_sendable(e: Exception) -> None:
    """Raise a RuntimeError with ``e``'s type and message if ``e`` cannot travel back to the parent (pickle)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        raise RuntimeError(f"{type(e).__module__}.{type(e).__qualname__}: {e}") from e


@functools.lru_cache(maxsize=1)
def _static_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, distributions, version

    out = {"python": platform.python_version()}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("robustlab-"):
            out.setdefault(name, dist.version)
    for name in ("torch", "numpy", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return dict(sorted(out.items()))


def _versions() -> dict[str, str]:
    return dict(_static_versions())


def _platform() -> dict[str, Any]:
    info: dict[str, Any] = {"system": platform.platform(terse=True), "machine": platform.machine()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _is_diverged(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "diverged"


def _diverged_note(rows: str, grid: list[_Run], diverged: Sequence[Mapping[str, Any]]) -> str:
    """``Diverged, left out of the means: a: 1 of 2 runs (row=a_seed=1: reason); ...``, per row of the table."""
    by_row: dict[str, list[Mapping[str, Any]]] = {}
    for rec in diverged:
        by_row.setdefault(_row_key(rec["spec"], rows), []).append(rec)
    total = Counter(_row_key(r.spec, rows) for r in grid)
    parts = []
    for key, recs in by_row.items():
        runs = ", ".join(f"{rec['run_id']}: {_short(rec.get('reason', ''))}" for rec in recs)
        parts.append(f"{key}: {len(recs)} of {total.get(key, len(recs))} runs ({runs})")
    return ("Diverged, left out of the means: " + "; ".join(parts)
            + ". A diverged run is done; delete its file under runs/ to run it again.")


def _row_key(spec: Mapping[str, Any], rows: str) -> str:
    return str(spec.get(rows))


def _short(text: str, limit: int = 300) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else "no reason given"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _mark_diverged(table: Table, rows: str, grid: list[_Run], diverged: Sequence[Mapping[str, Any]]) -> Table:
    """``table`` with its diverged runs counted: ``1 (+1 diverged)`` in a ``runs`` column, a ``diverged``
    column in the CSV records (rows found by their ``rows`` key), and the note listing them."""
    counts = Counter(_row_key(rec["spec"], rows) for rec in diverged)
    cells = [list(row) for row in table.rows]
    records = [dict(rec) for rec in table.records]
    col = table.header.index("runs") if "runs" in table.header else None
    if len(cells) == len(records) and any(rows in rec for rec in records):
        for row, rec in zip(cells, records):
            k = counts[_row_key(rec, rows)]
            rec["diverged"] = k
            if k and col is not None and col < len(row):
                row[col] = f"{row[col]} (+{k} diverged)"
    return Table(header=list(table.header), rows=cells, records=records,
                 notes=[*table.notes, _diverged_note(rows, grid, diverged)])


def _result_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = [k for k in ("spec", "metrics", "extras", "profile") if a.get(k) != b.get(k)]
    if a.get("status", "ok") != b.get("status", "ok"):
        keys.insert(0, f"status ({a.get('status', 'ok')} vs {b.get('status', 'ok')})")
    if "metrics" in keys:
        ma, mb = a.get("metrics", {}), b.get("metrics", {})
        changed = [m for m in sorted(set(ma) | set(mb)) if not _same_number(ma.get(m), mb.get(m))]
        if not changed:
            keys.remove("metrics")
        else:
            keys[keys.index("metrics")] = "metrics " + ", ".join(
                f"{m} ({ma.get(m)} vs {mb.get(m)})" for m in changed[:4]
            )
    return "; ".join(keys)


def _same_number(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _show(v: Any) -> str:
    if isinstance(v, list):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    return str(v)


def _plot(recipe: Recipe, results: list[dict[str, Any]], path: Path) -> None:
    """The recipe's plot, written to a temporary PNG and renamed over ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    with atomic_path(path, suffix=path.suffix) as tmp:
        recipe.plot(results, tmp)
