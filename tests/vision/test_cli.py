"""The robustlab vision commands: find-noisy by confident learning (--probs, --model) and by LDCE (--features),
checked against cleanlab's and the core's own calls, on synthetic arrays and on real MNIST with known injected
noise; prepare on the real folders; the error contract (exit 2 for a bad option, 1 for bad data, no traceback)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from robustlab.common.cli import main
from robustlab.common.label_noise import confidence, detection_scores, label_distribution, symmetric_noise


def _run(*args):
    return CliRunner().invoke(main, ["vision", *map(str, args)])


def _ok(result):
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def _fails(result, code: int, *needles: str):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result


@pytest.fixture
def toy(tmp_path):
    """300 samples of 3 Gaussian blobs in 5 dimensions, 20% of the labels flipped; probabilities of a model that
    knows the blobs (softmax of minus the squared distances); the first 60 rows trusted (true labels). The features
    are scaled by 0.15, so that distances within a class are well below 1, as LDCE's 1 / distance needs (the
    prototype loss of its encoder brings embeddings there)."""
    rng = np.random.default_rng(0)
    n, k = 300, 3
    y = np.arange(n) % k
    centres = rng.normal(0, 3, (k, 5))
    features = centres[y] + rng.normal(0, 1, (n, 5))
    noisy, is_noisy = symmetric_noise(y, 0.2, k, seed=1)
    noisy[:60], is_noisy[:60] = y[:60], False
    d = ((features[:, None, :] - centres[None]) ** 2).sum(2)
    probs = np.exp(-(d - d.min(1, keepdims=True)) / 2)
    probs /= probs.sum(1, keepdims=True)
    np.save(tmp_path / "probs.npy", probs)
    features = (0.15 * features).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    trusted = (np.arange(n) < 60).astype(int)
    pd.DataFrame({"label": noisy}).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame({"id": [f"img{i:03d}" for i in range(n)], "label": noisy, "trusted": trusted}).to_csv(
        tmp_path / "trusted.csv", index=False)
    return {"labels": noisy, "is_noisy": is_noisy, "probs": probs, "features": features,
            "trusted": trusted.astype(bool), "dir": tmp_path}


def test_probs_is_cleanlabs_own_call(toy):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    d = toy["dir"]
    result = _ok(_run("find-noisy", "--labels", d / "labels.csv", "--probs", d / "probs.npy", "--out", d / "f.csv"))
    out = pd.read_csv(d / "f.csv")
    assert list(out.columns) == ["row", "label", "score", "flagged"]
    assert out["row"].tolist() == list(range(300)) and np.array_equal(out["label"], toy["labels"])
    expected = find_label_issues(toy["labels"], toy["probs"], n_jobs=1)
    assert np.array_equal(out["flagged"].to_numpy(bool), expected)
    assert np.allclose(out["score"], get_label_quality_scores(toy["labels"], toy["probs"]), atol=1e-6)
    assert f"flagged {expected.sum()} of 300 labels" in result.output and "prune_by_noise_rate" in result.output
    scores = detection_scores(expected, toy["is_noisy"])
    assert scores["precision"] > 0.9 and scores["recall"] > 0.8, scores  # the blobs are well separated

    _ok(_run("find-noisy", "--labels", d / "labels.csv", "--probs", d / "probs.npy", "--filter-by", "both",
             "--out", d / "both.csv"))
    both = find_label_issues(toy["labels"], toy["probs"], filter_by="both", n_jobs=1)
    assert np.array_equal(pd.read_csv(d / "both.csv")["flagged"].to_numpy(bool), both)


def test_probs_from_csv_and_trusted_rows(toy):
    d = toy["dir"]
    pd.DataFrame(toy["probs"], columns=["p0", "p1", "p2"]).to_csv(d / "probs.csv", index=False)
    _ok(_run("find-noisy", "--labels", d / "labels.csv", "--probs", d / "probs.csv", "--out", d / "csv.csv"))
    _ok(_run("find-noisy", "--labels", d / "labels.csv", "--probs", d / "probs.npy", "--out", d / "npy.csv"))
    assert pd.read_csv(d / "csv.csv").equals(pd.read_csv(d / "npy.csv"))
    # a trusted row is never flagged; the report keeps the ids and the trusted column
    probs = toy["probs"].copy()
    probs[0] = np.roll(probs[0], 1)  # the model now contradicts trusted row 0
    np.save(d / "contra.npy", probs)
    result = _ok(_run("find-noisy", "--labels", d / "trusted.csv", "--probs", d / "contra.npy", "--out", d / "t.csv"))
    out = pd.read_csv(d / "t.csv")
    assert list(out.columns) == ["id", "label", "trusted", "score", "flagged"] and out["id"][0] == "img000"
    assert not out["flagged"][:60].any() and "of 240 untrusted labels" in result.output


def test_features_is_ldce(toy):
    d = toy["dir"]
    result = _ok(_run("find-noisy", "--labels", d / "trusted.csv", "--features", d / "features.npy",
                      "--out", d / "ldce.csv"))
    out = pd.read_csv(d / "ldce.csv")
    trusted, labels, f = toy["trusted"], toy["labels"], toy["features"]
    expected = confidence(label_distribution(f, f[trusted], labels[trusted], 3), labels).double().numpy()
    assert np.allclose(out["score"], expected, rtol=1e-5, atol=1e-6)
    flagged = out["flagged"].to_numpy(bool)
    assert np.array_equal(flagged, (expected < 0.5) & ~trusted)
    assert f"flagged {flagged.sum()} of 240 untrusted labels" in result.output and "LDCE" in result.output
    scores = detection_scores(flagged[~trusted], toy["is_noisy"][~trusted])
    assert scores["precision"] > 0.8 and scores["recall"] > 0.8, scores
    # the threshold moves the cut; more classes than labels need their own trusted rows
    _ok(_run("find-noisy", "--labels", d / "trusted.csv", "--features", d / "features.npy", "--threshold", 0.99,
             "--out", d / "strict.csv"))
    strict = pd.read_csv(d / "strict.csv")["flagged"].to_numpy(bool)
    assert np.array_equal(strict, (expected < 0.99) & ~trusted) and strict.sum() > flagged.sum()
    _fails(_run("find-noisy", "--labels", d / "trusted.csv", "--features", d / "features.npy", "--num-classes", 4,
                "--out", d / "x.csv"), 1, "no trusted row of class 3")


def test_model_and_images(toy, tmp_path):
    """--model/--images: the probabilities of a model file on uint8 images, normalised for the dataset."""
    from cleanlab.filter import find_label_issues

    from robustlab.common.modelfile import save_model
    from robustlab.common.training import predict_proba
    from robustlab.vision.data import to_tensor
    from robustlab.vision.models import build_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (90, 28, 28), dtype=np.uint8)
    labels = np.arange(90) % 3
    np.save(tmp_path / "images.npy", images)
    pd.DataFrame({"label": labels}).to_csv(tmp_path / "l.csv", index=False)
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=3)
    save_model(model, tmp_path / "m.pt", preprocessing={"dataset": "fashion_mnist"})
    save_model(model, tmp_path / "bare.pt")
    _ok(_run("find-noisy", "--labels", tmp_path / "l.csv", "--model", tmp_path / "m.pt", "--images",
             tmp_path / "images.npy", "--out", tmp_path / "f.csv"))
    probs = predict_proba(model, to_tensor(images, "fashion_mnist"))
    assert np.array_equal(pd.read_csv(tmp_path / "f.csv")["flagged"].to_numpy(bool),
                          find_label_issues(labels, probs, n_jobs=1))
    _fails(_run("find-noisy", "--labels", tmp_path / "l.csv", "--model", tmp_path / "bare.pt", "--images",
                tmp_path / "images.npy", "--out", tmp_path / "f.csv"), 2, "--dataset")
    _ok(_run("find-noisy", "--labels", tmp_path / "l.csv", "--model", tmp_path / "bare.pt", "--images",
             tmp_path / "images.npy", "--dataset", "fashion_mnist", "--out", tmp_path / "g.csv"))
    assert pd.read_csv(tmp_path / "g.csv").equals(pd.read_csv(tmp_path / "f.csv"))
    np.save(tmp_path / "rgb.npy", rng.normal(size=(90, 3, 28, 28)).astype(np.float32))
    _fails(_run("find-noisy", "--labels", tmp_path / "l.csv", "--model", tmp_path / "m.pt", "--images",
                tmp_path / "rgb.npy", "--out", tmp_path / "f.csv"), 1, "does not take --images")


def _write(path, text):
    path.write_text(text)
    return path


def test_usage_errors_exit_2(toy):
    d = toy["dir"]
    labels, probs, feats = d / "labels.csv", d / "probs.npy", d / "features.npy"
    _fails(_run("find-noisy", "--labels", labels, "--out", d / "f.csv"), 2, "exactly one of --probs")
    _fails(_run("find-noisy", "--labels", labels, "--probs", probs, "--features", feats, "--out", d / "f.csv"), 2,
           "--probs, --features")
    _fails(_run("find-noisy", "--labels", labels, "--probs", probs, "--threshold", 0.3, "--out", d / "f.csv"), 2,
           "--threshold applies to --features only")
    _fails(_run("find-noisy", "--labels", labels, "--features", feats, "--filter-by", "both", "--out",
                d / "f.csv"), 2, "--filter-by applies")
    _fails(_run("find-noisy", "--labels", labels, "--images", probs, "--out", d / "f.csv"), 2, "exactly one")
    _fails(_run("find-noisy", "--labels", labels, "--model", probs, "--out", d / "f.csv"), 2,
           "--model and --images go together")
    _fails(_run("find-noisy", "--labels", labels, "--features", feats, "--threshold", 1.5, "--out", d / "f.csv"),
           2, "--threshold")
    _fails(_run("find-noisy", "--labels", d / "missing.csv", "--probs", probs, "--out", d / "f.csv"), 2,
           "missing.csv")
    (d / "afile").write_text("")
    _fails(_run("find-noisy", "--labels", labels, "--probs", probs, "--out", d / "afile" / "f.csv"), 2, "afile")
    assert not (d / "f.csv").exists()


def test_data_errors_exit_1(toy):
    d = toy["dir"]
    labels, probs, feats = d / "labels.csv", d / "probs.npy", d / "features.npy"
    cases = [
        (["--labels", _write(d / "a.csv", "y\n1\n"), "--probs", probs], "lacks the column 'label'"),
        (["--labels", _write(d / "b.csv", "label\n1\n2\ncat\n"), "--probs", probs], "row 3 (line 4) has label 'cat'"),
        (["--labels", _write(d / "c.csv", "label\n-1\n"), "--probs", probs], "has label '-1'"),
        (["--labels", _write(d / "e.csv", "label\n"), "--probs", probs], "has no rows"),
        (["--labels", labels, "--features", feats], "lacks the column 'trusted' that --features needs"),
        (["--labels", _write(d / "t.csv", "label,trusted\n0,1\n1,yes\n"), "--features", feats],
         "row 2 (line 3) has trusted 'yes'"),
        (["--labels", labels, "--probs", feats], "features.npy: pred_probs[0, 0] = "),
    ]
    np.save(d / "short.npy", toy["probs"][:10])
    cases.append((["--labels", labels, "--probs", d / "short.npy"], "has 10 rows but --labels"))
    bad = toy["features"].copy()
    bad[4, 2] = np.nan
    np.save(d / "nan.npy", bad)
    cases.append((["--labels", d / "trusted.csv", "--features", d / "nan.npy"], "row 5, column 3 is nan"))
    _write(d / "cells.csv", "0.5,0.5\n0.1,oops\n")
    cases.append((["--labels", _write(d / "two.csv", "label\n0\n1\n"), "--probs", d / "cells.csv"],
                  "line 2, column 2 is 'oops'"))
    _write(d / "probs.txt", "0.5,0.5\n")
    cases.append((["--labels", labels, "--probs", d / "probs.txt"], "expected a .npy or .csv file"))
    _write(d / "broken.npy", "not numpy")
    cases.append((["--labels", labels, "--probs", d / "broken.npy"], "does not read as a NumPy .npy array"))
    unnormalised = toy["probs"] * 2
    np.save(d / "unnorm.npy", unnormalised)
    cases.append((["--labels", labels, "--probs", d / "unnorm.npy"], "unnorm.npy"))
    cases.append((["--labels", _write(d / "big.csv", "label\n" + "5\n" * 300), "--probs", probs],
                  "has label 5 but --probs"))
    for args, needle in cases:
        _fails(_run("find-noisy", *args, "--out", d / "out.csv"), 1, needle)
    assert not (d / "out.csv").exists()


# -- real data ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_mnist(mnist_root):
    """2,000 MNIST test images with 20% symmetric label noise (seeded) and the first 200 rows trusted; the
    out-of-sample probabilities of a linear model trained on 10,000 training images with 20% noise of their own."""
    from robustlab.vision.data import load_images, to_tensor

    x_train, y_train = load_images("mnist", "train", mnist_root)
    x, y = load_images("mnist", "test", mnist_root)
    x, y = x[:2000], y[:2000]
    noisy, is_noisy = symmetric_noise(y, 0.2, 10, seed=0)
    noisy[:200], is_noisy[:200] = y[:200], False
    train_labels, _ = symmetric_noise(y_train[:10000], 0.2, 10, seed=1)
    torch.manual_seed(0)
    linear = torch.nn.Linear(784, 10)
    opt = torch.optim.Adam(linear.parameters(), lr=0.01)
    inputs, targets = to_tensor(x_train[:10000], "mnist").flatten(1), torch.from_numpy(train_labels)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(linear(inputs), targets).backward()
        opt.step()
    with torch.no_grad():
        probs = torch.softmax(linear(to_tensor(x, "mnist").flatten(1)), 1).double().numpy()
    return {"images": x, "labels": noisy, "is_noisy": is_noisy, "probs": probs / probs.sum(1, keepdims=True),
            "trusted": np.arange(2000) < 200}


@pytest.mark.realdata
def test_real_mnist_noise_is_found(noisy_mnist, tmp_path, one_thread):
    """Injected noise on real MNIST is found: confident learning on a linear model's probabilities (precision 0.76,
    recall 0.84 measured), LDCE's confidence on raw pixels ranks noisy labels low (AUC 0.90 measured)."""
    m = noisy_mnist
    pd.DataFrame({"label": m["labels"], "trusted": m["trusted"].astype(int)}).to_csv(tmp_path / "l.csv", index=False)
    np.save(tmp_path / "probs.npy", m["probs"])
    np.save(tmp_path / "pixels.npy", m["images"].reshape(2000, -1).astype(np.float32) / 255)
    _ok(_run("find-noisy", "--labels", tmp_path / "l.csv", "--probs", tmp_path / "probs.npy", "--out",
             tmp_path / "cl.csv"))
    untrusted = ~m["trusted"]
    flagged = pd.read_csv(tmp_path / "cl.csv")["flagged"].to_numpy(bool)
    scores = detection_scores(flagged[untrusted], m["is_noisy"][untrusted])
    assert scores["precision"] > 0.7 and scores["recall"] > 0.8, scores
    _ok(_run("find-noisy", "--labels", tmp_path / "l.csv", "--features", tmp_path / "pixels.npy", "--out",
             tmp_path / "ldce.csv"))
    confidences = pd.read_csv(tmp_path / "ldce.csv")["score"].to_numpy()
    noisy, clean = confidences[untrusted & m["is_noisy"]], confidences[untrusted & ~m["is_noisy"]]
    auc = ((noisy[:, None] < clean[None]).mean() + 0.5 * (noisy[:, None] == clean[None]).mean())
    assert auc > 0.85, auc


@pytest.mark.realdata
def test_prepare_prints_counts(mnist_root, fashion_mnist_root, monkeypatch):
    result = _ok(_run("prepare", "--dataset", "mnist", "--data", mnist_root, "--check", "--no-progress"))
    assert f"MNIST: {mnist_root} (content checked)" in result.output
    assert "train: 60000 images of 28x28; per class 5923 6742 5958" in result.output
    assert "test: 10000 images" in result.output
    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST", str(fashion_mnist_root))
    result = _ok(_run("prepare", "--no-progress"))
    assert "Fashion-MNIST" in result.output and "per class 6000 6000" in result.output
    _fails(_run("prepare", "--data", mnist_root), 2, "--dataset mnist")
    _fails(_run("prepare", "--dataset", "fashion_mnist", "--data", mnist_root, "--check"), 1,
           "is not the published")
