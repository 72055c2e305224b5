"""Saliency maps for 2,000 one-hot sequences of length 200: robustlab vs Captum on the genomics CNNs.

Target: robustlab at least as fast as Captum (Captum/robustlab >= 1.0 within 3% noise), same maps.

    .venv/bin/python benchmarks/bench_genomics_saliency.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

from robustlab.common.attribution import Saliency  # noqa: E402
from robustlab.genomics.data import simulate_koo2019  # noqa: E402
from robustlab.genomics.models import DistNet, LocalNet  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500, help="sequences per call, for both libraries")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    pin_threads(args.threads)
    from captum.attr import Saliency as CaptumSaliency

    x = torch.from_numpy(simulate_koo2019(args.n, seed=0).x)
    for arch in (LocalNet, DistNet):
        torch.manual_seed(0)
        model = arch().eval()
        ours, theirs = Saliency(model), CaptumSaliency(model)

        def run_ours(ours=ours):
            return torch.cat([ours(x[i:i + args.batch], 0) for i in range(0, len(x), args.batch)])

        def run_captum(theirs=theirs):
            return torch.cat([theirs.attribute(x[i:i + args.batch].clone().requires_grad_(True), target=0)
                              for i in range(0, len(x), args.batch)])

        t = compare({"robustlab": run_ours, "captum": run_captum}, repeats=args.repeats)
        a, b = run_ours(), run_captum()
        diff = ((a - b).abs().max() / b.abs().max()).item()
        r = t["captum"] / t["robustlab"]
        print(f"{arch.__name__}: saliency for {len(x)} sequences of length {x.shape[-1]}, "
              f"batches of {args.batch}")
        print(f"  robustlab {t['robustlab'] * 1000:8.1f} ms   captum {t['captum'] * 1000:8.1f} ms")
        print(f"  captum/robustlab = {r:.3f}  (target >= 1.0 within 3%) {verdict(r, at_least=1.0)}")
        print(f"  max|ours - captum| / max|captum| = {diff:.2e}")


if __name__ == "__main__":
    main()
