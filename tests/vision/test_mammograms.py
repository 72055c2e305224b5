"""Mammograms: the PGM reader (binary, plain, 16-bit, comments; malformed files named), Info.txt's parse against the
shared copy's labels.csv and image_labels.csv, the mini-MIAS loader (scaled coordinates that land on the lesions,
patients as left/right pairs, clear errors), the generic image folder + labels CSV reader, and the masks."""

from __future__ import annotations

import csv
import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image

from robustlab.common.errors import ConfigError, DataError
from robustlab.vision.data.mammograms import (
    ENV_VAR,
    Lesion,
    breast_mask,
    image_label,
    lesion_mask,
    load_mias,
    parse_info,
    read_image,
    read_image_folder,
    read_pgm,
)


def write_pgm(path, pixels, *, comment: bytes = b"# synthetic\n") -> None:
    h, w = pixels.shape
    path.write_bytes(b"P5\n" + comment + f"{w} {h}\n255\n".encode() + np.asarray(pixels, np.uint8).tobytes())


NO_LOCATION = {"mdb059": "", "mdb216": "*NOTE 3*", "mdb233": "*NOTE 3*", "mdb245": "*NOTE 3*"}


@pytest.fixture(scope="module")
def mias(mini_mias_root):
    """All 322 images at 512 x 512."""
    return load_mias(mini_mias_root)


# -- read_pgm ---------------------------------------------------------------------------------------------------


