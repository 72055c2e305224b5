"""robustlab.genomics.data.simulate: the koo2019 and koo_eddy2019 data sets and their ground truth."""

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS, KOO_EDDY2019_MOTIFS, Motif, jaspar_motifs
from robustlab.genomics.data.simulate import (
    KOO2019_MOTIF_COUNTS,
    KOO2019_OTHER_IDS,
    KOO_EDDY2019_MOTIF_COUNTS,
    SimulatedDataset,
    koo2019_other_motifs,
    simulate_koo2019,
    simulate_koo_eddy2019,
)

CHI2_DF4_P001 = 18.467  # chi-square critical value, 4 degrees of freedom, p = 0.001


@pytest.fixture(scope="module")
def koo():
    return simulate_koo2019(2000, seed=0)


@pytest.fixture(scope="module")
def koo_large():
    return simulate_koo2019(20000, seed=1)


@pytest.fixture(scope="module")
def eddy():
    return simulate_koo_eddy2019(20000, seed=0)


def chi_square(observed_counts, expected_probs, n):
    expected = np.asarray(expected_probs) * n
    return float(((np.asarray(observed_counts) - expected) ** 2 / expected).sum())


def motif_pwms(ds):
    by_id = {m.matrix_id: m for m in jaspar_motifs(release=2016)}
    return [by_id[i].pwm() for i in ds.motif_ids]


# -- shapes, labels, determinism ------------------------------------------------------------------------------


def test_koo2019_shapes_and_balanced_labels(koo):
    n, length = 2000, 200
    assert len(koo) == n and koo.length == length and koo.task == "koo2019"
    assert koo.x.shape == koo.pwm_matrix.shape == (n, 4, length)
    assert koo.x.dtype == koo.pwm_matrix.dtype == koo.y.dtype == np.float32
    assert koo.mask.shape == (n, length) and koo.mask.dtype == bool
    assert koo.y.shape == (n, 1) and set(np.unique(koo.y)) == {0.0, 1.0} and koo.y.sum() == n // 2
    assert koo.motif_index.shape == koo.motif_start.shape == koo.motif_strand.shape == (n, 7)
    assert koo.motif_names[:5] == KOO2019_CORE_MOTIFS and len(koo.motif_names) == 55
    assert not (koo.y[:1000, 0] == 1).all()  # positives are shuffled among negatives


def test_seed_determinism_and_difference():
    a, b, c = simulate_koo2019(300, seed=7), simulate_koo2019(300, seed=7), simulate_koo2019(300, seed=8)
    for name in ("x", "y", "pwm_matrix", "mask", "motif_index", "motif_start", "motif_strand"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x, c.x) and not np.array_equal(a.motif_start, c.motif_start)
    e1, e2 = simulate_koo_eddy2019(200, seed=3), simulate_koo_eddy2019(200, seed=3)
    np.testing.assert_array_equal(e1.x, e2.x)
    assert not np.array_equal(e1.x, simulate_koo_eddy2019(200, seed=4).x)


class _Py27IntSet:
    """CPython 2.7's set table (setobject.c: open addressing, ``i = 5 * i + perturb + 1``, ``perturb >>= 5``,
    resized to the smallest power of two above ``4 * used`` when two thirds full) for ints, whose hash is their
    value; enough to replay the iteration order of the authors' notebook."""

    def __init__(self) -> None:
        self.table: list[int | None] = [None] * 8
        self.used = 0

    def _slot(self, table: list[int | None], key: int) -> int:
        mask = len(table) - 1
        i = perturb = key
        j = i & mask
        while table[j] is not None:
            i = (i << 2) + i + perturb + 1
            j = i & mask
            perturb >>= 5
        return j

    def add(self, key: int) -> None:
        if key in self.table:
            return
        self.table[self._slot(self.table, key)] = key
        self.used += 1
        if self.used * 3 >= len(self.table) * 2:  # no deletions: fill == used
            size = 8
            while size <= self.used * 4:
                size <<= 1
            old, self.table = self.table, [None] * size
            for k in old:
                if k is not None:
                    self.table[self._slot(self.table, k)] = k

    def __iter__(self):
        return (k for k in self.table if k is not None)


def test_other_motifs_are_the_authors_draw():
    # The notebook (Python 2.7.12): np.random.seed(22); permutation(519)[:65];
    # list(set(index) - set([4, 5, 12, 15, 17, 18, 20, 36, 42, 60]))[:50]. 2.7's set difference builds a new set
    # by adding the kept keys in the first set's table order.
    drawn = _Py27IntSet()
    for i in np.random.RandomState(22).permutation(519)[:65]:  # the stream of np.random.seed(22)
        drawn.add(int(i))
    removed = {4, 5, 12, 15, 17, 18, 20, 36, 42, 60}
    kept = _Py27IntSet()
    for i in drawn:
        if i not in removed:
            kept.add(i)
    pool = jaspar_motifs(release=2016)
    assert len(pool) == 519
    expected = [pool[i].matrix_id for i in list(kept)[:50]]
    assert list(KOO2019_OTHER_IDS) == expected
    others = koo2019_other_motifs()
    assert [m.matrix_id for m in others] == expected
    assert not {m.name for m in others} & set(KOO2019_CORE_MOTIFS)
    assert simulate_koo2019(10, seed=0).motif_ids[5:] == tuple(expected)


