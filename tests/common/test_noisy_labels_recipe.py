"""robustlab.common.recipes.noisy_labels: the split, every method on a toy problem, and the table's claims, targets
and memorization check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from robustlab.common.errors import ConfigError
from robustlab.common.label_noise import transition_matrix
from robustlab.common.recipes.noisy_labels import (
    LABELS,
    METHODS,
    make_split,
    parse_noise,
    plot_methods,
    run_methods,
    summarize_methods,
)


def _pool(n=3000, k=3, seed=0):
    """Gaussian blobs, well separated: ``k`` classes in 2-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = np.array([[np.cos(2 * np.pi * c / k), np.sin(2 * np.pi * c / k)] for c in range(k)]) * 3
    return (centres[y] + rng.normal(size=(n, 2))).astype(np.float32), y


def test_parse_noise():
    assert parse_noise("symmetric:0.4") == ("symmetric", 0.4)
    for bad in ("symmetric", "pair:x"):
        with pytest.raises(ConfigError, match="kind:rate"):
            parse_noise(bad)


def test_make_split_keeps_the_trusted_labels_and_corrupts_the_rest():
    x, y = _pool(4000)
    tx, ty = _pool(500, seed=1)
    C = transition_matrix("symmetric", 0.4, 3)
    s = make_split(x, y, tx, ty, C=C, rate=0.4, n_train=3000, n_val=800, trusted=0.1, seed=5)
    assert len(s.trusted_y) == 300 and len(s.noisy_y) == 2700 and len(s.val_y) == 800 and len(s.test_y) == 500
    assert set(s.trusted_y.tolist()) == {0, 1, 2}
    assert s.noisy_mask.mean() == pytest.approx(0.4, abs=0.03)
    assert np.array_equal(s.noisy_mask, s.noisy_y != s.noisy_true)
    assert s.trusted_x.dtype == torch.float32 and s.num_classes == 3
    # the trusted samples are those of the pool with their own labels; the test set is untouched
    lookup = {tuple(np.round(row, 5)): label for row, label in zip(x, y)}
    assert all(lookup[tuple(np.round(r, 5))] == t for r, t in zip(s.trusted_x.numpy(), s.trusted_y))
    assert np.array_equal(s.test_y, ty)
    # the validation labels are noisy too (about 40 % wrong)
    val_true = np.array([lookup[tuple(np.round(r, 5))] for r in s.val_x.numpy()])
    assert (val_true != s.val_y).mean() == pytest.approx(0.4, abs=0.06)
    again = make_split(x, y, tx, ty, C=C, rate=0.4, n_train=3000, n_val=800, trusted=0.1, seed=5)
    assert np.array_equal(again.noisy_y, s.noisy_y) and torch.equal(again.trusted_x, s.trusted_x)


def test_make_split_errors():
    x, y = _pool(100)
    C = transition_matrix("symmetric", 0.2, 3)
    with pytest.raises(ConfigError, match="exceeds the 100 samples"):
        make_split(x, y, x, y, C=C, rate=0.2, n_train=90, n_val=20, trusted=0.1, seed=0)
    with pytest.raises(ConfigError, match="cannot hold every one of the 3 classes"):
        make_split(x, y, x, y, C=C, rate=0.2, n_train=20, n_val=10, trusted=0.05, seed=0)


@dataclasses.dataclass(frozen=True)
class _P:
    methods: tuple = METHODS
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    encoder_weight_decay: float = 1e-4
    n_shot: int = 5
    query_batch_size: int = 32
    noisy_batch_size: int = 64
    alpha: float = 0.6
    threshold: float = 0.5
    beta: float = 0.6
    cv_folds: int = 2
    coteaching_gradual: int = 2


def _make_model():
    net = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return net, "2"


@pytest.mark.slow
def test_every_method_runs_and_scores_on_a_toy_problem(one_thread, monkeypatch):
    import robustlab.common.regimes as regimes

    made = {"ldce": [], "correction": []}

    class SpyLDCE(regimes.LDCE):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made["ldce"].append(self)

    class SpyCorrection(regimes.LossCorrection):
        def __init__(self, C, **kwargs):
            super().__init__(C, **kwargs)
            made["correction"].append((kwargs, self))

    monkeypatch.setattr(regimes, "LDCE", SpyLDCE)
    monkeypatch.setattr(regimes, "LossCorrection", SpyCorrection)
    x, y = _pool(2400)
    tx, ty = _pool(600, seed=1)
    C = transition_matrix("symmetric", 0.4, 3)
    split = make_split(x, y, tx, ty, C=C, rate=0.4, n_train=2000, n_val=300, trusted=0.1, seed=0)
    m = run_methods(split, _make_model, _P(), seed=0)
    # the final classifiers read LDCE's confidences in the training set's order: trusted rows (1) then the noisy set
    (ldce,) = made["ldce"]
    finals = [(kw, r) for kw, r in made["correction"] if kw.get("mode") in ("hard", "soft")]
    assert [kw["mode"] for kw, _ in finals] == ["hard", "soft"]
    for _, r in finals:
        conf = r.state_dict()["confidences"].numpy()
        n_t = len(split.trusted_y)
        assert len(conf) == n_t + len(split.noisy_y) and (conf[:n_t] == 1).all()
        assert np.allclose(conf[n_t:], ldce.confidences.numpy())
    for method in METHODS:
        assert 0.0 <= m[f"{method}/final"] <= 1.0 and 0.0 <= m[f"{method}/best"] <= 1.0
        assert len(m[f"{method}/items_final"]) == 600 and set(m[f"{method}/items_final"]) <= {"0", "1"}
        assert len(m[f"{method}/val_curve"]) == 8
        right = np.array(list(m[f"{method}/items_final"]), dtype=int)
        assert right.mean() == pytest.approx(m[f"{method}/final"])
    # separable blobs: the corrected methods learn the classes despite 40 % wrong labels
    for method in ("glc", "ldce", "cleanlab"):
        assert m[f"{method}/final"] > 0.85, (method, m[f"{method}/final"])
    # both flagging methods find most wrong labels, and what they flag is mostly wrong (40 % base rate)
    for method in ("ldce", "cleanlab"):
        assert m[f"{method}/recall"] > 0.7 and m[f"{method}/precision"] > 0.6, method
    assert m["glc/C_error"] < 0.3  # GLC's C-hat from the trusted samples is close to the true matrix
    assert m["noise_rate"] == pytest.approx(split.noisy_mask.mean())
    # a rerun under the same seed gives the same numbers
    again = run_methods(split, _make_model, dataclasses.replace(_P(), methods=("ce",)), seed=0)
    assert again["ce/final"] == m["ce/final"] and again["ce/items_final"] == m["ce/items_final"]


