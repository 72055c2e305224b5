"""The kwon2021_onmanifold recipe: registration, profiles and grid, the claims decided on synthetic records, and its
smoke profile on the real MNIST (rows, columns, the sparsity reached, per-item marks, the plot)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.kwon2021_onmanifold import (
    KINDS,
    PROFILES,
    RECIPE,
    REGIMES,
    OnManifoldProfile,
    claims,
    grid,
    summarize,
)


def test_registered_with_three_profiles_and_the_authors_code():
    assert get_recipe("kwon2021_onmanifold") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "10.3390/fi13120300" in RECIPE.paper.url
    assert "sanglee/MC-ATON" in RECIPE.description and "8393cdb20957bf2fe11633c062aa7979ca389cc4" in RECIPE.description


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    assert {(s["dataset"], s["regime"]) for s in quick} == {(d, r) for d in ("mnist", "fashion_mnist") for r in REGIMES}
    assert sorted({s["seed"] for s in quick}) == [0, 1, 2, 3, 4] and len(quick) == 30  # 5 seeds: a verdict
    assert min(PROFILES["quick"].rates) == 0.0 and max(PROFILES["quick"].rates) >= 0.9
    paper = PROFILES["paper"]
    assert paper.rates == (0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999)  # mnist_run.ipynb
    assert set(paper.datasets) == {"mnist", "fashion_mnist"} and paper.device == "auto" and paper.epochs == 15
    assert len(grid(paper)) == 2 * 5 * 3


@pytest.mark.parametrize("field, value", [("rates", (1.0,)), ("rates", ()), ("regimes", ("trades",)),
                                          ("datasets", ("cifar10",)), ("onm_fraction", 1.5), ("seeds", 0),
                                          ("prune_end", 1.5), ("noise_std", 0.0)])
def test_bad_profile_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        OnManifoldProfile(**{field: value})


def _records(gain_low, gain_high, *, seeds=5, n=200, rates=(0.0, 0.9)):
    """Synthetic runs: standard training gets 60 % of the on-manifold items right at every rate; on-manifold AT
    gets a fraction ``0.6 + gain`` (more items right, the same ones of standard plus others)."""
    rng = np.random.default_rng(0)
    records, index = [], 0
    for seed in range(seeds):
        base = rng.random(n) < 0.6
        for regime in REGIMES:
            metrics, extras = {}, {}
            for rate, gain in zip(rates, (gain_low, gain_high)):
                marks = base.copy()
                if regime == "on_manifold":
                    wrong = np.flatnonzero(~marks)
                    marks[rng.choice(wrong, round(gain * n), replace=False)] = True
                for kind in KINDS:
                    metrics[f"{kind}@{rate:g}"] = float(marks.mean())
                    extras[f"items/{kind}@{rate:g}"] = marks.astype(int).tolist()
                metrics[f"sparsity@{rate:g}"] = rate
            records.append({"index": index, "spec": {"dataset": "mnist", "seed": seed, "regime": regime},
                            "metrics": metrics, "extras": extras})
            index += 1
    return records


@pytest.mark.parametrize("gains, verdict", [((0.0, 0.15), "reproduced"), ((0.15, 0.0), "not reproduced")])
def test_claim_gain_grows_with_the_rate(gains, verdict):
    p = OnManifoldProfile(rates=(0.0, 0.9))
    out = claims(_records(*gains), p)
    assert out["mnist: gain grows"].verdict == verdict
    assert out["mnist: gain at top"].verdict == ("reproduced" if gains[1] > 0 else "undecided at this power")
    table = summarize(_records(*gains), p)
    assert len(table.rows) == len(REGIMES) * 2 and table.header[4:8] == list(KINDS)
    assert any("gain grows" in n and verdict in n for n in table.notes)


def test_one_seed_is_never_a_verdict():
    out = claims(_records(0.0, 0.2, seeds=1), OnManifoldProfile(rates=(0.0, 0.9)))
    assert {c.verdict for c in out.values()} == {"undecided at this power"}


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False, jobs=1)
    assert report.complete
    md = (out / "results.md").read_text()
    for label in (*REGIMES.values(), "| dataset | regime | rate | runs | clean | on_manifold | noisy | off_manifold",
                  "80.0%", "undecided at this power"):  # one seed: never a verdict
        assert label in md, label
    smoke = PROFILES["smoke"]
    for path in (out / "runs").glob("*.json"):
        run = json.loads(path.read_text())
        m, extras = run["metrics"], run["extras"]
        assert m["sparsity@0"] == 0.0 and m["sparsity@0.8"] == pytest.approx(0.8, abs=0.01)
        for kind in KINDS:
            assert 0.0 <= m[f"{kind}@0.8"] <= 1.0
            assert len(extras[f"items/{kind}@0.8"]) == smoke.n_test
    assert (out / "results.png").stat().st_size > 1000
