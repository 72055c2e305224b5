"""PGD (L-inf, 10 steps) on a small CNN, batch 256: robustlab vs torchattacks vs a bare loop.

Targets: no slower than torchattacks (torchattacks/ours >= 1.0 within 3% noise) and within 10% of a bare loop of
the same forward/backward passes (ours/bare <= 1.10), which is the limit on a CPU.

    .venv/bin/python benchmarks/bench_pgd.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

from robustlab.common.attacks import PGD  # noqa: E402
from robustlab.common.models import SmallCNN  # noqa: E402


def bare_pgd(model, x, y, eps, alpha, steps):
    """The limit: the same passes with nothing around them."""
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp_(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp_(0, 1)
    return x_adv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    pin_threads(args.threads)
    import torchattacks

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SmallCNN().to(device).eval()
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, alpha, steps = 0.3, 0.01, 10
    ours = PGD(model, eps=eps, alpha=alpha, steps=steps, bounds=(0.0, 1.0))
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(fn):
        def go():
            fn()
            sync()
        return go

    t = compare({
        "robustlab": run(lambda: ours(x, y)),
        "torchattacks": run(lambda: theirs(x, y)),
        "bare loop": run(lambda: bare_pgd(model, x, y, eps, alpha, steps)),
    }, repeats=args.repeats)
    print(f"PGD L-inf, {steps} steps, SmallCNN, batch {args.batch}, {device}")
    for name, s in t.items():
        print(f"  {name:13s} {s * 1000:8.1f} ms")
    r1 = t["torchattacks"] / t["robustlab"]
    r2 = t["robustlab"] / t["bare loop"]
    target = 1.3 if device.type == "cuda" else 1.0
    print(f"  torchattacks/robustlab = {r1:.3f}  (target >= {target}) {verdict(r1, at_least=target)}")
    print(f"  robustlab/bare loop    = {r2:.3f}  (target <= 1.10) {verdict(r2, at_most=1.10)}")
    # same answer without the random start
    ours0 = PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False, bounds=(0.0, 1.0))
    theirs0 = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    diff = (ours0(x, y) - theirs0(x, y)).abs().max().item()
    print(f"  max |x_adv ours - x_adv torchattacks| without random start = {diff:.2e}")


if __name__ == "__main__":
    main()
