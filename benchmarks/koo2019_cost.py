"""What one koo2019 run costs: seconds per training epoch of each kind, and the paper profile's total.

Measures, on the small data set (7,000 training sequences), one epoch of clean training (batch 100) and one
adversarial epoch (batch 50 + 50 PGD copies) with the paper's PGD-20 and with the quick profile's PGD-4, for
LocalNet and DistNet, plus the interpretability pass (saliency + SmoothGrad of 50 copies on the positive test
sequences), then prints the estimated cost of the paper profile (every run at its most epochs: 200 clean, or 20
clean + 80 adversarial; early stopping only shortens the clean ones; the large set is 3x the small per epoch).

    .venv/bin/python benchmarks/koo2019_cost.py --threads 1 [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import pin_threads  # noqa: E402


def _epoch_seconds(arch: str, variant: str, steps: int, data, device: str, epochs: int = 1) -> float:
    from robustlab.genomics.training import TrainConfig, train

    train_ds, valid_ds, _ = data
    adversarial = "adversarial" in variant
    config = TrainConfig(epochs=epochs, batch_size=50 if adversarial else 100, adv_steps=steps, adv_warmup_epochs=0,
                         device=device)
    t = time.perf_counter()
    train(arch, variant, train_ds, valid_ds, config, seed=0)
    return (time.perf_counter() - t) / epochs


def _interpret_seconds(arch: str, data, device: str) -> float:
    from robustlab.common.attribution import Saliency, SmoothGrad
    from robustlab.genomics.training import build_model

    test = data[2]
    x = torch.as_tensor(test.x[test.y[:, 0] > 0.5], device=device)
    model = build_model(arch, "standard").to(device).eval()
    t = time.perf_counter()
    for method in (Saliency(model, abs=False), SmoothGrad(model, n_samples=50, std=0.1, base="gradient")):
        for chunk in x.split(256):
            method(chunk, 0)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    pin_threads(args.threads)
    from robustlab.genomics.recipes.koo2019 import PROFILES, _data, grid

    paper = PROFILES["paper"]
    data = _data(paper.n_small, paper.length, paper.data_seed, paper.split_seed)
    print(f"koo2019 run cost, {args.threads} thread(s), device {args.device}, small set (7,000 training sequences)")
    cost: dict[tuple[str, str], float] = {}
    for arch in ("localnet", "distnet"):
        clean = _epoch_seconds(arch, "standard", 20, data, args.device)
        adv20 = _epoch_seconds(arch, "adversarial", 20, data, args.device)
        adv4 = _epoch_seconds(arch, "adversarial", 4, data, args.device)
        interp = _interpret_seconds(arch, data, args.device)
        print(f"  {arch:9s} clean epoch {clean:6.1f} s | adversarial epoch PGD-20 {adv20:6.1f} s, PGD-4 {adv4:6.1f} s"
              f" | interpretability {interp:5.1f} s")
        cost[(arch, "clean")] = 200 * clean + interp
        cost[(arch, "adversarial")] = 20 * clean + 80 * adv20 + interp
    total = 0.0
    for spec in grid(paper):
        scale = 3.0 if spec["dataset"] == "large" else 1.0
        total += scale * cost[(spec["arch"], "adversarial" if "adversarial" in spec["variant"] else "clean")]
    print(f"paper profile, {len(grid(paper))} runs at their most epochs: {total / 3600:.1f} h on this device "
          f"(early stopping shortens the clean runs)")


if __name__ == "__main__":
    main()
