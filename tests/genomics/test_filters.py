"""Filters to motifs: PWMs from a hand-set filter that detects a planted motif, and Tomtom-like matching that
finds noisy, reverse-complemented and shifted copies of JASPAR motifs but not random matrices."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from Bio import motifs
from torch import nn

from robustlab.common.testing import shared_data
from robustlab.genomics.interpret.filters import (
    filter_pwms,
    first_layer_activations,
    fraction_matched,
    match_motifs,
    model_filter_pwms,
    trim_pwm,
)
from robustlab.genomics.models import CNNk

KOO_EDDY = ["Arid3a", "CEBPB", "FOSL1", "Gabpa", "MAFK", "MAX", "MEF2A", "NFYB", "SP1", "SRF", "STAT1", "YY1"]


@pytest.fixture(scope="module")
def jaspar():
    """JASPAR 2016 CORE vertebrates (519 motifs) read with Bio.motifs: names and (4, K) probability matrices."""
    path = shared_data("genomics", "jaspar") / "pfm_vertebrates.txt"
    with open(path) as handle:
        records = list(motifs.parse(handle, "jaspar"))
    names = [m.name for m in records]
    pwms = [np.array([m.counts[c] for c in "ACGT"], dtype=float) for m in records]
    return names, [p / p.sum(0) for p in pwms]


def _noisy(pwm, rng, concentration):
    """Each column redrawn from a Dirichlet centred on it: larger concentration, less noise."""
    return np.stack([rng.dirichlet(concentration * col + 0.5) for col in pwm.T], axis=1)


def _random_pwm(rng, width, alpha=1.0):
    return np.stack([rng.dirichlet(np.full(4, alpha)) for _ in range(width)], axis=1)


def _planted_sequences(pwm, n, length, rng):
    """Random one-hot DNA; every other sequence carries one instance sampled from ``pwm``."""
    idx = rng.integers(0, 4, (n, length))
    width = pwm.shape[1]
    starts = rng.integers(0, length - width + 1, n)
    for i in range(0, n, 2):
        idx[i, starts[i] : starts[i] + width] = [rng.choice(4, p=col) for col in pwm.T]
    return np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1).copy(), starts


def _detector(pwm, *, padding):
    """A one-filter first layer whose weights are the log-odds of ``pwm``: it fires on the motif."""
    width = pwm.shape[1]
    conv = nn.Conv1d(4, 2, width, padding=padding)
    with torch.no_grad():
        conv.weight[0] = torch.tensor(np.log2((pwm + 0.01) / 0.25), dtype=torch.float32)
        conv.weight[1] = 0.0  # a dead filter: never positive
        conv.bias[:] = torch.tensor([0.0, -1.0])
    return nn.Sequential(
        OrderedDict(conv1=conv, act1=nn.ReLU(), pool=nn.AdaptiveMaxPool1d(1), flat=nn.Flatten())
    )


def _column_correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# --- filter_pwms -------------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("padding", ["same", 0])
def test_filter_pwms_recover_a_planted_motif(jaspar, padding):
    names, pwms = jaspar
    sp1 = pwms[names.index("SP1")]
    rng = np.random.default_rng(0)
    x, _ = _planted_sequences(sp1, 400, 120, rng)
    model = _detector(sp1, padding=(sp1.shape[1] - 1) // 2 if padding == "same" else 0)
    acts = first_layer_activations(model, x)
    assert acts.shape == (400, 2, 120 if padding == "same" else 120 - sp1.shape[1] + 1)
    pwm, n_sites = filter_pwms(acts, x, window=sp1.shape[1])
    assert pwm.shape == (2, 4, sp1.shape[1])
    assert 150 <= n_sites[0] <= 300  # about one site per planted sequence, few in background
    assert n_sites[1] == 0 and np.isnan(pwm[1]).all()  # the dead filter is reported, not invented
    assert _column_correlation(pwm[0], sp1) > 0.95
    informative = 2 + np.sum(sp1 * np.log2(sp1 + 1e-9), axis=0) > 1.0
    assert (pwm[0].argmax(0) == sp1.argmax(0))[informative].all()
    np.testing.assert_allclose(pwm[0].sum(0), 1.0)
    # the streaming model version gives the same matrices, from the conv's own width and padding
    streamed, n_streamed = model_filter_pwms(model, torch.from_numpy(x), batch_size=64)
    np.testing.assert_array_equal(n_streamed, n_sites)
    np.testing.assert_allclose(streamed, pwm, equal_nan=True)


def test_filter_pwms_threshold_and_pseudocount():
    # two sequences, a width-2 filter that fires at two places with different strength
    x = np.eye(4, dtype=np.float32)[[[0, 1, 2, 3, 0, 1], [3, 3, 3, 3, 3, 3]]].transpose(0, 2, 1)
    acts = np.zeros((2, 1, 5), dtype=np.float32)  # no padding: 6 - 2 + 1 positions
    acts[0, 0, 0] = 1.0  # window "AC"
    acts[0, 0, 2] = 0.4  # window "GT": below half the maximum
    acts[1, 0, 4] = 0.6  # window "TT"
    pwm, n = filter_pwms(acts, x, window=2, threshold=0.5, pseudocount=0.0)
    assert n.tolist() == [2]
    np.testing.assert_allclose(pwm[0], [[0.5, 0.0], [0.0, 0.5], [0.0, 0.0], [0.5, 0.5]])
    pwm, n = filter_pwms(acts, x, window=2, threshold=0.3, pseudocount=1.0)
    assert n.tolist() == [3]
    np.testing.assert_allclose(pwm[0][:, 0], np.array([1, 0, 1, 1]) / 3 * 3 / 7 + 1 / 7)
    with pytest.raises(ValueError, match="offset"):
        filter_pwms(acts[:, :, :4], x, window=2)
    with pytest.raises(ValueError, match="threshold"):
        filter_pwms(acts, x, window=2, threshold=1.5)


def test_first_layer_activations_default_layer_and_model_untouched():
    torch.manual_seed(0)
    model = CNNk(3, pool=10, batch_norm=True, dropout=0.2).train()
    x = torch.from_numpy(
        np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (7, 200))]
    ).transpose(1, 2)
    acts = first_layer_activations(model, x, batch_size=3)
    assert acts.shape == (7, 30, 200) and acts.dtype == np.float32 and (acts >= 0).all()  # after the ReLU
    assert model.training and all(m.training for m in model.modules())  # modes restored
    assert not model.act1._forward_hooks  # hook removed
    model.eval()
    with torch.no_grad():
        expected = model.act1(model.bn1(model.conv1(x)))
    np.testing.assert_allclose(acts, expected.numpy(), rtol=1e-5, atol=1e-6)
    raw = first_layer_activations(model, x, layer=model.conv1)
    assert (raw < 0).any()  # before batch norm and ReLU
    pwms, n = model_filter_pwms(model, x)
    assert pwms.shape == (30, 4, 19) and n.shape == (30,)
    with pytest.raises(ValueError, match="before any pooling"):
        model_filter_pwms(model, x, layer=model.pool1)


def test_trim_pwm():
    flat = np.full((4, 3), 0.25)
    core = np.eye(4)[:, [0, 1, 2]] * 0.9 + 0.025
    pwm = np.concatenate([flat, flat, core, flat], axis=1)  # informative columns 6..8 of 12
    trimmed, start = trim_pwm(pwm, min_information=0.5, pad=3)
    assert start == 3 and trimmed.shape == (4, 9)
    trimmed, start = trim_pwm(pwm, pad=0)
    assert start == 6 and np.array_equal(trimmed, core)
    same, start = trim_pwm(np.full((4, 5), 0.25))
    assert start == 0 and same.shape == (4, 5)


# --- match_motifs ------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_noisy_reverse_complement_and_shifted_copies_are_matched(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(0)
    queries, sources = [], []
    for name in KOO_EDDY:
        pwm = pwms[names.index(name)]
        noisy = _noisy(pwm, rng, 30)
        queries += [noisy, noisy[::-1, ::-1].copy()]  # as is, and reverse complement
        cut = 1 if pwm.shape[1] >= 10 else 0  # Arid3a is 6 columns wide: shifted only
        core = _noisy(pwm, rng, 100)[:, cut : pwm.shape[1] - cut]  # truncated by one column at each end
        filt = _random_pwm(rng, 19, alpha=50.0)  # nearly uniform flanks of a width-19 filter
        start = int(rng.integers(0, 19 - core.shape[1] + 1))
        filt[:, start : start + core.shape[1]] = core
        queries.append(filt)
        sources += [name] * 3
    res = match_motifs(queries, pwms, names, true_names=KOO_EDDY)
    for k, name in enumerate(sources):  # the right motif is a significant hit of every query
        assert res.q_values[k, names.index(name)] < 0.05, (k, name, res.name[k])
    assert res.true_match.all() and fraction_matched(res) == 1.0
    assert res.significant.all()
    best_right = np.array([res.name[k] == name for k, name in enumerate(sources)])
    assert best_right.mean() >= 0.6  # the rest are close relatives (e.g. Gabpa / ELK4, MAFK / MAFG)
    assert res.strand[0::3].count("+") >= 8 and res.strand[1::3].count("-") >= 8  # palindromes go either way
    # reverse complements find the same motif with the same p-value as the original
    np.testing.assert_allclose(res.p_value[0::3], res.p_value[1::3])
    # ...and one query alone gives the same answer as in the batch
    alone = match_motifs([queries[2]], pwms, names)
    assert alone.name[0] == res.name[2] and alone.q_value[0] == pytest.approx(res.q_value[2])
    assert alone.true_match is None


@pytest.mark.realdata
def test_shifted_offset_is_reported_in_filter_coordinates(jaspar):
    names, pwms = jaspar
    srf = pwms[names.index("SRF")]
    filt = np.full((4, 25), 0.25)
    filt[:, 7 : 7 + srf.shape[1]] = srf
    res = match_motifs([filt], pwms, names)
    assert res.name[0] == "SRF" and res.offset[0] == 7 and res.overlap[0] == srf.shape[1]
    assert res.strand[0] in "+-" and res.score[0] == pytest.approx(srf.shape[1], rel=0.02)  # correlation ~1


@pytest.mark.realdata
def test_random_pwms_are_not_matched(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(1)
    queries = [_random_pwm(rng, 19) for _ in range(50)]
    res = match_motifs(queries, pwms, names, true_names=KOO_EDDY)
    assert res.significant.sum() <= 5  # best hit at q < 0.05: expected about 5% under the null
    assert res.true_match.sum() <= 1
    assert fraction_matched(res) <= 0.02


@pytest.mark.realdata
@pytest.mark.parametrize("similarity", ["pearson", "ed"])
def test_p_values_are_calibrated_against_column_shuffled_motifs(jaspar, similarity):
    """The null made explicit: motifs whose columns are drawn at random (seeded) from the database's columns."""
    _, pwms = jaspar
    pool = np.concatenate([np.concatenate([p, p[::-1, ::-1]], axis=1) for p in pwms], axis=1)
    rng = np.random.default_rng(2)
    shuffled = [pool[:, rng.integers(0, pool.shape[1], rng.integers(8, 16))] for _ in range(1500)]
    queries = [_random_pwm(rng, 15) for _ in range(3)]
    res = match_motifs(queries, shuffled, [str(i) for i in range(1500)], similarity=similarity, trim=None)
    p = res.p_values.ravel()
    for alpha in (0.01, 0.05, 0.2):
        assert (p <= alpha).mean() <= 1.3 * alpha + 0.003  # valid: not anti-conservative
        assert (p <= alpha).mean() >= 0.4 * alpha  # and not uselessly conservative


