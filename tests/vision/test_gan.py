"""The conditional DCGAN: the networks (shapes, gradients, spectral norm, projection, model files), train_gan
(grids, seeding, resume, a two-class toy set it learns in seconds), generate, write_grid, and the train-gan and
sample commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.cli import main
from robustlab.common.errors import ConfigError, DataError
from robustlab.common.modelfile import load_model, save_model
from robustlab.vision.gan import generate, to_pixels, to_unit_range, train_gan, write_grid
from robustlab.vision.models import DCGANDiscriminator, DCGANGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n=256, size=16, seed=0):
    """Class 0: dark patches; class 1: bright patches with a dark vertical bar (columns 6-9)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.where(y[:, None, None] == 1, 190.0, 60.0) + rng.normal(0, 10, (n, size, size))
    x[y == 1, :, 6:10] = 40
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def _write_npz(path, n=40, size=16, **override):
    rng = np.random.default_rng(0)
    fields = {"x": rng.integers(0, 256, (n, size, size), dtype=np.uint8), "y": (np.arange(n) % 2).astype(np.int64),
              "classes": np.array(["normal", "abnormal"]), "mask": np.zeros((n, size, size), bool),
              "patient": np.array([f"p{i // 4:03d}" for i in range(n)]),
              "image_id": np.array([f"mdb{i:03d}" for i in range(n)])}
    fields.update(override)
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})
    return path


# -- the networks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 32, 64])
def test_networks_shapes_gradients_and_model_files(size, tmp_path):
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, num_classes=3, image_size=size, width=4)
    d = DCGANDiscriminator(num_classes=3, image_size=size, width=4)
    z, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 1, 0])
    fake = g(z, y)
    assert fake.shape == (5, 1, size, size) and fake.abs().max() <= 1.0
    logits = d(fake, y)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    logits.sum().backward()
    for net in (g, d):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{type(net).__name__}.{name} gets no gradient"
    # the generator's layout: DCGAN's, widest layer 8 x width at 4x4 (for 64 px), width at half the image size
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == int(np.log2(size)) - 1 and convs[-2].out_channels == 4
    if size == 64:
        assert convs[0].out_channels == 32
    # model files rebuild both (eval mode: batch norm's running statistics, spectral norm's stored vectors)
    for net, args in ((g, (z, y)), (d, (fake.detach(), y))):
        net.eval()
        with torch.no_grad():
            before = net(*args)
        rebuilt = load_model(save_model(net, tmp_path / f"{type(net).__name__}.pt")).model
        with torch.no_grad():
            assert torch.equal(rebuilt(*args), before)
        assert type(rebuilt) is type(net) and net.citation


def test_spectral_norm_and_projection():
    torch.manual_seed(0)
    d = DCGANDiscriminator(num_classes=2, image_size=16, width=4).train()
    x = torch.randn(8, 1, 16, 16)
    for _ in range(30):  # one power iteration per training forward
        d(x, torch.zeros(8, dtype=torch.long))
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert len(layers) == 4  # 2 convolutions, the linear head, the class embedding
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().reshape(len(m.weight), -1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02), type(m).__name__
    plain = DCGANDiscriminator(num_classes=2, image_size=16, width=4, spectral_norm=False)
    assert not any("parametrizations" in k for k in plain.state_dict())
    # projection: the class changes the logit by <embed(y), phi(x)>, the same x otherwise
    d.eval()
    with torch.no_grad():
        a, b = d(x, torch.zeros(8, dtype=torch.long)), d(x, torch.ones(8, dtype=torch.long))
        phi = d.features(x)
        assert torch.allclose(b - a, ((d.embed.weight[1] - d.embed.weight[0]) * phi).sum(1), atol=1e-5)


def test_network_argument_and_shape_errors():
    for bad in (dict(image_size=48), dict(image_size=8), dict(width=0), dict(num_classes=0)):
        with pytest.raises(ConfigError):
            DCGANGenerator(**bad)
        with pytest.raises(ConfigError):
            DCGANDiscriminator(**bad)
    g, d = DCGANGenerator(latent_dim=8, image_size=16, width=4), DCGANDiscriminator(image_size=16, width=4)
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(2, 8, 1, 1), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="x must have shape"):
        d(torch.randn(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))


# -- train_gan, generate, write_grid --------------------------------------------------------------------------
def test_train_gan_learns_the_classes_of_a_toy_set():
    x, y = _toy()
    generator, regime, result = train_gan(x, y, num_classes=2, epochs=10, batch_size=32, width=8, latent_dim=16,
                                          lr=1e-3, d_lr=1e-3, seed=0)
    assert len(result.history) == 10 and not generator.training
    images, labels = generate(generator, {0: 200, 1: 200}, seed=1, return_labels=True)
    dark, barred = images[labels == 0].astype(float), images[labels == 1].astype(float)
    sides, bar = barred[:, :, [0, 1, 2, 3, 12, 13, 14, 15]].mean(), barred[:, :, 6:10].mean()
    # measured (seeds 0-4 of train_gan): class 0 mean 52-70; class 1 sides 158-191, bar 39-89
    print(f"class 0 mean {dark.mean():.1f}; class 1 sides {sides:.1f}, bar {bar:.1f}")
    assert dark.mean() < 90 and sides > 140 and sides - bar > 50


