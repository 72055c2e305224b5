"""What a recipe is: one paper table, its profiles, its grid of runs, and the paper's own numbers.

Nothing here imports torch, numpy or matplotlib at module level: listing recipes stays instant.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustlab.common.config import check_values
from robustlab.common.errors import ConfigError

__all__ = [
    "REQUIRED_PROFILES",
    "Paper",
    "PaperNumbers",
    "Recipe",
    "Table",
    "mean_std_cell",
    "mean_std_table",
    "plot_bars",
    "run_id",
    "seed_everything",
]

REQUIRED_PROFILES = ("smoke", "quick", "paper")
"""Every recipe offers these: ``smoke`` (seconds, for tests), ``quick`` (minutes on a 2-core CPU) and ``paper``
(the published protocol, for a GPU)."""

Record = dict[str, Any]
"""One finished run as stored in ``runs/<run_id>.json``: ``run_id``, ``index``, ``spec``, ``status`` (``"ok"``),
``metrics`` (numbers), ``extras`` (other JSON values the run returned), ``profile``, ``seconds``, ``versions``...

A run that diverged (its ``run`` raised :class:`~robustlab.common.errors.DivergenceError`) is stored with
``status: "diverged"`` and ``reason`` (the error's type and message) instead of ``metrics`` and ``extras``; the
runner keeps such records out of ``summarize`` and ``plot`` and notes them under the table. Records written
before ``status`` existed have none and are results."""


@dataclass(frozen=True)
class Paper:
    """The publication a recipe reproduces.

    Args:
        authors: as printed, e.g. ``"Khalooei, M., Homayounpour, M. M., Amirmazlaghani, M."``.
        title: the paper's title.
        venue: journal, conference or preprint server with its identifier (``"arXiv:2202.02626"``).
        year: year of publication; 0 when it could not be verified (printed ``n.d.``).
        url: a stable link (DOI or arXiv).
    """

    authors: str
    title: str
    venue: str
    year: int
    url: str = ""

    def citation(self) -> str:
        """``Authors (year). Title. Venue. URL``."""
        text = f"{self.authors} ({self.year or 'n.d.'}). {self.title}. {self.venue}."
        return f"{text} {self.url}" if self.url else text


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's own published numbers for the cells of a recipe's table.

    Args:
        values: ``(row, column) -> value``, rows being values of the recipe's row key and columns metric names,
            in the units of our metrics (convert percentages). Only numbers printed in the paper: never read off
            a plot, never invented.
        source: where in the paper the numbers are (``"Table 3"``), or where the experiment is reported.
        missing: the statement shown for a cell without a published number; it must say why (``"the paper
            reports this experiment as decision-boundary plots; no numeric table"``).
    """

    values: Mapping[tuple[str, str], float]
    source: str
    missing: str

    def __post_init__(self) -> None:
        if not self.missing.strip():
            raise ValueError("PaperNumbers.missing must state why a cell has no published number")

    def get(self, row: str, column: str) -> float | None:
        """The published value of a cell, or None."""
        return self.values.get((str(row), column))


@dataclass(frozen=True)
class Table:
    """A summary table: formatted cells for ``results.md`` and the same numbers unformatted for ``results.csv``.

    Attributes:
        header: column titles.
        rows: formatted cells, one list per row, as long as ``header``.
        records: one dict of plain values per row (what ``results.csv`` holds).
        notes: sentences printed under the table (footnotes, protocol, missing numbers).
    """

    header: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table followed by its notes."""
        def esc(cell: str) -> str:
            return str(cell).replace("|", "\\|")

        lines = ["| " + " | ".join(esc(h) for h in self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """``records`` as CSV, columns in first-appearance order."""
        keys: list[str] = []
        for r in self.records:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        return buf.getvalue()


@dataclass(frozen=True, eq=False)
class Recipe:
    """One paper table: what to run, how to run one cell of it, and the paper's numbers to compare with.

    A recipe is data plus plain functions; the runner (:func:`robustlab.common.recipes.run_recipe`) owns
    resuming, sharding, writing results and comparing profiles. Recipes are registered under the entry-point
    group ``robustlab.recipes`` (``name = "package.module:RECIPE"``).

    Args:
        name: registry name, ``<first author><year>_<table>`` (``khalooei2022_moons``); also the entry-point name.
        paper: the publication.
        table: which table or figure of the paper this reproduces, in one sentence.
        profiles: ``name -> frozen dataclass of hyperparameters``; must hold ``smoke``, ``quick`` and ``paper``,
            all of the same class. Declare the range of every numeric and list field with
            :func:`robustlab.common.config.bounded` (``lr: float = bounded(1e-3, gt=0)``): the recipe checks
            its profiles with :func:`~robustlab.common.config.check_values` when it is built, and the runner
            checks the profile a run asks for (``--set`` and run-file values included) before it writes anything.
        grid: ``grid(profile) -> list of run specs``: dicts of plain JSON values (str, int, float, bool, None),
            e.g. ``{"regime": "trades", "seed": 2}``. A run's id is :func:`run_id` of its spec (or its ``"id"``).
        run: ``run(spec, profile) -> metrics``: one run, seeding everything it uses from the spec, so that a run
            gives the same numbers whatever ran before it. Numeric values are metrics (they fill the table);
            other JSON values (lists, dicts, strings) are kept as extras for the plot. A run whose training
            diverges lets the engine's :class:`~robustlab.common.errors.DivergenceError` through: the runner
            records it as diverged (not as a result) and goes on; any other exception stops the sweep.
        paper_numbers: the paper's published numbers for the table's cells, or the statement why there are none.
        rows: the spec key whose values are the table's rows (``"regime"``).
        row_labels: display names of row values (``{"pgd_at": "AT (PGD)"}``); default the values themselves.
        summarize: ``summarize(results, profile) -> Table``; default :func:`mean_std_table` over ``rows`` with
            the paper's numbers beside ours. ``results`` hold the runs with metrics only (never diverged ones).
        plot: ``plot(results, path)`` writes a PNG; default :func:`plot_bars`; same ``results``.
        description: a paragraph on the protocol (data, model, deviations from the paper).
    """

    name: str
    paper: Paper
    table: str
    profiles: Mapping[str, Any]
    grid: Callable[[Any], list[dict[str, Any]]]
    run: Callable[[dict[str, Any], Any], Mapping[str, Any]]
    paper_numbers: PaperNumbers
    rows: str
    row_labels: Mapping[str, str] = field(default_factory=dict)
    summarize: Callable[[list[Record], Any], Table] | None = None
    plot: Callable[[list[Record], Path], None] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"recipe name must be lower_snake_case, got {self.name!r}")
        missing = [p for p in REQUIRED_PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"recipe {self.name!r} lacks the profiles {missing}; every recipe offers {REQUIRED_PROFILES}")
        kinds = {type(p) for p in self.profiles.values()}
        for pname, p in self.profiles.items():
            if not dataclasses.is_dataclass(p) or isinstance(p, type):
                raise TypeError(f"recipe {self.name!r}: profile {pname!r} must be a dataclass instance, got {type(p).__name__}")
        if len(kinds) != 1:
            raise TypeError(f"recipe {self.name!r}: all profiles must be of one class, got {sorted(k.__name__ for k in kinds)}")
        for pname, p in self.profiles.items():
            try:
                check_values(p)
            except ConfigError as e:
                raise ConfigError(f"recipe {self.name!r}, profile {pname!r}: {e}") from None
        # The defaults are bound to this instance (also after dataclasses.replace of a recipe that used them).
        if self.summarize is None or getattr(self.summarize, "__func__", None) is Recipe._default_summarize:
            object.__setattr__(self, "summarize", self._default_summarize)
        if self.plot is None or getattr(self.plot, "__func__", None) is Recipe._default_plot:
            object.__setattr__(self, "plot", self._default_plot)

    def _default_summarize(self, results: list[Record], profile: Any) -> Table:
        return mean_std_table(results, rows=self.rows, paper=self.paper_numbers, labels=self.row_labels)

    def _default_plot(self, results: list[Record], path: Path) -> None:
        plot_bars(results, path, rows=self.rows, labels=self.row_labels, title=f"{self.name}: {self.table}")


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def run_id(spec: Mapping[str, Any]) -> str:
    """The stable id of a run: ``spec["id"]`` if given, else ``key=value`` pairs joined by ``_``.

    ``{"regime": "erm", "seed": 0}`` gives ``"regime=erm_seed=0"``; characters unsafe in file names become ``-``.
    """
    if "id" in spec:
        text = str(spec["id"])
    else:
        text = "_".join(f"{k}={_plain(v)}" for k, v in spec.items())
    text = _UNSAFE.sub("-", text).strip("-.")
    if not text:
        raise ValueError(f"the run spec {dict(spec)!r} gives an empty run id")
    return text


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_plain(x) for x in v)
    return str(v)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (torch and NumPy only if installed)."""
    import random

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ModuleNotFoundError:
        pass
    try:
        import torch
    except ModuleNotFoundError:
        return
    torch.manual_seed(seed)


# -- the default table and plot ---------------------------------------------------------------------------------


def _metric_columns(results: Sequence[Record]) -> list[str]:
    cols: list[str] = []
    for r in results:
        cols += [k for k in r.get("metrics", {}) if k not in cols]
    return cols


def _row_groups(results: Sequence[Record], rows: str) -> dict[str, list[Record]]:
    """Records with metrics grouped by their row, in grid order (diverged runs, without metrics, left out)."""
    groups: dict[str, list[Record]] = {}
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        if "metrics" in r:
            groups.setdefault(str(r["spec"].get(rows)), []).append(r)
    return groups


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _fmt(x: float, digits: int) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}f}"


