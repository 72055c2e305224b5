"""Reading and preprocessing the 1,102 labelled PNW files: bare ``obspy.read``, a plain ObsPy chain, and ours.

Times, in the same run (median of interleaved repeats, threads pinned):
- bare read: ``obspy.read`` of each file (format detected, as a user calls it);
- plain ObsPy chain: read, ``select`` the labelled trace id, ``merge(method=1, fill_value="interpolate")``,
  ``detrend("demean")``, ``detrend("linear")``, ``taper(0.05, "hann")``, ``filter("bandpass", 1, 8, corners=4,
  zerophase=True)``, ``resample(20)``, ``trim(origin - 10 s, origin + 100 s)``, on every trace >= 20 Hz;
- ours: :func:`robustlab.seismic.preprocessing.preprocess_files` on the same 1,102 rows (reading, the gap policy,
  every check and skip reason, the signal and noise windows, z-scoring);
- the cached set loaded by ``load_pnw`` (NPZ).

Traces per second count the traces kept; the target is at least 120 traces/s for ours (the plain chain's ~120).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_seismic_data.py --threads 1 [--root ../shared/data/seismic/pnw_eq_vs_explosion]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, pin_threads, verdict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seismic" / "pnw_eq_vs_explosion"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    pin_threads(args.threads)
    import obspy
    from obspy import UTCDateTime

    from robustlab.seismic.data.pnw import load_pnw, read_labels
    from robustlab.seismic.preprocessing import PreprocessConfig, preprocess_files

    labels = read_labels(args.root)
    paths = [str(args.root / f) for f in labels["file"]]
    rows = list(zip(paths, labels["trace_id"], labels["origin_time"]))
    config = PreprocessConfig()
    out = {}

    def bare():
        for path in paths:
            obspy.read(path)

    def plain():
        kept = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path, tid, origin in rows:
                st = obspy.read(path).select(id=tid)
                try:
                    st.merge(method=1, fill_value="interpolate")
                except Exception:
                    continue
                tr = st[0]
                if tr.stats.sampling_rate < 20:
                    continue
                tr.detrend("demean")
                tr.detrend("linear")
                tr.taper(max_percentage=0.05, type="hann")
                tr.filter("bandpass", freqmin=1.0, freqmax=8.0, corners=4, zerophase=True)
                tr.resample(20.0)
                o = UTCDateTime(origin)
                tr.trim(o - 10, o + 100)
                kept += 1
        out["plain"] = kept

    def ours():
        out["ours"] = preprocess_files(labels, args.root, config)

    with tempfile.TemporaryDirectory() as cache:
        load_pnw(args.root, unlabelled=False, cache_dir=cache, progress=False)  # fill the cache
        times = compare({"bare obspy.read": bare, "plain ObsPy chain": plain, "ours (preprocess_files)": ours,
                         "load_pnw (cached)": lambda: load_pnw(args.root, unlabelled=False, cache_dir=cache,
                                                               progress=False)},
                        repeats=args.repeats)
    ts = out["ours"]
    n_files = len(paths)
    bare_fps = n_files / times["bare obspy.read"]
    plain_tps = out["plain"] / times["plain ObsPy chain"]
    ours_tps = len(ts) / times["ours (preprocess_files)"]
    print(f"{n_files} labelled PNW files, threads {args.threads}, median of {args.repeats} repeats")
    print(f"  ours kept {len(ts)} traces, skipped {len(ts.report)}: "
          + ", ".join(f"{k} {v}" for k, v in ts.reason_counts().items()))
    print(f"  plain chain kept {out['plain']} traces (>= 20 Hz, merged; no window checks)")
    for name, seconds in times.items():
        print(f"  {name:<26} {seconds:7.3f} s")
    print(f"  bare obspy.read:          {bare_fps:7.1f} files/s")
    print(f"  plain ObsPy chain:        {plain_tps:7.1f} traces/s")
    print(f"  ours:                     {ours_tps:7.1f} traces/s   (files/s {n_files / times['ours (preprocess_files)']:.1f})")
    ratio = ours_tps / plain_tps
    print(f"  ours / plain chain (traces/s): ratio {ratio:.2f} (target >= 1)   {verdict(ratio, at_least=1.0)}")
    print(f"  ours: {ours_tps:.0f} traces/s (target >= 120)   {verdict(ours_tps, at_least=120.0)}")
    load = times["load_pnw (cached)"]
    print(f"  cached load: {load:.3f} s (target < 1 s)   {verdict(load, at_most=1.0)}")


if __name__ == "__main__":
    main()