def test_read_pgm_binary_plain_and_16_bit(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    write_pgm(tmp_path / "a.pgm", pixels, comment=b"# one\n# two\n")
    assert np.array_equal(read_pgm(tmp_path / "a.pgm"), pixels) and read_pgm(tmp_path / "a.pgm").dtype == np.uint8
    (tmp_path / "p.pgm").write_text("P2\n# plain\n4 3 # size\n220\n" + "\n".join(" ".join(map(str, r)) for r in pixels))
    assert np.array_equal(read_pgm(tmp_path / "p.pgm"), pixels)
    wide = np.array([[0, 1000], [4095, 300]], dtype=np.uint16)
    (tmp_path / "w.pgm").write_bytes(b"P5 2 2 4095\n" + wide.astype(">u2").tobytes())
    out = read_pgm(tmp_path / "w.pgm")
    assert out.dtype == np.uint16 and np.array_equal(out, wide)
    assert read_image(tmp_path / "w.pgm").tolist() == [[0, 62], [255, 19]]  # rescaled by maxval 4095


@pytest.mark.parametrize("content, message", [
    (b"P6\n2 2\n255\n" + bytes(12), "not a PGM file"),
    (b"<html>not an image</html>", "not a PGM file"),
    (b"P5\n2 x\n255\n" + bytes(4), "malformed header"),
    (b"P5\n2 2\n0\n" + bytes(4), "maxval 0"),
    (b"P5\n2 2\n70000\n" + bytes(8), "maxval 70000"),
    (b"P5\n2 2\n", "truncated header"),
    (b"P5\n4 4\n255\n" + bytes(10), "truncated"),
    (b"P2\n2 2\n9\n1 2 3\n", "truncated"),
    (b"P2\n2 2\n9\n1 2 3 12\n", "above its maxval 9"),
    (b"P2\n2 2\n9\n1 -2 3 4\n", "negative pixel value -2"),
])
def test_read_pgm_names_the_malformed_file(tmp_path, content, message):
    path = tmp_path / "bad_image.pgm"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        read_pgm(path)
    assert str(path) in str(e.value)


def test_missing_and_unreadable_images_are_named(tmp_path):
    with pytest.raises(DataError, match="missing.pgm does not exist"):
        read_pgm(tmp_path / "missing.pgm")
    (tmp_path / "garbage.png").write_bytes(b"\x00garbage" * 8)
    with pytest.raises(DataError, match="garbage.png cannot be read"):
        read_image(tmp_path / "garbage.png")


@pytest.mark.realdata
def test_the_original_pgms_are_read_exactly(mini_mias_root):
    """The two 1024 x 1024 originals: their MD5 is the published one, and PIL's BOX reduction of the pixels we read
    is the shared 512 x 512 PNG copy pixel for pixel (how PROVENANCE.md says the copies were made)."""
    sums = dict(line.split()[::-1] for line in (mini_mias_root / "original_pgm_md5sums.txt").read_text().splitlines())
    for name in ("mdb001", "mdb003"):
        path = mini_mias_root / "original_pgm" / f"{name}.pgm"
        assert hashlib.md5(path.read_bytes()).hexdigest() == sums[f"{name}.pgm"]
        pixels = read_pgm(path)
        assert pixels.shape == (1024, 1024) and pixels.dtype == np.uint8
        small = np.asarray(Image.fromarray(pixels).resize((512, 512), Image.Resampling.BOX))
        assert np.array_equal(small, read_image(mini_mias_root / "images_512" / f"{name}.png"))


# -- Info.txt ---------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_parse_info_equals_the_shared_labels_csv(mini_mias_root):
    rows = parse_info(mini_mias_root / "Info.txt")
    with open(mini_mias_root / "labels.csv", newline="") as f:
        expected = list(csv.DictReader(f))
    assert len(rows) == len(expected) == 330
    for row, ref in zip(rows, expected):
        got = (row.image_id, row.tissue, row.cls, row.severity or "", *(str(v) if v is not None else ""
                                                                     for v in (row.x, row.y, row.radius)))
        assert got == (ref["refnum"], ref["background"], ref["abnormality"], ref["severity"], ref["x"], ref["y"],
                       ref["radius"]), row
    located = [r for r in rows if r.cls != "NORM" and r.x is not None]
    assert len(located) == 119 and sum(r.cls == "NORM" for r in rows) == 207
    assert {r.image_id: r.note for r in rows if r.cls != "NORM" and r.x is None} == NO_LOCATION
    per_image = {}
    for r in rows:
        per_image[r.image_id] = per_image.get(r.image_id, 0) + 1
    assert per_image["mdb005"] == 2 and per_image["mdb226"] == 3 and len(per_image) == 322


@pytest.mark.parametrize("line, message", [
    ("mdb001 G BLOB B 1 2 3", "class 'BLOB'"),
    ("mdb001 X CIRC B 1 2 3", "tissue 'X'"),
    ("mdb001 G CIRC 1 2 3", "without severity"),
    ("mdb001 G CIRC B 535 425", "2 coordinate"),
    ("mdb001 G NORM B", "normal image with a severity"),
])
def test_parse_info_names_the_bad_line(tmp_path, line, message):
    path = tmp_path / "Info.txt"
    path.write_text("header\n\nmdb002 G NORM\n" + line + "\n")
    with pytest.raises(DataError, match=message) as e:
        parse_info(path)
    assert f"{path} line 4" in str(e.value)
    (tmp_path / "empty.txt").write_text("no mini-MIAS line here\n")
    with pytest.raises(DataError, match="is it Info.txt"):
        parse_info(tmp_path / "empty.txt")


# -- load_mias --------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_load_mias_equals_image_labels_csv(mias, mini_mias_root):
    with open(mini_mias_root / "image_labels.csv", newline="") as f:
        expected = {r["refnum"]: r for r in csv.DictReader(f)}
    assert [r.image_id for r in mias] == sorted(expected) and len(mias) == 322
    for r in mias:
        ref = expected[r.image_id]
        assert (r.label, r.tissue, len(r.lesions)) == (ref["image_label"], ref["background"],
                                                        int(ref["n_abnormalities"])), r.image_id
        assert r.image.shape == (512, 512) and r.image.dtype == np.uint8
    labels = [r.label for r in mias]
    assert (labels.count("normal"), labels.count("benign"), labels.count("malignant")) == (207, 63, 52)
    assert sum(not lesion.located for r in mias for lesion in r.lesions) == 4


@pytest.mark.realdata
def test_patients_are_left_right_pairs(mias):
    patients = [r.patient for r in mias]
    assert len(set(patients)) == 161 and patients[:4] == ["p001", "p001", "p002", "p002"]
    assert all(patients.count(p) == 2 for p in set(patients)) and patients[-1] == "p161"


@pytest.mark.realdata
def test_coordinates_are_scaled_from_the_1024_grid_bottom_left(mias, mini_mias_root):
    first = mias[0].lesions[0]  # mdb001 G CIRC B 535 425 197
    assert (first.row, first.col, first.radius) == ((1024 - 425) / 2, 535 / 2, 197 / 2)
    originals = load_mias(mini_mias_root, images=mini_mias_root / "original_pgm", ids=["mdb001", "mdb003"])
    assert [r.image.shape for r in originals] == [(1024, 1024)] * 2 and originals[1].label == "normal"
    full = originals[0].lesions[0]
    assert (full.row, full.col, full.radius) == (599.0, 535.0, 197.0)


@pytest.mark.realdata
def test_the_coordinates_land_on_the_lesions(mias):
    """Masses are brighter than the tissue around them: the mean inside each circle against the ring from r to 2r
    (inside the breast). With y read from the top instead of the bottom, the circles miss them."""
    def contrast(flip: bool):
        out = {}
        for r in mias:
            breast = breast_mask(r.image)
            for lesion in r.lesions:
                if lesion.located:
                    if flip:
                        lesion = dataclasses.replace(lesion, row=r.image.shape[0] - lesion.row)
                    inner = lesion_mask(r.image.shape, [lesion])
                    ring = lesion_mask(r.image.shape, [dataclasses.replace(lesion, radius=2 * lesion.radius)])
                    ring &= ~inner & breast
                    diff = r.image[inner].mean() - r.image[ring].mean() if ring.any() else 0.0
                    out.setdefault(lesion.cls, []).append(diff)
        return {k: np.array(v) for k, v in out.items()}

    right, flipped = contrast(False), contrast(True)
    masses = np.concatenate([right[c] for c in ("CIRC", "SPIC", "MISC")])
    masses_flipped = np.concatenate([flipped[c] for c in ("CIRC", "SPIC", "MISC")])
    assert len(masses) == 58
    assert (masses > 0).mean() >= 0.9 and np.median(masses) > 10, np.median(masses)
    assert (masses_flipped > 0).mean() < 0.7 and np.median(masses_flipped) < 5
    every = np.concatenate(list(right.values()))
    assert (every > 0).mean() >= 0.8 and (np.concatenate(list(flipped.values())) > 0).mean() < 0.7


@pytest.mark.realdata
def test_two_calcifications_are_annotated_outside_the_breast(mias):
    """A quirk of the data, pinned: mdb212 and mdb214 (benign calcification clusters, radius 3 and 11 on the 1024
    grid) are centred on the background beside the breast, whichever way y is read."""
    outside = []
    for r in mias:
        breast = breast_mask(r.image)
        for lesion in r.lesions:
            if lesion.located and not breast[int(lesion.row), int(lesion.col)]:
                outside.append(r.image_id)
    assert outside == ["mdb212", "mdb214"]


def test_load_mias_reads_a_synthetic_folder(synthetic_mias, monkeypatch):
    records = load_mias(synthetic_mias)
    assert [r.image_id for r in records] == [f"mdb{n:03d}" for n in range(1, 9)]
    assert [r.patient for r in records] == ["p001", "p001", "p002", "p002", "p003", "p003", "p004", "p004"]
    assert [r.label for r in records] == ["benign", "normal", "malignant", "normal", "malignant", "normal",
                                          "malignant", "normal"]
    assert records[0].lesions == (Lesion("CIRC", "benign", row=53.0, col=25.0, radius=10.0),)
    assert len(records[2].lesions) == 2 and not records[4].lesions[0].located
    monkeypatch.setenv(ENV_VAR, str(synthetic_mias))
    assert [r.image_id for r in load_mias(ids=["mdb003"])] == ["mdb003"]


def test_load_mias_errors(synthetic_mias, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=f"download it yourself.*{ENV_VAR}"):
        load_mias()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=f"nowhere .from \\${ENV_VAR}. does not exist"):
        load_mias()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Info.txt"):
        load_mias(tmp_path / "empty")
    with pytest.raises(ConfigError, match="mdb999 is not listed"):
        load_mias(synthetic_mias, ids=["mdb999"])
    (synthetic_mias / "pgm" / "mdb006.pgm").unlink()
    with pytest.raises(DataError, match="lacks mdb006.pgm/.png"):
        load_mias(synthetic_mias)
    (synthetic_mias / "pgm" / "mdb006.pgm").write_bytes(b"P5\n128 128\n255\n" + bytes(100))
    with pytest.raises(DataError, match="mdb006.pgm is truncated"):
        load_mias(synthetic_mias)
    info = synthetic_mias / "Info.txt"
    info.write_text(info.read_text().replace("mdb007 F MISC M 250 500 72", "mdb007 F MISC M 1100 500 72"))
    with pytest.raises(DataError, match="mini-MIAS image mdb007: the lesion at x=1100"):
        load_mias(synthetic_mias, ids=["mdb007"])


