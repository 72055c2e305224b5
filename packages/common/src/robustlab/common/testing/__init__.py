"""Helpers for robustlab's tests and those of the domain packages: shared real data and tiny fixtures.

Imports pytest lazily, so importing this module costs nothing outside a test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["SHARED_DATA_ENV", "shared_data", "in_ci", "kill_mid_run", "random_targets", "run_script"]

SHARED_DATA_ENV = "ROBUSTLAB_SHARED_DATA"


def in_ci() -> bool:
    """True when running under CI (``CI`` set to a true value)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def shared_data(*parts: str) -> Path:
    """The path of a real-data folder for tests: ``$ROBUSTLAB_SHARED_DATA`` or ``<repo>/../shared/data``.

    When the folder is missing the test is skipped outside CI, with a message naming the folder; under CI it
    fails, since CI always has the data.
    """
    import pytest

    root = os.environ.get(SHARED_DATA_ENV)
    base = Path(root) if root else _repo_root().parent / "shared" / "data"
    path = base.joinpath(*parts)
    if not path.exists():
        msg = f"real-data folder {path} is missing (set {SHARED_DATA_ENV} to the folder of shared/data)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "packages").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def run_script(script: str | os.PathLike, out: str | os.PathLike, *args: str, timeout: float = 120) -> None:
    """Run a training script ``python script out *args`` to its end on one thread (``OMP_NUM_THREADS=1``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(out), *args], check=True, env=env, timeout=timeout)


def kill_mid_run(script: str | os.PathLike, out: str | os.PathLike, *args: str, after_epoch: int = 2,
                 epochs: int, timeout: float = 120) -> int:
    """Start ``python script out *args``, SIGKILL it inside epoch ``after_epoch + 1``; returns the epochs done.

    The script trains with ``fit(..., out_dir=out, resume=True)`` (slowed down by its ``args`` so the kill lands
    mid-epoch) and writes ``out/final.pt`` when it ends. Asserts that the kill landed after the checkpoint of
    epoch ``after_epoch`` and before the run's ``epochs`` ended.
    """
    from robustlab.common.checkpoint import load_checkpoint

    out = Path(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), *args], env=env)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")["epoch"] >= after_epoch:
                break
            assert proc.poll() is None, "the training process ended before it could be killed"
            time.sleep(0.02)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the training process ended with {proc.returncode}"
    done = int(load_checkpoint(out / "last.pt")["epoch"])
    assert after_epoch <= done < epochs, f"the kill must land mid-run (it landed after epoch {done} of {epochs})"
    assert not (out / "final.pt").exists()
    return done


def random_targets(task: str, n: int, *, outputs: int = 3, generator=None):
    """Random targets of a task for contract tests: class indices in ``[0, outputs)`` (multiclass), 0/1 rows
    ``(n, outputs)`` (multilabel) or standard normal values ``(n, outputs)`` (regression)."""
    import torch

    if task == "multiclass":
        return torch.randint(0, outputs, (n,), generator=generator)
    if task == "multilabel":
        return torch.randint(0, 2, (n, outputs), generator=generator).float()
    if task == "regression":
        return torch.randn(n, outputs, generator=generator)
    raise ValueError(f"unknown task {task!r}")
