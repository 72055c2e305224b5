"""group_split: whole groups per split, every index once, sizes near the fractions, stratification, seeds,
scikit-learn's StratifiedGroupKFold as a yardstick, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from robustlab.common.data import group_split
from robustlab.common.errors import ConfigError

SEEDS = range(10)


def _grouped(seed, n_groups=60, classes=3):
    """Groups of 5 to 39 samples, each with its own skewed class mix (as patients with different rhythms)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 40, n_groups)
    groups = np.repeat(rng.permutation(n_groups) * 7 + 100, sizes)  # ids that are neither 0..G-1 nor sorted
    labels = np.concatenate([rng.choice(classes, s, p=rng.dirichlet(np.full(classes, 0.5))) for s in sizes])
    return groups, labels


def _check_partition(parts, groups):
    every = np.concatenate(parts)
    assert len(every) == len(groups) and np.array_equal(np.sort(every), np.arange(len(groups)))
    owners = [set(groups[p].tolist()) for p in parts]
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            assert not owners[i] & owners[j], f"a group is in splits {i} and {j}"
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)


def _worst_class_gap(parts, labels, classes=3):
    overall = np.bincount(labels, minlength=classes) / len(labels)
    return max(np.abs(np.bincount(labels[p], minlength=classes) / len(p) - overall).max() for p in parts)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.5), (0.2,) * 5, (0.7, 0.0, 0.3)])
def test_whole_groups_every_index_once_sizes_near_the_fractions(fractions, stratified, shuffle):
    worst = 0.0
    for seed in SEEDS:
        groups, labels = _grouped(seed, n_groups=200)
        parts = group_split(groups, fractions, seed=seed, stratify=labels if stratified else None, shuffle=shuffle)
        assert len(parts) == len(fractions)
        _check_partition(parts, groups)
        for part, f in zip(parts, fractions):
            worst = max(worst, abs(len(part) / len(groups) - f))
            assert (len(part) == 0) == (f == 0)
    # 4,400 samples in groups of 5 to 39: within about one group of the target, closer when largest first
    assert worst < (0.01 if shuffle else 0.005) + (0.005 if stratified else 0.0)


def test_stratify_brings_class_proportions_closer_to_the_overall_ones():
    with_, without = [], []
    for seed in SEEDS:
        groups, labels = _grouped(seed)
        with_.append(_worst_class_gap(group_split(groups, (0.6, 0.2, 0.2), seed=seed, stratify=labels), labels))
        without.append(_worst_class_gap(group_split(groups, (0.6, 0.2, 0.2), seed=seed), labels))
    assert np.mean(with_) < 0.03 and np.mean(with_) < np.mean(without) / 3


def test_folds_compare_with_sklearns_stratified_group_k_fold():
    """Five equal parts against StratifiedGroupKFold(5): both group-disjoint, at least as well balanced."""
    ours, theirs = [], []
    for seed in SEEDS:
        groups, labels = _grouped(seed)
        parts = group_split(groups, (0.2,) * 5, seed=seed, stratify=labels)
        folds = [test for _, test in StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(
            np.zeros(len(groups)), labels, groups)]
        _check_partition(parts, groups)
        _check_partition([np.sort(f) for f in folds], groups)
        ours.append(_worst_class_gap(parts, labels))
        theirs.append(_worst_class_gap(folds, labels))
        sizes = np.array([len(p) for p in parts]) / len(groups)
        assert np.abs(sizes - 0.2).max() <= np.abs(np.array([len(f) for f in folds]) / len(groups) - 0.2).max() + 0.01
    assert np.mean(ours) <= np.mean(theirs) * 1.1


def test_deterministic_under_a_seed_and_seeds_differ():
    groups, labels = _grouped(0, n_groups=40)
    for stratify in (None, labels):
        a = group_split(groups, (0.6, 0.2, 0.2), seed=3, stratify=stratify)
        b = group_split(groups, (0.6, 0.2, 0.2), seed=3, stratify=stratify)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for stratify in (None, labels):
        draws = {tuple(group_split(groups, (0.6, 0.2, 0.2), seed=s, stratify=stratify, shuffle=True)[2].tolist())
                 for s in range(5)}
        assert len(draws) == 5, "with shuffle every seed gives another split"
    equal_sizes = np.repeat(np.arange(30), 4)
    for stratify in (None, equal_sizes % 2):
        draws = {tuple(group_split(equal_sizes, (0.5, 0.5), seed=s, stratify=stratify)[0].tolist())
                 for s in range(5)}
        assert len(draws) > 1, "ties between groups of equal size are broken by the seed"


def test_every_positive_split_gets_a_group():
    groups = np.array([0] * 100 + [1] + [2])  # one huge group and two singletons
    parts = group_split(groups, (0.98, 0.01, 0.01), seed=0)
    assert [len(p) for p in parts] == [100, 1, 1]
    parts = group_split(np.array(["a", "a", "b", "c"]), (0.34, 0.33, 0.33), seed=1, stratify=[0, 1, 0, 1])
    assert sorted(len(p) for p in parts) == [1, 1, 2]
    assert group_split(np.array([5, 5, 5]), (1.0,))[0].tolist() == [0, 1, 2]


def test_errors():
    groups = np.repeat(np.arange(4), 3)
    with pytest.raises(ConfigError, match="sum to 1"):
        group_split(groups, (0.5, 0.4))
    with pytest.raises(ConfigError, match="non-negative"):
        group_split(groups, (1.2, -0.2))
    with pytest.raises(ConfigError, match="non-negative"):
        group_split(groups, (float("nan"), 1.0))
    with pytest.raises(ConfigError, match="non-empty sequence"):
        group_split(groups, ())
    with pytest.raises(ConfigError, match="sequence of numbers"):
        group_split(groups, ("a", "b"))
    with pytest.raises(ConfigError, match="12 groups but stratify has shape"):
        group_split(groups, (0.5, 0.5), stratify=np.zeros(11))
    with pytest.raises(ConfigError, match="4 group.* cannot fill 5 splits"):
        group_split(groups, (0.2,) * 5)
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        group_split([], (1.0,))
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        group_split(np.zeros((3, 2)), (1.0,))


def test_docstring_examples_run():
    import doctest

    import robustlab.common.data.splits as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
