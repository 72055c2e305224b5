"""One ERM epoch through ``engine.fit`` vs a bare hand-written loop on the same model, data and optimizer.

Target: fit/bare <= 1.05.

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
from robustlab.common.regimes import ERM  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=6400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
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

    t = compare({"bare loop": bare, "engine.fit": engine}, repeats=args.repeats)
    print(f"ERM epoch, SmallCNN, {args.samples} samples, batch {args.batch} ({len(loader)} steps)")
    for name, s in t.items():
        print(f"  {name:11s} {s:7.3f} s")
    r = t["engine.fit"] / t["bare loop"]
    print(f"  engine.fit/bare loop = {r:.3f}  (target <= 1.05) {verdict(r, at_most=1.05, noise=0.0)}")


if __name__ == "__main__":
    main()
