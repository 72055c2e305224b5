"""Plots: sequence logos of attribution maps beside the true motif positions, and score distributions.

matplotlib, pandas and logomaker are imported inside the functions (never at import time). Figures are built as
``matplotlib.figure.Figure`` objects, without pyplot, so no backend or global figure state is involved (PNG output
goes through Agg), and files are written atomically (:func:`robustlab.common.io.atomic_write`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy

__all__ = ["plot_attribution_logo", "save_logos", "plot_score_distributions"]

_ALPHABET = ("A", "C", "G", "T")
_MASK_COLOR = "tab:orange"


def plot_attribution_logo(
    attr: Any,
    *,
    x: Any = None,
    mask: Any = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Draw a sequence logo of one attribution map, with the true motif positions shaded.

    Letter heights are the map's values (negative ones below the axis). With ``x`` the map is multiplied by the
    one-hot sequence first, gradient × input style, so only the observed nucleotide is drawn; pass ``x=None``
    for a map that is already × input. A per-position importance ``(L,)`` needs ``x``: it is drawn as the height
    of the observed letter.

    Args:
        attr: attribution map ``(4, L)`` (rows A, C, G, T) or per-position importance ``(L,)``.
        x: the one-hot sequence ``(4, L)``.
        mask: True at ground-truth motif positions ``(L,)``; each run is shaded.
        ax: a matplotlib Axes to draw on; default a new figure's.
        title: the Axes title.

    Returns:
        The Axes drawn on.
    """
    import logomaker
    import pandas as pd

    heights = _heights(attr, x)
    length = heights.shape[1]
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(max(4.0, length / 12), 1.8), layout="constrained").add_subplot()
    frame = pd.DataFrame(heights.T, columns=list(_ALPHABET))
    logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)
    if mask is not None:
        m = to_numpy(mask).astype(bool).ravel()
        if m.shape != (length,):
            raise ValueError(f"mask must have shape ({length},), got {m.shape}")
        for start, stop in _runs(m):
            ax.axvspan(start - 0.5, stop - 0.5, color=_MASK_COLOR, alpha=0.2, lw=0, zorder=0)
    ax.axhline(0.0, color="0.6", lw=0.5, zorder=0)
    ax.set_xlim(-0.5, length - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=8, loc="left")
    return ax


def save_logos(
    attrs: Any,
    xs: Any,
    masks: Any,
    path: str | os.PathLike,
    *,
    n: int = 8,
    titles: Sequence[str] | None = None,
    dpi: int = 100,
) -> Path:
    """Write logos of the first ``n`` attribution maps, one row each, to a PNG file (atomically).

    Args:
        attrs: attribution maps ``(N, 4, L)`` (or importances ``(N, L)`` with ``xs``).
        xs: one-hot sequences ``(N, 4, L)``, multiplied into the maps (see :func:`plot_attribution_logo`); None
            for maps already × input.
        masks: ground-truth motif masks ``(N, L)``, or None.
        path: the PNG file to write; its folder is created.
        n: how many sequences to draw (at most ``N``).
        titles: one title per drawn row; default ``"sequence i"``.
        dpi: resolution.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    from robustlab.common.io import atomic_write

    a = to_numpy(attrs)
    if a.ndim not in (2, 3) or len(a) == 0:
        raise ValueError(f"attrs must be a non-empty batch (N, 4, L) or (N, L), got shape {a.shape}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    rows = min(n, len(a))
    x = None if xs is None else to_numpy(xs)
    m = None if masks is None else to_numpy(masks)
    for name, arr in (("xs", x), ("masks", m)):
        if arr is not None and len(arr) < rows:
            raise ValueError(f"{name} has {len(arr)} sequences, fewer than the {rows} to draw")
    if titles is not None and len(titles) < rows:
        raise ValueError(f"titles has {len(titles)} entries, fewer than the {rows} rows to draw")
    length = a.shape[-1]
    fig = Figure(figsize=(max(6.0, length / 12), 1.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, 1, squeeze=False).ravel())
    for i, ax in enumerate(axes):
        plot_attribution_logo(
            a[i],
            x=None if x is None else x[i],
            mask=None if m is None else m[i],
            ax=ax,
            title=titles[i] if titles is not None else f"sequence {i}",
        )
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def plot_score_distributions(
    scores_by_method: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    ylabel: str = "interpretability AUROC",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Violin plots with box plots inside of per-sequence scores, one per method, written to a PNG atomically.

    Args:
        scores_by_method: method name → scores (e.g. the ``"auroc"`` of
            :func:`~robustlab.genomics.interpret.scores.interpretability_scores`); NaN values are left out.
        path: the PNG file to write; its folder is created.
        ylabel: the y-axis label.
        title: the figure title.
        dpi: resolution.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    from robustlab.common.io import atomic_write

    if not scores_by_method:
        raise ValueError("scores_by_method is empty")
    labels, data = [], []
    for name, values in scores_by_method.items():
        v = to_numpy(values).astype(np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise ValueError(f"method {name!r} has no finite score")
        labels.append(str(name))
        data.append(v)
    fig = Figure(figsize=(max(3.0, 1.2 * len(data) + 1), 3.2), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(1, len(data) + 1)
    parts = ax.violinplot(data, positions=positions, showextrema=False, widths=0.8)
    for body in parts["bodies"]:
        body.set_alpha(0.35)
    ax.boxplot(data, positions=positions, widths=0.18, showfliers=False, medianprops={"color": "k"})
    ax.set_xticks(
        positions, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center"
    )
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def _heights(attr: Any, x: Any) -> np.ndarray:
    a = to_numpy(attr).astype(np.float64)
    if a.ndim == 1:
        if x is None:
            raise ValueError("a per-position importance (L,) needs x= to choose the letters")
        xs = to_numpy(x).astype(np.float64)
        if xs.shape != (4, len(a)):
            raise ValueError(f"x must have shape (4, {len(a)}), got {xs.shape}")
        return a[None, :] * xs
    if a.ndim != 2 or a.shape[0] != 4:
        raise ValueError(f"attr must have shape (4, L) or (L,), got {a.shape}")
    if x is None:
        return a
    xs = to_numpy(x).astype(np.float64)
    if xs.shape != a.shape:
        raise ValueError(f"x must have the shape of attr {a.shape}, got {xs.shape}")
    return a * xs


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))

