"""The khalooei2022_lsa recipe: registration, profiles and grid, the paper's cells, the claim on synthetic records, and
its smoke profile on the real MNIST (and make_moons)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.khalooei2022_lsa import (
    PAPER_NUMBERS,
    PROFILES,
    RECIPE,
    REGIMES,
    LSAProfile,
    claims,
    grid,
    plot,
    summarize,
)

VERDICTS = ("reproduced", "not reproduced", "undecided at this power")


def test_registered_with_three_profiles_and_the_authors_code():
    assert get_recipe("khalooei2022_lsa") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "2202.02626" in RECIPE.paper.url
    assert "khalooei/LSA" in RECIPE.description and "e4f9e8ee08bf315aca30273a35d2b88acaf5e020" in RECIPE.description
    assert "Departures" in RECIPE.description


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    assert quick == [{"dataset": d, "seed": s} for d in ("moons", "mnist") for s in range(5)]
    assert PROFILES["quick"].eval_eps == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # the paper's FGSM grid
    assert len(grid(PROFILES["smoke"])) == 2 and PROFILES["smoke"].seeds == 1
    paper = PROFILES["paper"]
    assert paper.device == "auto" and paper.mnist_train + paper.n_lsa == 60000 and paper.seeds >= 5
    assert (paper.mnist_width, paper.mnist_hidden) == (16, 100)  # model B's first convolution and hidden layer


@pytest.mark.parametrize("field, value, match", [
    ("datasets", ("cifar10",), "datasets"), ("claim_eps", 0.9, "claim_eps"), ("mnist_eps", 1.5, "mnist_eps"),
    ("gamma", -1.0, "gamma"), ("eval_eps", (), "eval_eps"), ("seeds", 0, "seeds"),
    ("mnist_train", 59600, "exceeds MNIST's 60000"), ("mnist_test", 10001, "mnist_test")])
def test_bad_profile_values_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        LSAProfile(**{field: value})


def test_paper_numbers_are_the_printed_cells_as_fractions():
    values = PAPER_NUMBERS.values
    assert len(values) == 2 * 3 * 6 and all(0.0 <= v <= 1.0 for v in values.values())
    # the abstract's MNIST figure is Table 3's difference at eps 0.5: 55.52 - 33.73 = 21.79 points
    gain = values[("mnist/atlr", "fgsm@0.5")] - values[("mnist/at", "fgsm@0.5")]
    assert gain == pytest.approx(0.2179, abs=1e-9)
    assert values[("moons/normal", "clean")] == pytest.approx(0.9707)
    assert "16.35" in PAPER_NUMBERS.source and "presentation-public.pdf" in PAPER_NUMBERS.source


def _records(n_seeds, better, n_items=200, eps=(0.0, 0.4, 0.5), datasets=("moons", "mnist")):
    """Synthetic run records: AT-LR right on ``better`` more items than AT (per seed) under every attack."""
    rng = np.random.default_rng(0)
    out, index = [], 0
    for d in datasets:
        for s in range(n_seeds):
            items, metrics = {}, {}
            base = (rng.random(n_items) < 0.5).astype(int)
            for regime in REGIMES:
                items[regime] = {}
                for e in eps:
                    col = "clean" if e == 0 else f"fgsm@{e:g}"
                    v = base.copy()
                    if regime == "atlr":
                        flip = np.flatnonzero(v == 0)[:better] if better > 0 else np.flatnonzero(v == 1)[:-better]
                        v[flip] = 1 - v[flip]
                    items[regime][col] = v.tolist()
                    metrics[f"{regime}/{col}"] = float(v.mean())
            out.append({"index": index, "spec": {"dataset": d, "seed": s}, "metrics": {**metrics, "mvl_size": 1.0},
                        "extras": {"items": items, "mvl": ["2"], "layers": ["0", "2"],
                                   "lsa": {g: [0.5, 0.4 if g == "atlr" else 0.6] for g in REGIMES}}})
            index += 1
    return out


@pytest.mark.parametrize("n_seeds, better, verdict", [(5, 20, "reproduced"), (5, -20, "not reproduced"),
                                                      (1, 20, "undecided at this power"),
                                                      (5, 0, "undecided at this power")])
def test_claims_on_synthetic_records(n_seeds, better, verdict):
    p = LSAProfile(eval_eps=(0.0, 0.4, 0.5), claim_eps=0.4)
    found = claims(_records(n_seeds, better), p)
    assert [(c["dataset"], c["column"]) for c in found] == [("moons", "fgsm@0.4"), ("moons", "fgsm@0.5"),
                                                             ("mnist", "fgsm@0.4"), ("mnist", "fgsm@0.5")]
    assert all(c["claim"].verdict == verdict for c in found)
    assert all(c["claim"].diff == pytest.approx(better / 200) for c in found)
    assert found[-1]["paper_gain"] == pytest.approx(0.2179)


def test_summarize_and_plot_on_synthetic_records(tmp_path):
    p = LSAProfile(eval_eps=(0.0, 0.4, 0.5), claim_eps=0.5)
    records = _records(5, 20)
    table = summarize(records, p)
    labels = [row[0] for row in table.rows]
    assert labels == [f"{d} {name}" for d in ("moons", "mnist") for name in REGIMES.values()]
    assert table.header[:4] == ["setting", "runs", "clean", "clean (paper)"]
    assert "fgsm@0.5 (paper)" in table.header
    moons_at = table.rows[1]
    assert moons_at[table.header.index("fgsm@0.5 (paper)")] == "0.600"  # AT-PGD, Table 2, 60.02 %
    claim_notes = [n for n in table.notes if n.startswith("Claim")]
    assert len(claim_notes) == 2 and all(n.split(": ")[2].split(";")[0] in VERDICTS for n in claim_notes)
    assert all("reproduced" in n for n in claim_notes)
    assert any(n.startswith("MVL lists, mnist") for n in table.notes)
    path = tmp_path / "plot.png"
    plot(records, path)
    assert path.stat().st_size > 5000


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False, jobs=1)
    assert report.complete
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["setting"] for r in rows] == [f"{d}/{g}" for d in ("moons", "mnist") for g in REGIMES]
    for r in rows:
        for col in ("clean", "fgsm@0.3"):
            assert 0.0 <= float(r[f"{col}_mean"]) <= 1.0
            assert 0.0 <= float(r[f"{col}_paper"]) <= 1.0
    md = (out / "results.md").read_text()
    assert "| setting | runs | clean | clean (paper) | fgsm@0.3 | fgsm@0.3 (paper) |" in md
    assert md.count("undecided at this power") == 2  # one seed: never a verdict
    smoke = PROFILES["smoke"]
    for path in (out / "runs").glob("*.json"):
        run = json.loads(path.read_text())
        extras, layers = run["extras"], run["extras"]["layers"]
        assert 1 <= len(extras["mvl"]) <= len(layers) and set(extras["mvl"]) <= set(layers)
        n_test = smoke.moons_test if run["spec"]["dataset"] == "moons" else smoke.mnist_test
        for g in REGIMES:
            assert len(extras["lsa"][g]) == len(layers) and all(v >= 0 for v in extras["lsa"][g])
            assert len(extras["items"][g]["fgsm@0.3"]) == n_test
            assert np.mean(extras["items"][g]["fgsm@0.3"]) == pytest.approx(run["metrics"][f"{g}/fgsm@0.3"])
        assert len(extras["lsa_normal_heldout"]["mean"]) == len(layers)
    assert (out / "results.png").stat().st_size > 5000
