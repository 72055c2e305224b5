"""Pacific Northwest earthquakes vs explosions: 95 labelled events (1,102 vertical traces) and 759 unreviewed ones.

The folder holds ``labels.csv`` (file, event_id, label, trace_id, starttime, sampling_rate, npts,
n_traces_in_file, origin_time, latitude, longitude, depth_km, magnitude, magnitude_type), ``unlabelled.csv``
(file, event_id, trace_id, starttime, sampling_rate, npts, n_traces_in_file), ``folds.csv`` (seed, event_id,
fold: event-grouped, class-stratified 5-fold assignments for 3 repeats), ``waveforms/`` and ``unlabelled/``
(miniSEED, one vertical channel per file, 50 s before the origin to 100 s after it).

The waveforms are those of Kharita et al.'s repository (``data/binary_classification_waveforms/`` at a fixed
commit); the labels join them with the PNSN ComCat catalog (2018-2022) of Ni et al. The package ships a manifest
(``pnw_manifest.csv.gz``: every file with its SHA-256 and size, the label, catalog and fold columns) from which
:func:`pnw_path` writes the three CSVs and downloads each waveform, checked, into the cache.

Unreviewed files have no catalog origin: it is taken as ``starttime + 50 s`` (every window starts 50 s before the
origin; the tests check this on the labelled files, within one sample).

Reference:
    Ni, Denolle, Thomas, Wright, Kharita, ... (2023), Curated Pacific Northwest AI-ready seismic dataset,
    Seismica 2(1). Kharita, Denolle, ... , PNW_Seismic_Event_Classification (GitHub). Linville, Anderson,
    Michalenko, Galasso & Draelos (2021), Semisupervised learning for seismic monitoring applications, SRL 92(1).

Importing this module loads nothing heavy; pandas, ObsPy and SciPy load when the data is read.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

import numpy as np

from robustlab.common.errors import ConfigError, DataError, DownloadError
from robustlab.seismic.preprocessing import PreprocessConfig, TraceSet

__all__ = ["CLASSES", "ENV_VAR", "PNW_URL", "citation", "fold_split", "load_pnw", "pnw_path", "read_folds",
           "read_labels", "read_unlabelled"]

CLASSES = ("earthquake", "explosion")
"""The classes; index 1 (explosion) is the positive class of F1 and AUC."""
ENV_VAR = "ROBUSTLAB_PNW_EQ_VS_EXPLOSION"
"""Names a local copy of the folder that :func:`pnw_path` reads instead of the cache."""
COMMIT = "f952edfc8d0e6ced8ca028a85d75b5f4ed5363c5"
PNW_URL = (f"https://raw.githubusercontent.com/Akashkharita/PNW_Seismic_Event_Classification/{COMMIT}/"
           "data/binary_classification_waveforms/")
"""Where the waveform files are downloaded from (each by its file name)."""
ORIGIN_OFFSET = 50.0
"""Seconds from a file's start to the origin (unreviewed files: origin = starttime + 50 s)."""
citation = (
    "Ni, Y., Hutko, A., Skene, F., Denolle, M., Malone, S., Bodin, P., Hartog, R. & Wright, A. (2023). Curated "
    "Pacific Northwest AI-ready Seismic Dataset. Seismica 2(1). doi:10.26443/seismica.v2i1.368. Waveforms: "
    f"Kharita, A. et al., github.com/Akashkharita/PNW_Seismic_Event_Classification ({COMMIT}); labels from the "
    "PNSN ComCat catalog (USGS, public domain)."
)

_LABEL_COLUMNS = ("file", "event_id", "label", "trace_id", "starttime", "sampling_rate", "npts", "n_traces_in_file",
                  "origin_time", "latitude", "longitude", "depth_km", "magnitude", "magnitude_type")
_UNLABELLED_COLUMNS = ("file", "event_id", "trace_id", "starttime", "sampling_rate", "npts", "n_traces_in_file")
_FOLD_COLUMNS = ("seed", "event_id", "fold")
_MANIFEST = "pnw_manifest.csv.gz"
_CACHE_VERSION = 1


def _read_csv(path: Path, required, what: str):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as e:
        raise DataError(f"{what} {path} does not read as CSV: {type(e).__name__}: {e}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{what} {path} lacks the column(s) {', '.join(missing)} (it has "
                        f"{', '.join(map(str, frame.columns))})")
    return frame


