"""Filters to motifs: PWMs from a hand-set filter that detects a planted motif, and matching with memelite's
Tomtom: JASPAR motifs (exact, reverse-complemented, estimated from sampled instances, inside filter flanks) find
themselves, random and flat matrices find nothing, and the p-values follow Tomtom's definition."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS, jaspar_motifs
from robustlab.genomics.interpret.filters import (
    filter_pwms,
    first_layer_activations,
    fraction_matched,
    match_motifs,
    model_filter_pwms,
    tomtom_pvalues,
    trim_pwm,
)
from robustlab.genomics.models import CNNk

CORE = list(KOO2019_CORE_MOTIFS)  # SP1, Gabpa, CEBPB, MAX, YY1


@pytest.fixture(scope="module")
def jaspar():
    """JASPAR 2016 CORE vertebrates (519 motifs, from pyjaspar): names and (4, K) probability matrices."""
    motifs = jaspar_motifs(release=2016)
    return [m.name for m in motifs], [m.pwm() for m in motifs]


def _sampled(pwm, n, rng):
    """The PWM estimated from ``n`` instances sampled from ``pwm`` (pseudocount 0.1), as from aligned sites."""
    sites = np.stack([rng.choice(4, size=n, p=col) for col in pwm.T], axis=1)  # (n, W)
    counts = np.stack([np.bincount(sites[:, j], minlength=4) for j in range(pwm.shape[1])], axis=1)
    return (counts + 0.1) / (n + 0.4)


def _rc(pwm):
    return np.ascontiguousarray(pwm[::-1, ::-1])


def _random_pwm(rng, width, alpha=1.0):
    return np.stack([rng.dirichlet(np.full(4, alpha)) for _ in range(width)], axis=1)


def _in_filter(core, rng, width=19):
    """``core`` at a random place in a ``width``-column filter with nearly uniform flanks."""
    filt = _random_pwm(rng, width, alpha=50.0)
    start = int(rng.integers(0, width - core.shape[1] + 1))
    filt[:, start : start + core.shape[1]] = core
    return filt


def _planted_sequences(pwm, n, length, rng):
    """Random one-hot DNA; every other sequence carries one instance sampled from ``pwm``."""
    idx = rng.integers(0, 4, (n, length))
    width = pwm.shape[1]
    starts = rng.integers(0, length - width + 1, n)
    for i in range(0, n, 2):
        idx[i, starts[i] : starts[i] + width] = [rng.choice(4, p=col) for col in pwm.T]
    return np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1).copy(), starts


def _log_odds(pwm, width=None):
    """Filter weights that score ``pwm``'s sites (log2 odds against a uniform background), centred in ``width``."""
    width = width or pwm.shape[1]
    left = (width - pwm.shape[1]) // 2
    padded = np.pad(pwm, ((0, 0), (left, width - pwm.shape[1] - left)), constant_values=0.25)
    return torch.tensor(np.log2((padded + 0.01) / 0.26), dtype=torch.float32)


def _detector(pwm, *, padding):
    """A two-filter first layer: the log-odds of ``pwm`` (it fires on the motif) and a dead filter."""
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


# --- match_motifs: ground truth ----------------------------------------------------------------------------------


def test_core_motifs_and_their_reverse_complements_are_their_own_top_hit(jaspar):
    names, pwms = jaspar
    queries = [q for name in CORE for q in (pwms[names.index(name)], _rc(pwms[names.index(name)]))]
    res = match_motifs(queries, pwms, names, true_names=CORE)
    expected = [name for name in CORE for _ in range(2)]
    assert list(res.name) == expected
    assert (res.q_value < 0.05).all() and res.significant.all() and res.true_match.all()
    assert res.strand == ("+", "-") * len(CORE)  # the copy aligns with the motif, the reverse one with its RC
    assert (res.offset == 0).all()  # in place: the motif's first column on the filter's first
    assert (res.e_value == res.p_value * len(names)).all()


