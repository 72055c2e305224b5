"""Noisy-label experiments shared by the domains' recipes: one split, every method, one table.

The protocol of Liu, Xu, Zhang & Geng (IJCAI 2020), from the authors' code, GitHub ``palm-ml/PDLE`` at commit
e325db61244bb2efd8d3d6341c5265f511d182b0 (``PDLE/run.py`` runs ``detect.py``, ``genC.py`` and ``main.py``),
written once for any data set and network (robustlab-vision runs it on Fashion-MNIST/MNIST, robustlab-ecg on
MIT-BIH beats):

1. :func:`make_split` (``utils.prepare_data``): a trusted subset that keeps its true labels (every class
   present) and a noisy rest whose labels go through a transition matrix; a validation set corrupted the same way
   (noisy like the training set); a clean test set.
2. :func:`run_methods`, per split:

   - ``genC.py``: a network trained with cross-entropy on the noisy set only; its mean softmax over the trusted
     samples of each true class is GLC's corruption matrix
     (:func:`~robustlab.common.label_noise.estimate_corruption`), its softmax over the noisy set gives Patrini's
     anchor estimate (:func:`~robustlab.common.label_noise.anchor_transition_matrix`);
   - ``detect.py``: the :class:`~robustlab.common.regimes.LDCE` regime trains an encoder (the classifier's
     architecture; its embedding layer named by the model factory) with trusted query batches and support sets and
     keeps a running confidence per noisy sample; ``>= threshold`` is "detected clean";
   - ``main.py``, every classifier on trusted + noisy: ``ce`` (cross-entropy on the labels as given), ``forward``
     (forward correction with the anchor estimate), ``glc``, ``ldce`` (``train_cdd_hard``), ``ldce_soft``
     (``train_cdd_soft``), plus ``coteaching`` (Han et al. 2018, forget rate = the noise rate) and ``cleanlab``
     (``cleanlab.filter.find_label_issues`` on k-fold out-of-sample probabilities, then cross-entropy without the
     flagged samples; trusted samples are never removed).

   The authors' optimizers: SGD with momentum 0.9 (classifiers: nesterov, weight decay 5e-4, learning rate x0.2
   at 60/80/90 % of the epochs; encoder: weight decay 1e-4, x0.1 at 60 %).
3. :func:`summarize_methods`: one row per setting and method (clean test accuracy at the final epoch, as the
   authors report, and at the epoch of best accuracy on the noisy validation set; precision/recall of the flagged
   set against the true noise mask), with paired claims (:func:`robustlab.common.metrics.paired_claim`, by seed
   and test item, Bonferroni over the claims of a setting), the memorization check of cross-entropy and the
   targets.

A profile (any object) gives the hyperparameters by attribute: ``epochs``, ``batch_size``, ``lr``,
``weight_decay``, ``encoder_weight_decay``, ``n_shot``, ``query_batch_size``, ``noisy_batch_size``, ``alpha``,
``threshold``, ``beta``, ``cv_folds``, ``coteaching_gradual``, ``methods``.

Torch, numpy and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded
from robustlab.common.recipes.base import Paper, Table, mean_std_cell, seed_everything

__all__ = ["METHODS", "LABELS", "LIU2020", "NoisyLabelTraining", "NoisySplit", "make_split", "run_methods", "summarize_methods",
           "plot_methods", "parse_noise"]

METHODS = ("ce", "forward", "glc", "coteaching", "cleanlab", "ldce", "ldce_soft")
"""Every method :func:`run_methods` knows, in table order."""
LABELS = {
    "ce": "cross-entropy",
    "forward": "forward correction (anchor estimate)",
    "glc": "GLC (gold loss correction)",
    "coteaching": "Co-teaching",
    "cleanlab": "cleanlab filter + retrain",
    "ldce": "LDCE (hard)",
    "ldce_soft": "LDCE (soft)",
}
LIU2020 = Paper(authors="Liu, Y., Xu, N., Zhang, Y., Geng, X.",
                title="Label distribution for learning with noisy labels",
                venue="Proceedings of IJCAI 2020, pp. 2568-2574", year=2020,
                url="https://doi.org/10.24963/ijcai.2020/356")
"""The paper whose protocol this module runs (the recipes built on it reproduce it)."""
CLAIMS = (("ldce", "ce"), ("ldce", "cleanlab"))
"""The claims decided under the table: LDCE beats cross-entropy, LDCE beats cleanlab."""


@dataclass(frozen=True)
class NoisyLabelTraining:
    """The training hyperparameters :func:`run_methods` reads, with the authors' values where they apply
    (``PDLE/run.py``: 5-shot support, query and noisy batches of 64, alpha 0.6, threshold 0.5, beta 0.6); a recipe's
    profile subclasses it, adds its data fields and declares ``methods``. ``epochs`` and ``lr`` are scaled for a
    CPU (the authors: 100 and 0.1); ``cv_folds`` (cleanlab's out-of-sample probabilities) is 2 (cleanlab's default
    5); ``coteaching_gradual`` is the epochs over which Co-teaching's forget rate rises (Han et al.: 10 of 200)."""

    epochs: int = bounded(20, ge=1)
    batch_size: int = bounded(128, ge=2)
    lr: float = bounded(0.05, gt=0)
    weight_decay: float = bounded(5e-4, ge=0)
    encoder_weight_decay: float = bounded(1e-4, ge=0)
    n_shot: int = bounded(5, ge=1)
    query_batch_size: int = bounded(64, ge=1)
    noisy_batch_size: int = bounded(64, ge=2)
    alpha: float = bounded(0.6, ge=0, le=1)
    threshold: float = bounded(0.5, gt=0, lt=1)
    beta: float = bounded(0.6, ge=0, le=1)
    cv_folds: int = bounded(2, ge=2)
    coteaching_gradual: int = bounded(5, ge=0)
    device: str = bounded("cpu", device=True)


