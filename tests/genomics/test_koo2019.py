"""robustlab.genomics.recipes.koo2019: the Koo et al. (2019) recipe, its registration and its smoke profile."""

import csv

import pytest
from click.testing import CliRunner

from robustlab.common.recipes import get_recipe
from robustlab.genomics.recipes.koo2019 import METRICS, PROFILES, RECIPE, Koo2019Profile, grid


def test_registered_under_the_entry_point_group():
    assert get_recipe("koo2019") is RECIPE
    assert get_recipe("koo2019", package="robustlab.genomics") is RECIPE


def test_grid_covers_archs_variants_sizes_and_seeds():
    specs = grid(PROFILES["paper"])
    assert len(specs) == 2 * 4 * 2 * PROFILES["paper"].seeds
    assert {s["arch"] for s in specs} == {"localnet", "distnet"} and {s["dataset"] for s in specs} == {"small", "large"}
    assert (PROFILES["paper"].n_small, PROFILES["paper"].n_large) == (10000, 30000)
    assert PROFILES["paper"].adv_steps == 20 and PROFILES["paper"].adv_warmup_epochs == 20
    assert PROFILES["quick"].adv_steps == 5 and PROFILES["smoke"].epochs == 1 and PROFILES["smoke"].seeds == 1


def test_bad_profiles_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        Koo2019Profile(archs=("resnet",))


def test_smoke_reproduce_writes_the_results(tmp_path):
    from robustlab.genomics.cli import genomics

    out = tmp_path / "koo"
    result = CliRunner().invoke(genomics, ["reproduce", "koo2019", "--profile", "smoke", "--out", str(out),
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("results.md", "results.csv", "results.png"):
        assert (out / name).is_file()
    md = (out / "results.md").read_text()
    assert "paper direction" in md and "Claim 1" in md and "Claim 2" in md and "no numeric table" in md
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 16
    for row in rows:
        for m in METRICS:
            assert 0.0 <= float(row[f"{m}_mean"]) <= 1.0, (row["cell"], m)


def test_unknown_recipe_exits_2(tmp_path):
    from robustlab.genomics.cli import genomics

    result = CliRunner().invoke(genomics, ["reproduce", "khalooei2022_moons", "--out", str(tmp_path)])
    assert result.exit_code == 2