def read_labels(root: str | os.PathLike):
    """``labels.csv`` of the folder, with ``y`` (class index), ``source`` = ``"labelled"``.

    Raises:
        DataError: the file is missing or lacks a column; a label is not in :data:`CLASSES` (naming the file).
    """
    path = Path(root) / "labels.csv"
    frame = _read_csv(path, ("file", "event_id", "label", "trace_id", "origin_time"), "PNW labels")
    bad = frame[~frame["label"].isin(CLASSES)]
    if len(bad):
        raise DataError(f"PNW labels {path}: row {bad.index[0] + 2} ({bad['file'].iloc[0]}) has label "
                        f"{bad['label'].iloc[0]!r}; expected one of {', '.join(CLASSES)}")
    frame["y"] = frame["label"].map(CLASSES.index).astype(np.int64)
    frame["source"] = "labelled"
    return frame


def read_unlabelled(root: str | os.PathLike):
    """``unlabelled.csv`` of the folder, with ``origin_time`` = starttime + 50 s, ``label`` ``""``, ``y`` -1,
    ``depth_km`` NaN, ``source`` = ``"unreviewed"``.

    Raises:
        DataError: the file is missing, lacks a column, or a starttime does not parse (naming the row).
    """
    from obspy import UTCDateTime

    path = Path(root) / "unlabelled.csv"
    frame = _read_csv(path, ("file", "event_id", "trace_id", "starttime"), "PNW unlabelled list")
    origins = []
    for i, s in enumerate(frame["starttime"]):
        try:
            origins.append(str(UTCDateTime(s) + ORIGIN_OFFSET))
        except Exception:
            raise DataError(f"PNW unlabelled list {path}: row {i + 2} has starttime {s!r}, not a time") from None
    frame["origin_time"] = origins
    frame["label"] = ""
    frame["y"] = np.int64(-1)
    frame["depth_km"] = np.nan
    frame["source"] = "unreviewed"
    return frame


def read_folds(root: str | os.PathLike):
    """``folds.csv`` of the folder: seed (repeat), event_id, fold.

    Raises:
        DataError: the file is missing or lacks a column.
    """
    frame = _read_csv(Path(root) / "folds.csv", _FOLD_COLUMNS, "PNW folds")
    frame["event_id"] = frame["event_id"].astype(str)
    return frame