def parse_noise(text: str) -> tuple[str, float]:
    """``"symmetric:0.4"`` -> ``("symmetric", 0.4)``.

    Raises:
        ConfigError: no ``:`` or a rate that is not a number.
    """
    from robustlab.common.errors import ConfigError

    kind, sep, rate = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return kind, float(rate)
    except ValueError:
        raise ConfigError(f"noise {text!r} must be 'kind:rate', e.g. 'symmetric:0.4'") from None


@dataclass
class NoisySplit:
    """One split of a noisy-label experiment (inputs as float32 tensors, labels as int64 arrays).

    Attributes:
        trusted_x, trusted_y: the trusted subset, true labels.
        noisy_x, noisy_y: the noisy set with its observed labels; ``noisy_true`` its true labels and
            ``noisy_mask`` True where the label is wrong.
        val_x, val_y: validation inputs and (noisy) labels.
        test_x, test_y: clean test inputs and labels.
        C: the transition matrix the noise was drawn from (rows = true class).
        rate: the noise strength.
    """

    trusted_x: Any
    trusted_y: Any
    noisy_x: Any
    noisy_y: Any
    noisy_true: Any
    noisy_mask: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    C: Any
    rate: float

    @property
    def num_classes(self) -> int:
        return int(self.C.shape[0])


