"""Seismic spectrograms: the batched ``Spectrogram`` module against a per-trace ``scipy.signal.stft`` loop.

Traces: the preprocessed PNW traces (``load_pnw``, about 1,100 labelled traces of 2,000 samples at 20 Hz) when the
data can be had (``--data`` or ``$ROBUSTLAB_PNW_EQ_VS_EXPLOSION`` or ``../shared/data``), else random band-passed
traces of the same shape; at 4,000 samples (the issue's figure for the SciPy loop) the traces are tiled to twice
their length.

Times (median of interleaved repeats, threads pinned), each as traces per second:
- ``Spectrogram`` (n_fft 128, hop 32, 1-8 Hz; linear bins and 32-band log-mel, log10 of the power) on all traces
  in one call, from the float32 array to the float32 result;
- the same STFT one trace at a time with ``scipy.signal.stft`` (Hann, nperseg 128, noverlap 96, zero boundary),
  then ``|Z|^2`` and ``log10``: the loop computes less (no mel bank), so the ratio is conservative.
The ratio loop time / batched time must be at least 1.

    .venv/bin/python benchmarks/bench_seismic_spectrogram.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _pin_blas(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _traces(data: str | None, n: int):
    """The real preprocessed traces if they can be read, else random ones of the same shape; and a description."""
    import numpy as np

    root = data or os.environ.get("ROBUSTLAB_PNW_EQ_VS_EXPLOSION")
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seismic" / "pnw_eq_vs_explosion"
    if root is None and default.exists():
        root = str(default)
    if root is not None:
        try:
            from robustlab.seismic.data.pnw import load_pnw

            traces = load_pnw(root, unlabelled=False, progress=False, download=False)
            return traces.x, f"{len(traces)} preprocessed PNW traces from {root}"
        except Exception as e:  # noqa: BLE001 - the benchmark falls back to random traces and says why
            print(f"(could not load the PNW traces: {e}; using random traces)")
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(0)
    x = sosfiltfilt(butter(4, [1, 8], btype="band", fs=20.0, output="sos"), rng.standard_normal((n, 1, 2000)), axis=-1)
    return (x / x.std(-1, keepdims=True)).astype(np.float32), f"{n} random band-passed traces"


def scipy_loop(x, *, rate: float, n_fft: int, hop: int, fmin: float, fmax: float):
    """log10 power STFT within [fmin, fmax], one trace at a time."""
    import numpy as np
    from scipy.signal import get_window, stft

    scale = get_window("hann", n_fft).sum()
    out = []
    for row in x[:, 0]:
        f, _, z = stft(row, fs=rate, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros",
                       padded=True)
        keep = (f >= fmin) & (f <= fmax)
        out.append(np.log10(np.abs(z[keep] * scale) ** 2 + 1e-6))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=None, help="the PNW folder (default: $ROBUSTLAB_PNW_EQ_VS_EXPLOSION or shared)")
    p.add_argument("--traces", type=int, default=1102, help="random traces when the data cannot be had")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    _pin_blas(args.threads)
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _timing import compare, pin_threads, verdict

    from robustlab.seismic.spectrogram import Spectrogram

    pin_threads(args.threads)
    x2000, what = _traces(args.data, args.traces)
    print(what)
    settings = {"rate": 20.0, "n_fft": 128, "hop": 32, "fmin": 1.0, "fmax": 8.0}
    linear, mel = Spectrogram(n_mels=None), Spectrogram(n_mels=32)
    for length, x in ((4000, np.concatenate([x2000, x2000], axis=-1)), (2000, x2000)):
        n = len(x)

        def batched(module, x=x):
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

        ours = batched(linear)
        loop = scipy_loop(x[:8], **settings)
        t = ours.shape[-1]  # scipy's padded=True may add a last, partly empty frame
        err = max(np.abs(ours[i, 0] - loop[i][:, :t]).max() for i in range(8))
        assert err < 1e-3, err  # the same numbers, or the timing means nothing
        times = compare({"linear": lambda: batched(linear), "mel": lambda: batched(mel),
                         "loop": lambda x=x: scipy_loop(x, **settings)}, repeats=args.repeats)
        ratio = times["loop"] / times["linear"]
        print(f"{n} traces x {length} samples: Spectrogram (linear) {n / times['linear']:,.0f} traces/s, "
              f"Spectrogram (32 mel) {n / times['mel']:,.0f} traces/s, per-trace scipy.signal.stft loop "
              f"{n / times['loop']:,.0f} traces/s; loop/batched = {ratio:.1f} (mel: "
              f"{times['loop'] / times['mel']:.1f}) (target >= 1) {verdict(min(ratio, times['loop'] / times['mel']), at_least=1.0)}; "
              f"max |log10 difference| {err:.1e}")


if __name__ == "__main__":
    main()
