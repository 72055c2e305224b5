"""The ``robustlab`` command: one click group whose subcommands come from the entry-point group ``robustlab.cli``.

Every installed robustlab package registers its commands there (``ecg = "robustlab.ecg.cli:ecg"``); common
registers ``info``, ``reproduce``, ``merge`` and ``recipes`` the same way. Commands are loaded only when listed or
invoked, and this module imports nothing heavy at module level (torch, numpy and matplotlib load inside the
commands), so ``robustlab --help`` stays instant. A command whose entry point fails to load is listed as broken
with its error instead of breaking the whole CLI.

The error contract of every command, domains' included (their groups use :class:`RobustlabGroup`):

- exit 0: success;
- exit 2: a usage error: a bad option or value (unknown recipe or profile, a bad ``--set`` value, an output
  folder that cannot be written, a device this machine does not have, a changed configuration on ``--resume``);
  checked before any compute;
- exit 1: bad data or environment: a file that cannot be read or parsed, a failed download, a diverged
  training run, a disk that fills up, a bad Slurm variable. The message names the file, field or value and what
  was expected (a sweep records a diverged run as such and goes on);
- no traceback in either case; ``robustlab --debug COMMAND`` (or ``ROBUSTLAB_DEBUG=1``) shows it, and an error
  robustlab did not foresee is reported as such (exit 1) with that hint.

Domains reuse :func:`reproduce_command` and :func:`merge_command` for their own ``robustlab <domain> reproduce``,
and the parameter types :class:`OutputDir`, :class:`OutputFile`, :class:`Device` and the run-folder check
:func:`check_run_folder` for their own commands.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from robustlab.common.errors import ConfigError, RobustlabError

__all__ = [
    "COMMAND_GROUP",
    "DEBUG_ENV",
    "Device",
    "FiniteFloat",
    "OutputDir",
    "OutputFile",
    "RecipeName",
    "RobustlabGroup",
    "Shard",
    "check_run_folder",
    "info",
    "main",
    "merge",
    "merge_command",
    "recipes",
    "reproduce",
    "reproduce_command",
]

COMMAND_GROUP = "robustlab.cli"
_COMMON = "robustlab-common"
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


# -- the lazily loaded group ----------------------------------------------------------------------------------


def _command_entry_points() -> dict[str, list[Any]]:
    """Entry points of ``robustlab.cli`` by name (several when two distributions claim one name)."""
    from importlib.metadata import entry_points

    found: dict[str, list[Any]] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        same = [e for e in found.get(ep.name, []) if e.value == ep.value]
        if not same:  # one distribution seen twice on sys.path is one registration
            found.setdefault(ep.name, []).append(ep)
    return found


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "an unknown distribution"


def _broken_command(name: str, reason: str) -> click.Command:
    """A placeholder listed in ``--help`` and failing with ``reason`` (exit 1) whatever its arguments."""
    def callback(**_: Any) -> None:
        raise click.ClickException(f"the command '{name}' is broken: {reason}")

    return click.Command(
        name, callback=callback, help=f"[broken] {reason}", short_help=f"[broken] {reason}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    )


DEBUG_ENV = "ROBUSTLAB_DEBUG"
"""Set to 1 to see the traceback of a failing command (as ``robustlab --debug``)."""


def _debug(ctx: click.Context | None = None) -> bool:
    if os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no"):
        return True
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(DEBUG_ENV))


def _translate(e: BaseException) -> click.ClickException | None:
    """The click error that reports ``e`` under the error contract, or None to let it through."""
    if isinstance(e, (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit)):
        return None
    if isinstance(e, ConfigError):
        return click.UsageError(str(e))
    if isinstance(e, RobustlabError):
        return click.ClickException(str(e))
    if isinstance(e, OSError):
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        reason = e.strerror or str(e) or type(e).__name__
        return click.ClickException(f"{where}: {reason}" if where else reason)
    if isinstance(e, MemoryError):
        return click.ClickException("out of memory; try a smaller --batch-size or a smaller data set")
    return click.ClickException(
        f"unexpected {type(e).__name__}: {e}. This is a bug in robustlab, please report it; run with "
        f"'robustlab --debug ...' (or {DEBUG_ENV}=1) to see the traceback"
    )


def _report_errors(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as e:
        translated = None if _debug() else _translate(e)
        if translated is None:
            raise
        raise translated from None


class RobustlabGroup(click.Group):
    """A click group whose commands follow the error contract (the module docstring): a domain's group is
    ``@click.group(cls=RobustlabGroup)``, so its commands report errors the same way also when run alone."""

    def invoke(self, ctx: click.Context) -> Any:
        return _report_errors(lambda: super(RobustlabGroup, self).invoke(ctx))


class _EntryPointGroup(RobustlabGroup):
    """A click group whose subcommands are the entry points of ``robustlab.cli``, loaded on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_command_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        eps = _command_entry_points().get(cmd_name)
        if not eps:
            return None
        if len(eps) > 1:
            claims = " and ".join(f"{ep.value} ({_dist_name(ep)})" for ep in eps)
            return _broken_command(cmd_name, f"registered twice: {claims}")
        ep = eps[0]
        try:
            obj = ep.load()
        except Exception as e:
            return _broken_command(
                cmd_name, f"{ep.value} ({_dist_name(ep)}) failed to load: {type(e).__name__}: {e}"
            )
        if not isinstance(obj, click.Command):
            return _broken_command(cmd_name, f"{ep.value} ({_dist_name(ep)}) is a {type(obj).__name__}, "
                                             "not a click command")
        return obj