def make_split(x, y, test_x, test_y, *, C, rate: float, n_train: int, n_val: int, trusted: float, seed: int,
               n_test: int | None = None, to_tensor: Callable[[Any], Any] | None = None) -> NoisySplit:
    """Draw ``n_train + n_val`` samples of ``(x, y)``; the first ``trusted`` fraction of the training part keeps
    its labels (reshuffled until every class is present, as the authors' ``prepare_data``), the rest and the
    validation part are corrupted through ``C`` (:func:`~robustlab.common.label_noise.corrupt`); ``n_test`` test
    samples (all by default).

    Args:
        x, y: the pool (arrays, first dimension the sample) and its true labels.
        test_x, test_y: the clean test set.
        C: ``(K, K)`` transition matrix, rows = true class.
        to_tensor: turns a slice of ``x`` into the network's float32 input (default ``torch.as_tensor(...).float()``).

    Raises:
        ConfigError: ``n_train + n_val`` exceeds the pool, or the trusted subset cannot hold every class.
    """
    import numpy as np
    import torch

    from robustlab.common.errors import ConfigError
    from robustlab.common.label_noise import check_transition_matrix, corrupt

    y = np.asarray(y, dtype=np.int64)
    test_y = np.asarray(test_y, dtype=np.int64)
    C = check_transition_matrix(C)
    if n_train + n_val > len(y):
        raise ConfigError(f"n_train + n_val = {n_train + n_val} exceeds the {len(y)} samples of the pool")
    n_trusted = max(1, int(n_train * float(trusted)))
    present = len(set(y.tolist()))
    if n_trusted < present:
        raise ConfigError(f"the trusted subset ({n_trusted} samples = {trusted:g} of n_train {n_train}) cannot hold "
                          f"every one of the {present} classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))[: n_train + n_val]
    train, val = order[:n_train], order[n_train:]
    for _ in range(10_000):  # every class of the training part in the trusted subset (the authors' loop)
        if len(set(y[train[:n_trusted]].tolist())) == len(set(y[train].tolist())):
            break
        train = rng.permutation(train)
    else:
        raise ConfigError(f"no shuffle of the {n_train} training samples puts every class among the first "
                          f"{n_trusted}: raise n_train or the trusted fraction")
    convert = to_tensor or (lambda a: torch.as_tensor(np.asarray(a)).float())
    trusted_idx, noisy_idx = train[:n_trusted], train[n_trusted:]
    noisy_y, noisy_mask = corrupt(y[noisy_idx], C, seed=rng)
    val_y, _ = corrupt(y[val], C, seed=rng)
    test_idx = np.arange(len(test_y)) if n_test is None or n_test >= len(test_y) else \
        np.sort(rng.permutation(len(test_y))[:n_test])
    return NoisySplit(
        trusted_x=convert(x[trusted_idx]), trusted_y=y[trusted_idx],
        noisy_x=convert(x[noisy_idx]), noisy_y=np.asarray(noisy_y, dtype=np.int64), noisy_true=y[noisy_idx],
        noisy_mask=np.asarray(noisy_mask, dtype=bool), val_x=convert(x[val]), val_y=np.asarray(val_y, np.int64),
        test_x=convert(test_x[test_idx]), test_y=test_y[test_idx], C=C, rate=float(rate),
    )


# -- training ------------------------------------------------------------------------------------------------------


def _optimizer(params, p, *, encoder: bool = False):
    import torch

    if encoder:  # detect.py: SGD momentum 0.9, weight decay 1e-4, StepLR(60 of 100 epochs, 0.1)
        opt = torch.optim.SGD(params, lr=p.lr, momentum=0.9, weight_decay=p.encoder_weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, round(0.6 * p.epochs)), gamma=0.1)
    # main.py / genC.py: nesterov, weight decay 5e-4, milestones 60/80/90 of 100 epochs, gamma 0.2
    opt = torch.optim.SGD(params, lr=p.lr, momentum=0.9, weight_decay=p.weight_decay, nesterov=True)
    milestones = sorted({max(1, round(f * p.epochs)) for f in (0.6, 0.8, 0.9)})
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)


def _fit(model, regime, dataset, p, *, seed: int, device, val=None, batch_size=None, encoder=False):
    """Train with the authors' optimizer and schedule; returns the fit result and the weights of the epoch of best
    accuracy on ``val`` (None without validation); the model keeps its final weights."""
    import tempfile

    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.engine import EarlyStopping, fit, load_best

    loader = DataLoader(dataset, batch_size=min(batch_size or p.batch_size, len(dataset)), shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))
    opt, sched = _optimizer(regime.trainable_parameters(model), p, encoder=encoder)
    val_loader = None if val is None else DataLoader(val, batch_size=1000)
    with tempfile.TemporaryDirectory(prefix="robustlab-noisy-") as tmp:
        stop = None if val is None else EarlyStopping("val_accuracy", "max", patience=p.epochs + 1)
        result = fit(model, regime, loader, val_loader=val_loader, optimizer=opt, scheduler=sched, epochs=p.epochs,
                     out_dir=tmp if val is not None else None, early_stopping=stop, restore_best=False,
                     progress=False, device=device)
        best = None
        if val is not None:
            final = {k: v.detach().clone() for k, v in model.state_dict().items()}
            load_best(model, tmp)
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(final)
    return result, best


