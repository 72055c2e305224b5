"""The lassance2021_lgg recipe: registration, profiles and grid, the claims on synthetic records, and its smoke
profile on the real Fashion-MNIST."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.lassance2021_lgg import (
    CLAIMS,
    LABELS,
    METHODS,
    PROFILES,
    RECIPE,
    LGGProfile,
    grid,
    summarize,
)


def test_registered_with_three_profiles_and_the_authors_code():
    assert get_recipe("lassance2021_lgg") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "10.3390/a14020039" in RECIPE.paper.url
    for ref in ("cadurosar/graph_kd", "a8cfe5ec832996b58343041f6dbd3d0d1c16b042", "cadurosar/laplacian_networks",
                "27f6f2d7145426b38f578e9c1beecae3e7392f1b", "no CIFAR here"):
        assert ref in RECIPE.description, ref
    assert not RECIPE.paper_numbers.values and "could not be read" in RECIPE.paper_numbers.missing


def test_grids_of_the_profiles():
    assert grid(PROFILES["quick"]) == [{"dataset": d, "seed": s} for d in ("mnist", "fashion_mnist") for s in range(5)]
    assert PROFILES["quick"].methods == METHODS
    paper = grid(PROFILES["paper"])
    assert {s["dataset"] for s in paper} == {"mnist", "fashion_mnist"} and len(paper) == 20
    assert PROFILES["paper"].device == "auto" and PROFILES["paper"].smooth_weight == 1e-4  # the authors' gamma^m
    assert PROFILES["paper"].gkd_weight == 25.0 and PROFILES["paper"].smooth_power == 2


@pytest.mark.parametrize("field, value", [("datasets", ("cifar10",)), ("methods", ("mixup",)), ("seeds", 0),
                                          ("kd_alpha", 1.5), ("pgd_eps", 0.0), ("batch_size", 1)])
def test_bad_profile_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        LGGProfile(**{field: value})


def _records(shift: float, seeds: int = 5, n: int = 200):
    """Synthetic runs: every LGG method gets each item right with probability 0.5 + shift, its counterpart 0.5."""
    rng = np.random.default_rng(0)
    out = []
    for seed in range(seeds):
        metrics, extras = {}, {}
        for m in ("teacher",) + METHODS:
            p = 0.5 + (shift if m.startswith("graph") else 0.0)
            for metric in ("clean", "noise", "pgd"):
                items = (rng.random(n) < p).astype(int).tolist()
                metrics[f"{m}/{metric}"] = float(np.mean(items))
                extras[f"{m}/items_{metric}"] = items
        out.append({"index": seed, "spec": {"dataset": "fashion_mnist", "seed": seed}, "metrics": metrics,
                    "extras": extras})
    return out


@pytest.mark.parametrize("shift, verdict", [(0.2, "reproduced"), (-0.2, "not reproduced")])
def test_claims_are_decided_paired(shift, verdict):
    table = summarize(_records(shift), PROFILES["quick"])
    claims = [n for n in table.notes if ": claim " in n]
    assert len(claims) == len(CLAIMS)
    assert all(n.endswith(f"-> {verdict}.") for n in claims), claims
    assert [r[1] for r in table.rows] == [LABELS[m] for m in ("teacher",) + METHODS]
    assert table.header[3:6] == ["clean acc", "Gaussian-noise acc", "PGD acc"]
    assert any("measured, no claim" in n for n in table.notes)


def test_one_seed_is_never_a_verdict():
    table = summarize(_records(0.3, seeds=1), PROFILES["quick"])
    assert all(n.endswith("-> undecided at this power.") for n in table.notes if ": claim " in n)


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, fashion_mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST", str(fashion_mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    for label in list(LABELS.values()) + ["clean acc", "PGD acc", "undecided at this power"]:
        assert label in md, label
    run = json.loads(next((out / "runs").glob("*.json")).read_text())
    m, extras = run["metrics"], run["extras"]
    for method in ("teacher",) + METHODS:
        for metric in ("clean", "noise", "pgd"):
            assert 0.0 <= m[f"{method}/{metric}"] <= 1.0
            assert len(extras[f"{method}/items_{metric}"]) == PROFILES["smoke"].n_test
    assert (out / "results.png").stat().st_size > 1000