def _handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """The error contract for a command that may run outside a :class:`RobustlabGroup`."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _report_errors(lambda: f(*args, **kwargs))

    return wrapper


@click.group(cls=_EntryPointGroup, context_settings=_CONTEXT,
             epilog="Run 'robustlab COMMAND --help' for the options of a command.")
@click.version_option(package_name=_COMMON, prog_name="robustlab", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help=f"Show the traceback of an error (also {DEBUG_ENV}=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """robustlab: robust deep learning, from the shared core to genomics, ECG, seismic and vision.

    The commands below come from the installed robustlab packages (entry-point group robustlab.cli). Errors are
    reported without a traceback: exit 2 for a bad option or value, exit 1 for bad data or environment.
    """
    ctx.meta[DEBUG_ENV] = debug


# -- parameter types ------------------------------------------------------------------------------------------


class RecipeName(click.ParamType):
    """The name of a registered recipe; an unknown name is a usage error listing the registered ones.

    Args:
        package: accept only recipes of this package (``"robustlab.ecg"``), for a domain's own command.
    """

    name = "recipe"

    def __init__(self, package: str | None = None) -> None:
        self.package = package

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from robustlab.common.recipes.registry import recipe_names

        names = recipe_names(self.package)
        if value not in names:
            self.fail(f"unknown recipe {value!r}; registered recipes: {', '.join(names) or 'none'}", param, ctx)
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        from robustlab.common.recipes.registry import recipe_names

        return [CompletionItem(n) for n in recipe_names(self.package) if n.startswith(incomplete)]


class Shard(click.ParamType):
    """``i/n``: the runs whose grid index ``% n == i``, with ``0 <= i < n``."""

    name = "i/n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not of the form i/n, e.g. 0/4 (i counts from 0)", param, ctx)
        i, n = int(m.group(1)), int(m.group(2))
        if n < 1 or i >= n:
            self.fail(f"shard {i}/{n} is out of range: need n >= 1 and 0 <= i < n (i counts from 0)", param, ctx)
        return i, n


class _Writable(click.Path):
    """A path to write, checked writable when the command line is read (before any compute)."""

    folder = True

    def __init__(self) -> None:
        super().__init__(file_okay=not self.folder, dir_okay=self.folder, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        from robustlab.common.io import unwritable_reason

        path = super().convert(value, param, ctx)
        reason = unwritable_reason(path, folder=self.folder)
        if reason:
            self.fail(reason, param, ctx)
        return path


class OutputDir(_Writable):
    """A results folder: created if missing, and checked writable when the command line is read, before any
    compute (an existing file, a file among its parents or a read-only folder is a usage error naming it)."""

    name = "folder"


class OutputFile(_Writable):
    """A file to write: its folder must exist or be creatable and be writable; checked before any compute."""

    name = "file"
    folder = False


class FiniteFloat(click.FloatRange):
    """A finite number (NaN and infinities refused), optionally within bounds, as ``click.FloatRange`` takes them."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Device(click.ParamType):
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; a device this machine does not have is a usage error."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from robustlab.common.config import check_device

        try:
            return check_device(str(value), what=f"'{param.opts[0]}'" if param is not None else "device")
        except ConfigError as e:
            self.fail(str(e), param, ctx)


