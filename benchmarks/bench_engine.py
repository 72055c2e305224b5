"""Epoch costs: ``engine.fit`` vs a bare loop for ERM, and FastAdversarialTraining and MeanTeacher epochs vs an
ERM epoch.

Targets: an ERM epoch through fit costs at most 1.05x the bare hand-written loop on the same model, data and
optimizer; a FastAdversarialTraining epoch (FGSM from a random start, with its per-epoch PGD check on 256
validation samples) at most 2.2x an ERM epoch. Robust accuracy of fast vs PGD adversarial training is compared by
``mnist_robust_training.py``. A MeanTeacher epoch (an unlabelled loader as large as the labelled one; each
step the teacher's forward pass without gradients and the student's forward and backward passes on twice the
batch, then the EMA update) over an ERM epoch, both through fit, is printed beside the same ratio of two bare
hand-written loops of the same passes (what the passes themselves cost: on a CPU a forward pass of SmallCNN is not
a third of a forward and backward, max pooling dominates it); target: the MeanTeacher epoch through fit at most
1.05x its bare loop.

    .venv/bin/python benchmarks/bench_engine.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
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
from robustlab.common.regimes.mean_teacher import MeanTeacher  # noqa: E402


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

    unlabelled = DataLoader(ArrayDataset(torch.rand(args.samples, 1, 28, 28), torch.full((args.samples,), -1)),
                            batch_size=args.batch, shuffle=True)
    mean_teacher = MeanTeacher()
    teacher = copy.deepcopy(model).requires_grad_(False)

    def bare_mean_teacher():
        model.train()
        teacher.train()
        for step, (b, u) in enumerate(zip(loader, unlabelled), start=1):
            x = torch.cat([b["x"], u["x"]])
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                target = teacher(x + 0.1 * torch.randn_like(x))
            logits = model(x + 0.1 * torch.randn_like(x))
            consistency = F.mse_loss(logits.softmax(1), target.softmax(1), reduction="sum") / 10 / len(x)
            (F.cross_entropy(logits[: len(b["y"])], b["y"]) + consistency).backward()
            opt.step()
            decay = min(1 - 1 / (step + 1), 0.999)
            with torch.no_grad():
                for tp, sp in zip(teacher.parameters(), model.parameters()):
                    tp.mul_(decay).add_(sp, alpha=1 - decay)

    def mean_teacher_epoch():
        fit(model, mean_teacher, loader, unlabeled_loader=unlabelled, optimizer=opt, epochs=1, progress=True)

    t = compare({"bare loop": bare, "engine.fit": engine, "fit ERM+val": erm_epoch, "fit FastAT+val": fast_epoch,
                 "bare MT loop": bare_mean_teacher, "fit MeanTeacher": mean_teacher_epoch}, repeats=args.repeats)
    print(f"ERM epoch, SmallCNN, {args.samples} samples, batch {args.batch} ({len(loader)} steps)")
    for name, s in t.items():
        print(f"  {name:15s} {s:7.3f} s")
    r = t["engine.fit"] / t["bare loop"]
    print(f"  engine.fit/bare loop = {r:.3f}  (target <= 1.05) {verdict(r, at_most=1.05, noise=0.0)}")
    r2 = t["fit FastAT+val"] / t["fit ERM+val"]
    print(f"  FastAdversarialTraining epoch/ERM epoch = {r2:.3f}  (target <= 2.2) {verdict(r2, at_most=2.2, noise=0.0)}")
    r3, floor = t["fit MeanTeacher"] / t["engine.fit"], t["bare MT loop"] / t["bare loop"]
    print(f"  MeanTeacher epoch/ERM epoch = {r3:.3f}  (the bare loops of the same passes: {floor:.3f})")
    r4 = t["fit MeanTeacher"] / t["bare MT loop"]
    print(f"  MeanTeacher epoch/bare MT loop = {r4:.3f}  (target <= 1.05) {verdict(r4, at_most=1.05, noise=0.0)}")


if __name__ == "__main__":
    main()