# -- the generating distribution ------------------------------------------------------------------------------


def test_motif_counts_follow_the_stated_distribution(koo_large, eddy):
    for ds, dist in ((koo_large, KOO2019_MOTIF_COUNTS), (eddy, KOO_EDDY2019_MOTIF_COUNTS)):
        ks = np.array(list(dist))
        observed = np.array([(ds.n_motifs == k).sum() for k in ks])
        assert observed.sum() == len(ds)
        assert chi_square(observed, list(dist.values()), len(ds)) < CHI2_DF4_P001


def test_positives_hold_only_core_motifs_negatives_draw_from_all(koo_large):
    pos = koo_large.y[:, 0] == 1
    idx = koo_large.motif_index
    assert (idx[pos][idx[pos] >= 0] < 5).all()
    neg_idx = idx[~pos][idx[~pos] >= 0]
    assert neg_idx.max() < 55 and len(np.unique(neg_idx)) == 55
    # uniform over 55 motifs: about 5/55 of the negatives' motifs are core ones
    assert abs((neg_idx < 5).mean() - 5 / 55) < 0.01
    strands = koo_large.motif_strand[idx >= 0]
    assert set(np.unique(strands)) == {-1, 1} and abs((strands == 1).mean() - 0.5) < 0.01


def test_gaps_are_uniform_shares_of_the_free_length(koo_large):
    """With k motifs, each of the k + 1 gaps takes on average 1/(k + 1) of the free length."""
    widths = np.array([m.shape[1] for m in motif_pwms(koo_large)])
    rows = np.flatnonzero(koo_large.n_motifs == 3)
    idx, start = koo_large.motif_index[rows, :3], koo_large.motif_start[rows, :3]
    free = 200 - widths[idx].sum(axis=1)
    first_gap = start[:, 0] / free
    last_gap = (200 - start[:, 2] - widths[idx[:, 2]]) / free
    assert abs(first_gap.mean() - 0.25) < 0.01 and abs(last_gap.mean() - 0.25) < 0.01
    assert (np.diff(start, axis=1) >= widths[idx[:, :2]]).all()  # in order, no overlap


def test_mask_is_where_the_generating_matrix_is_not_background(koo, eddy):
    for ds in (koo, eddy.subset(slice(0, 3000))):
        np.testing.assert_array_equal(ds.mask, (ds.pwm_matrix != 0.25).any(axis=1))
        np.testing.assert_allclose(ds.pwm_matrix.sum(axis=1), 1, atol=1e-5)
        widths = np.array([p.shape[1] for p in motif_pwms(ds)])
        assert ds.mask.sum() == widths[ds.motif_index[ds.motif_index >= 0]].sum()


def test_records_match_the_generating_matrix(koo):
    pwms = motif_pwms(koo)
    rows, slots = np.nonzero(koo.motif_index >= 0)
    for r, s in list(zip(rows, slots))[:400]:
        m, start, strand = koo.motif_index[r, s], koo.motif_start[r, s], koo.motif_strand[r, s]
        p = pwms[m] if strand == 1 else pwms[m][::-1, ::-1]
        np.testing.assert_allclose(koo.pwm_matrix[r, :, start:start + p.shape[1]], p, atol=1e-6)


def test_x_is_a_sample_of_the_generating_matrix(koo):
    assert set(np.unique(koo.x)) == {0.0, 1.0}
    np.testing.assert_array_equal(koo.x.sum(axis=1), 1)
    bases = koo.x.argmax(axis=1)
    p_sampled = np.take_along_axis(koo.pwm_matrix, bases[:, None, :], axis=1)[:, 0]
    assert (p_sampled > 0).all()  # never a base the matrix gives probability 0
    # background bases are uniform
    counts = np.bincount(bases[~koo.mask], minlength=4) / (~koo.mask).sum()
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


def test_embedded_instances_follow_each_motif_pwm(koo_large):
    """Base frequencies at a motif's positions, over all its embeddings, correlate > 0.9 with its PWM."""
    pwms = motif_pwms(koo_large)
    for m in range(5):
        rows, slots = np.nonzero(koo_large.motif_index == m)
        width = pwms[m].shape[1]
        freq = np.zeros((4, width))
        for strand in (1, -1):
            sel = koo_large.motif_strand[rows, slots] == strand
            cols = koo_large.motif_start[rows[sel], slots[sel]][:, None] + np.arange(width)
            windows = koo_large.x[rows[sel][:, None], :, cols]  # (n, width, 4)
            w = windows.sum(axis=0).T
            freq += w if strand == 1 else w[::-1, ::-1]
        freq /= freq.sum(axis=0, keepdims=True)
        r = np.corrcoef(freq.ravel(), pwms[m].ravel())[0, 1]
        assert r > 0.9, (koo_large.motif_names[m], r)
        assert np.abs(freq - pwms[m]).max() < 0.05  # a sampled instance, not the consensus
        assert len(rows) > 1000