def test_train_gan_writes_grids_and_resumes_bit_identically(tmp_path):
    x, y = _toy(64)
    kwargs = dict(num_classes=2, batch_size=16, width=4, latent_dim=8, seed=3, classes=["dark", "barred"])
    full, _, _ = train_gan(x, y, epochs=3, out_dir=tmp_path / "full", grid_every=2, **kwargs)
    assert sorted(p.name for p in (tmp_path / "full" / "samples").iterdir()) == ["epoch_002.png", "epoch_003.png"]
    grid = Image.open(tmp_path / "full" / "samples" / "epoch_003.png")
    assert grid.size == (8 * 18 + 2, 2 * 18 + 2) and grid.mode == "RGB"  # 8 per class, one row each, captioned
    last = load_checkpoint(tmp_path / "full" / "last.pt")  # weights_only, as the engine resumes
    assert set(last["networks"]) == {"discriminator"} and set(last["optimizers"]) == {"model", "discriminator"}
    # the spectrally normalized GAN's Adam by default (Miyato et al. 2018): 2e-4 and betas (0.0, 0.9) for both
    for name in ("model", "discriminator"):
        group = last["optimizers"][name]["param_groups"][0]
        assert group["lr"] == 2e-4 and tuple(group["betas"]) == (0.0, 0.9)
    train_gan(x, y, epochs=2, out_dir=tmp_path / "split", grid_every=2, **kwargs)
    with pytest.raises(ConfigError, match="resume"):
        train_gan(x, y, epochs=3, out_dir=tmp_path / "split", **kwargs)
    resumed, _, result = train_gan(x, y, epochs=3, out_dir=tmp_path / "split", grid_every=2, resume=True, **kwargs)
    assert len(result.history) == 3
    for k, v in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    same = [np.asarray(Image.open(tmp_path / run / "samples" / "epoch_003.png")) for run in ("full", "split")]
    assert np.array_equal(*same)
    again, _, _ = train_gan(x, y, epochs=3, grid_every=2, **kwargs)  # in memory: the same seeded run
    assert all(torch.equal(again.state_dict()[k], v) for k, v in full.state_dict().items())


def test_train_gan_refuses_bad_patches():
    x, y = _toy(16)
    for bad_x, bad_y, match in ((x.astype(np.float32), y, "uint8"), (x[:, :, :8], y, "square"),
                                (np.zeros((16, 24, 24), np.uint8), y, "power of two"), (x, y[:5], "labels"),
                                (x, y + 1, "label 2"), (x, np.zeros_like(y), "no patch of class 1")):
        with pytest.raises(DataError, match=match):
            train_gan(bad_x, bad_y, num_classes=2, epochs=1)
    with pytest.raises(ConfigError, match="class names"):
        train_gan(x, y, num_classes=2, epochs=1, classes=["a"])


def test_generate_is_seeded_and_independent_of_the_batch_size():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, num_classes=3, image_size=16, width=4).train()
    state = torch.get_rng_state()
    a = generate(g, {2: 3, 0: 2}, seed=5)
    assert torch.equal(state, torch.get_rng_state()) and g.training
    b, labels = generate(g, np.array([2, 2, 2, 0, 0]), seed=5, batch_size=2, return_labels=True)
    assert a.dtype == np.uint8 and a.shape == (5, 16, 16) and np.array_equal(a, b)
    assert labels.tolist() == [2, 2, 2, 0, 0]
    assert not np.array_equal(a, generate(g, {2: 3, 0: 2}, seed=6))
    # the pixel convention: [-1, 1] <-> 0..255
    assert to_pixels(torch.tensor([[[[-1.0, 0.0, 1.0, 2.0]]]])).tolist() == [[[0, 128, 255, 255]]]
    assert to_unit_range(np.array([[[0, 255]]], np.uint8)).tolist() == [[[[-1.0, 1.0]]]]
    assert generate(g, {1: 0}).shape == (0, 16, 16)
    with pytest.raises(ConfigError, match="labels must be in"):
        generate(g, {3: 1})