@pytest.mark.realdata
def test_ed_similarity_matches_noisy_copies(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(3)
    queries = [_noisy(pwms[names.index(n)], rng, 50) for n in KOO_EDDY]
    res = match_motifs(queries, pwms, names, true_names=KOO_EDDY, similarity="ed")
    assert res.true_match.mean() >= 0.9


@pytest.mark.realdata
def test_empty_filters_and_fraction(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(4)
    queries = np.stack(
        [
            _noisy(np.pad(pwms[names.index("YY1")], ((0, 0), (0, 7)), constant_values=0.25), rng, 200),
            np.full((4, 19), np.nan),  # never fired
            _random_pwm(rng, 19, alpha=50.0),
        ]
    )
    res = match_motifs(queries, pwms, names, true_names=["YY1"])
    assert res.empty.tolist() == [False, True, False]
    assert res.name[1] is None and res.index[1] == -1 and np.isnan(res.p_value[1]) and res.strand[1] == ""
    assert res.true_match.tolist() == [True, False, False]
    assert fraction_matched(res) == 0.5  # of the two non-empty filters
    with pytest.raises(ValueError, match="true_names"):
        fraction_matched(match_motifs(queries, pwms, names))


@pytest.mark.realdata
def test_planted_filter_end_to_end_matches_sp1(jaspar):
    names, pwms = jaspar
    sp1 = pwms[names.index("SP1")]
    rng = np.random.default_rng(5)
    x, _ = _planted_sequences(sp1, 300, 100, rng)
    model = _detector(np.pad(sp1, ((0, 0), (4, 4)), constant_values=0.25), padding=9)  # width 19, like a CNN
    pwm, _ = model_filter_pwms(model, x)
    res = match_motifs(pwm, pwms, names, true_names=["SP1"])
    assert res.empty.tolist() == [False, True]
    assert res.true_match[0] and res.name[0] in {"SP1", "SP2", "KLF5", "Klf4", "KLF16", "SP4"}


@pytest.mark.realdata
def test_match_errors(jaspar):
    names, pwms = jaspar
    q = [np.full((4, 10), 0.25)]
    with pytest.raises(ValueError, match="similarity"):
        match_motifs(q, pwms, names, similarity="kl")
    with pytest.raises(ValueError, match="one name per"):
        match_motifs(q, pwms, names[:-1])
    with pytest.raises(ValueError, match=r"shape \(4, K\)"):
        match_motifs(q, [np.ones((3, 5))], ["x"])
    with pytest.raises(ValueError, match="non-negative"):
        match_motifs([-np.ones((4, 5))], pwms, names)
