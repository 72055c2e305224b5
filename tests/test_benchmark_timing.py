"""benchmarks/_timing.py: the paired comparison the speed targets are judged by (on a fake clock) and the
allocator setting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _timing  # noqa: E402


def test_compare_paired_takes_the_median_of_same_round_ratios(monkeypatch):
    clock = {"t": 0.0}
    monkeypatch.setattr(_timing.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(_timing.time, "process_time", lambda: clock["t"])
    # seconds per call (one warm-up, then 5 rounds): slow spells in rounds 2-4 hit both sides in 2 and 3, the
    # base alone in 4; the separate medians (3 s and 1.2 s) would say 0.4, the rounds' ratios say 1.2
    times = {"base": iter([1, 1, 3, 3, 3, 1]), "other": iter([1.2, 1.2, 3.6, 3.6, 1.2, 1.2])}
    order = []

    def call(name):
        def fn():
            order.append(name)
            clock["t"] += next(times[name])
        return fn

    r = _timing.compare_paired({"base": call("base"), "other": call("other")}, base="base", repeats=5)
    assert r["other"]["cpu"] == pytest.approx(1.2) and r["other"]["wall"] == pytest.approx(1.2)
    assert r["base"]["cpu"] == 1.0 and r["other"]["seconds"] == pytest.approx(1.2) and r["base"]["seconds"] == 3
    # after the warm-up the order rotates: base first in rounds 1, 3, 5, other first in rounds 2, 4
    assert order[2:] == ["base", "other", "other", "base", "base", "other", "other", "base", "base", "other"]
    with pytest.raises(KeyError, match="base 'nope'"):
        _timing.compare_paired({"base": call("base")}, base="nope")


def test_steady_allocator_says_what_it_did():
    """In a child process: mallopt changes the allocator of the whole process it runs in."""
    code = "import _timing; _timing.steady_allocator()"
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("allocator: ")
    if platform.libc_ver()[0] == "glibc":
        assert "M_MMAP_THRESHOLD 32 MiB" in out


def test_median_interval_brackets_the_median_and_narrows_with_more_rounds():
    few = [1.0, 1.3, 0.9, 1.1, 1.2]
    lo, hi = _timing.median_interval(few)
    assert min(few) <= lo <= 1.1 <= hi <= max(few)
    assert _timing.median_interval([1.05] * 7) == (1.05, 1.05)
    many = few * 8  # the same spread, eight times the rounds
    lo8, hi8 = _timing.median_interval(many)
    assert hi8 - lo8 < hi - lo
