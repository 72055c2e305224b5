"""The kwon2021_diversity recipe: registration, profiles and grid, the claim on synthetic records, and its smoke
profile on the real MNIST."""

from __future__ import annotations

import json

import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.kwon2021_diversity import (
    ATTACKS,
    DEFENCES,
    PROFILES,
    RECIPE,
    DiversityProfile,
    claims,
    grid,
    summarize,
)


def test_registered_with_three_profiles_and_the_papers_numbers():
    assert get_recipe("kwon2021_diversity") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "10.3390/sym13030428" in RECIPE.paper.url
    assert "no" in RECIPE.description and "public" in RECIPE.description  # the code search is reported
    values = RECIPE.paper_numbers.values
    assert values[("mnist", "diversity/clean")] == 0.987 and values[("fashion_mnist", "asr_drop")] == 0.243


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    assert quick == [{"dataset": d, "seed": s} for d in ("mnist", "fashion_mnist") for s in range(5)]
    assert grid(PROFILES["smoke"]) == [{"dataset": "mnist", "seed": 0}]
    paper = PROFILES["paper"]
    assert (paper.n_train, paper.n_test, paper.deepfool_steps, paper.device) == (60000, 10000, 50, "auto")


@pytest.mark.parametrize("field, value", [("datasets", ("cifar10",)), ("seeds", 0), ("mnist_eps", 0.0),
                                          ("cw_lr", 0.0), ("n_test", 1)])
def test_bad_profile_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        DiversityProfile(**{field: value})


def _records(shift: float, n_seeds: int = 5, n_items: int = 40):
    """Synthetic runs: no defence fools each item with probability 0.6, diversity AT with 0.6 - shift."""
    import numpy as np

    out = []
    for s in range(n_seeds):
        rng = np.random.default_rng(s)
        m = {}
        for defence in DEFENCES:
            p = 0.6 - (shift if defence == "diversity" else 0.0)
            fooled = (rng.random((len(ATTACKS), n_items)) < p).astype(float)
            m[f"{defence}/clean"] = 0.95
            for k, row in zip(ATTACKS, fooled):
                m[f"{defence}/asr_{k}"] = row.mean()
            m[f"{defence}/asr_mean"] = fooled.mean()
            m[f"{defence}/items"] = fooled.mean(0).tolist()
        out.append({"index": s, "spec": {"dataset": "mnist", "seed": s}, "metrics": m})
    return out


def test_the_claim_on_synthetic_records():
    assert claims(_records(0.3))["mnist"].verdict == "reproduced"
    assert claims(_records(-0.3))["mnist"].verdict == "not reproduced"
    assert claims(_records(0.3, n_seeds=2))["mnist"].verdict == "undecided at this power"
    table = summarize(_records(0.3), PROFILES["quick"])
    md = table.to_markdown()
    assert "diversity AT" in md and "0.987" in md and "0.272" in md
    assert "Claim (mnist): diversity AT lowers the mean ASR compared with no defence: reproduced" in md
    drop = next(r for r in table.records if r["target"] == "diversity")["asr_drop_mean"]
    assert drop == pytest.approx(0.3, abs=0.1)


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    for label in ("no defence", "single-attack AT (FGSM)", "diversity AT", "asr_deepfool", "asr_cw"):
        assert label in md, label
    assert "undecided at this power" in md  # one seed: never a verdict
    run = json.loads(next((out / "runs").glob("*.json")).read_text())
    m, extras = run["metrics"], run["extras"]
    for defence in DEFENCES:
        assert 0.0 <= m[f"{defence}/clean"] <= 1.0
        assert all(0.0 <= m[f"{defence}/asr_{k}"] <= 1.0 for k in ATTACKS)
        assert len(extras[f"{defence}/items"]) == PROFILES["smoke"].n_test
    assert (out / "results.png").stat().st_size > 1000


@pytest.mark.realdata
def test_the_holdout_model_differs_from_the_source(monkeypatch, mnist_root, one_thread):
    """The evaluation examples come from a network other than the local one: other weights, other examples."""
    import torch

    from robustlab.common.attacks import FGSM
    from robustlab.common.regimes import diversity
    from robustlab.vision.data.images import load_unit
    from robustlab.vision.recipes import kwon2021_diversity as recipe

    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    crafted_on, sources = [], []
    original = recipe._attacks

    def spy(model, eps, p):
        crafted_on.append(model)
        return original(model, eps, p)

    class Recording(diversity.DiversityAdversarialTraining):
        def __init__(self, source, attacks, **kw):
            sources.append(source)
            super().__init__(source, attacks, **kw)

    monkeypatch.setattr(recipe, "_attacks", spy)
    monkeypatch.setattr(diversity, "DiversityAdversarialTraining", Recording)
    recipe.run({"dataset": "mnist", "seed": 0}, PROFILES["smoke"])
    holdout = crafted_on[0]  # the evaluation examples are crafted first, on the holdout model
    assert len(sources) == 2 and sources[0] is sources[1], "both AT targets learn from the one local model"
    local = sources[0]
    assert holdout is not None and holdout is not local
    assert all(m is None for m in crafted_on[1:]), "the training attacks are bound to the local model by the regime"
    assert holdout[-1].in_features == PROFILES["smoke"].holdout_hidden != local[-1].in_features
    x, y = load_unit("mnist", "test", 16, seed=0)
    assert not torch.equal(FGSM(holdout, eps=0.3)(x, y), FGSM(local, eps=0.3)(x, y))