def test_load_mias_prefers_the_fullest_image_folder(synthetic_mias):
    other = synthetic_mias / "png_64"
    other.mkdir()
    for n in (1, 2):
        Image.fromarray(read_pgm(synthetic_mias / "pgm" / f"mdb{n:03d}.pgm")).resize((64, 64)).save(
            other / f"mdb{n:03d}.png")
    assert load_mias(synthetic_mias)[0].image.shape == (128, 128)
    small = load_mias(synthetic_mias, images=other, ids=["mdb001", "mdb002"])
    assert small[0].image.shape == (64, 64) and small[0].lesions[0].radius == 5.0
    assert (small[0].lesions[0].row, small[0].lesions[0].col) == (26.5, 12.5)


# -- read_image_folder ------------------------------------------------------------------------------------------


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_read_image_folder(tmp_path):
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((40, 60), 90, np.uint8)).save(tmp_path / f"{name}.png")
    _write_csv(tmp_path / "labels.csv", ["file", "diagnosis", "woman", "cx", "cy", "r", "kind"], [
        ["a.png", "Benign", "w1", "10", "20", "5", "mass"],
        ["a.png", "malignant", "w1", "", "", "", "calc"],
        ["b", "normal", "w1", "", "", "", ""],
        ["c.png", "benign", "w2", "", "", "", "mass"],
    ])
    records = read_image_folder(tmp_path, tmp_path / "labels.csv", image_column="file", label_column="diagnosis",
                                patient_column="woman", x_column="cx", y_column="cy", radius_column="r",
                                class_column="kind")
    assert [(r.image_id, r.patient, r.label) for r in records] == [("a", "w1", "malignant"), ("b", "w1", "normal"),
                                                                   ("c", "w2", "benign")]
    a = records[0]
    assert a.lesions[0] == Lesion("mass", "benign", row=20.0, col=10.0, radius=5.0) and not a.lesions[1].located
    assert a.image.shape == (40, 60) and records[1].lesions == ()
    # bottom-left origin on a 120 x 80 grid: twice the image's size
    grid = read_image_folder(tmp_path, tmp_path / "labels.csv", image_column="file", label_column="diagnosis",
                             x_column="cx", y_column="cy", radius_column="r", origin="bottom-left",
                             coordinate_size=(120, 80))
    assert grid[0].lesions[0] == Lesion("benign", "benign", row=30.0, col=5.0, radius=2.5)
    assert grid[0].patient == "a"  # no patient column: each image its own patient


