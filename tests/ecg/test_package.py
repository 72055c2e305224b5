"""robustlab.ecg as a package: importing any module does nothing (no folder, no download), its docstring examples
run, and it reaches the core only (no other domain)."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest


def test_importing_every_module_creates_nothing_and_imports_no_other_domain(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data-not-created"
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys, robustlab.ecg as pkg
        names = [m.name for m in pkgutil.walk_packages(pkg.__path__, "robustlab.ecg.")]
        for name in names:
            importlib.import_module(name)
        other = sorted(m for m in sys.modules if m.startswith("robustlab.") and m.split(".")[1] not in ("ecg", "common"))
        print(len(names), other)
        """
    )
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "ROBUSTLAB_DATA": str(data),
           "MPLCONFIGDIR": str(home / ".mpl")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    count, other = out.stdout.strip().split(" ", 1)
    assert int(count) >= 14 and other == "[]"
    assert not data.exists() and list(home.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.parametrize("module", sorted(m.name for m in pkgutil.walk_packages(
    importlib.import_module("robustlab.ecg").__path__, "robustlab.ecg.")))
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