# -- koo_eddy2019 ---------------------------------------------------------------------------------------------


def test_koo_eddy2019_targets_are_motif_presence(eddy):
    assert eddy.motif_names == KOO_EDDY2019_MOTIFS and eddy.task == "koo_eddy2019"
    assert eddy.y.shape == (20000, 12) and eddy.y.dtype == np.float32
    assert eddy.motif_index.shape == (20000, 5)
    present = np.zeros_like(eddy.y)
    for slot in range(5):
        rows = np.flatnonzero(eddy.motif_index[:, slot] >= 0)
        present[rows, eddy.motif_index[rows, slot]] = 1
    np.testing.assert_array_equal(eddy.y, present)
    assert (eddy.y.sum(axis=1) >= 1).all() and (eddy.y.sum(axis=1) <= 5).all()
    assert (eddy.y.mean(axis=0) > 0.1).all()


# -- options and errors ---------------------------------------------------------------------------------------


def test_custom_motifs_and_length():
    a = Motif("X.1", "AAA", np.array([[9, 9, 9], [0, 0, 0], [0, 0, 0], [1, 1, 1]]))
    b = Motif("Y.1", "CC", np.array([[0, 0], [5, 5], [0, 0], [0, 0]]))
    ds = simulate_koo2019(100, seed=0, length=40, core=[a], others=[b])
    assert ds.motif_names == ("AAA", "CC") and ds.length == 40
    assert (ds.n_motifs >= 3).all()
    pos = ds.y[:, 0] == 1
    assert (ds.motif_index[pos] <= 0).all()
    with pytest.raises(ValueError, match="too short"):
        simulate_koo2019(10, length=20)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        simulate_koo_eddy2019(0)


def test_split_sizes_and_disjointness():
    ds = simulate_koo_eddy2019(10000, seed=0)
    train, valid, test = ds.split(seed=0)
    assert (len(train), len(valid), len(test)) == (7000, 1000, 2000)
    keys = [set(map(bytes, np.packbits(part.x.astype(bool), axis=None).reshape(len(part), -1))) for part in
            (train, valid, test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert train.motif_names == ds.motif_names
    np.testing.assert_array_equal(train.mask, (train.pwm_matrix != 0.25).any(axis=1))
    again = ds.split(seed=0)[2]
    np.testing.assert_array_equal(again.x, test.x)
    with pytest.raises(ValueError, match="sum to 1"):
        ds.split((0.5, 0.2))


def test_to_dataset_serves_mask(koo):
    ads = koo.to_dataset()
    sample = ads[3]
    assert tuple(sample["x"].shape) == (4, 200) and tuple(sample["mask"].shape) == (200,)
    assert sample["y"].item() == koo.y[3, 0]


def test_save_and_load_npz(koo, tmp_path):
    path = koo.subset(slice(0, 50)).save_npz(tmp_path / "sim.npz")
    back = SimulatedDataset.load_npz(path)
    for name in ("x", "y", "pwm_matrix", "mask", "motif_index", "motif_start", "motif_strand"):
        np.testing.assert_array_equal(getattr(back, name), getattr(koo, name)[:50])
    assert back.motif_names == koo.motif_names and back.motif_ids == koo.motif_ids and back.task == "koo2019"
    assert [p.name for p in tmp_path.iterdir()] == ["sim.npz"]  # no temporary file left


def test_load_npz_errors_name_file_and_field(koo, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        SimulatedDataset.load_npz(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz is not a readable NPZ"):
        SimulatedDataset.load_npz(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x=koo.x[:2], y=koo.y[:2])
    with pytest.raises(DataError, match=r"partial.npz lacks the fields 'pwm_matrix', 'mask'"):
        SimulatedDataset.load_npz(partial)
    small = koo.subset(slice(0, 4))
    arrays = {name: getattr(small, name) for name in ("x", "y", "mask", "motif_index", "motif_start",
                                                       "motif_strand")}
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **arrays, pwm_matrix=small.pwm_matrix[:, :, :10], motif_names=np.array(small.motif_names),
             motif_ids=np.array(small.motif_ids), task=np.array("koo2019"))
    with pytest.raises(DataError, match=r"wrong.npz: .*'pwm_matrix' has shape \(4, 4, 10\), expected \(4, 4, 200\)"):
        SimulatedDataset.load_npz(wrong)


def test_split_with_the_simulation_seed_keeps_both_classes_in_every_part():
    """The split's shuffle has a stream of its own: the same seed must not replay the choice of positives."""
    ds = simulate_koo2019(1000, seed=7)
    for part in ds.split((0.7, 0.1, 0.2), seed=7):
        frac = float(np.asarray(part.y).mean())
        assert 0.35 < frac < 0.65, f"positives are {frac:.2f} of a part of {len(part.y)}"