def _score(model, best, split: NoisySplit, device) -> dict[str, Any]:
    """Clean test accuracy and balanced accuracy of the final and the best-validation weights, with the
    per-item correctness (a string of 0/1, for the paired claims)."""
    from robustlab.common.metrics import balanced_accuracy
    from robustlab.common.training import predict_proba

    out: dict[str, Any] = {}
    final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for which, state in (("final", None), ("best", best)):
        if which == "best":
            if state is None:
                continue
            model.load_state_dict(state)
        pred = predict_proba(model, split.test_x, device=device).argmax(1)
        right = pred == split.test_y
        out[which] = float(right.mean())
        out[f"{which}_balanced"] = float(balanced_accuracy(split.test_y, pred))
        out[f"{which}_items"] = "".join("1" if r else "0" for r in right)
    model.load_state_dict(final_state)
    return out


def _dataset(split: NoisySplit, *, trusted: bool = True, keep=None):
    """Trusted (true labels, ``meta["trusted"]`` 1) then noisy samples; ``trusted=False``: the noisy set only;
    ``keep``: the noisy samples kept."""
    import numpy as np
    import torch

    from robustlab.common.data import ArrayDataset

    nx, ny, clean = split.noisy_x, split.noisy_y, ~split.noisy_mask
    if keep is not None:
        nx, ny, clean = nx[torch.as_tensor(keep, dtype=torch.int64)], ny[keep], clean[keep]
    if not trusted:
        return ArrayDataset(nx, ny, meta={"clean": clean.astype(np.int64)})
    n_t = len(split.trusted_y)
    meta = {"trusted": np.r_[np.ones(n_t, np.int64), np.zeros(len(ny), np.int64)],
            "clean": np.r_[np.ones(n_t, np.int64), clean.astype(np.int64)]}
    return ArrayDataset(torch.cat([split.trusted_x, nx]), np.concatenate([split.trusted_y, ny]), meta=meta)


