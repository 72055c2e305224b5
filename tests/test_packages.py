"""Every domain distribution as a package: importing any of its modules does nothing (no folder, no download, no
file in the home folder) and reaches the core only, never another domain; its docstring examples run.

The domains are found, not listed: every subpackage of the ``robustlab`` namespace other than ``common``.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import robustlab

DOMAINS = sorted({m.name for m in pkgutil.iter_modules(robustlab.__path__) if m.ispkg} - {"common"})
MIN_MODULES = {"ecg": 14, "seismic": 17, "vision": 8}
"""Modules a domain has at least (a package that stopped being found whole would import fewer)."""


def _modules(domain: str) -> list[str]:
    pkg = importlib.import_module(f"robustlab.{domain}")
    return sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, f"robustlab.{domain}."))


def test_the_domains_are_found():
    assert {"genomics", "ecg"} <= set(DOMAINS), DOMAINS


@pytest.mark.parametrize("domain", DOMAINS)
def test_importing_every_module_creates_nothing_and_imports_no_other_domain(domain, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data-not-created"
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys, robustlab.{domain} as pkg
        names = [m.name for m in pkgutil.walk_packages(pkg.__path__, "robustlab.{domain}.")]
        for name in names:
            importlib.import_module(name)
        other = sorted(m for m in sys.modules
                       if m.startswith("robustlab.") and m.split(".")[1] not in ("{domain}", "common"))
        print(len(names), other)
        """
    )
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "ROBUSTLAB_DATA": str(data),
           "MPLCONFIGDIR": str(home / ".mpl")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    count, other = out.stdout.strip().split(" ", 1)
    assert int(count) == len(_modules(domain)) and int(count) >= MIN_MODULES.get(domain, 5), count
    assert other == "[]", f"robustlab.{domain} imports another domain: {other}"
    assert not data.exists(), "importing created the data folder"
    assert list(home.iterdir()) == [], f"importing wrote into the home folder: {list(home.iterdir())}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.parametrize("module", [m for d in DOMAINS for m in _modules(d)])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed"
