"""MIT-BIH beat extraction against the bare time of reading the records, and the cached set's load time.

Times, in the same run (median of interleaved repeats, threads pinned):
- bare read: ``wfdb.rdrecord`` (all signals) + ``wfdb.rdann`` of each record;
- ``extract_beats``: the records' MLII lead, baseline removal on the whole record, every beat window
  (720 samples, all AAMI classes incl. Q and the paced beats of 107/217), RR features, the checks;
- the cached set loaded by ``load_beats`` (uncompressed NPZ).

Records: every record with a lead MLII (46: all but 102 and 104). Targets: extraction at most 2x the bare read;
the cached load under 1 s.

    .venv/bin/python benchmarks/bench_ecg_beats.py --threads 1 [--root ../shared/data/ecg/mitdb]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

from robustlab.ecg.data.mitdb import RECORDS, extract_beats, load_beats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg" / "mitdb"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    pin_threads(args.threads)
    import wfdb

    records = [r for r in RECORDS if "MLII" in wfdb.rdheader(str(args.root / r)).sig_name]

    def bare():
        for r in records:
            wfdb.rdrecord(str(args.root / r))
            wfdb.rdann(str(args.root / r), "atr")

    out = {}

    def extract():
        out["beats"] = extract_beats(args.root, records)

    with tempfile.TemporaryDirectory() as cache:
        load_beats(records, root=args.root, cache_dir=cache)  # fill the cache
        times = compare({"bare read (rdrecord + rdann)": bare, "extract_beats": extract,
                         "load_beats (cached)": lambda: load_beats(records, root=args.root, cache_dir=cache)},
                        repeats=args.repeats)
    beats = out["beats"]
    totals = beats.report["totals"]
    print(f"{len(records)} records with MLII (all but {', '.join(r for r in RECORDS if r not in records)}), "
          f"median of {args.repeats} repeats")
    print(f"  {len(beats)} windows of {beats.x.shape[1]} samples kept of {totals['beats']} beat annotations "
          f"(dropped: {totals['dropped']}), {totals['non_beat']} non-beat annotations; per class {beats.counts()}")
    for name, seconds in times.items():
        print(f"  {name:<30} {seconds:7.3f} s")
    ratio = times["extract_beats"] / times["bare read (rdrecord + rdann)"]
    print(f"  extract_beats / bare read: ratio {ratio:.2f} (target <= 2)   {verdict(ratio, at_most=2.0)}")
    load = times["load_beats (cached)"]
    print(f"  cached load: {load:.3f} s (target < 1 s)   {verdict(load, at_most=1.0)}")


if __name__ == "__main__":
    main()
