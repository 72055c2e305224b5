"""Side-by-side timing for the benchmarks: interleaved repeats, medians, pinned threads, a steady allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import statistics
import time
from collections.abc import Callable

import torch


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) (pinned)", flush=True)


def steady_allocator() -> None:
    """Keep freed memory in this process instead of returning it to the system (glibc ``malloc``: a fixed 32 MiB
    ``mmap`` threshold and no heap trimming), as the caching allocators PyTorch recommends for CPU training
    (jemalloc, tcmalloc) do.

    glibc's default moves its ``mmap`` threshold with the sizes freed so far and trims the heap, so whether the
    same training step's activation-sized tensors come back as fresh pages (a page fault each 4 KiB, counted as
    this process's system time) depends on the history of the process: a step's CPU time then swings by a quarter
    between rounds. Both sides of a comparison run in one process, so both get the same allocator. Prints what it
    did; without glibc (another C library) it changes nothing and says so."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        print("allocator: the C library's default (no glibc mallopt here)", flush=True)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1 and mallopt(m_trim_threshold, 1 << 30) == 1
    print("allocator: glibc malloc, freed memory kept (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB)" if ok
          else "allocator: glibc refused mallopt; its default", flush=True)


def _rounds(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int, rotate: bool = False
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and this process's CPU seconds of each function, per round, in interleaved rounds after warm-up
    (``rotate``: round ``r`` starts at the ``r``-th function, so that none always runs first)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)] if rotate else names
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return wall, cpu


def compare(fns: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, measured in interleaved rounds so drifting load hits all alike."""
    wall, _ = _rounds(fns, repeats=repeats, warmup=warmup)
    return {name: statistics.median(ts) for name, ts in wall.items()}


def compare_paired(fns: dict[str, Callable[[], object]], *, base: str, repeats: int = 9, warmup: int = 1
                   ) -> dict[str, dict[str, float]]:
    """Each function against ``base``, judged round by round: ``{name: {"cpu", "cpu_interval", "wall", "seconds"}}``.

    ``cpu``: the median over the rounds of the function's CPU seconds (this process's) divided by the base's in the
    same round, ``cpu_interval`` its 90 % bootstrap interval (:func:`median_interval`); ``wall`` the same of the wall-clock seconds; ``seconds`` its median wall-clock seconds. All run
    in every round, one after another, the order rotating between rounds. On a shared machine the load drifts
    over seconds: a slow spell stretches both sides of one round, so the ratio of a round is steadier than a
    ratio of separate medians or minima, and the median of the rounds' ratios drops the rounds a burst hit on
    one side only."""
    if base not in fns:
        raise KeyError(f"base {base!r} is not one of {list(fns)}")
    wall, cpu = _rounds(fns, repeats=repeats, warmup=warmup, rotate=True)
    out = {}
    for name in fns:
        ratios = [a / b for a, b in zip(cpu[name], cpu[base])]
        out[name] = {"cpu": statistics.median(ratios), "cpu_interval": median_interval(ratios),
                     "wall": statistics.median(a / b for a, b in zip(wall[name], wall[base])),
                     "seconds": statistics.median(wall[name])}
    return out


def median_interval(values: list[float], *, level: float = 0.9, resamples: int = 2000, seed: int = 0
                    ) -> tuple[float, float]:
    """A percentile bootstrap interval (``level``, seeded) for the median of ``values``: how far the median of
    this many rounds moves when the rounds are drawn again."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    lo = int((1 - level) / 2 * resamples)
    return medians[lo], medians[resamples - 1 - lo]


def verdict(ratio: float, *, at_least: float | None = None, at_most: float | None = None, noise: float = 0.03) -> str:
    """'ok' when the ratio meets its target within the stated noise, else 'MISSED'."""
    if at_least is not None:
        return "ok" if ratio >= at_least * (1 - noise) else "MISSED"
    if at_most is not None:
        return "ok" if ratio <= at_most * (1 + noise) else "MISSED"
    return ""