RUN_FILE = "run.json"


def check_run_folder(out: Path, command: str, config: dict[str, Any], *, resume: bool,
                     checkpoint: str = "last.pt", may_grow: tuple[str, ...] = ("epochs",)) -> bool:
    """Check a training command's results folder against ``--resume``, then record the run's configuration.

    ``out/run.json`` holds the command and its configuration (JSON values). Without ``resume`` a folder that
    already holds a run (``checkpoint``) is refused, naming ``--resume``; with ``resume`` the stored configuration
    must equal ``config`` (the keys of ``may_grow`` may take larger values: more epochs continue a finished
    run), else the differing keys are named. Written atomically, before training starts.

    Returns:
        True when there is a run to continue (``resume`` and ``checkpoint`` exists).

    Raises:
        ConfigError: the folder holds a run and ``resume`` is False, the configuration differs, or the run has no
            ``run.json`` to compare with (it was not started by a command).
        DataError: ``run.json`` cannot be read.
    """
    from robustlab.common.errors import DataError
    from robustlab.common.io import atomic_write_json

    asked = json.loads(json.dumps({"command": command, **config}, default=str))
    record = out / RUN_FILE
    exists = (out / checkpoint).is_file()
    if exists and not resume:
        raise ConfigError(f"{out} already holds a run ({checkpoint}); add --resume to continue it, or choose "
                          "another --out")
    if exists:
        if not record.is_file():
            raise ConfigError(f"--resume: {out} holds a run ({checkpoint}) but no {RUN_FILE}, so its options cannot "
                              "be checked (it was not started by a robustlab command); choose another --out")
        try:
            stored = json.loads(record.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{record} cannot be read ({e}); it records the configuration of the run in {out}") \
                from None

        def grows(k: str) -> bool:
            a, b = stored.get(k), asked.get(k)
            return k in may_grow and isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > a

        differ = sorted(k for k in set(stored) | set(asked) if stored.get(k) != asked.get(k) and not grows(k))
        if differ:
            shown = "; ".join(f"{k}: {stored.get(k)!r} there, {asked.get(k)!r} now" for k in differ)
            raise ConfigError(f"--resume: the run in {out} was started with other values ({shown}); resume it with "
                              "the same options, or choose another --out")
    atomic_write_json(record, asked)
    return exists


# -- info -----------------------------------------------------------------------------------------------------


@click.command(short_help="Show versions, device, threads, data folder, domains and recipes.")
@_handle_errors
def info() -> None:
    """Show what is installed and where robustlab keeps its data.

    Prints the version of every robustlab distribution, of Python, torch and NumPy, the device torch will use,
    torch's thread count, the data/cache folder (not created), the installed domains and the registered recipes.
    """
    import platform
    import sys
    from importlib.metadata import distributions

    from robustlab.common import __version__
    from robustlab.common.data import ENV_VAR, data_dir
    from robustlab.common.recipes.registry import recipe_entry_points

    rows: list[tuple[str, str]] = [(_COMMON, __version__)]
    others = {}
    for dist in distributions():
        dname = (dist.metadata["Name"] or "").lower()
        if dname.startswith("robustlab-") and dname != _COMMON:
            others.setdefault(dname, dist.version)
    rows += sorted(others.items())
    rows.append(("python", f"{platform.python_version()} ({sys.executable})"))

    import numpy
    import torch

    rows.append(("torch", torch.__version__))
    rows.append(("numpy", numpy.__version__))
    rows.append(("device", _device_text(torch)))
    rows.append(("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"))

    folder = data_dir()
    import os

    origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else f"default; set ${ENV_VAR} to change"
    state = "exists" if folder.exists() else "not created yet"
    rows.append(("data folder", f"{folder} ({origin}; {state})"))

    domains = []
    for name, eps in sorted(_command_entry_points().items()):
        owners = {_dist_name(ep) for ep in eps}
        if owners != {_COMMON}:
            domains.append(f"{name} ({', '.join(sorted(owners))})")
    rows.append(("domains", ", ".join(domains) or "none installed"))
    eps = recipe_entry_points()
    rows.append(("recipes", ", ".join(eps) or "none registered"))

    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def _device_text(torch: Any) -> str:
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        names = [torch.cuda.get_device_name(i) for i in range(n)]
        kinds = ", ".join(f"{names.count(x)} x {x}" for x in dict.fromkeys(names))
        return f"CUDA ({n} device{'s' if n > 1 else ''}: {kinds}; CUDA {torch.version.cuda})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "MPS (Apple GPU)"
    return "CPU (no CUDA device)"


# -- recipes --------------------------------------------------------------------------------------------------


@click.command(short_help="List the registered recipes with their paper and profiles.")
@click.option("--verbose", "-v", is_flag=True, help="Also print every profile's values.")
@_handle_errors
def recipes(verbose: bool) -> None:
    """List the registered recipes (entry-point group robustlab.recipes): paper, table and profiles."""
    import dataclasses

    from robustlab.common.recipes.registry import get_recipe, recipe_entry_points

    eps = recipe_entry_points()
    if not eps:
        click.echo("No recipes registered.")
        return
    for i, (name, ep) in enumerate(eps.items()):
        if i:
            click.echo()
        try:
            r = get_recipe(name)
        except RobustlabError as e:
            click.echo(f"{name}  [broken] {e}")
            continue
        click.echo(f"{name}  ({_dist_name(ep)})")
        click.echo(f"  paper:    {r.paper.citation()}")
        click.echo(f"  table:    {r.table}")
        click.echo(f"  profiles: {', '.join(r.profiles)}")
        if verbose:
            for pname, p in r.profiles.items():
                values = ", ".join(f"{f.name}={getattr(p, f.name)!r}" for f in dataclasses.fields(p))
                click.echo(f"    {pname}: {values}")


# -- reproduce and merge --------------------------------------------------------------------------------------


def reproduce_command(*, package: str | None = None, name: str = "reproduce") -> click.Command:
    """A ``reproduce`` command running :func:`robustlab.common.recipes.run_recipe`.

    Args:
        package: offer only the recipes of this package (a domain's ``robustlab ecg reproduce``).
        name: the command's name.
    """

    @click.command(name=name, context_settings=_CONTEXT,
                   short_help="Run a recipe's grid (resumable, shardable) and write its table and plot.")
    @click.argument("recipe", type=RecipeName(package))
    @click.option("--profile", "-p", default="quick", show_default=True,
                  help="smoke (seconds), quick (minutes on a CPU), paper (the published protocol, for a GPU).")
    @click.option("--out", "-o", "out_dir", required=True, type=OutputDir(),
                  help="Results folder: runs/<run_id>.json, results.md, results.csv, results.png.")
    @click.option("--shard", type=Shard(), default=None,
                  help="Run only the runs whose grid index % n == i (i counts from 0). Default: the task's position "
                       "in a Slurm job array (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT), else 0/1.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Change a profile value, e.g. --set epochs=5 --set eval_eps=0.1,0.2 (repeatable).")
    @click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A TOML run file of profile values, applied before --set.")
    @click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                  show_default="$ROBUSTLAB_JOBS, else the number of usable cores; 1 when the profile's device is a GPU",
                  help="Worker processes running the shard's runs side by side. Each worker uses one torch thread, "
                       "so the results equal those of --jobs 1 (with --threads 1), digit for digit. --jobs 1 runs "
                       "them one after another in this process.")
    @click.option("--threads", type=click.IntRange(min=1),
                  help="torch threads (torch.set_num_threads) of the runs made in this process: with --jobs 1 (or "
                       "a single run to do). With --jobs above 1 each worker uses one thread and --threads does "
                       "not apply.")
    @click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
    @_handle_errors
    def command(recipe: str, profile: str, out_dir: Path, shard: tuple[int, int] | None, overrides: tuple[str, ...],
                config: Path | None, jobs: int | None, threads: int | None, progress: bool) -> None:
        """Run the grid of RECIPE with a profile into --out, then write results.md, results.csv and results.png.

        Each run is written as its own JSON file as soon as it finishes; running the same command again skips
        finished runs, so a killed sweep resumes. A folder holds one profile: once a run has finished there,
        asking another profile (or other --set values) is refused. Every value is checked before anything is
        written. Shards (--shard i/n) can share a folder or use their own, merged afterwards with 'robustlab
        merge'. The runs of a shard run in --jobs worker processes with one thread each (default: one per
        usable core); --jobs 1, the default when the profile's device is a GPU, runs them in this process with
        --threads threads.
        """
        from robustlab.common.recipes import get_recipe, resolve_profile, run_recipe, shard_from_env

        r = get_recipe(recipe, package=package)
        if shard is None:
            try:
                shard = shard_from_env() or (0, 1)
            except ConfigError as e:  # the job's environment, not an option: exit 1
                raise click.ClickException(str(e)) from None
            if shard != (0, 1):
                click.echo(f"shard {shard[0]}/{shard[1]} from the Slurm job array", err=True)
        if profile not in r.profiles:
            raise click.BadParameter(
                f"recipe {recipe!r} has no profile {profile!r}; its profiles: {', '.join(r.profiles)}",
                param_hint="'--profile'",
            )
        if config is not None:
            try:
                resolve_profile(r, profile, config=config)
            except ConfigError as e:
                raise click.BadParameter(str(e), param_hint="'--config'") from None
        try:
            resolve_profile(r, profile, overrides=list(overrides), config=config)
        except ConfigError as e:
            raise click.BadParameter(str(e), param_hint="'--set'") from None
        if threads is not None:
            # numba (a recipe's motif tools) shares libgomp with torch: the same thread count, set before numba is
            # imported, keeps an idle numba thread from spinning through torch's work
            os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
            import torch

            torch.set_num_threads(threads)
        report = run_recipe(r, profile=profile, out_dir=out_dir, shard=shard, overrides=list(overrides),
                            config=config, progress=progress, jobs=jobs)
        _echo_report(report, f"{len(report.ran)} ran now, {len(report.skipped)} of this shard were already done")

    return command


