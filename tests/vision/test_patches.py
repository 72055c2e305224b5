"""Patches: lesion-centred crops (jitter, context, zero padding, masks in patch coordinates) and normal-tissue crops
inside the breast, on synthetic images with known lesions and on mini-MIAS (counts, speed, where the crops lie);
the NPZ round trip; splits by patient (folds, subsamples)."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.common.errors import ConfigError, DataError
from robustlab.vision.data.mammograms import ImageRecord, Lesion, breast_mask, load_mias
from robustlab.vision.data.patches import TASKS, PatchSet, extract_patches, patient_folds, subsample_patients


@pytest.fixture(scope="module")
def mias(mini_mias_root):
    return load_mias(mini_mias_root)


def _record(image_id, patient, lesions=(), size=200, seed=0):
    """A half-disc breast (100 +- noise) on the left of a black image, discs of 230 at the lesions."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    image = np.zeros((size, size))
    breast = (rows - size / 2) ** 2 + cols ** 2 <= (0.45 * size) ** 2
    image[breast] = 100 + rng.normal(0, 5, breast.sum())
    for lesion in lesions:
        if lesion.located:
            image[(rows - lesion.row) ** 2 + (cols - lesion.col) ** 2 <= lesion.radius ** 2] = 230
    label = "normal" if not lesions else max((lesion.severity for lesion in lesions), key=["benign",
                                                                                            "malignant"].index)
    return ImageRecord(image_id, patient, np.clip(image, 0, 255).astype(np.uint8), label, "F", tuple(lesions))


@pytest.fixture
def toy():
    return [
        _record("a1", "p1", [Lesion("CIRC", "benign", 100.0, 40.0, 12.0), Lesion("CALC", "malignant")]),
        _record("a2", "p1", [Lesion("SPIC", "malignant", 60.0, 30.0, 20.0)], seed=1),
        _record("n1", "p2", seed=2),
        _record("n2", "p2", seed=3),
        _record("n3", "p3", seed=4),
    ]


def test_lesion_crops_are_centred_on_the_lesion(toy):
    ps = extract_patches(toy, task="abnormal", size=32, lesion_crops=5, jitter=0.25, min_side=16, seed=0)
    assert ps.classes == ("normal", "abnormal") and ps.counts() == {"normal": 10, "abnormal": 10}
    assert ps.x.shape == (20, 32, 32) and ps.x.dtype == np.uint8 and ps.mask.dtype == bool
    assert ps.skipped == 1  # the calcification without location
    lesion = ps.y == 1
    assert ps.image_id[lesion].tolist() == ["a1"] * 5 + ["a2"] * 5
    assert ps.lesion_class[lesion].tolist() == ["CIRC"] * 5 + ["SPIC"] * 5
    assert ps.severity[~lesion].tolist() == ["normal"] * 10 and not ps.mask[~lesion].any()
    assert np.allclose(ps.side[lesion], [48.0] * 5 + [80.0] * 5)  # context 2 * diameter
    # the jitter moves the centre by at most a quarter of half the side
    truth = np.array([[100.0, 40.0]] * 5 + [[60.0, 30.0]] * 5)
    shift = np.abs(ps.centre[lesion] - truth)
    assert shift.max() <= 0.25 * ps.side[lesion].max() / 2 and shift.max() > 0
    # the mask is the lesion disc: bright inside, its area the disc's share of the crop
    for i in np.flatnonzero(lesion):
        inside = ps.x[i][ps.mask[i]]
        assert inside.mean() > 200 and ps.x[i][~ps.mask[i]].mean() < 140
        disc = np.pi * (12.0 if ps.image_id[i] == "a1" else 20.0) ** 2 / ps.side[i] ** 2
        assert abs(ps.mask[i].mean() - disc) < 0.03


def test_the_crop_is_the_image_where_no_resampling_is_needed():
    """With the side equal to the patch size and no jitter, a crop is the image's pixels, zero beyond its border."""
    image = np.arange(64 * 64, dtype=np.int64).reshape(64, 64) % 251
    lesion = Lesion("CIRC", "benign", row=10.0, col=40.0, radius=4.0)
    record = ImageRecord("x", "p", image.astype(np.uint8), "benign", "", (lesion,))
    ps = extract_patches([record], task="malignancy", size=32, lesion_crops=1, jitter=0.0, context=4.0,
                         min_side=32)
    expected = np.zeros((32, 32), np.uint8)
    expected[6:, :] = image[0:26, 24:56]  # rows -6..25, cols 24..55
    assert np.array_equal(ps.x[0], expected)
    rows, cols = np.mgrid[-6:26, 24:56] + 0.5  # the crop's pixel centres in image coordinates
    assert np.array_equal(ps.mask[0], (rows - 10) ** 2 + (cols - 40) ** 2 <= 16)


