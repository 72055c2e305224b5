"""Progress display that suits where the output goes: a tqdm bar on a terminal, a few plain lines in a log file.

A tqdm bar redraws itself many times a second; with the output redirected to a file (a batch job, CI) every redraw
becomes a new line and a 400-step epoch fills the log with hundreds of bar lines. :func:`progress` returns a tqdm
bar when stderr is a terminal (or in a Jupyter kernel) and otherwise a :class:`LineProgress`, which writes one
plain line at a few fixed fractions of the total (by default 25, 50, 75 and 100 %), each with the count, the
postfix (e.g. the running loss), the elapsed time and an estimate of the time left. Both have the same interface
(iteration, ``update``, ``set_postfix``, ``set_postfix_str``, ``write``, ``close``, ``with``).

The environment variable ``ROBUSTLAB_PROGRESS`` forces a mode: ``bar``, ``lines`` or ``off``.

Examples::

    >>> import io
    >>> from robustlab.common.progress import progress
    >>> out = io.StringIO()
    >>> for i in progress(range(8), total=8, desc="epoch 1/1", unit="step", mode="lines", file=out):
    ...     pass
    >>> len(out.getvalue().splitlines())
    4
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from robustlab.common.errors import ConfigError

__all__ = ["MODES", "ENV_VAR", "LineProgress", "progress", "resolve_mode", "write"]

MODES = ("bar", "lines", "off")
"""The display modes: a tqdm bar, a few plain lines, nothing."""

ENV_VAR = "ROBUSTLAB_PROGRESS"
"""The environment variable that forces a mode (one of :data:`MODES`)."""


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.auto draws a widget there; its stderr is no terminal)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:
        return False


_warned_env: str | None = None


def resolve_mode(mode: str | None = None, *, file: IO[str] | None = None) -> str:
    """The display mode: ``mode`` if given, else ``$ROBUSTLAB_PROGRESS`` if set, else ``"bar"`` when ``file``
    (default stderr) is a terminal or this runs in a Jupyter kernel, and ``"lines"`` otherwise.

    An unknown value of the environment variable is ignored with a warning (a run is not stopped for it).

    Raises:
        ConfigError: ``mode`` is not one of :data:`MODES`.
    """
    if mode is not None:
        if mode not in MODES:
            raise ConfigError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        return mode
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in MODES:
        return forced
    if forced:  # the environment's mistake must not stop a run: said once, then the automatic choice
        global _warned_env
        if _warned_env != forced:
            import warnings

            warnings.warn(f"${ENV_VAR} must be one of {', '.join(MODES)}, got {forced!r}; ignored", RuntimeWarning,
                          stacklevel=2)
            _warned_env = forced
    stream = file if file is not None else sys.stderr
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return "bar" if tty or _in_notebook() else "lines"


def write(text: str, *, file: IO[str] | None = None, mode: str | None = None) -> None:
    """Write one line (default to stderr) without breaking a tqdm bar being drawn: through ``tqdm.write`` in bar
    mode, plainly otherwise. Writes even in ``"off"`` mode (it is the caller's message, not a progress display)."""
    stream = file if file is not None else sys.stderr
    if resolve_mode(mode, file=stream) == "bar":
        from tqdm.auto import tqdm

        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """A progress display for logs: one plain line at each of ``points`` (fractions of ``total``), or every
    ``interval`` seconds when the total is unknown.

    Each line reads e.g. ``epoch 1/3: step 100/400 (25%), loss 0.6931, 1.2s elapsed, ETA 3.6s`` (with
    ``unit_scale``: ``data.bin: 2.00MB/8.00MB (25%), ...``). The interface is the part of tqdm's that robustlab
    uses.

    Args:
        iterable: what to iterate over (optional: without it, call :meth:`update`).
        total: the number of items (default ``len(iterable)`` when it has one).
        desc: the prefix of every line.
        unit: what is counted (``"step"``, ``"run"``, ``"B"``).
        unit_scale, unit_divisor: show counts as ``1.2M`` (tqdm's meaning), e.g. bytes with divisor 1024.
        initial: the count to start from (items done before).
        points: the fractions of ``total`` at which a line is written.
        interval: seconds between lines when ``total`` is unknown.
        file: where lines go (default ``sys.stderr`` at the time of writing).
        disable: write nothing (iteration still works).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", unit_scale: bool = False, unit_divisor: int = 1000, initial: float = 0,
                 points: Sequence[float] = (0.25, 0.5, 0.75, 1.0), interval: float = 60.0,
                 file: IO[str] | None = None, disable: bool = False) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.unit_scale, self.unit_divisor = unit_scale, unit_divisor
        self.n = self.start = initial
        self.points = sorted(p for p in points if 0 < p <= 1)
        self.interval, self.file, self.disable = interval, file, disable
        self.postfix = ""
        self.t0 = self.last_line = time.perf_counter()
        self._next = 0  # index of the next point to report
        self._skip_passed()
        self.closed = False

    def _skip_passed(self) -> None:
        if self.total:
            while self._next < len(self.points) and self.n >= self.points[self._next] * self.total:
                self._next += 1

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this LineProgress has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count ``n`` more items; writes a line when a point (or the interval) is passed."""
        self.n += n
        if self.disable:
            return
        now = time.perf_counter()
        if self.total:
            due = self._next < len(self.points) and self.n >= self.points[self._next] * self.total
            if due:
                self._skip_passed()
        else:
            due = now - self.last_line >= self.interval
        if due:
            self.last_line = now
            self._line(now)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
                    ) -> None:
        """Show ``key value`` pairs after the count in the next lines (tqdm's signature; ``refresh`` is
        ignored)."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k} {v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Show ``s`` after the count in the next lines."""
        self.postfix = str(s)

    def write(self, text: str, file: IO[str] | None = None) -> None:
        """Write a line of the caller's (never disabled), to ``file`` or the display's stream (as tqdm.write)."""
        stream = file if file is not None else self.file
        print(text, file=stream if stream is not None else sys.stderr, flush=True)

    def close(self) -> None:
        """Finish; writes nothing more."""
        self.closed = True

    def _count(self, value: float) -> str:
        if self.unit_scale:
            from tqdm import tqdm

            return tqdm.format_sizeof(value, divisor=self.unit_divisor)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def _line(self, now: float) -> None:
        elapsed = now - self.t0
        if self.unit_scale:  # 2.00kB/4.00kB
            count = f"{self._count(self.n)}{self.unit}" + (f"/{self._count(self.total)}{self.unit}" if self.total else "")
        else:  # step 100/400
            count = f"{self.unit} {self._count(self.n)}" + (f"/{self._count(self.total)}" if self.total else "")
        parts = [f"{count} ({100 * self.n / self.total:.0f}%)" if self.total else count]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{_duration(elapsed)} elapsed")
        done = self.n - self.start
        if self.total and done > 0 and self.n < self.total:
            parts.append(f"ETA {_duration(elapsed / done * (self.total - self.n))}")
        self.write((f"{self.desc}: " if self.desc else "") + ", ".join(parts))


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
             enabled: bool = True, mode: str | None = None, unit: str = "it", file: IO[str] | None = None,
             points: Sequence[float] = (0.25, 0.5, 0.75, 1.0), **tqdm_kwargs: Any):
    """A progress display over ``iterable`` (or for :meth:`update` calls): a tqdm bar or a :class:`LineProgress`.

    Args:
        iterable: what to iterate over; optional.
        total: the number of items (default ``len(iterable)``).
        desc: the label (the bar's prefix, every line's prefix).
        enabled: False shows nothing whatever the mode (iteration still works).
        mode: ``"bar"``, ``"lines"`` or ``"off"``; default :func:`resolve_mode` (``$ROBUSTLAB_PROGRESS``, else a
            bar on a terminal and lines otherwise).
        unit: what is counted.
        file: where to write; default stderr.
        points: the fractions of ``total`` at which the line display writes.
        tqdm_kwargs: passed to tqdm (``leave``, ``dynamic_ncols``...); ``unit_scale``, ``unit_divisor``,
            ``initial`` and ``interval`` also reach the line display.

    Returns:
        A ``tqdm.auto.tqdm`` or a :class:`LineProgress`; both iterate, ``update``, ``set_postfix``,
        ``set_postfix_str``, ``write`` and ``close``.
    """
    stream = file if file is not None else sys.stderr
    chosen = resolve_mode(mode, file=stream) if enabled else "off"
    if chosen == "bar":
        from tqdm.auto import tqdm

        tqdm_kwargs.pop("interval", None)
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, **tqdm_kwargs)
    line_keys = ("unit_scale", "unit_divisor", "initial", "interval")
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file, points=points,
                        disable=chosen == "off", **{k: tqdm_kwargs[k] for k in line_keys if k in tqdm_kwargs})
