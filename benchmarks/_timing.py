"""Side-by-side timing for the benchmarks: interleaved repeats, medians, pinned threads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) (pinned)", flush=True)


def compare(fns: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, measured in interleaved rounds so drifting load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def verdict(ratio: float, *, at_least: float | None = None, at_most: float | None = None, noise: float = 0.03) -> str:
    """'ok' when the ratio meets its target within the stated noise, else 'MISSED'."""
    if at_least is not None:
        return "ok" if ratio >= at_least * (1 - noise) else "MISSED"
    if at_most is not None:
        return "ok" if ratio <= at_most * (1 + noise) else "MISSED"
    return ""