def test_normal_crops_lie_in_the_breast_of_normal_images(toy):
    ps = extract_patches(toy, task="abnormal", size=16, lesion_crops=6, normal_ratio=2.0, min_side=16, seed=3,
                         match_coverage=False)
    normal = ps.y == 0
    assert normal.sum() == 24 and set(ps.image_id[normal]) == {"n1", "n2", "n3"}
    assert set(np.round(ps.side[normal], 6)) <= set(np.round(ps.side[~normal], 6))  # sides drawn from lesions'
    masks = {r.image_id: np.pad(breast_mask(r.image), 200) for r in toy}
    for i in np.flatnonzero(normal):
        (row, col), s = ps.centre[i], ps.side[i]
        r0, c0, n = int(round(row - s / 2)) + 200, int(round(col - s / 2)) + 200, int(round(s))
        assert masks[ps.image_id[i]][r0:r0 + n, c0:c0 + n].mean() >= 0.85
        assert 80 < ps.x[i].mean() < 120  # tissue, not background, no lesion


def _shares(ps, records):
    """The breast share of each crop, measured on the full-resolution breast masks."""
    masks = {r.image_id: np.pad(breast_mask(r.image), 400) for r in records}
    out = []
    for (row, col), s, image_id in zip(ps.centre, ps.side, ps.image_id):
        r0, c0, n = int(round(row - s / 2)) + 400, int(round(col - s / 2)) + 400, int(round(s))
        out.append(masks[image_id][r0:r0 + n, c0:c0 + n].mean())
    return np.array(out)


def test_normal_crops_match_the_lesion_crops_breast_share(toy):
    ps = extract_patches(toy, task="abnormal", size=16, lesion_crops=6, normal_ratio=2.0, min_side=16, seed=3)
    share = _shares(ps, toy)
    lesion, normal = share[ps.y == 1], share[ps.y == 0]
    assert set(ps.image_id[ps.y == 0]) <= {"n1", "n2", "n3"}
    # every normal crop is within the tolerance (plus the reduced mask's rounding) of some lesion crop's share
    assert all(np.abs(lesion - v).min() <= 0.15 for v in normal)
    assert abs(normal.mean() - lesion.mean()) < 0.1


def test_malignancy_task_and_determinism(toy):
    ps = extract_patches(toy, task="malignancy", size=24, lesion_crops=3, seed=7)
    assert ps.classes == TASKS["malignancy"] and ps.y.tolist() == [0, 0, 0, 1, 1, 1]
    again = extract_patches(toy, task="malignancy", size=24, lesion_crops=3, seed=7)
    other = extract_patches(toy, task="malignancy", size=24, lesion_crops=3, seed=8)
    assert np.array_equal(ps.x, again.x) and np.array_equal(ps.centre, again.centre)
    assert not np.array_equal(ps.centre, other.centre)


