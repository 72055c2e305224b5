"""Epoch costs: ``engine.fit`` vs a bare loop for ERM, and a FastAdversarialTraining epoch vs an ERM epoch.

Targets: an ERM epoch through fit costs at most 1.05x the bare hand-written loop on the same model, data and
optimizer; a FastAdversarialTraining epoch (FGSM from a random start, with its per-epoch PGD check on 256
validation samples) at most 2.2x an ERM epoch. Robust accuracy of fast vs PGD adversarial training is compared by
``mnist_robust_training.py``.

    .venv/bin/python benchmarks/bench_engine.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

from robustlab.common.data import ArrayDataset  # noqa: E402
from robustlab.common.engine import fit  # noqa: E402
from robustlab.common.models import SmallCNN  # noqa: E402
from robustlab.common.regimes import ERM, FastAdversarialTraining  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    # an epoch long enough that the fast-AT check (a fixed cost per epoch) weighs as in real use; at 6,400
    # samples it adds about 25% to a fast-AT epoch
    p.add_argument("--samples", type=int, default=25600)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    pin_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.samples, 1, 28, 28)
    y = torch.randint(0, 10, (args.samples,))
    loader = DataLoader(ArrayDataset(x, y), batch_size=args.batch, shuffle=True)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def bare():
        model.train()
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch["x"]), batch["y"])
            loss.backward()
            opt.step()

    regime = ERM()

    def engine():
        fit(model, regime, loader, optimizer=opt, epochs=1, progress=True)

    val = DataLoader(ArrayDataset(x[:256], y[:256]), batch_size=256)
    fast = FastAdversarialTraining(0.1, bounds=(0.0, 1.0))

    def fast_epoch():
        fit(model, fast, loader, val_loader=val, optimizer=opt, epochs=1, progress=True)

    def erm_epoch():
        fit(model, regime, loader, val_loader=val, optimizer=opt, epochs=1, progress=True)

    t = compare({"bare loop": bare, "engine.fit": engine, "fit ERM+val": erm_epoch, "fit FastAT+val": fast_epoch},
                repeats=args.repeats)
    print(f"ERM epoch, SmallCNN, {args.samples} samples, batch {args.batch} ({len(loader)} steps)")
    for name, s in t.items():
        print(f"  {name:15s} {s:7.3f} s")
    r = t["engine.fit"] / t["bare loop"]
    print(f"  engine.fit/bare loop = {r:.3f}  (target <= 1.05) {verdict(r, at_most=1.05, noise=0.0)}")
    r2 = t["fit FastAT+val"] / t["fit ERM+val"]
    print(f"  FastAdversarialTraining epoch/ERM epoch = {r2:.3f}  (target <= 2.2) {verdict(r2, at_most=2.2, noise=0.0)}")


if __name__ == "__main__":
    main()
