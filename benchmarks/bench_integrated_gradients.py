"""Integrated gradients: robustlab against Captum and against the bare cost of the batched gradient.

Three ways of computing the same thing are timed side by side, repeats interleaved, medians reported:

* ours:    ``robustlab.common.attribution.IntegratedGradients(model, steps=50, method=...)``;
* captum:  ``captum.attr.IntegratedGradients(model).attribute(x, n_steps=50, method=...)``;
* limit:   one forward and one backward pass over the ``N * 50`` interpolation points, built beforehand (the
           cost no implementation can beat: no point construction, no weighted sum).

in two settings: a genomics-sized 1D CNN on one-hot DNA and a compute-bound image CNN. Targets: captum/ours
>= 1.0 (within 3% noise) and ours/limit <= 1.10. Ratios are medians over rounds of the paired per-round ratios
(each round times the three once, in rotating order), so load that drifts between rounds on a shared machine
cancels; on CPU the same ratios in calling-thread CPU time are printed beside them. The script also checks that
ours and Captum agree.

Usage::

    .venv/bin/python benchmarks/bench_integrated_gradients.py [--threads 1] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn
from torch.nn import functional as F

from robustlab.common.attribution import IntegratedGradients

STEPS = 50


def genomics_setting(device: torch.device) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor]:
    """A small DNA CNN (conv 4->32 width 19, relu, maxpool, conv, global pool, linear) on 64 sequences of 200."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(4, 32, 19, padding=9), nn.ReLU(), nn.MaxPool1d(4),
        nn.Conv1d(32, 32, 7, padding=3), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 2),
    )  # fmt: skip
    x = F.one_hot(torch.randint(4, (64, 200)), 4).permute(0, 2, 1).float()
    target = torch.randint(2, (64,))
    return "genomics 1D CNN, 64 x (4, 200) one-hot", model.eval().to(device), x.to(device), target.to(device)


def image_setting(device: torch.device) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor]:
    """A compute-bound image CNN (three 3x3 conv layers of 32-64 channels) on 8 images of 3x32x32."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip
    x = torch.rand(8, 3, 32, 32)
    target = torch.randint(10, (8,))
    return "image CNN, 8 x (3, 32, 32)", model.eval().to(device), x.to(device), target.to(device)


def bare_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str) -> Callable[[], None]:
    """The limit: one batched forward + backward over all N * STEPS points, built outside the timed call."""
    alphas = torch.tensor(approximation_parameters(method)[1](STEPS), dtype=x.dtype, device=x.device)
    points = (alphas.view(-1, *(1,) * x.ndim) * x).reshape(STEPS * x.shape[0], *x.shape[1:])  # zero baseline
    targets = target.repeat(STEPS)

    def run() -> None:
        z = points.detach().requires_grad_(True)
        out = model(z).gather(1, targets.unsqueeze(1))
        torch.autograd.grad(out.sum(), z)

    return run


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall-clock and calling-thread CPU seconds of one call (CPU time is blind to other processes' load)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.thread_time() - cpu


def bench(setting, method: str, repeats: int, device: torch.device) -> dict[str, float]:
    title, model, x, target = setting
    ours = IntegratedGradients(model, steps=STEPS, method=method)
    theirs = CaptumIG(model)
    runs = {
        "ours": lambda: ours(x, target),
        "captum": lambda: theirs.attribute(x, target=target, n_steps=STEPS, method=method),
        "limit": bare_gradient(model, x, target, method),
    }

    a, b = ours(x, target), theirs.attribute(x, target=target, n_steps=STEPS, method=method)
    agreement = ((a - b).abs().max() / b.abs().max()).item()

    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        timed(fn, device)
    names = list(runs)
    for r in range(repeats):  # interleaved rounds, the order rotating from round to round
        for name in names[r % 3 :] + names[: r % 3]:
            w, c = timed(runs[name], device)
            wall[name].append(w)
            cpu[name].append(c)

    def ratio(times: dict[str, list[float]], num: str, den: str) -> float:
        """Median over rounds of the paired ratio: robust to load that drifts between rounds."""
        return statistics.median(t / u for t, u in zip(times[num], times[den]))

    show_cpu = device.type == "cpu"
    print(f"\n{title}: {x.shape[0]} x {STEPS} = {x.shape[0] * STEPS} points, method={method}")
    for name in names:
        line = f"  {name:<7} wall median {statistics.median(wall[name]) * 1e3:7.1f} ms"
        line += f" (min {min(wall[name]) * 1e3:7.1f})"
        if show_cpu:
            line += f"   cpu median {statistics.median(cpu[name]) * 1e3:7.1f} ms"
        print(line)
    captum_over_ours = ratio(wall, "captum", "ours")
    ours_over_limit = ratio(wall, "ours", "limit")

    def cpu_note(num: str, den: str) -> str:
        return f"   [cpu-time: {ratio(cpu, num, den):.3f}]" if show_cpu else ""

    print(
        f"  captum/ours = {captum_over_ours:.3f}  (target >= 1.0 within 3%: {ok(captum_over_ours >= 0.97)})"
        + cpu_note("captum", "ours")
    )
    print(
        f"  ours/limit  = {ours_over_limit:.3f}  (target <= 1.10: {ok(ours_over_limit <= 1.10)})"
        + cpu_note("ours", "limit")
    )
    print(
        f"  agreement: max|ours - captum| / max|captum| = {agreement:.2e}  (required < 1e-4: {ok(agreement < 1e-4)})"
    )
    return {"captum/ours": captum_over_ours, "ours/limit": ours_over_limit, "agreement": agreement}


def ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per implementation (default 7)")
    parser.add_argument("--method", default="gausslegendre", help="quadrature rule (default gausslegendre)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a timing target is missed")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, repeats {args.repeats}"
    )

    results = [bench(s(device), args.method, args.repeats, device) for s in (genomics_setting, image_setting)]
    if any(r["agreement"] >= 1e-4 for r in results):
        print("FAIL: ours and Captum disagree", file=sys.stderr)
        return 1
    missed = any(r["captum/ours"] < 0.97 or r["ours/limit"] > 1.10 for r in results)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
