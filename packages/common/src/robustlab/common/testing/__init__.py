"""Helpers for robustlab's tests and those of the domain packages: shared real data, peer libraries and tiny
fixtures.

A test that needs something CI always has (the real data of :func:`shared_data`, a peer library of
:func:`require_peer`) is skipped outside CI when it is missing, with a message saying how to get it, and fails
under CI (``CI`` set, see :func:`in_ci`).

Imports pytest lazily, so importing this module costs nothing outside a test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

__all__ = ["SHARED_DATA_ENV", "shared_data", "in_ci", "require_peer", "check_model_contract", "exported_modules", "kill_mid_run", "kill_command_mid_run",
           "random_targets", "run_script"]

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


# How to install each peer library (by top-level module): `make install` installs them all.
_PEER_INSTALL = {
    "captum": "`make install` (captum is in the test extra: pip install -e 'packages/common[test]')",
    "torchattacks": "`make install` (pip install --no-deps torchattacks==3.5.1)",
    "shadow": "`make install` (pip install --no-deps shadow-ssml==1.0.3)",
    "torchcam": "`make install` (pip install --no-deps torchcam==0.5.0)",
    "prdc": "`make install` (pip install --no-deps prdc==0.2)",
}


def require_peer(module: str, *, what: str | None = None) -> ModuleType:
    """Import and return ``module``, a peer library that a test checks robustlab against (Captum, torchattacks).

    When it cannot be imported the calling test is skipped outside CI, with a message naming the module, what it
    is for and how to install it; under CI it fails, since CI installs every peer (``make install``). Call it in
    the tests or fixtures that need the peer, not at module level, so that the module's other tests (its
    contract tests) still run without it::

        @pytest.fixture(scope="module")
        def captum_attr():
            return require_peer("captum.attr", what="the reference the attributions are checked against")

    Args:
        module: the dotted module name, e.g. ``"captum.attr"``.
        what: what the peer is for, added to the message.

    Returns:
        The imported module.
    """
    import importlib

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = _PEER_INSTALL.get(module.partition(".")[0], "`make install`")
        purpose = f" ({what})" if what else ""
        msg = f"peer library {module}{purpose} cannot be imported ({e}); install it with {how}"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


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
    done = kill_command_mid_run([sys.executable, str(script), str(out), *args], out, after_epoch=after_epoch,
                                epochs=epochs, timeout=timeout)
    assert not (Path(out) / "final.pt").exists()
    return done


def kill_command_mid_run(argv: list[str], out: str | os.PathLike, *, after_epoch: int = 1, epochs: int,
                         timeout: float = 120) -> int:
    """Run the command ``argv`` (a training command writing ``out/last.pt``), SIGKILL it inside epoch
    ``after_epoch + 1``; returns the epochs done.

    Asserts that the kill landed after the checkpoint of epoch ``after_epoch`` and before the run's ``epochs``
    ended. The command runs on one thread (``OMP_NUM_THREADS=1``).
    """
    from robustlab.common.checkpoint import load_checkpoint
    from robustlab.common.errors import CheckpointError

    out = Path(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            try:
                if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")["epoch"] >= after_epoch:
                    break
            except CheckpointError:  # replaced while being read: look again
                pass
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"the training process ended ({proc.returncode}) before it could be killed: "
                                     f"{log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.02)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL, f"the training process ended with {proc.returncode}"
    done = int(load_checkpoint(out / "last.pt")["epoch"])
    assert after_epoch <= done < epochs, f"the kill must land mid-run (it landed after epoch {done} of {epochs})"
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


def exported_modules(package) -> list[str]:
    """The names in ``package.__all__`` that are ``torch.nn.Module`` classes (for model contract tests)."""
    from torch import nn

    return sorted(n for n in package.__all__ if isinstance(getattr(package, n), type)
                  and issubclass(getattr(package, n), nn.Module))


def check_model_contract(cls, kwargs: dict, x, out_shape: tuple[int, ...], tmp_path: str | os.PathLike) -> None:
    """Assert the contract every exported model keeps, on the input batch ``x``.

    - no TorchScript submodules; the forward pass in train mode gives ``out_shape``, ``x``'s dtype, finite values;
    - a random weighting of the outputs reaches every parameter with a finite, non-zero gradient;
    - eval mode is deterministic whatever the random state;
    - the weights and buffers round-trip through a checkpoint into a model initialized differently;
    - the model file (:func:`robustlab.common.modelfile.save_model`) rebuilds the same model from the file alone.
    """
    import torch

    from robustlab.common.checkpoint import load_weights, save_checkpoint
    from robustlab.common.modelfile import load_model, save_model

    name, tmp_path = cls.__name__, Path(tmp_path)
    torch.manual_seed(0)
    model = cls(**kwargs)
    assert not any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()), "no TorchScript modules"
    out = model.train()(x)
    assert out.shape == out_shape and out.dtype == x.dtype, (out.shape, out.dtype)
    assert torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} gets no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}.{pname}: gradient zero or not finite"

    model.eval()
    with torch.no_grad():
        torch.manual_seed(3)
        a = model(x)
        torch.manual_seed(4)
        assert torch.equal(a, model(x)) and torch.equal(a, model(x.clone()))

    # weights and buffers (batch-norm statistics moved by the train-mode forward) into a fresh model
    save_checkpoint(tmp_path / "weights.pt", {"model": model.state_dict()})
    torch.manual_seed(5)
    fresh = cls(**kwargs).eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x), a), "a fresh model must differ, or the round trip proves nothing"
    load_weights(fresh, tmp_path / "weights.pt")
    loaded, original = fresh.state_dict(), model.state_dict()
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[k], original[k]) for k in original)
    rebuilt = load_model(save_model(model, tmp_path / "model.pt")).model
    assert type(rebuilt) is cls
    with torch.no_grad():
        assert torch.equal(fresh(x), a) and torch.equal(rebuilt(x), a)
