"""MNIST at eps 0.3: the two failure modes of adversarial training and what robustlab does about them.

Runs, side by side on the same SmallCNN, data and seed, through the engine:

- ``erm``: plain training (the cost unit: seconds per epoch).
- ``pgd_full``: PGD adversarial training at full eps from the first step (``EpsRamp(ramp_epochs=0)``).
- ``pgd_ramp``: the same with the default eps ramp.
- ``fast``: ``FastAdversarialTraining`` (FGSM from a random start, alpha 1.25 eps), guarded.
- ``fgsm_unguarded``: FGSM training with a large step and no guard (remedy="warn"), to show the collapse.

and prints clean, FGSM and PGD-40 accuracy on test images, seconds per epoch and the ratio to ERM.

    .venv/bin/python benchmarks/mnist_robust_training.py --threads 2 --train-size 60000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from robustlab.common.attacks import FGSM, PGD
from robustlab.common.data import ArrayDataset, read_idx
from robustlab.common.engine import fit
from robustlab.common.models import SmallCNN
from robustlab.common.regimes import ERM, AdversarialTraining, FastAdversarialTraining
from robustlab.common.regimes.schedules import EpsRamp


def load(root: Path, split: str):
    prefix = "train" if split == "train" else "t10k"
    x = torch.from_numpy(read_idx(root / f"{prefix}-images-idx3-ubyte.gz").copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype("int64"))
    return x, y


def accuracy(model, x, y, attack=None, batch=500):
    correct = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        if attack is not None:
            xb = attack(xb, yb)
        with torch.no_grad():
            correct += (model(xb).argmax(1) == yb).sum().item()
    return 100.0 * correct / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/vision/mnist")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=10, help="PGD steps in adversarial training")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--runs", default="erm,pgd_full,pgd_ramp,fast,fgsm_unguarded")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    EPS = args.eps
    x, y = load(args.data, "train")
    xt, yt = load(args.data, "test")
    x, y, xt, yt = x[: args.train_size], y[: args.train_size], xt[: args.test_size], yt[: args.test_size]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MNIST {len(x)} train / {len(xt)} test; "
          f"eps {EPS}; {args.epochs} epochs; SmallCNN width {args.width}", flush=True)

    def regime_for(name, model):
        if name == "erm":
            return ERM()
        if name == "pgd_full":
            return AdversarialTraining(PGD(model, eps=EPS, steps=args.train_steps), schedule=EpsRamp(ramp_epochs=0))
        if name == "pgd_ramp":
            return AdversarialTraining(PGD(model, eps=EPS, steps=args.train_steps))
        if name == "fast":
            return FastAdversarialTraining(EPS, bounds=(0.0, 1.0))
        if name == "fgsm_unguarded":
            return FastAdversarialTraining(EPS, alpha=2.0 * EPS, bounds=(0.0, 1.0), remedy="warn",
                                           schedule=EpsRamp(ramp_epochs=0))
        raise SystemExit(f"unknown run {name!r}")

    results = {}
    for name in args.runs.split(","):
        torch.manual_seed(0)
        model = SmallCNN(width=args.width)
        loader = DataLoader(ArrayDataset(x, y), batch_size=100, shuffle=True)
        val = DataLoader(ArrayDataset(xt[:256], yt[:256]), batch_size=256)
        regime = regime_for(name, model)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit(model, regime, loader, val_loader=val, epochs=args.epochs,
                      optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), progress=False)
        seconds = (time.perf_counter() - t0) / len(res.history)
        model.eval()
        row = {
            "clean": accuracy(model, xt, yt),
            "fgsm": accuracy(model, xt, yt, FGSM(model, eps=EPS, bounds=(0.0, 1.0))),
            "pgd40": accuracy(model, xt, yt, PGD(model, eps=EPS, alpha=0.01, steps=40, bounds=(0.0, 1.0))),
            "epochs_run": len(res.history),
            "seconds_per_epoch": seconds,
            "stop_reason": res.stop_reason,
            "warnings": [str(w.message) for w in caught if "catastrophic" in str(w.message)],
            "pgd_check_acc": [r.get("pgd_check_acc") for r in res.history],
        }
        results[name] = row
        print(f"{name:15s} clean {row['clean']:5.1f}%  FGSM {row['fgsm']:5.1f}%  PGD-40 {row['pgd40']:5.1f}%  "
              f"{seconds:6.1f} s/epoch  epochs {row['epochs_run']}"
              + (f"\n{'':15s} stopped: {res.stop_reason}" if res.stop_reason else "")
              + "".join(f"\n{'':15s} warning: {w}" for w in row["warnings"]), flush=True)

    if "erm" in results:
        unit = results["erm"]["seconds_per_epoch"]
        for name, row in results.items():
            print(f"epoch cost {name}/erm: {row['seconds_per_epoch'] / unit:.2f}x")
    if {"fast", "pgd_ramp"} <= set(results):
        gap = results["pgd_ramp"]["pgd40"] - results["fast"]["pgd40"]
        print(f"PGD-40 accuracy, PGD-AT minus fast AT: {gap:+.1f} points (target: within 5)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
