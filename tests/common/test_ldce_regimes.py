"""LDCE (label confidences against trusted data) and LossCorrection (forward / hard / soft): the losses on
hand-built batches, training through the engine, checkpoint and resume, torchrun, and the errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import CheckpointError, ConfigError, DataError
from robustlab.common.label_noise import forward_loss, inverse_distances, label_distribution, symmetric_noise
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM, LDCE, LossCorrection

C3 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])


def _identity_embedding_model(seed=0):
    """Embedding = the input itself (layer "0"), then a linear head: features are known by hand."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Identity(), nn.Linear(2, 3))


def _trusted():
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])  # class 2 has fewer trusted samples than n_shot=3
    return torch.randn(8, 2, generator=g) + 3 * F.one_hot(y, 3)[:, :2], y


def _blobs(n_per_class, seed, *, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 4.0], [-3.5, -2.0], [3.5, -2.0]])
    y = torch.arange(3).repeat_interleave(n_per_class)
    return centres[y] + spread * torch.randn(len(y), 2, generator=g), y


# -- LDCE: one step by hand ---------------------------------------------------------------------------------------
def test_prototype_logits_are_the_label_distribution_before_the_softmax():
    g = torch.Generator().manual_seed(0)
    emb, support, labels = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g), torch.tensor(
        [0, 1, 2, 0, 1, 2, 2])
    s = inverse_distances(emb, support, labels, 3)
    torch.testing.assert_close(torch.softmax(s, 1), label_distribution(emb, support, labels, 3))
    d = ((emb[:, None] - support[None]) ** 2).mean(-1)  # by hand: mean over the class's shots, then 1 /
    torch.testing.assert_close(s[:, 2], 1 / d[:, [2, 5, 6]].mean(1))


def test_one_step_loss_confidences_and_attention_by_hand():
    tx, ty = _trusted()
    model = _identity_embedding_model()
    regime = LDCE(tx, ty, 10, features="0", n_shot=3, query_batch_size=4, alpha=0.6, threshold=0.5)
    previous = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.9, 0.3, 0.0, 0.0, 0.0])
    regime.load_state_dict({"confidences": previous, "visits": torch.zeros(10, dtype=torch.int64)})
    x = torch.tensor([[0.1, 0.2], [3.1, 0.0], [0.0, 2.9], [2.0, 2.0], [-1.0, 0.5], [0.5, 0.5]])
    y = torch.tensor([2, 0, 1, 0, 1, 2])
    index = torch.tensor([0, 1, 2, 3, 4, 5])  # stored values 1, 1, 0, 0, 1, 0.9
    clean = torch.tensor([1, 1, 1, 0, 0, 1])
    torch.manual_seed(7)
    loss = regime(model, {"x": x, "y": y, "index": index, "meta": {"clean": clean}})

    torch.manual_seed(7)  # the same draws again, by hand
    query, support = regime._draw()
    assert len(set(query.tolist())) == 4, "the query is drawn without replacement"
    assert ty[support].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2], "n_shot per class, class by class"
    assert len(set(support[:3].tolist())) == 3 and set(support[6:].tolist()) <= {6, 7}  # 2 of class 2: replaced
    sx, sy, qx, qy = tx[support], ty[support], tx[query], ty[query]
    share = label_distribution(x, sx, sy, 3)[torch.arange(6), y]
    conf = 0.6 * previous[index] + 0.4 * share
    torch.testing.assert_close(regime.confidences[index], conf)
    assert regime.confidences[6:].tolist() == previous[6:].tolist(), "other samples untouched"
    assert regime.visits.tolist() == [1] * 6 + [0] * 4
    attended = conf > 0.5
    assert attended.tolist() == [True, True, False, False, True, True]
    logits = model(torch.cat([sx, qx, x]))
    loss_c = F.cross_entropy(logits[:13], torch.cat([sy, qy]), reduction="sum")
    loss_n = (F.cross_entropy(logits[13:], y, reduction="none") * torch.where(attended, conf, 0.0)).sum()
    loss_sim = F.cross_entropy(inverse_distances(qx, sx, sy, 3), qy)
    torch.testing.assert_close(loss, (loss_c + loss_n) / (4 + 9 + 4) + loss_sim)
    assert regime.step_metrics == pytest.approx({"attended": 4 / 6, "label_precision": 3 / 4, "label_recall": 3 / 4})
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_noisy_samples_reach_the_loss_only_through_their_attention():
    """Confidences come from detached features: a noisy sample that is not attended gets no gradient."""
    tx, ty = _trusted()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 3))
    regime = LDCE(tx, ty, 4, features="0", n_shot=1, query_batch_size=8)
    x = torch.randn(4, 2, requires_grad=True)
    batch = {"x": x, "y": torch.tensor([0, 1, 2, 0]), "index": torch.arange(4)}
    regime(model, batch).backward()  # first visit: nothing attended
    assert regime.step_metrics["attended"] == 0.0 and x.grad.abs().sum() == 0
    assert model[0].weight.grad.abs().sum() > 0, "support and query samples train the encoder"
    regime.load_state_dict({"confidences": torch.tensor([1.0, 1.0, 0.0, 0.0]), "visits": torch.ones(4).long()})
    x.grad = None
    regime(model, batch).backward()
    attended = regime.confidences > 0.5
    assert attended.tolist() == [True, True, False, False]
    assert (x.grad[:2].abs().sum(1) > 0).all() and (x.grad[2:] == 0).all()


