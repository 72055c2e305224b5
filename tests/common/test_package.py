"""The package as a whole: a PEP 420 namespace, and importing any module does nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_robustlab_is_a_namespace_package():
    import robustlab

    assert getattr(robustlab, "__file__", None) is None, "robustlab must have no __init__.py (PEP 420 namespace)"
    assert any(p.endswith(os.path.join("common", "src", "robustlab")) for p in robustlab.__path__)


def test_importing_every_module_creates_nothing(tmp_path):
    """Import all of robustlab.common in a fresh process with an empty home: no folder or file appears."""
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data-not-created"
    code = textwrap.dedent(
        """
        import importlib, pkgutil, robustlab.common as rc
        names = [m.name for m in pkgutil.walk_packages(rc.__path__, "robustlab.common.")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
        """
    )
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "ROBUSTLAB_DATA": str(data),
           "MPLCONFIGDIR": str(home / ".mpl")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) > 30, "every module was imported"
    assert not data.exists()
    assert list(home.iterdir()) == [], f"importing created {list(home.iterdir())}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