def merge_command(*, package: str | None = None, name: str = "merge") -> click.Command:
    """A ``merge`` command running :func:`robustlab.common.recipes.merge_results`."""

    @click.command(name=name, context_settings=_CONTEXT,
                   short_help="Merge shard result folders into one and write the table and plot.")
    @click.argument("recipe", type=RecipeName(package))
    @click.argument("shard_dirs", nargs=-1, required=True, metavar="SHARD_DIR...",
                    type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--out", "-o", "out_dir", required=True, type=OutputDir(),
                  help="The merged results folder (may be one of the shard folders).")
    @_handle_errors
    def command(recipe: str, shard_dirs: tuple[Path, ...], out_dir: Path) -> None:
        """Copy the run files of the SHARD_DIR folders of RECIPE into --out and write its table and plot.

        All folders must hold the same profile; two different results for one run are refused.
        """
        from robustlab.common.recipes import get_recipe, merge_results

        report = merge_results(get_recipe(recipe, package=package), out_dir, list(shard_dirs))
        _echo_report(report, f"{len(report.copied)} copied from {len(shard_dirs)} folder(s)")

    return command


def _echo_report(report: Any, what: str) -> None:
    if report.table is not None:
        click.echo(report.table.to_markdown())
    status = f"{len(report.finished)}/{report.grid_size} runs finished ({what})"
    if report.diverged:
        status += f"; {len(report.diverged)} diverged (left out of the table, listed in results.md)"
    if report.missing:
        status += f"; {len(report.missing)} missing"
    click.echo(status)
    click.echo("Wrote " + ", ".join(str(p) for p in report.files))


reproduce = reproduce_command()
merge = merge_command()