def mean_std_cell(values: Sequence[float], digits: int = 3) -> str:
    """A table cell ``"mean ± sd"`` of ``values`` (one per run): the sample standard deviation (n - 1), left out
    for a single value; ``"—"`` for none.

    Examples::

        >>> mean_std_cell([0.5, 0.7])
        '0.600 ± 0.141'
        >>> mean_std_cell([0.5]), mean_std_cell([])
        ('0.500', '—')
    """
    if not values:
        return "—"
    mean, std = _mean_std(list(values))
    return _fmt(mean, digits) + (f" ± {_fmt(std, digits)}" if len(values) > 1 else "")


def mean_std_table(
    results: Sequence[Record],
    *,
    rows: str,
    paper: PaperNumbers,
    columns: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Mean ± standard deviation over runs (seeds) per row, with the paper's number beside each of ours.

    Args:
        results: run records (see :data:`Record`); records without metrics (diverged runs) are left out.
        rows: the spec key that names a row; rows appear in grid order.
        paper: the paper's numbers. With at least one published value, each metric column ``m`` is followed by
            ``m (paper)``; with none, a single ``paper`` column says ``n/r`` and a note gives the reason.
        columns: the metrics shown, in order; default every metric in order of first appearance.
        labels: display names of row values.
        digits: decimals shown.

    Returns:
        A :class:`Table`; the standard deviation is the sample one (n - 1), absent for a single run.
    """
    labels = labels or {}
    columns = list(columns) if columns is not None else _metric_columns(results)
    paired = bool(paper.values)
    header = [rows, "runs"]
    for c in columns:
        header += [c, f"{c} (paper)"] if paired else [c]
    if not paired:
        header.append("paper")
    out_rows, records = [], []
    for key, group in _row_groups(results, rows).items():
        cells = [labels.get(key, key), str(len(group))]
        rec: dict[str, Any] = {rows: key, "runs": len(group)}
        for c in columns:
            values = [float(r["metrics"][c]) for r in group if c in r["metrics"]]
            if values:
                mean, std = _mean_std(values)
                cell = mean_std_cell(values, digits)
                rec[f"{c}_mean"], rec[f"{c}_std"] = mean, std if len(values) > 1 else ""
            else:
                cell, rec[f"{c}_mean"], rec[f"{c}_std"] = "—", "", ""
            cells.append(cell)
            published = paper.get(key, c)
            rec[f"{c}_paper"] = "" if published is None else published
            if paired:
                cells.append("n/r" if published is None else _fmt(published, digits))
        if not paired:
            cells.append("n/r")
        out_rows.append(cells)
        records.append(rec)
    notes = [f"Ours: mean ± sample standard deviation over the runs of each row ({digits} decimals)."]
    if paired:
        notes.append(f"Paper: {paper.source}. n/r, not reported: {paper.missing}")
    else:
        notes.append(f"Paper ({paper.source}): n/r, not reported: {paper.missing}")
    return Table(header=header, rows=out_rows, records=records, notes=notes)


def plot_bars(
    results: Sequence[Record],
    path: str | Path,
    *,
    rows: str,
    labels: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Grouped bars of every metric per row, with standard-deviation error bars, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    columns = list(columns) if columns is not None else _metric_columns(results)
    groups = _row_groups(results, rows)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(columns) * max(1, len(groups)) ** 0.5 + 2), 3.6))
    width = 0.8 / max(1, len(groups))
    for i, (key, group) in enumerate(groups.items()):
        stats = [_mean_std([float(r["metrics"][c]) for r in group if c in r["metrics"]] or [math.nan])
                 for c in columns]
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(columns))]
        ax.bar(xs, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=2, label=labels.get(key, key))
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_ylabel("value")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
