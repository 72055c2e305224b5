"""Latent geometry graphs: the graph construction against scikit-learn, each regime's loss against its formula on
hand-built batches, gradients, the frozen teacher, and the errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import kneighbors_graph
from torch import nn

from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.regimes.lgg import (
    GraphClassification,
    GraphDistillation,
    GraphSmoothness,
    knn_mask,
    label_signal,
    label_smoothness,
    latent_graph,
)

TOL = 1e-5  # float32 against scikit-learn's float64


def _features(n=12, shape=(3, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g)  # non-negative, as ReLU outputs


# -- the graph ---------------------------------------------------------------------------------------------------


def test_complete_graph_is_sklearn_cosine_without_diagonal():
    f = _features()
    ref = cosine_similarity(f.reshape(len(f), -1).numpy().astype(np.float64))
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(latent_graph(f).numpy(), ref, atol=TOL)


def test_negative_similarities_are_clipped():
    f = torch.tensor([[1.0, 0.0], [-1.0, 0.1], [0.5, 0.5]])
    ref = np.clip(cosine_similarity(f.numpy()), 0, None)
    np.fill_diagonal(ref, 0.0)
    w = latent_graph(f)
    np.testing.assert_allclose(w.numpy(), ref, atol=TOL)
    assert w[0, 1] == 0.0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_mask_is_sklearns_connectivity_symmetrized(k):
    f = _features(n=15, seed=k)
    flat = f.reshape(len(f), -1).numpy().astype(np.float64)
    # the k most similar = the k nearest in cosine distance; an edge kept by either end
    a = kneighbors_graph(flat, k, metric="cosine", mode="connectivity", include_self=False).toarray()
    ref = np.maximum(a, a.T)
    mask = knn_mask(latent_graph(f), k)
    np.testing.assert_array_equal(mask.numpy(), ref)
    w = latent_graph(f, k=k)
    full = cosine_similarity(flat)
    np.testing.assert_allclose(w.numpy(), full * ref, atol=TOL)
    assert (mask.sum(1) >= k).all()


def test_knn_with_k_at_least_n_minus_1_keeps_every_edge():
    f = _features(n=5)
    torch.testing.assert_close(latent_graph(f, k=4), latent_graph(f))
    torch.testing.assert_close(latent_graph(f, k=50), latent_graph(f))


def test_symmetric_normalization_by_hand():
    f = _features(n=6)
    w = cosine_similarity(f.reshape(6, -1).numpy().astype(np.float64))
    np.fill_diagonal(w, 0.0)
    d = w.sum(1) ** -0.5
    np.testing.assert_allclose(latent_graph(f, normalization="symmetric").numpy(), d[:, None] * w * d[None, :],
                               atol=TOL)


def test_isolated_node_keeps_a_zero_row_after_normalization():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    mask = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    a = latent_graph(f, mask=mask, normalization="symmetric")
    assert torch.isfinite(a).all() and a[2].abs().sum() == 0 and a[0, 1] == pytest.approx(1.0)


def test_label_smoothness_is_the_weight_between_classes():
    g = torch.Generator().manual_seed(3)
    w = torch.rand(7, 7, generator=g)
    w = (w + w.T) * (1 - torch.eye(7))
    y = torch.tensor([0, 1, 1, 2, 0, 2, 2])
    signal = label_signal(y, 3, "multiclass")
    between = sum(w[i, j] for i in range(7) for j in range(7) if y[i] != y[j])
    assert label_smoothness(w, signal).item() == pytest.approx(float(between), rel=1e-5)
    # m = 2: trace(Y^T L L Y) by hand with numpy
    lap = np.diag(w.sum(1).numpy()) - w.numpy()
    ref = np.trace(signal.numpy().T @ lap @ lap @ signal.numpy())
    assert label_smoothness(w, signal, power=2).item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: latent_graph(torch.randn(1, 3)), "at least 2 samples"),
    (lambda: latent_graph(torch.randn(4, 3), normalization="rw"), "normalization"),
    (lambda: latent_graph(torch.randn(4, 3), k=0), "k must be"),
    (lambda: latent_graph(torch.randn(4, 3), mask=torch.ones(3, 3)), r"mask must have shape \(4, 4\)"),
    (lambda: label_smoothness(torch.ones(3, 3), torch.ones(3, 1), power=0), "power"),
    (lambda: label_smoothness(torch.ones(3, 3), torch.ones(4, 1)), "4 rows"),
])
def test_graph_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# -- the regimes on hand-built batches ---------------------------------------------------------------------------


def _net(hidden=6, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 5), nn.ReLU(), nn.Linear(5, 3))


def _batch(n=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 4, generator=g), "y": torch.arange(n) % 3}


def _sym_norm(w):
    d = w.sum(1) ** -0.5
    return d[:, None] * w * d[None, :]


def _cos(h):
    w = np.clip(cosine_similarity(h.detach().double().numpy()), 0, None)
    np.fill_diagonal(w, 0.0)
    return w


def test_graph_distillation_loss_by_hand():
    teacher, student = _net(hidden=9, seed=1), _net(hidden=6, seed=2)
    batch = _batch()
    regime = GraphDistillation(teacher, layers=("1", "3"), weight=25.0)
    loss = regime(student, batch)
    x, y = batch["x"], batch["y"]
    total = 0.0
    for layer in (2, 4):  # outputs of "1" and "3"
        a_t = _sym_norm(_cos(teacher[:layer](x)))
        a_s = _sym_norm(_cos(student[:layer](x)))
        total += ((a_t - a_s) ** 2).sum()
    ce = nn.functional.cross_entropy(student(x), y).item()
    assert loss.item() == pytest.approx(ce + 25.0 * total / 2, rel=1e-4)
    assert regime.step_metrics["graph_loss"] == pytest.approx(total / 2, rel=1e-4)


def test_graph_distillation_student_uses_the_teachers_knn_mask():
    teacher, student = _net(hidden=9, seed=1), _net(hidden=6, seed=2)
    x = _batch(12)["x"]
    regime = GraphDistillation(teacher, layers="3", k=2, normalization="none", weight=1.0)
    (a_t, mask), = regime.teacher_graphs(x)
    ref_mask = knn_mask(latent_graph(teacher[:4](x)), 2)
    torch.testing.assert_close(mask, ref_mask)
    h = student[:4](x)
    expected = ((latent_graph(h) * ref_mask - a_t) ** 2).sum()
    assert regime.graph_loss([(a_t, mask)], [h]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_graph_distillation_teacher_is_frozen_and_gradients_reach_the_student():
    teacher, student = _net(hidden=9, seed=1).train(), _net(seed=2)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    regime = GraphDistillation(teacher, layers="1", weight=25.0)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert regime.networks == {"teacher": teacher} and not regime.trainable_networks
    loss = regime(student, _batch())
    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert student[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert teacher.training  # the teacher ran in eval mode and its mode was restored
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_state[k])


def test_graph_distillation_identical_networks_have_no_graph_loss():
    teacher = _net(seed=4)
    student = _net(seed=4)
    regime = GraphDistillation(teacher, layers=("1", "3"))
    regime(student, _batch())
    assert regime.step_metrics["graph_loss"] == pytest.approx(0.0, abs=1e-10)


def test_graph_distillation_pairs_differently_named_layers():
    teacher = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.ReLU(), nn.Linear(7, 3))
    regime = GraphDistillation(teacher, layers=("1",), teacher_layers=("2",))
    assert torch.isfinite(regime(_net(), _batch()))


def test_graph_classification_loss_by_hand():
    model = _net()
    batch = _batch(9)
    loss = GraphClassification(layers="3", weight=2.0)(model, batch)
    x, y = batch["x"], batch["y"]
    w = _cos(model[:4](x))
    between = sum(w[i, j] for i in range(9) for j in range(9) if y[i] != y[j])
    ce = nn.functional.cross_entropy(model(x), y).item()
    assert loss.item() == pytest.approx(ce + 2.0 * between / 81, rel=1e-4)


def test_graph_classification_is_zero_when_classes_are_orthogonal():
    # features that live on disjoint coordinates per class: no edge between classes
    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Identity()
            self.head = nn.Linear(3, 3)

        def forward(self, x):
            return self.head(self.emb(x))

    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x = nn.functional.one_hot(y, 3).float() * torch.linspace(1, 2, 6)[:, None]
    regime = GraphClassification(layers="emb")
    regime(Embed(), {"x": x, "y": y})
    assert regime.step_metrics["graph_loss"] == 0.0


def test_graph_classification_gradient_lowers_the_between_class_weight():
    torch.manual_seed(0)
    model = _net()
    batch = _batch(30)
    regime = GraphClassification(layers="3", weight=1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = None
    for _ in range(30):
        opt.zero_grad()
        regime.graph_loss([model[:4](batch["x"])], label_signal(batch["y"], 3, "multiclass")).backward()
        opt.step()
        with torch.no_grad():
            value = regime.graph_loss([model[:4](batch["x"])], label_signal(batch["y"], 3, "multiclass")).item()
        first = value if first is None else first
    assert value < first


def test_graph_smoothness_loss_by_hand():
    model = _net()
    batch = _batch(8)
    loss = GraphSmoothness(layers=("1", "3", "4"), weight=1e-2, power=2)(model, batch)
    x, y = batch["x"], batch["y"]
    onehot = np.eye(3)[y.numpy()]
    sigmas = []
    for layer in (2, 4, 5):
        w = _cos(model[:layer](x))
        lap = np.diag(w.sum(1)) - w
        sigmas.append(np.trace(onehot.T @ lap @ lap @ onehot))
    term = (abs(sigmas[1] - sigmas[0]) + abs(sigmas[2] - sigmas[1])) / 2
    ce = nn.functional.cross_entropy(model(x), y).item()
    assert loss.item() == pytest.approx(ce + 1e-2 * term, rel=1e-4)


@pytest.mark.parametrize("make", [
    lambda w: GraphDistillation(_net(hidden=9, seed=1), layers=("1", "3"), weight=w),
    lambda w: GraphClassification(layers="3", weight=w),
    lambda w: GraphSmoothness(layers=("1", "3"), weight=w),
])
def test_the_graph_term_sends_gradients_to_the_model(make):
    grads = []
    for w in (0.0, 1.0):
        model = _net()
        make(w)(model, _batch()).backward()
        grads.append(model[0].weight.grad.clone())
    assert grads[1].abs().sum() > 0
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize("task, y", [
    ("multilabel", torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)),
    ("regression", torch.tensor([[0.5], [-1.0], [2.0], [0.0]])),
])
def test_other_tasks_use_the_targets_as_signal(task, y):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, y.shape[1]))
    x = torch.randn(4, 4)
    regime = GraphClassification(layers="1", task=task)
    regime(model, {"x": x, "y": y})
    w = _cos(model[:2](x))
    yn = y.numpy()
    ref = sum(w[i, j] * ((yn[i] - yn[j]) ** 2).sum() / 2 for i in range(4) for j in range(4)) / 16
    assert regime.step_metrics["graph_loss"] == pytest.approx(ref, rel=1e-4, abs=1e-8)


def test_unlabeled_samples_are_left_out_of_the_label_graphs():
    model = _net()
    batch = _batch(8)
    y = batch["y"].clone()
    y[:3] = -1
    regime = GraphClassification(layers="3")
    regime(model, {"x": batch["x"], "y": y})
    ref = GraphClassification(layers="3")
    ref(model, {"x": batch["x"][3:], "y": y[3:]})
    assert regime.step_metrics["graph_loss"] == pytest.approx(ref.step_metrics["graph_loss"])


def test_regimes_train_through_the_engine_and_checkpoint():
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)
    for regime in (GraphDistillation(_net(hidden=9, seed=1), layers=("1", "3")),
                   GraphClassification(layers="3"), GraphSmoothness(layers=("1", "3"))):
        res = fit(_net(), regime, loader, epochs=2, progress=False, device="cpu")
        assert all(np.isfinite(r["train_loss"]) for r in res.history)
        buf = io.BytesIO()
        torch.save(regime.state_dict(), buf)
        buf.seek(0)
        regime.load_state_dict(torch.load(buf, weights_only=True))
        assert type(regime).__name__ in repr(regime) and regime.citation.startswith("Lassance")


@pytest.mark.parametrize("make", [
    lambda: GraphDistillation(_net(hidden=9, seed=1), layers=("1", "3")),
    lambda: GraphClassification(layers="3"),
    lambda: GraphSmoothness(layers=("1", "3")),
])
def test_a_batch_with_fewer_than_two_labelled_samples_gets_the_task_loss_only(make):
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset

    model, regime = _net(), make()
    batch = _batch(1)
    loss = regime(model, batch)
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(model(batch["x"]), batch["y"]).item())
    assert regime.step_metrics["graph_skipped"] == 1.0 and regime.step_metrics["graph_loss"] == 0.0
    regime(model, _batch(4))
    assert regime.step_metrics["graph_skipped"] == 0.0
    if not isinstance(regime, GraphDistillation):  # its graph spans every input, labelled or not
        y = _batch(4)["y"].clone()
        y[1:] = -1
        regime(model, {"x": _batch(4)["x"], "y": y})
        assert regime.step_metrics["graph_skipped"] == 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(33, 4, generator=g)  # 33 % 16 == 1: a last batch of one sample
    res = fit(_net(), regime, DataLoader(ArrayDataset(x, torch.arange(33) % 3), batch_size=16), epochs=1,
              progress=False, device="cpu")
    assert np.isfinite(res.last["train_loss"]) and res.last["train_graph_skipped"] == pytest.approx(1 / 33)


# -- errors -------------------------------------------------------------------------------------------------------


def test_a_bad_teacher_layer_is_named_at_construction():
    with pytest.raises(ConfigError, match="'9'"):
        GraphDistillation(_net(), layers="1", teacher_layers="9")


def test_a_bad_student_layer_is_named_at_the_call():
    regime = GraphClassification(layers="conv9")
    with pytest.raises(ConfigError, match="'conv9'"):
        regime(_net(), _batch())


def test_a_layer_that_does_not_run_is_named():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _net()
            self.unused = nn.ReLU()

        def forward(self, x):
            return self.body(x)

    model = WithSpare()
    with pytest.raises(ConfigError, match="'unused'.*did not run"):
        GraphClassification(layers="unused")(model, _batch())


@pytest.mark.parametrize("make, match", [
    (lambda: GraphDistillation(_net(), layers=("1", "3"), teacher_layers=("1",)), "pair one to one"),
    (lambda: GraphDistillation(_net(), layers="1", weight=-1.0), "weight must be a number >= 0, got -1.0"),
    (lambda: GraphDistillation(_net(), layers="1", power=0), "power"),
    (lambda: GraphDistillation(_net(), layers="1", normalization="rw"), "normalization"),
    (lambda: GraphClassification(layers=()), "layers must be"),
    (lambda: GraphClassification(layers="1", k=0), "k must be"),
    (lambda: GraphSmoothness(layers=("1",)), "at least two"),
    (lambda: GraphSmoothness(layers=("1", "1")), "twice"),
    (lambda: GraphSmoothness(layers=("1", "3"), power=1.5), "power"),
])
def test_bad_values_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_a_bad_student_layer_stops_fit_with_its_name_and_no_update():
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset

    loader = DataLoader(ArrayDataset(torch.randn(8, 4), torch.arange(8) % 3), batch_size=4)
    model = _net()
    before = model[0].weight.detach().clone()
    with pytest.raises(ConfigError, match="'7'"):
        fit(model, GraphSmoothness(layers=("1", "7")), loader, epochs=1, progress=False, device="cpu")
    torch.testing.assert_close(model[0].weight.detach(), before)


def test_layers_are_named_in_the_unwrapped_model():
    class Wrapper(nn.Module):  # as DistributedDataParallel: the network under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    model = _net()
    batch = _batch()
    wrapped = GraphClassification(layers="3")
    wrapped(Wrapper(model), batch)
    plain = GraphClassification(layers="3")
    plain(model, batch)
    assert wrapped.step_metrics == plain.step_metrics
