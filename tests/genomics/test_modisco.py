"""TF-MoDISco on attribution maps (robustlab.genomics.interpret.modisco) and `robustlab genomics modisco`.

One LocalNet is trained for the module through the CLI (simulate -> train: 10,000 koo2019 sequences, 10 epochs,
validation AUROC about 0.91, about 20 s on 2 cores); its saliency maps of the positive test sequences feed the API
test (at least one embedded core motif recovered) and the CLI chain (attribute -> modisco).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from robustlab.genomics.cli import genomics
from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS
from robustlab.genomics.interpret import modisco as M


def invoke(*args):
    return CliRunner().invoke(genomics, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """simulate -> train through the CLI; the positive test sequences, their data set and saliency maps."""
    import torch

    from robustlab.common.attribution import Saliency
    from robustlab.common.modelfile import load_model
    from robustlab.genomics.data.simulate import SimulatedDataset
    from robustlab.genomics.training import classification_metrics

    tmp = tmp_path_factory.mktemp("modisco")
    data = tmp / "d.npz"
    assert invoke("simulate", "--task", "koo2019", "--n", 10000, "--seed", 0, "--out", data).exit_code == 0
    run = invoke("train", "--data", data, "--arch", "localnet", "--variant", "standard", "--epochs", 10,
                 "--lr", 2e-3, "--batch-size", 64, "--no-progress", "--out", tmp / "model")
    assert run.exit_code == 0, run.output
    model = load_model(tmp / "model" / "model.pt").model.eval()
    _, valid, test = SimulatedDataset.load_npz(data).split((0.7, 0.1, 0.2), seed=2019)  # train's split
    with torch.no_grad():
        val_auroc = classification_metrics(model(torch.as_tensor(valid.x)), valid.y)["auroc"]
    positives = test.subset(test.y[:, 0] > 0.5)
    maps = Saliency(model, abs=False)(torch.as_tensor(positives.x), 0).numpy()
    return {"tmp": tmp, "val_auroc": val_auroc, "positives": positives, "maps": maps}


def test_a_well_trained_localnet_recovers_an_embedded_core_motif(trained):
    assert trained["val_auroc"] > 0.9
    ds = trained["positives"]
    count, rows = M.core_motifs_recovered(trained["maps"], ds.x, KOO2019_CORE_MOTIFS, max_seqlets=1000)
    found = sorted({name for r in rows for name in r["true_hits"]})
    print(f"val AUROC {trained['val_auroc']:.3f}; {len(ds)} positive test sequences, {len(rows)} patterns; "
          f"core motifs recovered: {count} of 5 ({', '.join(found)})")
    assert count >= 1 and count == len(found) and set(found) <= set(KOO2019_CORE_MOTIFS)
    assert rows and all(r["n_seqlets"] >= 20 and r["metacluster"] in ("positive", "negative") for r in rows)
    best = rows[0]["top_hits"][0]
    assert best["name"] == rows[0]["best_match"] and 0 <= best["p_value"] <= best["q_value"] <= 1


def test_simulate_train_attribute_modisco_writes_the_report(trained):
    import h5py

    tmp, ds = trained["tmp"], trained["positives"]
    fasta = tmp / "positives.fa"
    fasta.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(ds.sequences())))
    ds.save_npz(tmp / "positives.npz")
    attr = invoke("attribute", "--model", tmp / "model" / "model.pt", "--fasta", fasta, "--method", "saliency",
                  "--logos", 0, "--out", tmp / "attr")
    assert attr.exit_code == 0, attr.output
    out = tmp / "motifs"
    result = invoke("modisco", "--attributions", tmp / "attr" / "attributions.npz", "--data", tmp / "positives.npz",
                    "--max-seqlets", 500, "--out", out)
    assert result.exit_code == 0, result.output
    assert "TF-MoDISco patterns" in result.output and "recovered" in result.output
    summary = json.loads((out / "patterns.json").read_text())
    assert summary["n_sequences"] == len(ds) and summary["kind"] == "gradient"  # saliency maps are gradients
    assert summary["true_names"] == sorted(KOO2019_CORE_MOTIFS)  # the motifs embedded in the positives
    assert summary["n_patterns"] == len(summary["patterns"]) >= 1
    logos = sorted((out / "logos").glob("*.png"))
    assert len(logos) == summary["n_patterns"] and all(p.stat().st_size > 0 for p in logos)
    page = (out / "report.html").read_text()
    for row in summary["patterns"]:
        assert (out / row["logo"]).is_file() and row["logo"] in page and row["best_match"] in page
        assert np.allclose(np.sum(row["ppm"], axis=0), 1, atol=1e-3)
    with h5py.File(out / "modisco.h5", "r") as f:  # modisco-lite's results file
        assert "pos_patterns" in f and int(f["pos_patterns/pattern_0/seqlets/n_seqlets"][0]) > 0


# -- bad inputs -----------------------------------------------------------------------------------------------


def _onehot(n: int, length: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))].transpose(0, 2, 1))


def _assert_clean(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_a_garbage_npz_is_reported_naming_the_file(tmp_path):
    bad = tmp_path / "attributions.npz"
    bad.write_bytes(b"<html>not an archive</html>")
    _assert_clean(invoke("modisco", "--attributions", bad, "--out", tmp_path / "o"), 1, str(bad))
    assert not (tmp_path / "o" / "report.html").exists()


@pytest.mark.parametrize("arrays, needles", [
    ({"maps": np.zeros((2, 4, 50))}, ["'attributions'"]),                                     # the field missing
    ({"attributions": np.zeros((2, 4, 50))}, ["'x'", "--fasta"]),                            # no sequences
    ({"attributions": np.zeros((2, 4, 50)), "x": _onehot(3, 50)}, ["'attributions'", "(3, 4, 50)"]),
    ({"attributions": np.zeros((2, 5, 50)), "x": np.zeros((2, 5, 50))}, ["'attributions'", "(N, 4, L)"]),
    ({"attributions": np.full((2, 4, 50), np.nan), "x": _onehot(2, 50)}, ["NaN"]),
    ({"attributions": np.ones((2, 4, 50)), "x": 2 * _onehot(2, 50)}, ["not one-hot"]),
])
def test_bad_npz_fields_are_reported_naming_the_file_and_field(tmp_path, arrays, needles):
    path = tmp_path / "attributions.npz"
    np.savez(path, **arrays)
    _assert_clean(invoke("modisco", "--attributions", path, "--out", tmp_path / "o"), 1, str(path), *needles)


def test_maps_without_patterns_give_a_clear_message(tmp_path):
    path = tmp_path / "attributions.npz"
    x = _onehot(40)
    np.savez(path, attributions=np.random.default_rng(1).standard_normal(x.shape).astype(np.float32), x=x)
    _assert_clean(invoke("modisco", "--attributions", path, "--out", tmp_path / "o"), 1, str(path), "no patterns",
                  "seqlets")
    np.savez(path, attributions=np.zeros_like(x), x=x)
    _assert_clean(invoke("modisco", "--attributions", path, "--out", tmp_path / "o"), 1, "no patterns", "is 0")
    with pytest.warns(RuntimeWarning, match="no patterns"):
        assert M.core_motifs_recovered(np.zeros_like(x), x) == (0, [])


def test_a_window_longer_than_the_sequences_is_a_usage_error(tmp_path):
    path = tmp_path / "attributions.npz"
    x = _onehot(2, 20)
    np.savez(path, attributions=x, x=x)
    _assert_clean(invoke("modisco", "--attributions", path, "--window", 15, "--out", tmp_path / "o"), 2, "--window",
                  "(20)")


# -- helpers --------------------------------------------------------------------------------------------------


def test_what_tf_modisco_is_given():
    x = _onehot(3, 30)
    grad = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    one_hot, hyp, what = M._prepare(grad, x, "gradient", False)
    assert one_hot.shape == hyp.shape == (3, 30, 4)  # channels last for modisco-lite
    np.testing.assert_array_equal(hyp, grad.transpose(0, 2, 1))  # the gradient is the hypothetical contribution
    assert "gradient x input" in what
    _, centred, _ = M._prepare(grad, x, "gradient", True)
    np.testing.assert_allclose(centred.sum(-1), 0, atol=1e-5)
    _, observed, what = M._prepare(grad, x, "contribution", False)
    np.testing.assert_array_equal(observed, (grad * x).transpose(0, 2, 1))  # maps x input: the observed base only
    with pytest.raises(ValueError, match="shape"):
        M._prepare(grad[:, :, :10], x, "gradient", False)
    assert M.maps_kind("saliency") == M.maps_kind("smoothgrad") == M.maps_kind(None) == "gradient"
    assert M.maps_kind("integrated_gradients") == M.maps_kind("expected_gradients") == "contribution"


def _matches(names, q_values, metacluster="positive"):
    q = np.asarray(q_values, dtype=float)
    return M.PatternMatches(pattern=f"{metacluster[:3]}_patterns.pattern_0", metacluster=metacluster, n_seqlets=30,
                            query=np.full((4, 5), 0.25), matrix_ids=tuple(f"MA{i}" for i in range(len(names))),
                            names=tuple(names), p_values=q / 10, q_values=q, offsets=np.zeros(len(q), int),
                            overlaps=np.full(len(q), 5), strands=np.array([0, 1] * (len(q) // 2) + [0] * (len(q) % 2)))


def test_recovered_motifs_counts_any_significant_hit_of_a_true_name():
    pos = _matches(["SP1", "KLF4", "YY1", "MAX"], [0.01, 0.001, 0.2, 0.04])
    neg = _matches(["SP1", "KLF4", "YY1", "MAX"], [1, 1, 0.001, 1], metacluster="negative")
    assert M.recovered_motifs([pos, neg], KOO2019_CORE_MOTIFS) == {"SP1", "MAX", "YY1"}
    assert M.recovered_motifs([pos, neg], KOO2019_CORE_MOTIFS, q=0.02) == {"SP1", "YY1"}
    assert M.recovered_motifs([pos, neg], KOO2019_CORE_MOTIFS, metacluster="positive") == {"SP1", "MAX"}
    assert M.recovered_motifs([pos], ["sp1", "Max"]) == set()  # JASPAR names are case-sensitive
    hits = pos.hits(q=0.05)
    assert [h["name"] for h in hits] == ["KLF4", "SP1", "MAX"] and hits[0]["strand"] == "-"
    assert len(pos.hits(top=2)) == 2


def test_benjamini_hochberg_per_pattern():
    from robustlab.genomics.interpret.filters import _benjamini_hochberg  # shared with match_motifs

    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(_benjamini_hochberg(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert (_benjamini_hochberg(np.array([0.9, 1.0])) <= 1).all()
