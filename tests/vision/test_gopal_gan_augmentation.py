"""The gopal_gan_augmentation recipe: registration, profiles and grid, the table and claims on made-up records, and
its smoke profile on the real mini-MIAS."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.gopal_gan_augmentation import (
    PROFILES,
    RECIPE,
    GANAugmentationProfile,
    conditions,
    grid,
    summarize,
)


def test_registered_with_three_profiles():
    assert get_recipe("gopal_gan_augmentation") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "n.d." in RECIPE.paper.citation() and "102383" in RECIPE.paper.url
    assert "Departures" in RECIPE.description


def test_grids_of_the_profiles():
    quick = PROFILES["quick"]
    runs = grid(quick)
    # abnormal vs normal at 25/50/100 % of the training patients (3 folds x 2 seeds), benign vs malignant at 25/100 %
    # (3 folds x 1 seed)
    assert len(runs) == 3 * 3 * 2 + 2 * 3 * 1
    assert {(r["task"], r["size"]) for r in runs} == {("abnormal", 0.25), ("abnormal", 0.5), ("abnormal", 1.0),
                                                      ("malignancy", 0.25), ("malignancy", 1.0)}
    assert conditions(quick) == ["real", "classic", "gan_x0.5", "gan_x1", "gan_x2"]
    assert len(grid(PROFILES["paper"])) == 2 * 4 * 5 * 3 and PROFILES["paper"].patch_size == 64
    assert all(r["seed"] == 0 for r in runs if r["task"] == "malignancy")


@pytest.mark.parametrize("kwargs, match", [({"claim_ratio": 3.0}, "claim_ratio"), ({"tasks": ("density",)}, "tasks"),
                                           ({"patch_size": 48}, "patch_size"), ({"sizes": (0.0,)}, "sizes"),
                                           ({"folds": 1}, "folds")])
def test_bad_profile_values_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GANAugmentationProfile(**kwargs)


def _records(gain: float, n_units: int = 6):
    """Made-up runs of one task and two sizes where GAN augmentation adds ``gain`` AUROC over real patches."""
    p = GANAugmentationProfile(tasks=("abnormal",), sizes=(0.25, 1.0), folds=3, seeds=2)
    rng = np.random.default_rng(0)
    out = []
    for i, spec in enumerate(grid(p)):
        base = 0.7 + 0.01 * rng.standard_normal()
        m = {"n_train": 100.0 * spec["size"]}
        for cond in conditions(p):
            shift = gain if cond.startswith("gan") else 0.0
            for key in ("auroc", "balanced_accuracy", "noise_balanced_accuracy", "pgd_balanced_accuracy",
                        "gradcam_auroc", "sgcampp_auroc"):
                m[f"{cond}_{key}"] = base + shift + 0.002 * rng.standard_normal()
        m.update({"gan_fd": 10.0, "gan_fd_real": 1.0, "gan_precision": 0.5, "gan_recall": 0.2,
                  "gan_copy_share": 0.0, "gan_nn_ratio": 1.1})
        out.append({"index": i, "spec": spec, "metrics": m})
    return out, p


@pytest.mark.parametrize("gain, verdict", [(0.05, "reproduced"), (-0.05, "not reproduced")])
def test_summarize_rows_gains_and_claims(gain, verdict):
    records, p = _records(gain)
    table = summarize(records, p)
    assert len(table.rows) == 2 * len(conditions(p))
    gan_row = next(r for r in table.records if r["condition"] == "gan_x1" and r["size"] == 0.25)
    assert gan_row["balanced_accuracy_gain"] == pytest.approx(gain, abs=0.01)
    assert gan_row["balanced_accuracy_gain_vs_classic"] == pytest.approx(gain, abs=0.01)
    classic_row = next(r for r in table.records if r["condition"] == "classic" and r["size"] == 0.25)
    assert classic_row["balanced_accuracy_gain_vs_classic"] is None
    assert gan_row["n_train"] == pytest.approx(2 * 25.0)  # real + as many synthetic
    claims = next(n for n in table.notes if n.startswith("Claims, abnormal"))
    assert "25%" in claims and "gan_x1 > real on auroc" in claims
    first = claims.split("gan_x1 > real on auroc: ", 1)[1].split(";", 1)[0]
    assert f"**{verdict}**" in first
    assert any(n.startswith("GAN quality, abnormal at 25%") for n in table.notes)
    assert any("+1 to +9" in n or "+1 to +9" in " ".join(r) for n in table.notes for r in table.rows)


def test_summarize_leaves_out_diverged_runs():
    records, p = _records(0.0)
    records.append({"index": 99, "spec": dict(records[0]["spec"], seed=7), "status": "diverged", "reason": "x"})
    assert len(summarize(records, p).rows) == 2 * len(conditions(p))


@pytest.mark.realdata
@pytest.mark.slow
def test_the_gan_and_classifiers_see_only_the_training_patients(monkeypatch, mini_mias_root, one_thread):
    import robustlab.vision.gan as gan
    import robustlab.vision.mammography as mammography
    from robustlab.vision.data.patches import patient_folds
    from robustlab.vision.recipes import gopal_gan_augmentation as recipe

    monkeypatch.setenv("ROBUSTLAB_MINI_MIAS", str(mini_mias_root))
    seen = []
    for module, name in ((gan, "train_gan"), (mammography, "train_patch_classifier")):
        original = getattr(module, name)

        def spy(x, y, *args, _original=original, **kwargs):
            seen.append(np.asarray(x))
            return _original(x, y, *args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    p = PROFILES["smoke"]
    spec = {"task": "abnormal", "size": 0.5, "fold": 1, "seed": 0}
    recipe.run(spec, p)
    patches = recipe._patches("abnormal", p.patch_size, p.lesion_crops, p.context, p.min_side, p.jitter)
    train_idx, test_idx = patient_folds(patches.patient, patches.y, p.folds, seed=0)[1]
    key = {i: patches.x[i].tobytes() for i in range(len(patches.x))}
    train, test = {key[i] for i in train_idx}, {key[i] for i in test_idx} - {key[i] for i in train_idx}
    assert len(seen) == 1 + len(conditions(p))  # the GAN and every classifier
    for x in seen:
        got = {a.tobytes() for a in x}
        assert got <= train and not got & test


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, mini_mias_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MINI_MIAS", str(mini_mias_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    for cond in conditions(PROFILES["smoke"]):
        assert f"| {cond} |" in md
    assert "GAN quality, abnormal" in md and "Claims, abnormal" in md
    assert (out / "results.png").stat().st_size > 5000
