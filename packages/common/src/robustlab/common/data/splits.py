"""Splits that keep groups together: no patient, recording, chromosome or station on two sides of a split.

Samples of one group (the beats of one patient, the windows of one seismic station, the sequences of one
chromosome or gene family) are correlated; a split that puts some of them in training and others in the test set
measures memory of the group, not generalization. :func:`group_split` assigns whole groups to the splits, with
sample counts near the requested fractions and, optionally, class proportions near the overall ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy
from robustlab.common.errors import ConfigError

__all__ = ["group_split"]

_TIE = 1e-12


def group_split(
    groups: Any,
    fractions: Sequence[float],
    *,
    seed: int = 0,
    stratify: Any = None,
    shuffle: bool = False,
) -> list[np.ndarray]:
    """Split sample indices into parts of about the given fractions of the samples, whole groups at a time.

    Groups are assigned greedily, largest first, each to the split that most lacks what it brings: the split
    whose class counts fall furthest below their targets (``fraction * samples of the class``), measured over the
    group's own classes, i.e. the split maximizing ``sum_c n_gc (f_s - m_sc / n_c)`` with ``n_gc`` the group's
    samples of class ``c``, ``m_sc`` those already in split ``s`` and ``n_c`` the class total. Without
    ``stratify`` every sample has the same class and this is the split furthest below its share of the samples.
    Ties (groups of equal size, equal deficits) are broken by the seeded random generator.

    With groups of distinct sizes the seed then changes little or nothing (as with scikit-learn's
    ``StratifiedGroupKFold(shuffle=True)``, which also only shuffles ties). ``shuffle=True`` takes the groups in
    a random order instead of largest first: every seed gives another split, and the sizes can miss the
    fractions by about the size of a large group placed late.

    A split whose fraction is positive always gets at least one group: once there are only as many groups left
    as such splits are empty, the remaining groups go to those.

    Args:
        groups: the group of each sample (integers or strings).
        fractions: the share of the samples for each split, e.g. ``(0.8, 0.1, 0.1)``; non-negative, summing to
            1. A split of fraction 0 stays empty.
        seed: seeds the tie-breaks (and the order, with ``shuffle``); the same seed gives the same split.
        stratify: the class label of each sample, or None.
        shuffle: take the groups in a random order rather than largest first.

    Returns:
        One sorted int64 index array per fraction; together they hold every index once, and no group has
        samples in two of them.

    Raises:
        ConfigError: fractions that are negative, not finite or do not sum to 1; ``groups`` empty or not 1-D;
            ``stratify`` of another length; fewer groups than splits with a positive fraction.

    Shape:
        groups, stratify: ``(N,)``; returns ``len(fractions)`` arrays whose lengths sum to ``N``.

    Examples::

        >>> import numpy as np
        >>> patients = np.repeat(np.arange(10), 5)  # 10 patients, 5 beats each
        >>> train, val, test = group_split(patients, (0.6, 0.2, 0.2), seed=0)
        >>> len(train), len(val), len(test)
        (30, 10, 10)
        >>> set(patients[train]) & set(patients[test])
        set()
    """
    fr = _fractions(fractions)
    g = to_numpy(groups)
    if g.ndim != 1 or len(g) == 0:
        raise ConfigError(f"groups must be a non-empty 1-D array (one group per sample), got shape {g.shape}")
    try:
        _, inverse = np.unique(g, return_inverse=True)
    except TypeError as e:
        raise ConfigError(f"groups must be sortable values of one kind (integers or strings): {e}") from None
    inverse = inverse.reshape(-1)
    sizes = np.bincount(inverse)
    n_groups = len(sizes)
    positive = np.flatnonzero(fr > 0)
    if n_groups < len(positive):
        raise ConfigError(
            f"{n_groups} group(s) cannot fill {len(positive)} splits with a positive fraction "
            f"({', '.join(f'{f:g}' for f in fr)}); every such split needs at least one whole group"
        )
    rng = np.random.default_rng(seed)
    if stratify is None:
        counts = sizes[:, None].astype(np.float64)
    else:
        labels = to_numpy(stratify)
        if labels.ndim != 1 or len(labels) != len(g):
            raise ConfigError(
                f"stratify must hold one label per sample: {len(g)} groups but stratify has shape {labels.shape}"
            )
        try:
            _, classes = np.unique(labels, return_inverse=True)
        except TypeError as e:
            raise ConfigError(f"stratify labels must be sortable values of one kind: {e}") from None
        counts = np.zeros((n_groups, int(classes.max()) + 1))
        np.add.at(counts, (inverse, classes.reshape(-1)), 1.0)
    order = rng.permutation(n_groups)
    if not shuffle:
        order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, equal sizes in random order
    totals = counts.sum(0)
    taken = np.zeros((len(fr), counts.shape[1]))  # samples of each class in each split
    split_of = np.empty(n_groups, dtype=np.int64)
    empty = set(positive.tolist())
    for done, group in enumerate(order):
        candidates = positive
        if n_groups - done <= len(empty):
            candidates = np.array(sorted(empty))
        deficit = (fr[candidates, None] - taken[candidates] / totals) @ counts[group]
        best = candidates[deficit >= deficit.max() - _TIE]
        s = int(best[0] if len(best) == 1 else rng.choice(best))
        split_of[group] = s
        taken[s] += counts[group]
        empty.discard(s)
    per_sample = split_of[inverse]
    return [np.flatnonzero(per_sample == s).astype(np.int64) for s in range(len(fr))]


def _fractions(fractions: Sequence[float]) -> np.ndarray:
    try:
        fr = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"fractions must be a sequence of numbers, got {fractions!r}") from None
    if fr.ndim != 1 or len(fr) == 0:
        raise ConfigError(f"fractions must be a non-empty sequence of numbers, got {fractions!r}")
    if not np.all(np.isfinite(fr)) or (fr < 0).any():
        raise ConfigError(f"fractions must be finite and non-negative, got {fr.tolist()}")
    if abs(fr.sum() - 1.0) > 1e-6:
        raise ConfigError(f"fractions must sum to 1, got {fr.tolist()} (sum {fr.sum():g})")
    return fr
