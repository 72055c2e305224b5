"""One-hot encoding and simulation of 30,000 DNA sequences of length 200 against the issue's 5 s budget.

Times (median of interleaved repeats, threads pinned):
- ``one_hot`` of 30,000 random ACGT strings of length 200;
- ``simulate_koo2019(30000)``, which samples the sequences and builds their one-hot encoding, generating matrix
  and motif mask;
- both together (the issue's "one-hot encoding and simulation of 30,000 sequences").

Target: each, and their sum, under 5 s (ratio = seconds / 5 <= 1).

    .venv/bin/python benchmarks/bench_genomics_data.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

from robustlab.genomics.data import one_hot, simulate_koo2019  # noqa: E402

TARGET_S = 5.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    pin_threads(args.threads)

    rng = np.random.default_rng(0)
    seqs = ["".join(row) for row in np.array(list("ACGT"))[rng.integers(0, 4, (args.n, args.length))]]
    t0 = time.perf_counter()
    simulate_koo2019(args.n, seed=0, length=args.length)  # first call: includes reading JASPAR 2016 from pyjaspar
    cold = time.perf_counter() - t0

    seeds = iter(range(1, 10_000))
    times = compare({
        "one_hot": lambda: one_hot(seqs),
        "simulate_koo2019": lambda: simulate_koo2019(args.n, seed=next(seeds), length=args.length),
    }, repeats=args.repeats)
    times["one_hot + simulate_koo2019"] = times["one_hot"] + times["simulate_koo2019"]

    print(f"{args.n} sequences of length {args.length}, median of {args.repeats} repeats; target < {TARGET_S:.0f} s")
    print(f"  simulate_koo2019 first call (loads JASPAR 2016 from pyjaspar): {cold:.3f} s")
    for name, seconds in times.items():
        ratio = seconds / TARGET_S
        print(f"  {name:<28} {seconds:7.3f} s   ratio to 5 s target {ratio:.3f}   {verdict(ratio, at_most=1.0)}")


if __name__ == "__main__":
    main()
