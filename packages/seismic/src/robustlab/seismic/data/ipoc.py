"""IPOC source regions: 200 three-component traces of CX.PB01 (northern Chile), 20 Hz, 60 s from the origin.

SeisBench's "chunked dummy" dataset (two chunks in the WaveformDataset layout). Each trace's class is the IPOC
catalog's source-region category of its event: ID (intermediate depth, 174 traces), UP (upper plate, 16), P1/P2/P3
(plate interface, 10 together); the ``split`` column (train/dev/test) is chronological. Labels follow from the
hypocentre and traces start at the origin, so the P arrival time is a privileged feature.

Preprocessing (:data:`IPOC_CONFIG`): detrend, taper, band-pass 1-8 Hz at the stored 20 Hz, the whole 60 s
(1200 samples), z-scored per trace over its three components together; no noise window (traces start at the
origin: ``noise`` has length 0).

Reference:
    Münchmeyer, Bindi, Sippl, Leser & Tilmann (2019), Low uncertainty multifeature magnitude estimation with 3-D
    corrections and boosting tree regression: application to North Chile, GJI 220(1) (the catalog,
    doi:10.5880/GFZ.2.4.2019.004, CC BY 4.0). Woollam et al. (2022), SeisBench, SRL 93(3).

Importing this module loads NumPy only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError, DownloadError
from robustlab.seismic.preprocessing import PreprocessConfig, TraceSet

__all__ = ["ENV_VAR", "FILES", "IPOC_CLASSES", "IPOC_CONFIG", "IPOC_URL", "citation", "ipoc_path", "load_ipoc"]

ENV_VAR = "ROBUSTLAB_IPOC_SOURCE_REGION"
"""Names a local copy of the dataset folder that :func:`ipoc_path` reads instead of the cache."""
IPOC_CLASSES = ("ID", "UP", "P1", "P2", "P3")
"""The source-region classes (``y`` indexes them)."""
IPOC_CONFIG = PreprocessConfig(rate=20.0, min_rate=20.0, window=(0.0, 60.0), noise_window=(0.0, 0.0), margin=0.0)
"""The IPOC chain: the whole 60 s at 20 Hz, no noise window."""
COMMIT = "afac5f1ee200c00f9994410517f85c646095e56c"
IPOC_URL = f"https://raw.githubusercontent.com/seisbench/seisbench/{COMMIT}/tests/examples/chunkeddummydataset/"
"""Where the six files are downloaded from."""
FILES = {
    "chunks": "82c1315e6c757f33c4a77ca58b2a184f5a88614470c05ec77f3d28918db6b8ae",
    "metadata0.csv": "8859f2498eac5a54c57568968e4a3a00cb499826fae4bcd12268f913c9d3160f",
    "metadata1.csv": "bc03d482a3c5313609675dd4546d398e589507bd0d18f183b44567afb4f685bb",
    "waveforms0.hdf5": "c96f973ae0341c9c00c241b621d22fd61a2586e2863fdef33fd9f15e9ca72ae2",
    "waveforms1.hdf5": "707643ad07d2928e3a5f2ab41c9c15b696c28e9e01626d0bf8ca881521c681bd",
    "raw_catalog.csv": "dd2fddd9717de908a4939932ae470c7227554b41f031ce9b5b36c11cbe2f921b",
}
"""The dataset's files and their SHA-256."""
citation = (
    "Münchmeyer, J., Bindi, D., Sippl, C., Leser, U. & Tilmann, F. (2019). Low uncertainty multifeature magnitude "
    "estimation with 3-D corrections and boosting tree regression: application to North Chile. Geophysical "
    "Journal International 220(1), 142-159 (catalog: GFZ Data Services, doi:10.5880/GFZ.2.4.2019.004, CC BY 4.0); "
    "waveforms: IPOC network CX (GFZ); layout: Woollam, J. et al. (2022), SeisBench, SRL 93(3)."
)


def ipoc_path(root: str | os.PathLike | None = None, *, download: bool = True, progress: bool = True,
              base_url: str = IPOC_URL) -> Path:
    """The IPOC dataset folder, downloaded into the cache when files are missing there.

    Args:
        root: a folder holding the files of :data:`FILES` (``raw_catalog.csv`` optional); checked, never downloaded
            into. None: ``$ROBUSTLAB_IPOC_SOURCE_REGION`` (:data:`ENV_VAR`) when set, else the cache
            ``robustlab.common.data.data_dir("seismic", "ipoc")``.
        download: fetch the missing files from ``base_url`` (SeisBench's repository at a fixed commit) with
            :func:`robustlab.common.data.download`, each checked against its SHA-256.
        progress: show download progress.
        base_url: the folder of the files (``file://`` URLs work: the tests use them).

    Returns:
        The folder.

    Raises:
        DataError: ``root`` lacks files (named), or the cache lacks them and ``download`` is False.
        DownloadError: a download failed or a file's hash differs.
    """
    from robustlab.common.data import data_dir
    from robustlab.common.data import download as fetch

    needed = [f for f in FILES if f != "raw_catalog.csv"]
    if root is None and os.environ.get(ENV_VAR):
        root = os.environ[ENV_VAR]
    if root is not None:
        root = Path(root)
        missing = [f for f in needed if not (root / f).is_file()]
        if missing:
            raise DataError(f"IPOC folder {root} lacks {', '.join(missing)} (a SeisBench WaveformDataset: chunks, "
                            "metadata<k>.csv, waveforms<k>.hdf5)")
        return root
    folder = data_dir("seismic", "ipoc")
    missing = [f for f in FILES if not (folder / f).is_file()]
    if not missing:
        return folder
    if not download:
        raise DataError(f"the IPOC cache {folder} lacks {', '.join(missing)}; call with download=True or pass "
                        f"root= (or set ${ENV_VAR} to) a folder holding them")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    for f in missing:
        fetch(base_url + f, folder / f, sha256=FILES[f], progress=progress)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DownloadError(f"after downloading IPOC into {folder}, {', '.join(missing)} are missing")
    return folder


