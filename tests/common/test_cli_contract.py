"""The error contract of every command registered in the ``robustlab.cli`` entry points.

The commands are found by walking the installed groups, so a new domain's commands are covered without new
code here. For each command: a nonexistent input, an output folder that cannot be written, a device this machine
does not have and an out-of-range number are usage errors (exit 2) caught when the command line is read, before
any compute, with a message naming the value; garbage input files are reported (exit 1 or 2) without a traceback.
"""

from __future__ import annotations

import math

import click
import pytest
from click.testing import CliRunner

from robustlab.common.cli import Device, FiniteFloat, OutputDir, OutputFile, RecipeName, main


def _walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...]):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, click.Context(cmd, parent=ctx, info_name=name), path)
        else:
            yield path, cmd


COMMANDS = dict(_walk(main, click.Context(main, info_name="robustlab"), ()))


def _ids():
    return [" ".join(p) for p in COMMANDS]


def _is_input(p: click.Parameter) -> bool:
    return isinstance(p.type, click.Path) and p.type.exists


def _is_output(p: click.Parameter) -> bool:
    return isinstance(p.type, (OutputDir, OutputFile))


def _numeric(p: click.Parameter) -> bool:
    return isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)) and not p.is_flag


def _valid_value(p: click.Parameter, tmp) -> list[str]:
    """A value that parses, for the parameters a probe does not aim at."""
    t = p.type
    if _is_input(p):
        if t.file_okay:
            f = tmp / f"{p.name}.garbage"
            f.write_bytes(b"\x00garbage\xff" * 8)
            return [str(f)]
        d = tmp / f"{p.name}-folder"
        d.mkdir(exist_ok=True)
        return [str(d)]
    if _is_output(p):
        return [str(tmp / f"{p.name}-out")]
    if isinstance(t, RecipeName):
        from robustlab.common.recipes.registry import recipe_names

        return [recipe_names(t.package)[0]]
    if isinstance(t, click.Choice):
        return [str(t.choices[0])]
    if isinstance(t, click.types.IntParamType):
        return [str(max(1, int(getattr(t, "min", None) or 1)))]
    if isinstance(t, click.types.FloatParamType):
        low = getattr(t, "min", None)
        return [str(1.0 if low is None else low + 1.0)]
    return ["x"]


def _args(cmd: click.Command, tmp, replace: click.Parameter | None = None, value: str | None = None) -> list[str]:
    """The command line with every required parameter (and ``replace``) given."""
    args: list[str] = []
    for p in cmd.params:
        if p is replace:
            val = [value]
        elif p.required:
            val = _valid_value(p, tmp)
        else:
            continue
        if isinstance(p, click.Argument):
            args += val
        else:
            args += [p.opts[0], *val]
    return args


def _run(path: tuple[str, ...], args: list[str]):
    return CliRunner().invoke(main, [*path, *args])


def _clean(result) -> str:
    out = result.output
    assert "Traceback" not in out and "unexpected" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return out


def test_commands_are_found_and_none_is_broken():
    assert {("genomics", "train"), ("reproduce",), ("info",)} <= set(COMMANDS)
    broken = [" ".join(p) for p, c in COMMANDS.items() if (c.help or "").startswith("[broken]")]
    assert not broken


@pytest.mark.parametrize("path", list(COMMANDS), ids=_ids())
def test_a_nonexistent_input_is_a_usage_error(path, tmp_path):
    cmd = COMMANDS[path]
    for p in filter(_is_input, cmd.params):
        missing = tmp_path / "does-not-exist" / "input"
        result = _run(path, _args(cmd, tmp_path, p, str(missing)))
        assert result.exit_code == 2 and str(missing) in _clean(result), (p.name, result.output)