def fold_split(folds, repeat: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """The training and test events of ``fold`` in ``repeat``: test = the events with seed == repeat and
    fold == fold; training = that repeat's other events.

    Returns:
        ``(train_event_ids, test_event_ids)``, each sorted.

    Raises:
        ConfigError: the repeat or fold is not in ``folds`` (naming those that are).

    Examples::

        >>> import pandas as pd
        >>> from robustlab.seismic.data.pnw import fold_split
        >>> folds = pd.DataFrame({"seed": [0, 0, 0], "event_id": ["a", "b", "c"], "fold": [0, 1, 1]})
        >>> [list(s) for s in fold_split(folds, 0, 1)]
        [['a'], ['b', 'c']]
    """
    rows = folds[folds["seed"] == repeat]
    if not len(rows):
        raise ConfigError(f"repeat {repeat} is not in the folds (repeats: "
                          f"{', '.join(map(str, sorted(folds['seed'].unique())))})")
    if fold not in set(rows["fold"]):
        raise ConfigError(f"fold {fold} is not in repeat {repeat} (folds: "
                          f"{', '.join(map(str, sorted(rows['fold'].unique())))})")
    test = rows["fold"] == fold
    return (np.sort(rows.loc[~test, "event_id"].astype(str).to_numpy()),
            np.sort(rows.loc[test, "event_id"].astype(str).to_numpy()))


def _manifest():
    """The shipped manifest: one row per file (all columns as strings)."""
    import pandas as pd

    return pd.read_csv(Path(__file__).with_name(_MANIFEST), dtype=str, keep_default_na=False)


def _missing_files(folder: Path, unlabelled: bool) -> list[str]:
    names = ["labels.csv", "folds.csv"] + (["unlabelled.csv"] if unlabelled else [])
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        return missing
    files = list(_read_csv(folder / "labels.csv", ("file",), "PNW labels")["file"])
    if unlabelled:
        files += list(_read_csv(folder / "unlabelled.csv", ("file",), "PNW unlabelled list")["file"])
    return [f for f in files if not (folder / f).is_file()]


def pnw_path(root: str | os.PathLike | None = None, *, download: bool = True, progress: bool = True,
             unlabelled: bool = True, base_url: str = PNW_URL) -> Path:
    """The folder of the PNW data, downloaded into the cache when files are missing there.

    Args:
        root: a folder holding ``labels.csv``, ``folds.csv``, ``unlabelled.csv`` and the files they list; checked,
            never downloaded into. None: the folder named by ``$ROBUSTLAB_PNW_EQ_VS_EXPLOSION`` (:data:`ENV_VAR`)
            when set (a local copy), else the cache ``robustlab.common.data.data_dir("seismic", "pnw")``.
        download: fetch what the cache lacks: the CSVs are written from the shipped manifest, each waveform is
            downloaded from ``base_url`` + its name with :func:`robustlab.common.data.download`, checked against
            its SHA-256 (a file is in place only once complete and checked).
        progress: show download progress.
        unlabelled: the unreviewed files are needed too (``unlabelled.csv`` and ``unlabelled/``).
        base_url: the folder of the waveform files (``file://`` URLs work: the tests use them).

    Returns:
        The folder.

    Raises:
        DataError: ``root`` lacks files (named), or the cache lacks them and ``download`` is False.
        DownloadError: a download failed or a file's hash differs.
    """
    from robustlab.common.data import data_dir

    if root is None and os.environ.get(ENV_VAR):
        root = os.environ[ENV_VAR]
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"PNW folder {root} does not exist (expected labels.csv, folds.csv, unlabelled.csv, "
                            "waveforms/, unlabelled/)")
        missing = _missing_files(root, unlabelled)
        if missing:
            raise DataError(f"PNW folder {root} lacks {len(missing)} file(s): {', '.join(missing[:5])}"
                            f"{' ...' if len(missing) > 5 else ''}")
        return root
    folder = data_dir("seismic", "pnw")
    missing = _missing_files(folder, unlabelled) if folder.is_dir() else ["labels.csv"]
    if not missing:
        return folder
    if not download:
        raise DataError(f"the PNW cache {folder} lacks {len(missing)} file(s) ({', '.join(missing[:3])}"
                        f"{' ...' if len(missing) > 3 else ''}); call with download=True or pass root= (or set "
                        f"${ENV_VAR} to) a folder holding them")
    _download_pnw(folder, unlabelled=unlabelled, base_url=base_url, progress=progress)
    missing = _missing_files(folder, unlabelled)
    if missing:
        raise DownloadError(f"after downloading the PNW data into {folder}, {', '.join(missing[:5])} are missing")
    return folder


def _download_pnw(folder: Path, *, unlabelled: bool, base_url: str, progress: bool) -> None:
    """Write the CSVs from the manifest, then download each waveform the cache lacks (checked by SHA-256)."""
    from robustlab.common.data import download
    from robustlab.common.io import atomic_write_text
    from robustlab.common.progress import progress as progress_bar

    m = _manifest()
    labelled = m[m["file"].str.startswith("waveforms/")]
    rest = m[m["file"].str.startswith("unlabelled/")]
    wanted = labelled if not unlabelled else m
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    todo = [(f, h, int(s)) for f, h, s in zip(wanted["file"], wanted["sha256"], wanted["size"])
            if not ((folder / f).is_file() and (folder / f).stat().st_size == int(s))]
    with progress_bar(total=len(todo), desc="PNW waveforms", unit="file", enabled=progress, leave=False) as bar:
        for f, digest, _ in todo:
            url = base_url + urllib.parse.quote(Path(f).name)
            download(url, folder / f, sha256=digest, progress=False)
            bar.update(1)
    # the CSVs last: a folder counts as complete once they are there and every file they list is
    atomic_write_text(folder / "folds.csv", _folds_csv(labelled))
    atomic_write_text(folder / "labels.csv", labelled[list(_LABEL_COLUMNS)].to_csv(index=False))
    if unlabelled:
        atomic_write_text(folder / "unlabelled.csv", rest[list(_UNLABELLED_COLUMNS)].to_csv(index=False))


def _folds_csv(labelled) -> str:
    import pandas as pd

    seeds = sorted(int(c[len("fold_seed"):]) for c in labelled.columns if c.startswith("fold_seed"))
    events = labelled.drop_duplicates("event_id")
    parts = [pd.DataFrame({"seed": s, "event_id": events["event_id"], "fold": events[f"fold_seed{s}"].astype(int)})
             for s in seeds]
    folds = pd.concat(parts).sort_values(["seed", "fold"], kind="stable")
    return folds[list(_FOLD_COLUMNS)].to_csv(index=False)


