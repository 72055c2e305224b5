"""Cost of recording activation patterns: one training epoch through ``fit`` with and without an
:class:`~robustlab.common.analysis.activation_patterns.ActivationPatternRecorder` on every ReLU layer, side by side.

Every second training pass recorded (``every=2``, the recorder's default, the setting to leave on) and every pass
(``every=1``, the whole epoch counted).

Target: the recorder at its default adds at most 10 % to an epoch (``with/without <= 1.10``, judged on this process's CPU time:
the median over the rounds of the recorded epoch's CPU time over the plain one's in the same round,
:func:`_timing.compare_paired`; the same ratio of wall-clock times is printed beside it), for the plain CNN (SmallCNN, its
three ``nn.ReLU`` modules) and for the residual network (vision ResNet-8, its seven ReLU sites named by module:
``bn1``, each block's ``bn1`` and the block itself), MNIST-shaped inputs, batch 128 (the recipe's), SGD.

Both sides run in one process with glibc told to keep freed memory (``--allocator steady``, the default:
:func:`_timing.steady_allocator`); ``--allocator default`` leaves glibc's moving thresholds, under which the page
faults of either side's steps swing from round to round.

    .venv/bin/python benchmarks/bench_activation_patterns.py --threads 1
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare_paired, pin_threads, steady_allocator, verdict  # noqa: E402

from robustlab.common.analysis.activation_patterns import ActivationPatternRecorder  # noqa: E402
from robustlab.common.data import ArrayDataset  # noqa: E402
from robustlab.common.engine import fit  # noqa: E402
from robustlab.common.models import SmallCNN  # noqa: E402
from robustlab.common.regimes import ERM  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=1920)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--allocator", choices=("steady", "default"), default="steady")
    args = p.parse_args()
    pin_threads(args.threads)
    if args.allocator == "steady":
        steady_allocator()
    else:
        print("allocator: glibc's default (moving mmap threshold, heap trimming)", flush=True)
    from robustlab.vision.models import ResNet
    from robustlab.vision.recipes.hartmann2021_patterns import resnet_relu_layers

    torch.manual_seed(0)
    x = torch.rand(args.samples, 1, 28, 28)
    y = torch.randint(0, 10, (args.samples,))
    loader = DataLoader(ArrayDataset(x, y), batch_size=args.batch, shuffle=True)
    fns, recorders = {}, {}
    for label, model, layers in (("SmallCNN", SmallCNN(), None),
                                 ("ResNet-8", ResNet(depth=8), resnet_relu_layers(ResNet(depth=8)))):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def plain(model=model, opt=opt):
            fit(model, ERM(), loader, optimizer=opt, epochs=1, device="cpu", progress=False)

        fns[f"{label} plain"] = plain
        for every in (2, 1):
            rec = recorders[(label, every)] = ActivationPatternRecorder(model, layers, every=every)

            def recorded(model=model, opt=opt, rec=rec):
                fit(model, ERM(), loader, optimizer=opt, epochs=1, device="cpu", progress=False, callbacks=[rec])

            fns[f"{label} every={every}"] = recorded
    print(f"one epoch, {args.samples} samples, batch {args.batch} ({len(loader)} steps), {args.repeats} rounds; "
          "each ratio: the median over the rounds of recorded / plain of the same round", flush=True)
    rec_default = inspect.signature(ActivationPatternRecorder).parameters["every"].default
    results = {}
    for label in ("SmallCNN", "ResNet-8"):
        mine = {name: fn for name, fn in fns.items() if name.startswith(label)}
        results.update(compare_paired(mine, base=f"{label} plain", repeats=args.repeats))
    for name, r in results.items():
        print(f"  {name:19s} {r['seconds']:7.3f} s")
    for (label, every), rec in recorders.items():
        r = results[f"{label} every={every}"]
        layers = rec.history[-1]["layers"]
        default = " (default)" if every == rec_default else ""
        lo, hi = r["cpu_interval"]
        print(f"  {label} every={every}{default}: recorded/plain = {r['cpu']:.3f} cpu [90 % interval {lo:.3f}, "
              f"{hi:.3f}], {r['wall']:.3f} wall  (target <= 1.10 on cpu) {verdict(r['cpu'], at_most=1.10, noise=0.0)}; "
              f"{len(layers)} layers, "
              f"{sum(v['points'] for v in layers.values())} patterns counted an epoch")


if __name__ == "__main__":
    main()