def test_write_grid(tmp_path):
    images = np.arange(5 * 4 * 6, dtype=np.uint8).reshape(5, 4, 6)
    path = write_grid(images, tmp_path / "sub" / "grid.png", nrow=2, padding=1)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (3 * 5 + 1, 2 * 7 + 1) and grid.dtype == np.uint8
    assert np.array_equal(grid[1:5, 1:7], images[0]) and np.array_equal(grid[6:10, 8:14], images[3])
    assert np.array_equal(grid[11:15, 1:7], images[4]) and not grid[11:15, 8:14].any()
    captioned = Image.open(write_grid(images, tmp_path / "c.png", labels=list("abcde")))
    assert captioned.mode == "RGB"
    with pytest.raises(ConfigError, match="labels"):
        write_grid(images, tmp_path / "x.png", labels=["a"])
    with pytest.raises(ConfigError, match="uint8"):
        write_grid(images.astype(float), tmp_path / "x.png")


# -- the commands ---------------------------------------------------------------------------------------------
def _invoke(*args):
    return CliRunner().invoke(main, ["vision", *map(str, args)])


def test_train_gan_and_sample_commands(tmp_path):
    patches = _write_npz(tmp_path / "patches.npz")
    out = tmp_path / "gan"
    common = ["--patches", patches, "--out", out, "--batch-size", 16, "--width", 4, "--latent-dim", 8, "--no-progress"]
    result = _invoke("train-gan", *common, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    torch.load(out / "generator.pt", weights_only=True)
    loaded = load_model(out / "generator.pt")
    assert isinstance(loaded.model, DCGANGenerator)
    assert loaded.preprocessing["kind"] == "gan" and loaded.preprocessing["classes"] == ["normal", "abnormal"]
    assert loaded.preprocessing["image_size"] == 16 and loaded.preprocessing["latent_dim"] == 8
    assert loaded.metadata["epochs_run"] == 2
    # the patients `vision train` holds out with the same --holdout (0.25) and --seed (0) are not trained on
    from robustlab.vision.data.patches import holdout_split

    with np.load(patches) as z:
        train_idx, test_idx = holdout_split(z["patient"], z["y"], 0.25, seed=0)
        held_out = set(z["patient"][test_idx].tolist())
        assert loaded.metadata["train_patients"] == sorted(set(z["patient"][train_idx].tolist()))
    assert held_out and not held_out & set(loaded.metadata["train_patients"])
    assert json.loads((out / "run.json").read_text())["command"] == "vision train-gan"
    result = _invoke("train-gan", *common, "--epochs", 3)
    assert result.exit_code == 2 and "--resume" in result.output
    result = _invoke("train-gan", *common, "--epochs", 3, "--width", 8, "--resume")
    assert result.exit_code == 2 and "width" in result.output
    result = _invoke("train-gan", *common, "--epochs", 3, "--resume")
    assert result.exit_code == 0, result.output
    assert load_model(out / "generator.pt").metadata["epochs_run"] == 3

    result = _invoke("sample", "--model", out / "generator.pt", "--n", 3, "--seed", 1, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == ["grid.png"] + [f"sample_{i:04d}_{c}.png" for i, c in enumerate(["normal"] * 3 + ["abnormal"] * 3)]
    one = np.asarray(Image.open(tmp_path / "s" / "sample_0003_abnormal.png"))
    assert one.shape == (16, 16) and one.dtype == np.uint8
    result = _invoke("sample", "--model", out / "generator.pt", "--n", 3, "--seed", 1, "--class", "abnormal",
                     "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    # seeded per class: --class abnormal draws the abnormal patches of --class all
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "sample_0000_abnormal.png")), one)
    result = _invoke("sample", "--model", out / "generator.pt", "--class", "benign", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "benign" in result.output and "normal, abnormal" in result.output
    other = save_model(DCGANGenerator(image_size=16, width=4), tmp_path / "plain.pt")
    result = _invoke("sample", "--model", other, "--out", tmp_path / "b")
    assert result.exit_code == 1 and "plain.pt" in result.output and "not a train-gan generator" in result.output


@pytest.mark.parametrize("override, message", [
    ({"y": None}, "lacks the field 'y'"),
    ({"x": np.zeros((40, 16, 16), np.float32)}, "key 'x' must hold uint8"),
    ({"x": np.zeros((40, 20, 20), np.uint8)}, "power-of-two side"),
    ({"y": np.full(40, 2)}, "key 'y' has label 2 at patch 0"),
    ({"y": np.zeros(39, np.int64)}, "key 'y' must hold 40 integer labels"),
    ({"classes": np.arange(2)}, "key 'classes' must hold the class names"),
])
def test_train_gan_names_the_file_and_the_bad_key(tmp_path, override, message):
    patches = _write_npz(tmp_path / "bad.npz", **override)
    result = _invoke("train-gan", "--patches", patches, "--out", tmp_path / "o", "--epochs", 1)
    assert result.exit_code == 1 and str(patches) in result.output and message in result.output, result.output
    assert not (tmp_path / "o" / "run.json").exists(), "the data are checked before the run folder is written"