def _record(seed, setting_noise, values, items=None):
    metrics = {f"{m}/{k}": v for (m, k), v in values.items()}
    extras = {}
    for (m, which), text in (items or {}).items():
        extras[f"{m}/items_{which}"] = text
    return {"index": seed, "spec": {"noise": setting_noise, "seed": seed}, "metrics": metrics, "extras": extras}


def test_summarize_methods_claims_targets_and_memorization(tmp_path):
    rng = np.random.default_rng(0)
    results = []
    for seed in range(5):
        ce = rng.random(400) < 0.70
        ldce = ce | (rng.random(400) < 0.5)  # LDCE right wherever CE is, and on about half of the rest
        cl = rng.random(400) < 0.95  # cleanlab better than LDCE
        items = {("ce", "final"): "".join("1" if v else "0" for v in ce),
                 ("ldce", "final"): "".join("1" if v else "0" for v in ldce),
                 ("cleanlab", "final"): "".join("1" if v else "0" for v in cl)}
        values = {("ce", "final"): ce.mean(), ("ce", "best"): ce.mean() + 0.1, ("ldce", "final"): ldce.mean(),
                  ("ldce", "best"): ldce.mean(), ("cleanlab", "final"): cl.mean(), ("cleanlab", "best"): cl.mean(),
                  ("glc", "final"): 0.5, ("glc", "best"): 0.6, ("ldce", "precision"): 0.8,
                  ("cleanlab", "precision"): 0.9, ("ldce", "recall"): 0.95, ("cleanlab", "recall"): 0.9}
        results.append(_record(seed, "symmetric:0.6", values, items))
    results.append({"index": 99, "spec": {"noise": "symmetric:0.6", "seed": 9}, "status": "diverged"})
    table = summarize_methods(results, setting=lambda s: f"sym {s['noise']}", targets=lambda s: ("glc", "cleanlab"))
    md = table.to_markdown()
    assert [r[1] for r in table.rows] == [LABELS[m] for m in ("ce", "glc", "cleanlab", "ldce")]
    assert all(r[2] == "5" for r in table.rows)
    notes = "\n".join(table.notes)
    assert "claim 'LDCE (hard) beats cross-entropy' (test accuracy, final epoch" in notes
    line = next(n for n in table.notes if "beats cross-entropy" in n and "final epoch" in n)
    assert line.endswith("-> reproduced.")
    line = next(n for n in table.notes if "beats cleanlab" in n and "final epoch" in n)
    assert line.endswith("-> not reproduced.")
    assert "drop 0.100): memorization shows" in notes  # CE: best 0.1 above final in every seed
    assert "target 'LDCE >= GLC (gold loss correction)'" in notes and "-> met." in notes
    assert "target 'LDCE flag precision >= cleanlab's': 0.800 vs 0.900 -> not met." in notes
    assert "target 'LDCE flag recall >= cleanlab's': 0.950 vs 0.900 -> met." in notes
    assert "| sym symmetric:0.6 | cross-entropy | 5 |" in md
    plot_methods(results, tmp_path / "p.png", setting=lambda s: s["noise"])
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_summarize_methods_with_balanced_columns():
    values = {("ce", "final"): 0.8, ("ce", "best"): 0.9, ("ce", "final_balanced"): 0.5, ("ce", "best_balanced"): 0.6}
    table = summarize_methods([_record(0, "x", values)], setting=lambda s: "s", balanced=True)
    assert "balanced acc (final)" in table.header
    row = table.rows[0]
    assert row[table.header.index("balanced acc (final)")] == "0.500"
    assert row[table.header.index("flag precision")] == "—"


def test_a_query_batch_larger_than_the_trusted_set_fails_before_any_training():
    x, y = _pool(400)
    split = make_split(x, y, x[:50], y[:50], C=transition_matrix("symmetric", 0.4, 3), rate=0.4, n_train=300,
                       n_val=50, trusted=0.05, seed=0)  # 15 trusted samples
    calls = []

    def make_model():
        calls.append(1)
        return _make_model()

    with pytest.raises(ConfigError, match="query_batch_size 32 exceeds the 15 trusted samples"):
        run_methods(split, make_model, _P(), seed=0)
    assert not calls