def test_read_image_folder_errors(tmp_path):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "a.png")
    csv_path = tmp_path / "labels.csv"
    _write_csv(csv_path, ["image", "label"], [["a.png", "benign"]])
    with pytest.raises(DataError, match="lacks the column.*'woman'.*its header: 'image', 'label'"):
        read_image_folder(tmp_path, csv_path, patient_column="woman")
    _write_csv(csv_path, ["image", "label"], [["a.png", "benign"], ["gone.png", "normal"]])
    with pytest.raises(DataError, match="image 'gone.png' .*line 3.* is missing from"):
        read_image_folder(tmp_path, csv_path)
    _write_csv(csv_path, ["image", "label", "x", "y", "r"], [["a.png", "benign", "25", "5", "3"]])
    with pytest.raises(DataError, match="image 'a.png' .*line 2.*x=25, y=5, radius=3 is outside"):
        read_image_folder(tmp_path, csv_path, x_column="x", y_column="y", radius_column="r")
    _write_csv(csv_path, ["image", "label", "x", "y", "r"], [["a.png", "benign", "ten", "5", "3"]])
    with pytest.raises(DataError, match="line 2: x 'ten' is not a number"):
        read_image_folder(tmp_path, csv_path, x_column="x", y_column="y", radius_column="r")
    _write_csv(csv_path, ["image", "label", "x", "y", "r"], [["a.png", "benign", "5", "", "3"]])
    with pytest.raises(DataError, match="line 2: image 'a.png' has only some of x, y, r"):
        read_image_folder(tmp_path, csv_path, x_column="x", y_column="y", radius_column="r")
    _write_csv(csv_path, ["image", "label"], [["a.png", "benign"], ["a.png", "normal"]])
    with pytest.raises(DataError, match="both 'normal' rows and lesion rows"):
        read_image_folder(tmp_path, csv_path)
    with pytest.raises(ConfigError, match="together"):
        read_image_folder(tmp_path, csv_path, x_column="x")
    with pytest.raises(ConfigError, match="origin"):
        read_image_folder(tmp_path, csv_path, origin="centre")


