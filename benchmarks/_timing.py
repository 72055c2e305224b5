"""Side-by-side timing for the benchmarks: interleaved repeats, medians, pinned threads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) (pinned)", flush=True)


def _rounds(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and this process's CPU seconds of each function, per round, in interleaved rounds after warm-up."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return wall, cpu


def compare(fns: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, measured in interleaved rounds so drifting load hits all alike."""
    wall, _ = _rounds(fns, repeats=repeats, warmup=warmup)
    return {name: statistics.median(ts) for name, ts in wall.items()}


def compare_cpu(fns: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1
                ) -> dict[str, tuple[float, float]]:
    """(median wall seconds, least CPU seconds of this process) of each function, in interleaved rounds.

    The CPU time is the figure to judge on a shared machine: other processes stretch the wall time of whichever
    function they happen to overlap, and their cache traffic still inflates this process's CPU time in some
    rounds, so the least of the rounds is the least disturbed measurement of the work itself."""
    wall, cpu = _rounds(fns, repeats=repeats, warmup=warmup)
    return {name: (statistics.median(wall[name]), min(cpu[name])) for name in fns}


def verdict(ratio: float, *, at_least: float | None = None, at_most: float | None = None, noise: float = 0.03) -> str:
    """'ok' when the ratio meets its target within the stated noise, else 'MISSED'."""
    if at_least is not None:
        return "ok" if ratio >= at_least * (1 - noise) else "MISSED"
    if at_most is not None:
        return "ok" if ratio <= at_most * (1 + noise) else "MISSED"
    return ""
