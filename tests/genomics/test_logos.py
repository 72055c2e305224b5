"""Logos and score plots: PNG files are written atomically and are non-trivial (no pixel assertions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.genomics.interpret.logos import plot_attribution_logo, plot_score_distributions, save_logos

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _example(n=3, length=100, seed=0):
    rng = np.random.default_rng(seed)
    x = np.eye(4)[rng.integers(0, 4, (n, length))].transpose(0, 2, 1)
    mask = np.zeros((n, length), dtype=bool)
    mask[:, 20:32] = True
    mask[:, 60:70] = True
    attr = rng.normal(scale=0.2, size=(n, 4, length)) + 2.0 * mask[:, None, :]
    return attr, x, mask


def _assert_png(path, min_bytes):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_save_logos_writes_a_png(tmp_path):
    attr, x, mask = _example()
    out = save_logos(torch.tensor(attr), torch.tensor(x), mask, tmp_path / "sub" / "logos.png", n=2)
    assert out == tmp_path / "sub" / "logos.png"
    _assert_png(out, 20_000)


def test_save_logos_without_sequences_or_masks(tmp_path):
    attr, x, _ = _example(n=1)
    out = save_logos(attr * x, None, None, tmp_path / "times_input.png", titles=["integrated gradients"])
    _assert_png(out, 10_000)


def test_logo_of_a_per_position_importance_draws_on_a_given_axes():
    from matplotlib.figure import Figure

    attr, x, mask = _example(n=1, length=80)
    ax, plain = Figure().add_subplot(), Figure().add_subplot()
    importance = (attr[0] * x[0]).sum(0)
    assert plot_attribution_logo(importance, x=x[0], mask=mask[0], ax=ax, title="saliency") is ax
    plot_attribution_logo(importance, x=x[0], ax=plain)
    assert ax.get_title(loc="left") == "saliency"
    assert len(ax.patches) == len(plain.patches) + 2  # the two shaded motif runs
    assert plot_attribution_logo(attr[0]).figure is not None  # a new figure when no axes is given


def test_logo_errors(tmp_path):
    attr, x, mask = _example(n=2, length=30)
    with pytest.raises(ValueError, match="needs x="):
        plot_attribution_logo(attr[0].sum(0))
    with pytest.raises(ValueError, match="mask must have shape"):
        plot_attribution_logo(attr[0], x=x[0], mask=mask[0, :10])
    with pytest.raises(ValueError, match="fewer than"):
        save_logos(attr, x[:1], mask, tmp_path / "bad.png", n=2)
    assert not list(tmp_path.iterdir())  # nothing written on failure


def test_plot_score_distributions(tmp_path):
    rng = np.random.default_rng(1)
    scores = {
        "saliency": np.r_[rng.beta(8, 3, 200), np.nan],  # NaN (skipped sequences) are left out
        "smoothgrad": rng.beta(10, 2, 200),
        "integrated gradients": torch.tensor(rng.beta(9, 2, 200)),
    }
    out = plot_score_distributions(scores, tmp_path / "auroc.png", title="DistNet, small data set")
    _assert_png(out, 10_000)
    with pytest.raises(ValueError, match="no finite score"):
        plot_score_distributions({"x": [np.nan]}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="empty"):
        plot_score_distributions({}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_importing_the_interpret_package_loads_no_plotting_library():
    import subprocess
    import sys

    code = (
        "import sys, robustlab.genomics.interpret, robustlab.genomics.models; "
        "print(sorted(m for m in ('matplotlib', 'logomaker', 'pandas', 'Bio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
