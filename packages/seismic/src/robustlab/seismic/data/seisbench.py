"""The SeisBench WaveformDataset layout, read with h5py: metadata CSV(s) + HDF5 waveform buckets.

A dataset folder holds ``metadata.csv`` and ``waveforms.hdf5``, or, chunked, a ``chunks`` file naming the chunks
(one per line) and ``metadata<chunk>.csv`` + ``waveforms<chunk>.hdf5`` for each. Each metadata row is a trace;
its ``trace_name`` locates the samples: ``"bucket0$3,:3,:1200"`` is row 3 of the dataset ``data/bucket0``, all
three components, the first 1200 samples. The HDF5 group ``data_format`` gives ``component_order`` (``"ZNE"``),
``sampling_rate``, ``dimension_order`` (``"CW"``: components, then samples) and units.

Reference:
    Woollam, Münchmeyer, Tilmann, Rietbrock, Lange, Bornstein, ... & Soto (2022), SeisBench - A toolbox for
    machine learning in seismology, Seismological Research Letters 93(3):1695-1709.

Importing this module loads NumPy only; pandas and h5py load when a dataset is opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError

__all__ = ["WaveformDataset", "parse_trace_name"]

_TRACE_NAME = re.compile(r"^(?P<bucket>[^$]+)\$(?P<index>\d+)(?P<slices>(?:,\s*[-\d]*:?[-\d]*(?::[-\d]*)?)*)$")


def parse_trace_name(name: str) -> tuple[str, int, tuple[slice | int, ...]]:
    """Split a SeisBench ``trace_name`` into (bucket, row, slices of the remaining axes).

    Examples::

        >>> from robustlab.seismic.data.seisbench import parse_trace_name
        >>> parse_trace_name("bucket0$3,:3,:1200")
        ('bucket0', 3, (slice(None, 3, None), slice(None, 1200, None)))

    Raises:
        DataError: the name is not of that form.
    """
    m = _TRACE_NAME.match(str(name).strip())
    if not m:
        raise DataError(f"trace_name {name!r} is not of the form 'bucket$row,:C,:L'")
    slices: list[slice | int] = []
    for part in filter(None, (p.strip() for p in m["slices"].split(","))):
        if ":" in part:
            bits = [int(b) if b else None for b in part.split(":")]
            slices.append(slice(*bits))
        else:
            slices.append(int(part))
    return m["bucket"], int(m["index"]), tuple(slices)


class WaveformDataset:
    """A SeisBench WaveformDataset folder: a metadata frame (one row per trace) and the waveforms it points to.

    Args:
        path: the dataset folder.

    Attributes:
        metadata: the pandas frame of all chunks' rows (with a ``chunk`` column; ``trace_name`` locates the
            samples), index 0..N-1.
        sampling_rate: Hz, from the HDF5 ``data_format`` (or the metadata's ``trace_sampling_rate_hz``).
        component_order: e.g. ``"ZNE"``.
        citation: the SeisBench paper (the data's own citation belongs to the corpus).

    Raises:
        DataError: a file is missing, a metadata CSV lacks ``trace_name``, the chunks disagree in sampling rate
            or component order (naming the file and field).

    Examples::

        >>> from robustlab.seismic.data.seisbench import WaveformDataset
        >>> ds = WaveformDataset("../shared/data/seismic/ipoc_source_region")  # doctest: +SKIP
        >>> ds.get_waveforms(0).shape, ds.component_order  # doctest: +SKIP
        ((3, 1200), 'ZNE')
    """

    citation = ("Woollam, J., Münchmeyer, J., Tilmann, F., Rietbrock, A., Lange, D., Bornstein, T., et al. (2022). "
                "SeisBench - A toolbox for machine learning in seismology. Seismological Research Letters 93(3), "
                "1695-1709. doi:10.1785/0220210324")

    def __init__(self, path: str | os.PathLike, *, _metadata=None, _format=None):
        self.path = Path(path)
        if _metadata is not None:
            self.metadata, self._format = _metadata, _format
            return
        if not self.path.is_dir():
            raise DataError(f"SeisBench dataset {self.path} is not a folder (expected metadata*.csv and "
                            "waveforms*.hdf5)")
        chunks = self._chunks()
        frames, formats = [], []
        import pandas as pd

        for c in chunks:
            meta_file = self.path / f"metadata{c}.csv"
            wave_file = self.path / f"waveforms{c}.hdf5"
            for f in (meta_file, wave_file):
                if not f.is_file():
                    raise DataError(f"SeisBench dataset {self.path} lacks {f.name}"
                                    + (f" (listed as chunk {c!r} in its chunks file)" if c else ""))
            try:
                frame = pd.read_csv(meta_file, low_memory=False)
            except (OSError, ValueError) as e:
                raise DataError(f"metadata {meta_file} does not read as CSV: {type(e).__name__}: {e}") from None
            if "trace_name" not in frame.columns:
                raise DataError(f"metadata {meta_file} lacks the column 'trace_name' (it has "
                                f"{', '.join(map(str, frame.columns[:12]))}...)")
            frame["chunk"] = c
            frames.append(frame)
            formats.append((wave_file, self._read_format(wave_file)))
        self.metadata = pd.concat(frames, ignore_index=True)
        first_file, first = formats[0]
        for f, fmt in formats[1:]:
            for key in ("component_order", "sampling_rate", "dimension_order"):
                if fmt.get(key) != first.get(key):
                    raise DataError(f"{f} has data_format/{key} = {fmt.get(key)!r}, {first_file} "
                                    f"{first.get(key)!r}; the chunks of one dataset must agree")
        self._format = first
        self._files: dict = {}

    def _chunks(self) -> list[str]:
        chunks_file = self.path / "chunks"
        if chunks_file.is_file():
            chunks = [line.strip() for line in chunks_file.read_text().splitlines() if line.strip()]
            if not chunks:
                raise DataError(f"the chunks file {chunks_file} names no chunk")
            return chunks
        if (self.path / "metadata.csv").is_file():
            return [""]
        found = sorted(p.name[len("metadata"):-len(".csv")] for p in self.path.glob("metadata*.csv"))
        if not found:
            raise DataError(f"SeisBench dataset {self.path} has no metadata*.csv")
        return found

    @staticmethod
    def _read_format(wave_file: Path) -> dict:
        import h5py

        try:
            with h5py.File(wave_file, "r") as h:
                if "data" not in h:
                    raise DataError(f"waveforms {wave_file} lack the group 'data' (it has {', '.join(h)})")
                fmt = {}
                if "data_format" in h:
                    for k, v in h["data_format"].items():
                        v = v[()]
                        fmt[k] = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
                return fmt
        except OSError as e:
            raise DataError(f"waveforms {wave_file} do not read as HDF5: {e}") from None

    def __len__(self) -> int:
        return len(self.metadata)

    def __repr__(self) -> str:
        return f"WaveformDataset({str(self.path)!r}, {len(self)} traces)"

    @property
    def sampling_rate(self) -> float:
        """The sampling rate (Hz) from ``data_format``, else the metadata's ``trace_sampling_rate_hz``."""
        if "sampling_rate" in self._format:
            return float(self._format["sampling_rate"])
        if "trace_sampling_rate_hz" in self.metadata:
            rates = self.metadata["trace_sampling_rate_hz"].unique()
            if len(rates) == 1:
                return float(rates[0])
        raise DataError(f"SeisBench dataset {self.path}: no data_format/sampling_rate and no single "
                        "trace_sampling_rate_hz in the metadata")

    @property
    def component_order(self) -> str:
        """The components' order, e.g. ``"ZNE"`` (``data_format/component_order``; SeisBench's default ZNE)."""
        return str(self._format.get("component_order", "ZNE"))

    def _file(self, chunk: str):
        import h5py

        files = self.__dict__.setdefault("_files", {})
        if chunk not in files:
            files[chunk] = h5py.File(self.path / f"waveforms{chunk}.hdf5", "r")
        return files[chunk]

    def close(self) -> None:
        """Close the open HDF5 files (they reopen when needed)."""
        for h in self.__dict__.get("_files", {}).values():
            h.close()
        self.__dict__["_files"] = {}

    def __enter__(self) -> WaveformDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_waveforms(self, i: int) -> np.ndarray:
        """The samples of trace ``i`` (a row of :attr:`metadata`), ``(C, L)`` float as stored.

        Raises:
            DataError: the row is out of range, its ``trace_name`` is malformed or names a missing bucket or row
                (naming the file).
        """
        if not 0 <= i < len(self):
            raise DataError(f"trace {i} is out of range: {self} has {len(self)} traces")
        row = self.metadata.iloc[i]
        chunk = row["chunk"]
        bucket, index, slices = parse_trace_name(row["trace_name"])
        h = self._file(chunk)
        name = self.path / f"waveforms{chunk}.hdf5"
        if bucket not in h["data"]:
            raise DataError(f"waveforms {name} lack the bucket data/{bucket} (trace_name {row['trace_name']!r})")
        ds = h["data"][bucket]
        if index >= ds.shape[0]:
            raise DataError(f"waveforms {name}: data/{bucket} has {ds.shape[0]} rows, trace_name "
                            f"{row['trace_name']!r} asks for row {index}")
        return np.asarray(ds[(index, *slices)])

    def get_split(self, split: str) -> WaveformDataset:
        """The traces whose metadata ``split`` is ``split`` (``"train"``, ``"dev"`` or ``"test"``).

        Raises:
            DataError: the metadata has no ``split`` column, or no trace of that split.
        """
        if "split" not in self.metadata:
            raise DataError(f"SeisBench dataset {self.path}: its metadata has no 'split' column")
        rows = self.metadata[self.metadata["split"] == split]
        if not len(rows):
            raise DataError(f"SeisBench dataset {self.path} has no trace of split {split!r} (splits: "
                            f"{', '.join(map(str, self.metadata['split'].unique()))})")
        return WaveformDataset(self.path, _metadata=rows.reset_index(drop=True), _format=self._format)