@pytest.mark.realdata
def test_read_image_folder_reads_mini_mias_like_load_mias(mias, mini_mias_root, tmp_path):
    """labels.csv (one row per abnormality, x/y on the 1024 grid from the bottom left) read generically over the
    512 PNG copies gives load_mias' records."""
    with open(mini_mias_root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    severity = {"B": "benign", "M": "malignant", "": "normal"}
    _write_csv(tmp_path / "mias.csv", ["image", "label", "patient", "x", "y", "radius", "cls"],
               [[f"{r['refnum']}.png", severity[r["severity"]], f"p{(int(r['refnum'][3:]) + 1) // 2:03d}", r["x"],
                 r["y"], r["radius"], r["abnormality"]] for r in rows])
    generic = read_image_folder(mini_mias_root / "images_512", tmp_path / "mias.csv", patient_column="patient",
                                x_column="x", y_column="y", radius_column="radius", class_column="cls",
                                origin="bottom-left", coordinate_size=1024)
    assert len(generic) == 322
    for g, m in zip(generic, mias):
        assert (g.image_id, g.patient, g.label, g.lesions) == (m.image_id, m.patient, m.label, m.lesions)
        assert np.array_equal(g.image, m.image)


# -- masks --------------------------------------------------------------------------------------------------------


def test_breast_mask_drops_background_and_labels_and_fills_holes():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:300, 0:300] + 0.5
    image = np.zeros((300, 300))
    breast = (rows - 150) ** 2 + cols ** 2 <= 140 ** 2
    image[breast] = 120 + rng.normal(0, 8, breast.sum())
    image[(rows - 150) ** 2 + (cols - 60) ** 2 <= 15 ** 2] = 5  # a dark hole inside the breast
    image[20:50, 250:280] = 250  # a film label
    mask = breast_mask(np.clip(image, 0, 255).astype(np.uint8))
    assert mask.shape == (300, 300) and mask.dtype == bool
    assert mask[150, 60] and not mask[35, 265] and not mask[150, 250] and not mask[5, 295]
    assert abs(mask.sum() / breast.sum() - 1) < 0.05


@pytest.mark.realdata
def test_breast_mask_on_mini_mias(mias):
    shares = []
    for r in mias[:40]:
        mask = breast_mask(r.image)
        shares.append(mask.mean())
        assert r.image[mask].mean() > 3 * r.image[~mask].mean(), r.image_id
        assert not mask[:, 0].all() or not mask[:, -1].all(), r.image_id  # one side is background
    assert 0.1 < min(shares) and max(shares) < 0.9


def test_lesion_mask_and_image_label():
    lesions = [Lesion("CIRC", "benign", row=50.0, col=50.0, radius=20.0), Lesion("CALC", "malignant")]
    mask = lesion_mask((100, 120), lesions)
    assert mask.shape == (100, 120) and abs(mask.sum() - np.pi * 400) < 0.02 * np.pi * 400
    assert mask[50, 50] and not mask[50, 71] and not lesion_mask((10, 10), lesions[1:]).any()
    assert image_label(lesions) == "malignant" and image_label([]) == "normal"
    assert image_label(lesions[:1]) == "benign"
    assert image_label([Lesion("x", "abnormal")]) == "abnormal"
    with pytest.raises(DataError, match="cannot be ordered"):
        image_label([Lesion("x", "abnormal"), Lesion("y", "odd")])
