"""``robustlab vision prepare-mias``: a synthetic mini-MIAS folder and the real one to an NPZ of patches and a
preview PNG, the counts it prints, and the error contract (no folder, an empty folder, a broken image)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from robustlab.common.cli import main
from robustlab.vision.data.patches import PatchSet


def _run(*args, env=None):
    return CliRunner().invoke(main, ["vision", "prepare-mias", *map(str, args)], env=env)


def _ok(result):
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_prepare_mias_on_a_synthetic_folder(synthetic_mias, tmp_path):
    out = _ok(_run("--data", synthetic_mias, "--size", 32, "--lesion-crops", 3, "--min-side", 32,
                   "--out", tmp_path / "p.npz", "--preview", tmp_path / "grid.png"))
    assert "8 images (128x128 px; normal 4, benign 1, malignant 3), 4 patients" in out
    assert "lesions: 5 (CALC 1, CIRC 2, MISC 1, SPIC 1; benign 2, malignant 3); 1 without location skipped" in out
    assert "patches (abnormal, 32x32 px): 24 (normal 12, abnormal 12)" in out
    ps = PatchSet.load_npz(tmp_path / "p.npz")
    assert ps.x.shape == (24, 32, 32) and ps.classes == ("normal", "abnormal") and ps.skipped == 1
    with np.load(tmp_path / "p.npz") as z:
        assert {"x", "y", "classes", "mask", "patient", "image_id"} <= set(z.files)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.ndim == 3 and grid.shape[2] == 3
    red = (grid[..., 0] == 255) & (grid[..., 1] == 0)
    assert red.sum() > 50  # the lesion outlines
    out = _ok(_run("--data", synthetic_mias, "--task", "malignancy", "--size", 16, "--out", tmp_path / "m.npz"))
    assert "patches (malignancy, 16x16 px): 16 (benign 8, malignant 8)" in out


def test_prepare_mias_reads_the_environment_variable(synthetic_mias, tmp_path):
    result = _run("--no-match-coverage", "--out", tmp_path / "p.npz", env={"ROBUSTLAB_MINI_MIAS": str(synthetic_mias)})
    assert result.exit_code == 1 and "none of the 4 normal images has room for a crop of 50% of its width" \
        in result.output  # 64 px crops do not fit 90 % in these 60 px half-disc breasts
    out = _ok(_run("--min-side", 32, "--out", tmp_path / "p.npz", env={"ROBUSTLAB_MINI_MIAS": str(synthetic_mias)}))
    assert "8 images" in out and (tmp_path / "p.npz").is_file()


def test_prepare_mias_errors(synthetic_mias, tmp_path):
    result = _run("--out", tmp_path / "p.npz")
    assert result.exit_code == 2 and "ROBUSTLAB_MINI_MIAS" in result.output and "download it yourself" in result.output
    (tmp_path / "empty").mkdir()
    result = _run("--data", tmp_path / "empty", "--out", tmp_path / "p.npz")
    assert result.exit_code == 1 and "holds no Info.txt" in result.output and "Traceback" not in result.output
    (synthetic_mias / "pgm" / "mdb004.pgm").write_bytes(b"<html>garbage</html>")
    result = _run("--data", synthetic_mias, "--out", tmp_path / "p.npz")
    assert result.exit_code == 1 and "mdb004.pgm is not a PGM file" in result.output
    assert not (tmp_path / "p.npz").exists()
    result = _run("--data", synthetic_mias, "--size", 2, "--out", tmp_path / "p.npz")
    assert result.exit_code == 2 and "--size" in result.output


@pytest.mark.realdata
def test_prepare_mias_on_mini_mias(mini_mias_root, tmp_path):
    out = _ok(_run("--data", mini_mias_root, "--out", tmp_path / "p.npz", "--preview", tmp_path / "grid.png"))
    assert "322 images (512x512 px; normal 207, benign 63, malignant 52), 161 patients" in out
    assert "lesions: 123 (ARCH 19, ASYM 15, CALC 30, CIRC 25, MISC 15, SPIC 19; benign 69, malignant 54); " \
           "4 without location skipped" in out
    assert "patches (abnormal, 64x64 px): 952 (normal 476, abnormal 476) from " in out and "of 161 patients" in out
    ps = PatchSet.load_npz(tmp_path / "p.npz")
    # the 111 images with a located lesion and most of the 207 normal images (drawn for the normal crops)
    used = len(set(ps.image_id.tolist()))
    assert f"from {used} images of 161 patients" in out and 300 <= used <= 111 + 207
    assert len(ps) == 952 and Image.open(tmp_path / "grid.png").size[0] == 16 * 66 + 2