def test_extract_patches_errors(toy):
    with pytest.raises(ConfigError, match="unknown task 'density'"):
        extract_patches(toy, task="density")
    for bad in ({"size": 2}, {"lesion_crops": 0}, {"jitter": 1.5}, {"context": 0}, {"normal_ratio": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            extract_patches(toy, **bad)
    with pytest.raises(DataError, match="needs normal images"):
        extract_patches(toy[:2], task="abnormal")
    assert len(extract_patches(toy[:2], task="abnormal", normal_ratio=0)) == 8
    with pytest.raises(DataError, match="no located lesion among the 3 image"):
        extract_patches(toy[2:], task="abnormal")
    odd = [ImageRecord("o", "p9", toy[0].image, "abnormal", "", (Lesion("MASS", "abnormal", 100.0, 40.0, 10.0),))]
    with pytest.raises(DataError, match="image o: a lesion of severity 'abnormal'"):
        extract_patches(odd, task="malignancy")


def test_npz_round_trip_and_errors(toy, tmp_path):
    ps = extract_patches(toy, size=16, lesion_crops=2, min_side=16)
    path = ps.save_npz(tmp_path / "p.npz")
    back = PatchSet.load_npz(path)
    for name in ("x", "y", "mask", "image_id", "patient", "severity", "lesion_class", "side", "centre"):
        assert np.array_equal(getattr(back, name), getattr(ps, name)), name
    assert back.classes == ps.classes and back.skipped == 1 and len(back) == len(ps)
    sub = back.subset(back.y == 1)
    assert len(sub) == 4 and sub.classes == ps.classes and (sub.y == 1).all()
    with np.load(path) as z:
        data = {k: z[k] for k in z.files if k != "patient"}
    np.savez(tmp_path / "lacking.npz", **data)
    with pytest.raises(DataError, match="lacking.npz lacks the field 'patient'"):
        PatchSet.load_npz(tmp_path / "lacking.npz")
    np.savez(tmp_path / "float.npz", **{**data, "patient": ps.patient, "x": ps.x.astype(np.float32)})
    with pytest.raises(DataError, match="'x' is float32"):
        PatchSet.load_npz(tmp_path / "float.npz")
    (tmp_path / "garbage.npz").write_bytes(b"\x00garbage" * 4)
    with pytest.raises(DataError, match="patches file .*garbage.npz is"):
        PatchSet.load_npz(tmp_path / "garbage.npz")


def test_patient_folds_keep_patients_together():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i:02d}" for i in range(30)], rng.integers(1, 6, 30))
    y = (rng.random(len(patients)) < 0.4).astype(int)
    folds = patient_folds(patients, y, k=5, seed=1)
    tests = np.concatenate([test for _, test in folds])
    assert len(folds) == 5 and np.array_equal(np.sort(tests), np.arange(len(y)))
    for train, test in folds:
        assert not set(patients[train]) & set(patients[test])
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
        assert set(y[test]) == {0, 1}
    other = patient_folds(patients, y, k=5, seed=2)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))
    with pytest.raises(ConfigError, match="k must be"):
        patient_folds(patients, y, k=1)


def test_subsample_patients():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 3)
    y = np.repeat((np.arange(40) < 4).astype(int), 3)  # 4 patients of class 1
    idx = np.arange(0, 120)
    for fraction in (0.1, 0.25, 0.5):
        part = subsample_patients(idx, patients, y, fraction, seed=int(rng.integers(100)))
        kept = np.unique(patients[part])
        assert np.isin(part, idx).all() and set(y[part]) == {0, 1}
        assert abs(len(kept) - fraction * 40) <= 2, (fraction, len(kept))
        assert np.array_equal(part, np.flatnonzero(np.isin(patients, kept)))  # whole patients
    assert np.array_equal(subsample_patients(idx[::-1], patients, y, 1.0), idx)
    with pytest.raises(ConfigError, match="fraction"):
        subsample_patients(idx, patients, y, 0.0)


@pytest.mark.realdata
def test_mini_mias_patches_counts_and_pairs(mias):
    abnormal = extract_patches(mias, task="abnormal", size=64, lesion_crops=4, seed=0)  # about 2 s here
    assert abnormal.counts() == {"normal": 476, "abnormal": 476} and abnormal.skipped == 4
    assert len(set(abnormal.image_id[abnormal.y == 1])) == 111 and len(set(abnormal.patient)) == 161
    malignancy = extract_patches(mias, task="malignancy", size=64, lesion_crops=4, seed=0)
    assert malignancy.counts() == {"benign": 272, "malignant": 204} and malignancy.skipped == 4
    # lesion patches are brighter inside their circles than around them (the coordinates hit the lesions)
    lesion = abnormal.y == 1
    diff = [abnormal.x[i][abnormal.mask[i]].mean() - abnormal.x[i][~abnormal.mask[i]].mean()
            for i in np.flatnonzero(lesion) if abnormal.mask[i].any() and (~abnormal.mask[i]).any()]
    assert np.mean(np.array(diff) > 0) > 0.75
    # folds by patient never split a woman's two films
    folds = patient_folds(abnormal.patient, abnormal.y, k=5, seed=0)
    for train, test in folds:
        assert not set(abnormal.patient[train]) & set(abnormal.patient[test])
        assert not set(abnormal.image_id[train]) & set(abnormal.image_id[test])
    shares = [abnormal.y[test].mean() for _, test in folds]
    assert max(shares) - min(shares) < 0.15