def load_ipoc(root: str | os.PathLike | None = None, *, config: PreprocessConfig = IPOC_CONFIG,
              download: bool = True, progress: bool = False) -> TraceSet:
    """The 200 IPOC traces, preprocessed (:data:`IPOC_CONFIG`), with their source-region class and split.

    Traces with NaN/inf samples, no samples, too few samples for the window or a constant component are left
    out and listed in ``.report`` (none in the shipped data).

    Args:
        root: the dataset folder (see :func:`ipoc_path`).
        config: the chain's parameters; ``rate`` must be the data's (20 Hz: no resampling here), the window
            within the stored 60 s.
        download: download what the default folder lacks.
        progress: show download progress.

    Returns:
        A :class:`~robustlab.seismic.preprocessing.TraceSet`: ``x (N, 3, config.n_samples)`` (ZNE), ``noise
        (N, 3, config.n_noise)``, ``meta`` with file (``waveforms<k>.hdf5:<trace_name>``), event_id (the source
        time), station ``CX.PB01``, channel (``BH?``), trace_id, sampling_rate, label, y (index into
        :data:`IPOC_CLASSES`), origin_time, depth_km (never an input), split, source, magnitude.

    Raises:
        DataError: the folder's files are malformed (see :class:`~robustlab.seismic.data.seisbench.WaveformDataset`),
            a class is unknown, or ``config`` asks for another rate or a window outside the traces.
    """
    import pandas as pd
    from obspy import UTCDateTime

    from robustlab.seismic.data.seisbench import WaveformDataset
    from robustlab.seismic.preprocessing import filter_array

    root = ipoc_path(root, download=download, progress=progress)
    with WaveformDataset(root) as ds:
        rate = ds.sampling_rate
        if abs(rate - config.rate) > 1e-6 * rate:
            raise DataError(f"IPOC traces are at {rate:g} Hz; load_ipoc does not resample (config.rate = "
                            f"{config.rate:g})")
        meta = ds.metadata
        for col in ("source_event_category", "trace_start_time", "split"):
            if col not in meta:
                raise DataError(f"IPOC metadata in {root} lacks the column {col!r}")
        unknown = sorted(set(meta["source_event_category"]) - set(IPOC_CLASSES))
        if unknown:
            raise DataError(f"IPOC metadata in {root}: unknown source_event_category {', '.join(unknown)}; "
                            f"expected {', '.join(IPOC_CLASSES)}")
        order = ds.component_order
        k0 = int(round(config.window[0] * rate))
        L = config.n_samples
        xs, keep, report = [], [], []
        for i in range(len(ds)):
            w = ds.get_waveforms(i)
            name = f"waveforms{meta['chunk'].iloc[i]}.hdf5:{meta['trace_name'].iloc[i]}"
            reason = None
            if w.size == 0:
                reason, kind = "empty trace (0 samples)", "empty"
            elif not np.isfinite(w).all():
                reason, kind = f"NaN/inf samples ({int((~np.isfinite(w)).sum())} of {w.size})", "not finite"
            elif k0 < 0 or k0 + L > w.shape[-1]:
                reason, kind = (f"truncated: covers {w.shape[-1] / rate:.2f} s, the window needs "
                                f"[{config.window[0]:g}, {config.window[1]:g}) s"), "truncated"
            elif (np.ptp(w, axis=-1) == 0).any():
                reason, kind = "flat line: a constant component", "flat"
            if reason:
                report.append((name, "", str(meta["trace_start_time"].iloc[i]), "labelled", reason, kind))
                continue
            y = filter_array(w, rate, config)[..., k0:k0 + L]
            if config.normalize == "std":
                y = (y - y.mean()) / y.std()
            xs.append(y.astype(np.float32))
            keep.append(i)
    rows = meta.iloc[keep].reset_index(drop=True)
    station = (rows["station_network_code"].astype(str) + "." + rows["station_code"].astype(str)
               if "station_network_code" in rows else pd.Series(["CX.PB01"] * len(rows)))
    channel = (rows["station_type"].astype(str) + "?") if "station_type" in rows else "BH?"
    origin = [str(UTCDateTime(t.replace("/", "-").replace(" ", "T"))) for t in rows["trace_start_time"]]
    out = pd.DataFrame({
        "file": [f"waveforms{c}.hdf5:{t}" for c, t in zip(rows["chunk"], rows["trace_name"])],
        "event_id": rows["trace_start_time"].astype(str),
        "station": station,
        "channel": channel,
        "trace_id": station + ".." + channel,
        "sampling_rate": float(rate),
        "label": rows["source_event_category"].astype(str),
        "y": rows["source_event_category"].map(IPOC_CLASSES.index).astype(np.int64),
        "origin_time": origin,
        "depth_km": rows["source_depth_km"].astype(np.float64) if "source_depth_km" in rows else np.nan,
        "source": "labelled",
        "split": rows["split"].astype(str),
        "magnitude": rows["source_magnitude"].astype(np.float64) if "source_magnitude" in rows else np.nan,
        "components": order,
    })
    x = np.stack(xs) if xs else np.zeros((0, len(order), L), dtype=np.float32)
    noise = np.zeros((len(x), x.shape[1], config.n_noise), dtype=np.float32)
    return TraceSet(x=x, noise=noise, meta=out,
                    report=pd.DataFrame(report, columns=["file", "trace_id", "event_id", "source", "reason", "kind"]),
                    config=config, classes=IPOC_CLASSES)