@pytest.mark.parametrize("path", list(COMMANDS), ids=_ids())
def test_an_unwritable_output_is_a_usage_error_before_any_compute(path, tmp_path):
    cmd = COMMANDS[path]
    named_out = [p for p in cmd.params if p.name in ("out", "out_dir") and not _is_input(p)]
    assert all(_is_output(p) for p in named_out), "outputs must be OutputDir/OutputFile: checked before compute"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for p in filter(_is_output, cmd.params):
        for bad in (blocker / "below-a-file", *([blocker] if isinstance(p.type, OutputDir) else [tmp_path])):
            result = _run(path, _args(cmd, tmp_path, p, str(bad)))
            assert result.exit_code == 2 and str(bad) in _clean(result), (p.name, bad, result.output)


@pytest.mark.parametrize("path", list(COMMANDS), ids=_ids())
def test_a_bad_device_is_a_usage_error(path, tmp_path):
    import torch

    cmd = COMMANDS[path]
    for p in (p for p in cmd.params if p.name == "device"):
        assert isinstance(p.type, Device), f"{p.opts[0]} must be of type robustlab.common.cli.Device"
        bad = ["banana", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
        for value in bad:
            result = _run(path, _args(cmd, tmp_path, p, value))
            assert result.exit_code == 2 and repr(value) in _clean(result), (value, result.output)


@pytest.mark.parametrize("path", list(COMMANDS), ids=_ids())
def test_a_bad_number_is_a_usage_error(path, tmp_path):
    cmd = COMMANDS[path]
    for p in filter(_numeric, cmd.params):
        t = p.type
        low, high = getattr(t, "min", None), getattr(t, "max", None)
        assert low is not None or high is not None, \
            f"{p.opts[0]} must declare its range (click.IntRange, click.FloatRange or FiniteFloat)"
        bad = ["abc"]
        if low is not None:
            bad.append(str(low - 1 if isinstance(t, click.types.IntParamType) else low - 1.0))
        if high is not None:
            bad.append(str(high + 1))
        if isinstance(t, click.types.FloatParamType):
            assert isinstance(t, FiniteFloat), f"{p.opts[0]} must refuse NaN and infinities (FiniteFloat)"
            bad += ["nan", "inf"]
        for value in bad:
            if value.lstrip("-").replace(".", "").isdigit() and low is not None and not math.isfinite(float(low)):
                continue
            result = _run(path, _args(cmd, tmp_path, p, value))
            assert result.exit_code == 2 and p.opts[0] in _clean(result), (p.name, value, result.output)


@pytest.mark.parametrize("path", [p for p, c in COMMANDS.items() if any(_is_input(q) and q.required
                                                                      for q in c.params)],
                         ids=lambda p: " ".join(p))
def test_garbage_input_files_fail_cleanly(path, tmp_path):
    result = _run(path, _args(COMMANDS[path], tmp_path))
    assert result.exit_code in (1, 2), result.output
    out = _clean(result)
    assert "Error" in out and "garbage" in out, out  # names the file at fault


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    (tmp_path / "m.pt").write_bytes(b"<html></html>")
    (tmp_path / "s.fa").write_text(">a\nACGT\n")
    args = ["genomics", "attribute", "--model", str(tmp_path / "m.pt"), "--fasta", str(tmp_path / "s.fa"),
            "--out", str(tmp_path / "o")]
    from robustlab.common.errors import CheckpointError

    assert isinstance(CliRunner().invoke(main, ["--debug", *args]).exception, CheckpointError)
    monkeypatch.setenv("ROBUSTLAB_DEBUG", "1")
    assert isinstance(CliRunner().invoke(main, args).exception, CheckpointError)
    monkeypatch.delenv("ROBUSTLAB_DEBUG")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "HTML" in result.output and result.exception.__class__ is SystemExit


def test_an_unforeseen_error_is_reported_as_a_bug_with_the_debug_hint(monkeypatch, tmp_path):
    import robustlab.genomics.data.simulate as simulate

    def broken(**kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(simulate, "simulate_koo2019", broken)
    result = CliRunner().invoke(main, ["genomics", "simulate", "--task", "koo2019", "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "unexpected KeyError" in result.output and "--debug" in result.output