def test_a_sample_needs_two_visits_to_be_attended_from_zero():
    """Stored confidences start at 0 (the authors' code): with alpha 0.6 a share of 1 gives 0.4, then 0.64."""
    tx, ty = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), torch.tensor([0, 1, 2])
    model = _identity_embedding_model()
    regime = LDCE(tx, ty, 3, features="0", n_shot=1, query_batch_size=2)
    batch = {"x": tx, "y": ty, "index": torch.arange(3)}  # each sample on its class's only support sample: share 1
    regime(model, batch)
    torch.testing.assert_close(regime.confidences, torch.full((3,), 0.4))
    assert regime.step_metrics["attended"] == 0.0
    assert regime.find_noisy().all() and not regime.detected_clean().any()
    regime(model, batch)
    torch.testing.assert_close(regime.confidences, torch.full((3,), 0.64))
    assert regime.step_metrics["attended"] == 1.0 and regime.detected_clean().all()
    assert regime.visits.tolist() == [2, 2, 2]
    assert isinstance(regime.find_noisy(), np.ndarray) and regime.find_noisy().dtype == bool


def test_distances_stay_float32_under_mixed_precision():
    tx, ty = _trusted()
    batch = {"x": torch.randn(5, 2), "y": torch.tensor([0, 1, 2, 0, 1]), "index": torch.arange(5)}
    out = []
    for amp in (False, True):
        regime = LDCE(tx, ty, 5, features="0", n_shot=2, query_batch_size=4)
        torch.manual_seed(3)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = regime(_identity_embedding_model(), batch)
        out.append((regime.confidences, loss))
    assert out[1][0].dtype == torch.float32 and torch.equal(out[0][0], out[1][0])
    torch.testing.assert_close(out[1][1].float(), out[0][1], rtol=0.02, atol=0.0)  # only the head runs in bf16


# -- LDCE through the engine -----------------------------------------------------------------------------------
def _noisy_set():
    x, y = _blobs(200, seed=0)
    noisy, is_noisy = symmetric_noise(y.numpy(), 0.4, 3, seed=0)
    tx, ty = _blobs(10, seed=1)
    return x, torch.as_tensor(noisy), torch.as_tensor(is_noisy), tx, ty


def _ldce_fit(out_dir=None, epochs=4, resume=False, regime=None):
    x, noisy, is_noisy, tx, ty = _noisy_set()
    ds = ArrayDataset(x, noisy, meta={"clean": (~is_noisy).long()})
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=50, shuffle=True)
    model = MLP(2, 3, hidden=(32, 32))
    regime = regime or LDCE(tx, ty, len(x), features="4", n_shot=5, query_batch_size=15)
    res = fit(model, regime, loader, epochs=epochs, out_dir=out_dir, resume=resume, progress=False, device="cpu")
    return regime, res, is_noisy