def _write_manifest(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Build the shipped manifest from a complete folder (how ``pnw_manifest.csv.gz`` was made).

    Columns: the labels' columns (empty for unreviewed files), the unlabelled list's, ``sha256``, ``size``, and
    ``fold_seed<r>`` (the event's fold in repeat r; labelled files only).
    """
    import pandas as pd

    from robustlab.common.data.download import sha256sum
    from robustlab.common.io import atomic_write

    root = Path(root)
    labels = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    unl = pd.read_csv(root / "unlabelled.csv", dtype=str, keep_default_na=False)
    folds = pd.read_csv(root / "folds.csv", dtype=str, keep_default_na=False)
    for seed, rows in folds.groupby("seed", sort=True):
        labels[f"fold_seed{seed}"] = labels["event_id"].map(dict(zip(rows["event_id"], rows["fold"])))
    m = pd.concat([labels, unl], ignore_index=True).fillna("")
    m["sha256"] = [sha256sum(root / f) for f in m["file"]]
    m["size"] = [str((root / f).stat().st_size) for f in m["file"]]
    first = list(_LABEL_COLUMNS) + ["sha256", "size"]
    m = m[first + [c for c in m.columns if c not in first]]
    text = m.to_csv(index=False).encode()
    import gzip

    return atomic_write(out, lambda f: f.write(gzip.compress(text, mtime=0)))


def _cache_key(root: Path, frame, config: PreprocessConfig) -> str:
    from robustlab.common.data.cache import fingerprint  # lazily: importing this module loads NumPy only

    cols = [c for c in ("file", "trace_id", "origin_time", "label", "event_id", "source") if c in frame]
    table = frame[cols].astype(str).to_csv(index=False)
    return fingerprint(root, frame["file"], version=_CACHE_VERSION, config=config.to_dict(),
                       table=hashlib.sha256(table.encode()).hexdigest())


def load_pnw(root: str | os.PathLike | None = None, *, config: PreprocessConfig = PreprocessConfig(),
             unlabelled: bool = True, cache: bool = True, progress: bool = True, download: bool = True,
             cache_dir: str | os.PathLike | None = None) -> TraceSet:
    """The preprocessed PNW traces: the labelled ones, then (``unlabelled=True``) the unreviewed ones.

    Each file's trace (the id its CSV names) goes through :func:`robustlab.seismic.preprocessing.preprocess_files`
    with the origin from ``labels.csv`` (labelled) or ``starttime + 50 s`` (unreviewed); the traces left out are
    in ``.report`` with their reason, never dropped silently.

    The cache is an NPZ file (:meth:`TraceSet.save_npz`, written atomically) under ``data_dir("seismic",
    "traces")``, named by a hash of the config, the rows used and each file's name, size and modification time: a
    changed parameter or file misses it. A cache file that does not read is warned about and rebuilt.

    Args:
        root: the data folder (see :func:`pnw_path`: None = ``$ROBUSTLAB_PNW_EQ_VS_EXPLOSION`` or the cache).
        config: the chain's parameters.
        unlabelled: add the unreviewed traces (``meta["source"] == "unreviewed"``, ``y`` = -1).
        cache: read and write the cache.
        progress: show progress.
        download: download what the default folder lacks.
        cache_dir: the cache folder; default ``data_dir("seismic", "traces")``.

    Returns:
        A :class:`~robustlab.seismic.preprocessing.TraceSet` with ``x (N, 1, config.n_samples)``.

    Raises:
        DataError: see :func:`pnw_path`, :func:`read_labels`, :func:`read_unlabelled`.
    """
    import pandas as pd

    from robustlab.common.data import data_dir
    from robustlab.seismic.preprocessing import preprocess_files

    root = pnw_path(root, download=download, progress=progress, unlabelled=unlabelled)
    frames = [read_labels(root)] + ([read_unlabelled(root)] if unlabelled else [])
    frame = pd.concat(frames, ignore_index=True)
    path = None
    if cache:
        folder = Path(cache_dir) if cache_dir is not None else data_dir("seismic", "traces")
        path = folder / f"pnw-{'all' if unlabelled else 'labelled'}-{_cache_key(root, frame, config)}.npz"
    from robustlab.common.data.cache import load_or_build

    return load_or_build(path, load=TraceSet.load_npz,
                         build=lambda: preprocess_files(frame, root, config, classes=CLASSES, progress=progress),
                         save=lambda traces, p: traces.save_npz(p), what="trace set")