def run_methods(split: NoisySplit, make_model: Callable[[], tuple[Any, str]], p, *, seed: int,
                device="cpu", make_encoder: Callable[[], tuple[Any, str]] | None = None) -> dict[str, Any]:
    """Train every method of ``p.methods`` on ``split`` and score it.

    Args:
        split: from :func:`make_split`.
        make_model: returns a fresh ``(network, embedding_layer_name)``; called once per network, after seeding
            from ``seed`` and the network's role, so that a method's networks do not depend on which ran before.
        make_encoder: the same for LDCE's encoder (the authors: ResNet-32 encoder, WRN-40-2 classifiers);
            default ``make_model``.
        p: the hyperparameters (see the module docstring).
        seed: the run's seed.

    Returns:
        ``<method>/final``, ``<method>/best`` (clean test accuracy), ``<method>/final_balanced``,
        ``<method>/best_balanced``; for ``ldce`` and ``cleanlab`` ``<method>/precision``, ``/recall``,
        ``/flagged`` of the flagged set against the noise mask; ``glc/C_error`` and ``forward/C_error`` (mean L1
        row error of the estimated matrix); ``noise_rate`` (observed); and as extras (non-numbers) the per-item
        correctness ``<method>/items_final``, ``/items_best`` and the validation curves ``<method>/val_curve``.
    """
    import numpy as np
    import torch

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import resolve_device
    from robustlab.common.errors import ConfigError
    from robustlab.common.label_noise import (
        anchor_transition_matrix,
        confident_learning_issues,
        detection_scores,
        estimate_corruption,
        find_noisy,
    )
    from robustlab.common.regimes import ERM, LDCE, CoTeaching, LossCorrection
    from robustlab.common.training import predict_proba

    device = resolve_device(device)
    K = split.num_classes
    n_t = len(split.trusted_y)
    methods = set(p.methods)
    needs_ldce = bool(methods & {"ldce", "ldce_soft"})
    if needs_ldce and p.query_batch_size > n_t:  # the LDCE regime refuses it too, but only after the baselines
        raise ConfigError(f"query_batch_size {p.query_batch_size} exceeds the {n_t} trusted samples of this split: "
                          "LDCE draws its query batches from them (lower it, or raise n_train or the trusted "
                          "fraction)")
    val = ArrayDataset(split.val_x, split.val_y)
    metrics: dict[str, Any] = {"noise_rate": float(split.noisy_mask.mean())}

    def fresh(role: int, factory=make_model):
        seed_everything(seed * 1000 + role)
        return factory()

    def loader_seed(role: int) -> int:  # distinct for every (seed, role), as the networks' seeds
        return seed * 1000 + role

    def record(name, model, fitted):
        result, best = fitted
        s = _score(model, best, split, device)
        for k in ("final", "best", "final_balanced", "best_balanced"):
            metrics[f"{name}/{k}"] = s[k]
        metrics[f"{name}/items_final"], metrics[f"{name}/items_best"] = s["final_items"], s["best_items"]
        metrics[f"{name}/val_curve"] = [round(float(r.get("val_accuracy", float("nan"))), 4) for r in result.history]

    train_all = _dataset(split)
    if methods & {"forward", "glc", "ldce", "ldce_soft"}:  # genC.py
        model, _ = fresh(1)
        _fit(model, ERM(), _dataset(split, trusted=False), p, seed=loader_seed(1), device=device)
        C_glc = estimate_corruption(predict_proba(model, split.trusted_x, device=device), split.trusted_y, K)
        C_anchor = anchor_transition_matrix(predict_proba(model, split.noisy_x, device=device), K)
        metrics["glc/C_error"] = float(np.abs(C_glc - split.C).sum(1).mean())
        metrics["forward/C_error"] = float(np.abs(C_anchor - split.C).sum(1).mean())
    if "ce" in methods:
        model, _ = fresh(2)
        record("ce", model, _fit(model, ERM(), train_all, p, seed=loader_seed(2), val=val, device=device))
    if "forward" in methods:
        model, _ = fresh(3)
        record("forward", model, _fit(model, LossCorrection(C_anchor), train_all, p, seed=loader_seed(3), val=val,
                                      device=device))
    if "glc" in methods:
        model, _ = fresh(4)
        record("glc", model, _fit(model, LossCorrection(C_glc), train_all, p, seed=loader_seed(4), val=val, device=device))
    if "coteaching" in methods:
        model, _ = fresh(5)
        peer, _ = fresh(6)
        # Han et al.: the forget rate is the noise rate, here the expected share of wrong labels in the training
        # set (the trusted samples are clean)
        wrong = split.rate * len(split.noisy_y) / len(train_all)
        regime = CoTeaching(peer, forget_rate=min(wrong, 0.95), num_gradual=p.coteaching_gradual)
        record("coteaching", model, _fit(model, regime, train_all, p, seed=loader_seed(5), val=val, device=device))
    if "cleanlab" in methods:
        n = len(train_all)
        folds = np.random.default_rng(loader_seed(7)).permutation(n) % p.cv_folds
        y_all = np.concatenate([split.trusted_y, split.noisy_y])
        probs = np.zeros((n, K))
        for k in range(p.cv_folds):  # out-of-sample probabilities of every training sample
            model, _ = fresh(10 + k)
            inside = torch.as_tensor(np.flatnonzero(folds != k))
            _, best = _fit(model, ERM(), ArrayDataset(train_all.x[inside], y_all[inside.numpy()]), p,
                           seed=loader_seed(10) + k, val=val, device=device)
            model.load_state_dict(best)
            out = np.flatnonzero(folds == k)
            probs[out] = predict_proba(model, train_all.x[torch.as_tensor(out)], device=device)
        issues = confident_learning_issues(y_all, probs)
        s = detection_scores(issues[n_t:], split.noisy_mask)
        metrics["cleanlab/precision"], metrics["cleanlab/recall"] = s["precision"], s["recall"]
        metrics["cleanlab/flagged"] = s["flagged_fraction"]
        model, _ = fresh(20)  # the trusted samples stay whatever cleanlab says of them
        record("cleanlab", model, _fit(model, ERM(), _dataset(split, keep=np.flatnonzero(~issues[n_t:])), p,
                                       seed=loader_seed(20), val=val, device=device))
    if needs_ldce:  # detect.py, then main.py's CDD
        encoder, layer = fresh(30, make_encoder or make_model)
        regime = LDCE(split.trusted_x, torch.as_tensor(split.trusted_y), len(split.noisy_y), features=layer,
                      num_classes=K, n_shot=p.n_shot, query_batch_size=p.query_batch_size, alpha=p.alpha,
                      threshold=p.threshold)
        _fit(encoder, regime, _dataset(split, trusted=False), p, seed=loader_seed(30), batch_size=p.noisy_batch_size,
             encoder=True, device=device)
        conf = regime.confidences.detach().cpu().numpy()
        s = detection_scores(find_noisy(conf, p.threshold), split.noisy_mask)
        metrics["ldce/precision"], metrics["ldce/recall"] = s["precision"], s["recall"]
        metrics["ldce/flagged"] = s["flagged_fraction"]
        all_conf = np.r_[np.ones(n_t), conf]
        for name, mode, role in (("ldce", "hard", 31), ("ldce_soft", "soft", 32)):
            if name in methods:
                model, _ = fresh(role)
                regime = LossCorrection(C_glc, confidences=all_conf, mode=mode, beta=p.beta, threshold=p.threshold)
                record(name, model, _fit(model, regime, train_all, p, seed=loader_seed(role), val=val, device=device))
    return metrics