def test_core_motifs_estimated_from_50_sites_are_matched(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(0)
    queries, sources = [], []
    for name in CORE:
        estimate = _sampled(pwms[names.index(name)], 50, rng)
        queries += [estimate, _rc(estimate)]
        sources += [names.index(name)] * 2
    rows, sources = np.arange(len(queries)), np.array(sources)
    # as motifs (whole matrices)
    res = match_motifs(queries, pwms, names, trim=None)
    assert (res.q_values[rows, sources] < 0.05).all()
    rank = (res.p_values < res.p_values[rows, sources][:, None]).sum(1) + 1
    assert (rank <= 3).all(), rank
    # The estimate's top hit is the motif itself for 8 or 10 of the 10 over 40 seeds; the misses are CEBPB,
    # whose estimate can sit closer to CEBPE (JASPAR's two C/EBP matrices are nearly the same).
    assert (res.index == sources).sum() >= 8, [res.name[k] for k in rows]
    # as first-layer filters: inside 19 columns with nearly uniform flanks, trimmed by default
    filters = np.stack([_in_filter(q, rng) for q in queries])
    res = match_motifs(filters, pwms, names, true_names=CORE)
    assert (res.q_values[rows, sources] < 0.05).all() and res.true_match.all()
    assert fraction_matched(res) == 1.0


def test_shifted_motif_offset_is_in_filter_coordinates(jaspar):
    names, pwms = jaspar
    srf = pwms[names.index("SRF")]
    for motif, strand in ((srf, "+"), (_rc(srf), "-")):
        filt = np.full((4, 25), 0.25)
        filt[:, 7 : 7 + srf.shape[1]] = motif
        for trim in (0.5, None):
            res = match_motifs([filt], pwms, names, trim=trim)
            assert res.name[0] == "SRF" and res.strand[0] == strand
            assert res.offset[0] == 7 and res.overlap[0] == srf.shape[1]


# --- match_motifs: no signal --------------------------------------------------------------------------------------


def test_flat_and_random_pwms_are_not_matched(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(1)
    flat = [np.full((4, 19), 0.25), _random_pwm(rng, 19, alpha=50.0)]
    res = match_motifs(flat, pwms, names, true_names=CORE)
    assert res.uninformative.all() and not res.significant.any() and not res.true_match.any()
    assert res.name == (None, None) and np.isnan(res.p_values).all()
    # Random 19-column matrices: with a true null, a best hit at q < 0.05 in about 5% of them (BH controls the
    # family-wise rate when no motif is related); memelite measured 8% (of 200 such matrices).
    queries = [_random_pwm(rng, 19) for _ in range(100)]
    res = match_motifs(queries, pwms, names, true_names=CORE)
    assert not res.uninformative.any()
    assert res.significant.mean() <= 0.15
    assert fraction_matched(res) <= 0.05


# --- match_motifs: a model's filters -------------------------------------------------------------------------------


def test_fraction_matched_of_a_model_with_core_motif_filters(jaspar):
    """First-layer filters set by hand: the five core motifs, a non-core motif, one that fires everywhere (its
    PWM is flat) and a dead one; sequences carry sampled instances of the six motifs."""
    names, pwms = jaspar
    motifs = CORE + ["SRF"]
    conv = nn.Conv1d(4, len(motifs) + 2, 19, padding=9)
    with torch.no_grad():
        for f, name in enumerate(motifs):
            conv.weight[f] = _log_odds(pwms[names.index(name)], 19)
        conv.weight[len(motifs) :] = 0.0
        conv.bias[:] = 0.0
        conv.bias[len(motifs)] = 1.0  # constant activation: every window, a flat PWM
        conv.bias[len(motifs) + 1] = -1.0  # never fires
    model = nn.Sequential(
        OrderedDict(conv1=conv, act1=nn.ReLU(), pool=nn.AdaptiveMaxPool1d(1), flat=nn.Flatten())
    )
    rng = np.random.default_rng(6)
    n, length = 600, 100
    idx = rng.integers(0, 4, (n, length))
    for i in range(n):
        pwm = pwms[names.index(motifs[i % len(motifs)])]
        start = int(rng.integers(0, length - pwm.shape[1] + 1))
        idx[i, start : start + pwm.shape[1]] = [rng.choice(4, p=col) for col in pwm.T]
    x = np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1).copy()
    filter_matrices, n_sites = model_filter_pwms(model, x)
    res = match_motifs(filter_matrices, pwms, names, true_names=CORE)
    n_core = len(CORE)
    assert res.empty.tolist() == [False] * (len(motifs) + 1) + [True] and n_sites[-1] == 0
    assert res.uninformative.tolist() == [False] * len(motifs) + [True, False]
    assert res.true_match.tolist() == [True] * n_core + [False] * 3
    assert res.significant[: len(motifs)].all()  # the non-core filter matches too, just not a core motif
    assert fraction_matched(res) == pytest.approx(n_core / (len(motifs) + 1))  # the dead filter left out


# --- match_motifs: Tomtom's p-values --------------------------------------------------------------------------------


def test_p_values_of_one_column_motifs_by_brute_force():
    """One-column query and targets: one alignment per strand, so Tomtom's p-value for a strand is the fraction
    of database columns (both strands) at least as close to the query, and the two strands merge as
    ``1 - (1 - min(p+, p-))**2``; q-values are Benjamini-Hochberg over the targets."""
    rng = np.random.default_rng(0)
    palette = np.array([[p, (1 - p) / 3, (1 - p) / 3, (1 - p) / 3] for p in (0.9, 0.7, 0.5, 0.3, 0.1)])
    palette = np.concatenate([palette, palette[:, [1, 0, 2, 3]]])  # and with C in front
    pick = rng.integers(0, len(palette), 40)
    targets = [palette[i][:, None] for i in pick]
    query = palette[0][:, None]
    background = np.concatenate([np.hstack(targets), np.hstack([_rc(t) for t in targets])], axis=1)
    distance = np.sqrt(((background - query) ** 2).sum(0))
    levels = np.unique(np.round(distance, 9))
    assert np.diff(levels).min() > 1.5 * np.ptp(distance) / 100  # precondition: one level per score bin
    res = match_motifs([query], targets, [str(i) for i in range(40)], trim=None, n_score_bins=100)
    p_strand = (distance[None, :] <= distance[:, None] + 1e-12).mean(1)  # per background column
    p_best = np.minimum(p_strand[:40], p_strand[40:])
    expected = 1 - (1 - p_best) ** 2
    np.testing.assert_allclose(res.p_values[0], expected, rtol=1e-9)
    m = len(expected)
    bh = [min(m * pj / (expected <= pj).sum() for pj in expected if pj >= pi) for pi in expected]
    np.testing.assert_allclose(res.q_values[0], np.minimum(bh, 1.0), rtol=1e-9)
    assert res.strand[0] == ("+" if distance[res.index[0]] <= distance[40 + res.index[0]] else "-")


def test_identical_target_has_the_smallest_p_and_strands_are_symmetric():
    rng = np.random.default_rng(3)
    database = [_random_pwm(rng, int(rng.integers(6, 13)), alpha=0.5) for _ in range(30)]
    names = [f"m{i}" for i in range(30)]
    for j in (4, 17):
        res = match_motifs([database[j], _rc(database[j])], database, names, trim=None)
        others = np.delete(res.p_values, j, axis=1)
        assert (res.p_values[:, j] < others.min(1)).all() and res.index.tolist() == [j, j]
        assert (res.overlap == database[j].shape[1]).all() and (res.offset == 0).all()
        assert res.strand == ("+", "-")
        # a query and its reverse complement get the same p-value against every target
        np.testing.assert_allclose(res.p_values[0], res.p_values[1], rtol=1e-9)


def test_tomtom_pvalues_is_the_comparison_of_match_motifs_without_column_merging():
    """The shared Tomtom call (match_motifs, modisco.match_patterns): memelite with n_target_bins=None, BH per
    query; no queries, no call."""
    from memelite import tomtom

    rng = np.random.default_rng(5)
    database = [_random_pwm(rng, int(rng.integers(6, 13)), alpha=0.5) for _ in range(30)]
    queries = [database[3], _random_pwm(rng, 8, alpha=0.5)]
    p, q, score, offset, overlap, strand = tomtom_pvalues(queries, database)
    assert p.shape == q.shape == score.shape == offset.shape == overlap.shape == strand.shape == (2, 30)
    assert offset.dtype == overlap.dtype == strand.dtype == np.int64
    ref = tomtom(queries, database, n_target_bins=None)
    np.testing.assert_allclose(p, ref[0], rtol=1e-12)
    np.testing.assert_array_equal(strand, ref[4])
    assert ((p <= q) & (q <= 1)).all() and np.argmin(p[0]) == 3
    res = match_motifs(queries, database, [f"m{i}" for i in range(30)], trim=None)
    np.testing.assert_allclose(res.p_values, p, rtol=1e-12)
    np.testing.assert_allclose(res.q_values, q, rtol=1e-12)
    empty = tomtom_pvalues([], database)
    assert all(a.shape == (0, 30) for a in empty)


# --- match_motifs: bookkeeping and errors --------------------------------------------------------------------------


def test_empty_and_uninformative_filters_and_fraction(jaspar):
    names, pwms = jaspar
    rng = np.random.default_rng(4)
    yy1 = pwms[names.index("YY1")]
    queries = np.stack(
        [
            _in_filter(_sampled(yy1, 200, rng), rng),
            np.full((4, 19), np.nan),  # never fired
            _random_pwm(rng, 19, alpha=50.0),  # fired, learned nothing
        ]
    )
    res = match_motifs(queries, pwms, names, true_names=["YY1"])
    assert res.empty.tolist() == [False, True, False]
    assert res.uninformative.tolist() == [False, False, True]
    for k in (1, 2):
        assert res.name[k] is None and res.index[k] == -1 and res.strand[k] == ""
        assert np.isnan(res.p_value[k]) and np.isnan(res.p_values[k]).all() and not res.significant[k]
    assert res.true_match.tolist() == [True, False, False]
    assert fraction_matched(res) == 0.5  # of the two non-empty filters
    alone = match_motifs(queries[:1], pwms, names)  # one filter alone: the same answer as in the batch
    assert alone.name[0] == res.name[0] and alone.p_value[0] == pytest.approx(res.p_value[0])
    assert alone.true_match is None
    with pytest.raises(ValueError, match="true_names"):
        fraction_matched(alone)
    nothing = match_motifs(queries[1:2], pwms, names, true_names=["YY1"])  # nothing to compare
    assert np.isnan(fraction_matched(nothing)) and nothing.name == (None,)


def test_match_errors(jaspar):
    names, pwms = jaspar
    q = [np.full((4, 10), 0.25)]
    with pytest.raises(ValueError, match="one name per"):
        match_motifs(q, pwms, names[:-1])
    with pytest.raises(ValueError, match=r"database_pwms\[0\].*shape \(4, K\)"):
        match_motifs(q, [np.ones((3, 5))], ["x"])
    with pytest.raises(ValueError, match=r"database_pwms\[1\].*non-negative"):
        match_motifs(q, [np.ones((4, 5)), -np.ones((4, 5))], ["x", "y"])
    with pytest.raises(ValueError, match=r"filter_pwms\[1\].*shape \(4, W\)"):
        match_motifs([q[0], np.ones((5, 10))], pwms, names)
    with pytest.raises(ValueError, match=r"filter_pwms.*\(F, 4, W\).*\(4, 10\)"):
        match_motifs(q[0], pwms, names)  # one matrix, not a batch
    with pytest.raises(ValueError, match=r"filter_pwms\[0\].*non-negative"):
        match_motifs([-np.ones((4, 5))], pwms, names)
    with pytest.raises(ValueError, match="q_threshold"):
        match_motifs(q, pwms, names, q_threshold=0.0)
    with pytest.raises(ValueError, match="trim"):
        match_motifs(q, pwms, names, trim=2.5)
    with pytest.raises(ValueError, match="trim_pad"):
        match_motifs(q, pwms, names, trim_pad=-1)
    with pytest.raises(ValueError, match="n_score_bins"):
        match_motifs(q, pwms, names, n_score_bins=0)


def test_tomtom_leaves_torch_on_its_thread_count(tmp_path):
    # numba's OpenMP layer (memelite) shares libgomp with torch; starting a team of 2 numba threads resets the
    # count torch reads, so a process pinned to one torch thread would compute on two after its first Tomtom call
    # (other sums, other figures). Run in a fresh process, where numba has not started yet.
    import os
    import subprocess
    import sys

    def threads_after(call: str) -> str:
        code = ("import numpy as np, torch\n"
                "from memelite import tomtom\n"
                "from robustlab.genomics.interpret.filters import tomtom_pvalues\n"
                "q = [np.random.default_rng(i).dirichlet(np.ones(4), size=8).T for i in range(4)]\n"
                "torch.set_num_threads(1)\n"
                "torch.nn.functional.conv1d(torch.ones(8, 4, 200), torch.ones(24, 4, 7)).sum().item()\n"  # torch at work
                f"assert torch.get_num_threads() == 1\n{call}\nprint(torch.get_num_threads())\n")
        env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()[-1]

    ours = threads_after("tomtom_pvalues(q, q)")
    bare = threads_after("tomtom(q, q, n_target_bins=None)")
    assert ours == "1"  # tomtom_pvalues restores torch's setting
    assert bare == "2"  # memelite alone leaves torch on numba's count: the reason for the guard
