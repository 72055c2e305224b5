"""Cost of recording activation patterns: one training epoch through ``fit`` with and without an
:class:`~robustlab.common.analysis.activation_patterns.ActivationPatternRecorder` on every ReLU layer, side by side.

Every recorded pass (``every=1``, the default), every second one (``every=2``) and every third (``every=3``).

Target: the recorder adds at most 10 % to an epoch (``with/without <= 1.10``, judged on this process's least CPU
time over the rounds, which other processes on a shared machine disturb least; the median wall-clock ratio is
printed beside it), for the plain CNN (SmallCNN, its
three ``nn.ReLU`` modules) and for the residual network (vision ResNet-8, its seven ReLU sites named by module:
``bn1``, each block's ``bn1`` and the block itself), MNIST-shaped inputs, batch 64, SGD.

    .venv/bin/python benchmarks/bench_activation_patterns.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare_cpu, pin_threads, verdict  # noqa: E402

from robustlab.common.analysis.activation_patterns import ActivationPatternRecorder  # noqa: E402
from robustlab.common.data import ArrayDataset  # noqa: E402
from robustlab.common.engine import fit  # noqa: E402
from robustlab.common.models import SmallCNN  # noqa: E402
from robustlab.common.regimes import ERM  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=3200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    pin_threads(args.threads)
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
        for every in (1, 2, 3):
            rec = recorders[(label, every)] = ActivationPatternRecorder(model, layers, every=every)

            def recorded(model=model, opt=opt, rec=rec):
                fit(model, ERM(), loader, optimizer=opt, epochs=1, device="cpu", progress=False, callbacks=[rec])

            fns[f"{label} every={every}"] = recorded
    t = compare_cpu(fns, repeats=args.repeats)
    print(f"one epoch, {args.samples} samples, batch {args.batch} ({len(loader)} steps); {args.repeats} rounds: "
          "median wall, least CPU")
    for name, (w, c) in t.items():
        print(f"  {name:19s} wall {w:7.3f} s   cpu {c:7.3f} s")
    for (label, every), rec in recorders.items():
        rw = t[f"{label} every={every}"][0] / t[f"{label} plain"][0]
        rc = t[f"{label} every={every}"][1] / t[f"{label} plain"][1]
        layers = rec.history[-1]["layers"]
        print(f"  {label} every={every}: recorded/plain = {rc:.3f} cpu, {rw:.3f} wall  (target <= 1.10 on cpu) "
              f"{verdict(rc, at_most=1.10, noise=0.0)}; {len(layers)} layers, "
              f"{sum(v['points'] for v in layers.values())} patterns counted an epoch")

if __name__ == "__main__":
    main()