# -- the table -----------------------------------------------------------------------------------------------------


def _value(r, key):
    v = r.get("metrics", {}).get(key)
    if v is None:
        v = r.get("extras", {}).get(key)
    return v


def _numbers(group, key) -> list[float]:
    return [float(v) for r in group if isinstance(v := _value(r, key), (int, float))]


def _mean(group, key) -> float | None:
    vals = _numbers(group, key)
    return sum(vals) / len(vals) if vals else None


def _items(group, method: str, which: str) -> dict[int, Any]:
    import numpy as np

    out = {}
    for r in group:
        text = _value(r, f"{method}/items_{which}")
        if isinstance(text, str) and text:
            out[int(r["spec"]["seed"])] = (np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")).astype(float)
    return out


def _groups(results, setting: Callable[[Mapping[str, Any]], str]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        if "metrics" in r:
            groups.setdefault(setting(r["spec"]), []).append(r)
    return groups


def summarize_methods(results: Sequence[Mapping[str, Any]], *, setting: Callable[[Mapping[str, Any]], str],
                      targets: Callable[[str], Sequence[str]] = lambda s: (), balanced: bool = False,
                      protocol: str = "", paper_note: str = "") -> Table:
    """One row per setting (``setting(spec)``) and method; notes: the paired claims of :data:`CLAIMS`, the
    memorization check of cross-entropy, the targets (``targets(setting)`` names the methods LDCE must match
    there, and its flagged set is compared with cleanlab's) and the protocol.

    Args:
        balanced: add balanced-accuracy columns (imbalanced classes).
    """
    from robustlab.common.metrics import paired_claim, seed_interval

    header = ["setting", "method", "runs", "test acc (final)", "test acc (best val)"]
    if balanced:
        header += ["balanced acc (final)", "balanced acc (best val)"]
    header += ["flag precision", "flag recall"]
    rows, records, notes = [], [], []
    groups = _groups(results, setting)
    for name, group in groups.items():
        for m in METHODS:
            finals = _numbers(group, f"{m}/final")
            if not finals:
                continue
            cols = {"final": finals, "best": _numbers(group, f"{m}/best")}
            if balanced:
                cols |= {"final_balanced": _numbers(group, f"{m}/final_balanced"),
                         "best_balanced": _numbers(group, f"{m}/best_balanced")}
            cols |= {"precision": _numbers(group, f"{m}/precision"), "recall": _numbers(group, f"{m}/recall")}
            rows.append([name, LABELS[m], str(len(finals))] + [mean_std_cell(v) for v in cols.values()])
            rec: dict[str, Any] = {"setting": name, "method": m, "runs": len(finals)}
            for k, vals in cols.items():
                rec[f"{k}_mean"] = sum(vals) / len(vals) if vals else ""
            records.append(rec)
        pairs = [(a, b, which, ia, ib) for a, b in CLAIMS for which in ("final", "best")
                 if (ia := _items(group, a, which)) and (ib := _items(group, b, which))]
        level = 0.05 / max(1, len(pairs))  # Bonferroni over the claims of this setting
        for a, b, which, ia, ib in pairs:
            c = paired_claim(ia, ib, higher=True, confidence=1 - level, alpha=level)
            notes.append(f"{name}: claim '{LABELS[a]} beats {LABELS[b]}' (test accuracy, {which} epoch, paired by "
                         f"seed and test item, {100 * (1 - level):.2f} % interval and alpha {level:.4g}: Bonferroni "
                         f"over this setting's {len(pairs)} claims): {c.mean_a:.3f} vs {c.mean_b:.3f}, {c.summary()} "
                         f"-> {c.verdict}.")
        finals, bests = _numbers(group, "ce/final"), _numbers(group, "ce/best")
        if finals and bests:
            drops = [b - f for b, f in zip(bests, finals)]
            drop = sum(drops) / len(drops)
            low = seed_interval(drops)[1] if len(drops) > 1 else float("nan")
            shows = ("memorization shows (the drop's 95 % interval over seeds is above 0.02)" if low > 0.02 else
                     "one seed: no interval" if len(drops) < 2 else
                     "no clear memorization at this length (the drop's 95 % interval over seeds reaches 0.02)")
            notes.append(f"{name}: cross-entropy's test accuracy is {sum(bests) / len(bests):.3f} at the best "
                         f"validation epoch and {sum(finals) / len(finals):.3f} at the last (drop {drop:.3f}): {shows}.")
        ld = _mean(group, "ldce/final")
        for b in targets(name) if ld is not None else ():
            other = _mean(group, f"{b}/final")
            if other is not None:
                notes.append(f"{name}: target 'LDCE >= {LABELS[b]}' (final test accuracy, mean over seeds): "
                             f"{ld:.3f} vs {other:.3f} -> {'met' if ld >= other else 'not met'}.")
        for k in ("precision", "recall"):
            a, b = _mean(group, f"ldce/{k}"), _mean(group, f"cleanlab/{k}")
            if a is not None and b is not None:
                notes.append(f"{name}: target 'LDCE flag {k} >= cleanlab's': {a:.3f} vs {b:.3f} -> "
                             f"{'met' if a >= b else 'not met'}.")
    if protocol:
        notes.append(protocol)
    notes.append("Ours: mean ± sample standard deviation over seeds. Flag precision/recall: the flagged subset of "
                 "the noisy set against its true noise mask." + (f" {paper_note}" if paper_note else ""))
    return Table(header=header, rows=rows, records=records, notes=notes)


def plot_methods(results: Sequence[Mapping[str, Any]], path: str | Path, *,
                 setting: Callable[[Mapping[str, Any]], str]) -> None:
    """Left: final (bar) and best-validation (tick) test accuracy per setting and method; right: noisy-validation
    accuracy by epoch of cross-entropy and LDCE (first seed of each setting), where memorization shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(results, setting)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / len(METHODS)
    lows = []
    for i, m in enumerate(METHODS):
        xs, finals, bests = [], [], []
        for j, group in enumerate(groups.values()):
            f, b = _mean(group, f"{m}/final"), _mean(group, f"{m}/best")
            if f is not None:
                xs.append(j + (i - (len(METHODS) - 1) / 2) * width)
                finals.append(f)
                bests.append(f if b is None else b)
        if xs:
            ax.bar(xs, finals, width, label=LABELS[m])
            ax.scatter(xs, bests, marker="_", color="black", s=40, zorder=3)
            lows += finals
    ax.set_xticks(range(len(groups)), list(groups), rotation=15, ha="right", fontsize=7)
    ax.set_ylabel("clean test accuracy (bar: final; tick: best val)")
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 0.1), 1.0)
    ax.legend(fontsize=6)
    for name, group in groups.items():
        for m, style in (("ce", "--"), ("ldce", "-")):
            curve = _value(group[0], f"{m}/val_curve")
            if isinstance(curve, list) and curve:
                ax2.plot(range(1, len(curve) + 1), curve, style, label=f"{LABELS[m]}: {name}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("noisy validation accuracy")
    if ax2.lines:
        ax2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