def test_ldce_separates_clean_from_noisy_labels_through_fit():
    regime, res, is_noisy = _ldce_fit(epochs=4)
    conf = regime.confidences.numpy()
    auc = roc_auc_score((~is_noisy).numpy(), conf)
    assert auc > 0.8, auc
    assert conf[~is_noisy.numpy()].mean() > 0.5 > conf[is_noisy.numpy()].mean()
    assert regime.visits.tolist() == [4] * len(conf)
    last = res.history[-1]
    assert {"train_attended", "train_label_precision", "train_label_recall"} <= set(last)
    assert last["train_label_precision"] > 0.9 and last["train_label_recall"] > 0.8, last
    # the epoch log has the ratio of the epoch's counts (the authors' label precision)
    flagged = regime.find_noisy()
    assert (flagged == (conf < 0.5)).all() and is_noisy.numpy()[flagged].mean() > 0.8


def test_resume_gives_the_confidences_of_an_uninterrupted_run(tmp_path):
    whole, _, _ = _ldce_fit(tmp_path / "whole", epochs=3)
    _ldce_fit(tmp_path / "parts", epochs=2)
    resumed, res, _ = _ldce_fit(tmp_path / "parts", epochs=3, resume=True)
    assert len(res.history) == 3
    assert torch.equal(resumed.confidences, whole.confidences)
    assert torch.equal(resumed.visits, whole.visits) and resumed.visits.max() == 3
    saved = load_checkpoint(tmp_path / "parts" / "last.pt")["regime"]  # loads with weights_only
    assert torch.equal(saved["confidences"], whole.confidences)


def test_state_round_trip_weights_only_and_shape_check():
    tx, ty = _trusted()
    regime = LDCE(tx, ty, 5, features="0", n_shot=1, query_batch_size=2)
    regime(_identity_embedding_model(), {"x": tx[:3], "y": ty[:3], "index": torch.tensor([4, 0, 2])})
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    other = LDCE(tx, ty, 5, features="0", n_shot=1, query_batch_size=2)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.confidences, regime.confidences) and torch.equal(other.visits, regime.visits)
    assert other.visits.tolist() == [1, 0, 1, 0, 1]
    with pytest.raises(CheckpointError, match=r"'confidences' must be a tensor of shape \(6,\)"):
        LDCE(tx, ty, 6, features="0", query_batch_size=2).load_state_dict(regime.state_dict())
    with pytest.raises(CheckpointError, match="'visits'"):
        other.load_state_dict({"confidences": torch.zeros(5)})


_DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP
    from robustlab.common.regimes import LDCE

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (64,), generator=g)
    x = torch.randn(64, 2, generator=g) + 3 * y[:, None]
    tx = torch.randn(12, 2, generator=g) + 3 * (torch.arange(12) % 3)[:, None]
    regime = LDCE(tx, torch.arange(12) % 3, 64, features="2", n_shot=2, query_batch_size=6)
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)
    fit(MLP(2, 3, hidden=(8,)), regime, loader, epochs=2, out_dir=sys.argv[1], progress=False, device="cpu")
    torch.save(regime.state_dict(), sys.argv[1] + "/state" + os.environ["RANK"] + ".pt")
    """
)


@pytest.mark.slow
def test_under_torchrun_every_process_stores_every_sample(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path / "two")],
        env=env, timeout=240, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    s0, s1 = (torch.load(tmp_path / "two" / f"state{r}.pt", weights_only=True) for r in (0, 1))
    assert s0["visits"].tolist() == [2] * 64, "each process sees half of each batch; the gather stores them all"
    assert torch.equal(s0["confidences"], s1["confidences"]) and torch.equal(s0["visits"], s1["visits"])
    assert (s0["confidences"] > 0).all()
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    assert "train_attended" in json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])


# -- LDCE errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"task": "regression"}, ConfigError, "task must be 'multiclass'"),
    ({"num_classes": 4}, ConfigError, r"class 3 has no trusted sample"),
    ({"num_classes": 1}, ConfigError, "num_classes must be >= 2"),
    ({"n_shot": 0}, ConfigError, "n_shot must be >= 1, got 0"),
    ({"query_batch_size": 9}, ConfigError, r"query_batch_size must be in \[1, 8\].*got 9"),
    ({"query_batch_size": 0}, ConfigError, "query_batch_size"),
    ({"alpha": 1.5}, ConfigError, r"alpha must be in \[0, 1\], got 1.5"),
    ({"threshold": -0.1}, ConfigError, "threshold must be in"),
    ({"num_samples": 0}, ConfigError, "num_samples must be >= 1, got 0"),
    ({"features": ""}, ConfigError, "features must be the name of the embedding layer"),
])
def test_ldce_refuses_bad_parameters(kwargs, error, match):
    tx, ty = _trusted()
    args = {"num_samples": 10, "features": "0", "query_batch_size": 4, **kwargs}
    with pytest.raises(error, match=match):
        LDCE(tx, ty, **args)


def test_ldce_refuses_bad_trusted_data():
    tx, ty = _trusted()
    with pytest.raises(DataError, match="trusted_x has 8 samples but trusted_y has 7"):
        LDCE(tx, ty[:7], 10, features="0")
    with pytest.raises(DataError, match="integer labels"):
        LDCE(tx, ty.float(), 10, features="0")
    with pytest.raises(DataError, match=r"negative label -1 at position 2"):
        LDCE(tx, torch.tensor([0, 1, -1, 1, 2, 0, 1, 2]), 10, features="0")
    with pytest.raises(DataError, match=r"label 5 at position 1, outside \[0, 3\)"):
        LDCE(tx, torch.tensor([0, 5, 2, 1, 2, 0, 1, 2]), 10, features="0", num_classes=3)
    with pytest.raises(ConfigError, match=r"class 1 has no trusted sample \(classes without any: \[1\]\)"):
        LDCE(tx, torch.tensor([0, 0, 2, 2, 2, 0, 0, 2]), 10, features="0", num_classes=3, query_batch_size=4)


def test_ldce_refuses_bad_batches_and_layers():
    tx, ty = _trusted()
    model = _identity_embedding_model()
    regime = LDCE(tx, ty, 10, features="0", query_batch_size=4)
    batch = {"x": tx[:3], "y": ty[:3], "index": torch.arange(3)}
    with pytest.raises(DataError, match="batch key 'index'"):
        regime(model, {"x": tx[:3], "y": ty[:3]})
    with pytest.raises(DataError, match=r"batch 'index' holds 10 at position 1, outside \[0, 10\)"):
        regime(model, {**batch, "index": torch.tensor([0, 10, 2])})
    with pytest.raises(DataError, match=r"batch 'y' holds 3 at position 0"):
        regime(model, {**batch, "y": torch.tensor([3, 0, 0])})
    with pytest.raises(DataError, match="model outputs of shape \\(N, 3\\)"):
        regime(nn.Sequential(nn.Identity(), nn.Linear(2, 4)), batch)
    with pytest.raises(DataError, match="float64 but trusted_x is torch.int64"):
        LDCE(torch.zeros(8, 2, dtype=torch.int64), ty, 10, features="0", query_batch_size=4)(
            model, {**batch, "x": tx[:3].double()})
    with pytest.raises(ConfigError, match="no submodule 'head'"):
        LDCE(tx, ty, 10, features="head", query_batch_size=4)(model, batch)
    with pytest.raises(ConfigError, match="no submodule 'embedding'"):  # found by fit's set-up, before training
        fit(_identity_embedding_model(), LDCE(tx, ty, 10, features="embedding", query_batch_size=4),
            DataLoader(ArrayDataset(tx, ty), batch_size=4), progress=False)


# -- LossCorrection --------------------------------------------------------------------------------------------
def _lc_batch():
    g = torch.Generator().manual_seed(2)
    return {"x": torch.randn(6, 2, generator=g), "y": torch.tensor([0, 1, 2, 2, 1, 0]),
            "index": torch.tensor([5, 0, 3, 1, 4, 2]), "meta": {"trusted": torch.tensor([1, 0, 0, 0, 1, 0])}}


def _parts(model, batch):
    logits = model(batch["x"])
    return (F.cross_entropy(logits, batch["y"], reduction="none"),
            forward_loss(logits, batch["y"], C3, reduction="none"))


def test_identity_corruption_without_trusted_flag_is_erm():
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(8,))
    batch = {k: v for k, v in _lc_batch().items() if k != "meta"}
    torch.testing.assert_close(LossCorrection(torch.eye(3))(model, batch), ERM()(model, batch))
    conf = torch.rand(6)
    for mode in ("hard", "soft"):  # C = I: the corrected loss is the cross entropy, whatever the confidences
        torch.testing.assert_close(LossCorrection(np.eye(3), confidences=conf, mode=mode)(model, batch),
                                   ERM()(model, batch))


def test_forward_mode_is_glc_on_hand_built_batch():
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(8,))
    batch = _lc_batch()
    ce, fw = _parts(model, batch)
    trusted = batch["meta"]["trusted"].bool()
    expected = (ce[trusted].sum() + fw[~trusted].sum()) / 6  # the authors' train_glc
    regime = LossCorrection(C3)
    torch.testing.assert_close(regime(model, batch), expected)
    assert regime.step_metrics == {}


def test_hard_mode_on_hand_built_batch():
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(8,))
    batch = _lc_batch()
    ce, fw = _parts(model, batch)
    # confidences by training-set index; the batch reads rows 5, 0, 3, 1, 4, 2
    conf = torch.tensor([0.9, 0.2, 0.1, 0.5, 0.0, 1.0])
    beta = 0.6
    expected = (ce[0]                                   # trusted (its confidence 1.0 is not used)
                + beta * fw[1] + (1 - beta) * ce[1]     # index 0: 0.9 >= 0.5, detected
                + beta * fw[2] + (1 - beta) * ce[2]     # index 3: 0.5 >= 0.5, detected (the authors' >=)
                + fw[3]                                 # index 1: 0.2, untrusted
                + ce[4]                                 # trusted
                + fw[5]) / 6                            # index 2: 0.1, untrusted
    regime = LossCorrection(C3, confidences=conf, mode="hard", beta=beta)
    torch.testing.assert_close(regime(model, batch), expected)
    assert regime.step_metrics == {"detected": 0.5}  # 2 of the 4 untrusted samples
    extreme = LossCorrection(C3, confidences=conf, mode="hard", beta=1.0)(model, batch)
    torch.testing.assert_close(extreme, LossCorrection(C3)(model, batch))  # beta 1: detected get forward only


def test_soft_mode_on_hand_built_batch():
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(8,))
    batch = _lc_batch()
    ce, fw = _parts(model, batch)
    conf = torch.tensor([0.9, 0.2, 0.1, 0.5, 0.0, 0.7])
    c = conf[batch["index"]]
    trusted = batch["meta"]["trusted"].bool()
    expected = torch.where(trusted, ce, c * ce + (1 - c) * fw).sum() / 6  # the authors' train_cdd_soft
    regime = LossCorrection(C3, confidences=conf.numpy(), mode="soft")
    torch.testing.assert_close(regime(model, batch), expected)
    assert regime.step_metrics == {"detected": 0.5}
    ones = LossCorrection(C3, confidences=torch.ones(6), mode="soft")(model, batch)
    torch.testing.assert_close(ones, ce.mean())  # confidence 1 everywhere: cross entropy
    zeros = LossCorrection(C3, confidences=torch.zeros(6), mode="soft")(model, batch)
    torch.testing.assert_close(zeros, LossCorrection(C3)(model, batch))  # confidence 0: forward / GLC


def test_the_corrected_loss_stays_float32_under_mixed_precision():
    batch = {**_lc_batch(), "x": torch.randn(6, 3, generator=torch.Generator().manual_seed(5))}  # logits
    regime = LossCorrection(C3, confidences=torch.rand(6), mode="soft")
    plain = regime(nn.Identity(), batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = regime(nn.Identity(), batch)
    assert mixed.dtype == torch.float32 and torch.equal(plain, mixed)


def test_loss_correction_trains_through_fit_and_checkpoints(tmp_path):
    x, y = _blobs(40, seed=4)
    noisy, _ = symmetric_noise(y.numpy(), 0.3, 3, seed=1)
    trusted = (torch.arange(120) % 6 == 0).long()
    labels = torch.where(trusted.bool(), y, torch.as_tensor(noisy))
    conf = torch.rand(120, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(ArrayDataset(x, labels, meta={"trusted": trusted}), batch_size=20, shuffle=True)
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(16,))
    C = torch.full((3, 3), 0.1) + 0.7 * torch.eye(3)
    regime = LossCorrection(C, confidences=conf, mode="hard")
    res = fit(model, regime, loader, val_loader=loader, epochs=3, out_dir=tmp_path, progress=False)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert 0.2 < res.history[-1]["train_detected"] < 0.8
    saved = load_checkpoint(tmp_path / "last.pt")["regime"]
    assert torch.equal(saved["C"], C) and torch.equal(saved["confidences"], conf)
    other = LossCorrection(torch.eye(3), confidences=torch.zeros(120), mode="soft")
    other.load_state_dict(saved)
    assert torch.equal(other.C, C) and torch.equal(other.confidences, conf)


def test_loss_correction_state_errors():
    regime = LossCorrection(C3)
    assert set(regime.state_dict()) == {"C"} and regime.confidences is None
    with pytest.raises(CheckpointError, match=r"'C' must be a tensor of shape \(3, 3\), got \(2, 2\)"):
        regime.load_state_dict({"C": torch.eye(2)})
    with pytest.raises(CheckpointError, match="takes none, the checkpoint holds shape"):
        regime.load_state_dict({"C": torch.eye(3), "confidences": torch.zeros(4)})
    with pytest.raises(CheckpointError, match=r"takes shape \(4,\), the checkpoint holds none"):
        LossCorrection(C3, confidences=torch.zeros(4), mode="soft").load_state_dict({"C": torch.eye(3)})


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((C3,), {"mode": "backward"}, ConfigError, r"mode must be one of \('forward', 'hard', 'soft'\)"),
    ((C3,), {"mode": "hard"}, ConfigError, "mode='hard' needs confidences"),
    ((C3,), {"mode": "soft"}, ConfigError, "mode='soft' needs confidences"),
    ((C3,), {"confidences": torch.ones(3)}, ConfigError, "mode='forward' uses no confidences"),
    ((C3,), {"beta": 2.0}, ConfigError, r"beta must be in \[0, 1\], got 2.0"),
    ((C3,), {"threshold": 1.5}, ConfigError, "threshold must be in"),
    ((C3,), {"task": "multilabel"}, ConfigError, "task must be 'multiclass'"),
    ((C3,), {"mode": "hard", "confidences": torch.tensor([0.5, 1.2])}, DataError,
     r"confidences must lie in \[0, 1\]; position 1 holds 1.2"),
    ((C3,), {"mode": "hard", "confidences": torch.tensor([0.5, float("nan")])}, DataError, "position 1 holds nan"),
    ((C3,), {"mode": "soft", "confidences": torch.ones(2, 2)}, DataError, "1-D array"),
    (([[0.5, 0.4], [0.0, 1.0]],), {}, DataError, "row 0 of C sums to 0.9"),
    ((torch.ones(2, 3) / 3,), {}, DataError, "square"),
])
def test_loss_correction_refuses_bad_parameters(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        LossCorrection(*args, **kwargs)


def test_loss_correction_refuses_bad_batches():
    torch.manual_seed(0)
    model = MLP(2, 3, hidden=(8,))
    batch = _lc_batch()
    with pytest.raises(DataError, match=r"outputs \(6, 3\) but C is \(2, 2\)"):
        LossCorrection(torch.eye(2))(model, batch)
    with pytest.raises(DataError, match=r"batch 'y' holds -1 at position 1"):
        LossCorrection(C3)(model, {**batch, "y": torch.tensor([0, -1, 2, 2, 1, 0])})
    hard = LossCorrection(C3, confidences=torch.ones(6), mode="hard")
    with pytest.raises(DataError, match=r"LossCorrection\(mode='hard'\).*batch key 'index'"):
        hard(model, {k: v for k, v in batch.items() if k != "index"})
    with pytest.raises(DataError, match=r"batch 'index' holds 6 at position 0, outside \[0, 6\)"):
        hard(model, {**batch, "index": torch.tensor([6, 0, 1, 2, 3, 4])})
