"""From a folder of miniSEED/SAC files of any network to event-type probabilities: ``robustlab seismic predict``.

:func:`predict_folder` takes a model file written by ``robustlab seismic train`` (it carries the preprocessing
and the out-of-distribution calibration, :func:`model_preprocessing`) and a folder:

1. **files**: indexed by :func:`robustlab.seismic.data.traces.index_folder` (ObsPy headers; unreadable files are
   reported, never raised);
2. **channels**: vertical components only (channel code ending in ``Z``; a three-component file gives its ``Z``
   trace); per station and event one channel, preferring band codes ``HH?`` over ``EH?`` over ``BH?`` over any
   other, then the higher rate; a channel below the model's minimum rate (20 Hz) or failing the preprocessing is
   skipped and the next one tried. Other rates are resampled to the model's (20 Hz);
3. **window**: from a catalog CSV when given (``origin_time`` plus ``file`` and/or ``event_id``: a row with a file
   names that file's event; a row without one is the event of every file whose time span holds its origin): the
   model's window from the origin (``[origin, origin + 100 s)``, ``window_from = "origin"``). Without a catalog,
   a P pick by ObsPy's ``recursive_sta_lta`` (STA 1 s, LTA 10 s, on the trace band-passed as the model's input) and
   ``trigger_onset`` (on 3.0, off 1.5): the onset of the strongest trigger; the window is ``[pick - 5 s, pick + 95 s)``
   (``window_from = "sta_lta"``), and traces whose picks lie within 60 s of each other form one event, named
   ``pick_<UTC of its first pick>``;
4. **preprocessing**: :func:`robustlab.seismic.preprocessing.preprocess_trace` with the model's configuration
   (merge gaps up to ``max_gap``, detrend, taper, band-pass, resample, window, z-score); gappy, truncated, empty,
   flat and NaN traces are skipped with the chain's reason;
5. **out**: ``traces.csv`` (file, trace_id, station, channel, event_id, window_from, window_start, p_<class>...,
   p_explosion, predicted, ood_score, ood_flag), ``events.csv`` (the mean of each event's trace probabilities,
   the share of its traces flagged) and ``skipped.csv`` (file, trace_id, reason), each written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.errors import DataError

__all__ = ["BAND_PREFERENCE", "MODEL_KIND", "PICK_PARAMS", "Prediction", "choose_channel", "model_preprocessing",
           "predict_folder", "sta_lta_pick"]

MODEL_KIND = "seismic_waveform"
"""The ``kind`` of the preprocessing of a seismic model file."""

BAND_PREFERENCE = ("HH", "EH", "BH")
"""Channel band/instrument codes in order of preference (broadband high rate, short period, broadband); any other
vertical channel comes after them."""

PICK_PARAMS = {"sta": 1.0, "lta": 10.0, "on": 3.0, "off": 1.5, "before": 5.0, "group_s": 60.0}
"""The STA/LTA pick: window lengths (s), trigger thresholds, seconds of the window before the pick, and the
largest gap between picks of one event (s)."""


def model_preprocessing(config: Any, *, classes: Any, ood: dict[str, Any] | None = None,
                        channels: int = 1) -> dict[str, Any]:
    """The ``preprocessing`` of a seismic model file: everything :func:`predict_folder` needs.

    Args:
        config: the :class:`~robustlab.seismic.preprocessing.PreprocessConfig` of the training traces.
        classes: the class names, in output order.
        ood: the :meth:`~robustlab.seismic.evaluation.OODScore.to_dict` calibration, or None.
        channels: input channels (1: the vertical component).
    """
    return {"kind": MODEL_KIND, "input": f"waveforms (N, {channels}, {config.n_samples}): the vertical component "
                                         f"at {config.rate:g} Hz, band-passed, z-scored", "classes": list(classes),
            "channels": int(channels), "config": config.to_dict(), "ood": ood}


def choose_channel(channels: Any) -> list[int]:
    """The order in which a station's vertical channels are tried: band code ``HH`` < ``EH`` < ``BH`` < others,
    then the higher rate first, then the channel code.

    Args:
        channels: ``(channel code, sampling rate)`` pairs.

    Returns:
        Indices into ``channels``, most preferred first.

    Examples::

        >>> choose_channel([("BHZ", 40.0), ("EHZ", 100.0), ("HHZ", 100.0), ("HNZ", 200.0)])
        [2, 1, 0, 3]
    """
    def key(i: int):
        code, rate = channels[i]
        band = str(code)[:2]
        rank = BAND_PREFERENCE.index(band) if band in BAND_PREFERENCE else len(BAND_PREFERENCE)
        return rank, -float(rate), str(code)

    return sorted(range(len(channels)), key=key)


def sta_lta_pick(trace: Any, config: Any, *, sta: float = PICK_PARAMS["sta"], lta: float = PICK_PARAMS["lta"],
                 on: float = PICK_PARAMS["on"], off: float = PICK_PARAMS["off"]):
    """The P onset of a trace by ObsPy's recursive STA/LTA and ``trigger_onset``: the onset of the trigger whose
    characteristic function peaks highest (the first trigger is often a noise burst before the event).

    The trace is demeaned, detrended, tapered and band-passed as the model's input
    (:func:`robustlab.seismic.preprocessing.filter_array`) at its own rate before the characteristic function.

    Args:
        trace: an ``obspy.Trace`` (one segment).
        config: the model's :class:`~robustlab.seismic.preprocessing.PreprocessConfig` (the band).
        sta, lta: window lengths (s).
        on, off: ``trigger_onset`` thresholds.

    Returns:
        ``(pick, peak)``: the onset time (``obspy.UTCDateTime``) and the characteristic function's peak in that
        trigger, or ``(None, max of the function)`` when nothing triggers.
    """
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    from robustlab.seismic.preprocessing import filter_array

    rate = float(trace.stats.sampling_rate)
    data = filter_array(np.asarray(trace.data, dtype=np.float64), rate, config)
    ns, nl = max(1, int(round(sta * rate))), max(2, int(round(lta * rate)))
    if len(data) <= nl:
        return None, float("nan")
    cft = recursive_sta_lta(data, ns, nl)
    cft[:nl] = 0.0  # the LTA's warm-up
    onsets = trigger_onset(cft, on, off)
    if len(onsets) == 0:
        return None, float(cft.max())
    peaks = [float(cft[int(a):int(b) + 1].max()) for a, b in onsets]
    best = int(np.argmax(peaks))  # the strongest trigger: a noise burst before the event is weaker than its P
    return trace.stats.starttime + int(onsets[best][0]) / rate, peaks[best]


@dataclass
class Prediction:
    """What :func:`predict_folder` found.

    Attributes:
        traces: one row per trace classified (see the module docstring).
        events: one row per event: event_id, n_traces, p_<class>..., predicted, ood_share.
        skipped: one row per file or trace left out: file, trace_id, reason.
        window_from: ``"origin"`` (catalog) or ``"sta_lta"``.
        files: the paths written.
    """

    traces: Any
    events: Any
    skipped: Any
    window_from: str
    files: list[Path]


def _read_catalog(catalog: str | os.PathLike):
    import pandas as pd
    from obspy import UTCDateTime

    path = Path(catalog)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"catalog {path} cannot be read as CSV: {e}") from None
    if "origin_time" not in frame.columns or not ({"file", "event_id"} & set(frame.columns)):
        raise DataError(f"catalog {path} needs a column origin_time and a column file and/or event_id; it has "
                        f"{', '.join(frame.columns) or 'none'}")
    origins = []
    for i, value in enumerate(frame["origin_time"]):
        try:
            origins.append(UTCDateTime(value))
        except Exception:
            raise DataError(f"catalog {path} row {i + 2}: origin_time {value!r} is not a time (e.g. "
                            "2018-02-13T23:04:46.08Z)") from None
    frame = frame.assign(origin=origins)
    if "event_id" not in frame.columns:
        frame["event_id"] = [Path(f).stem for f in frame["file"]]
    if "file" not in frame.columns:
        frame["file"] = ""
    return frame


def _catalog_event(catalog, file: str, start, end) -> tuple[str, Any] | None:
    """The (event_id, origin) of a file: its row by file name (path or base name), else the event whose origin
    lies within the file's time span."""
    by_file = catalog[(catalog["file"] != "") & ((catalog["file"] == file)
                                                 | (catalog["file"].map(lambda f: Path(f).name) == Path(file).name))]
    if len(by_file):
        row = by_file.iloc[0]
        return str(row["event_id"]), row["origin"]
    timed = catalog[catalog["file"] == ""]
    for _, row in timed.iterrows():
        if start <= row["origin"] <= end:
            return str(row["event_id"]), row["origin"]
    return None


def predict_folder(model_file: str | os.PathLike, folder: str | os.PathLike, *, catalog: str | os.PathLike | None = None,
                   out: str | os.PathLike | None = None, batch_size: int = 256, threshold: float = 0.5,
                   progress: bool = False) -> Prediction:
    """Classify the events recorded in a folder of miniSEED/SAC files (see the module docstring).

    Args:
        model_file: a model file written by ``robustlab seismic train``.
        folder: the folder of waveform files (every file, recursively, whatever its name: SDS archives have no
            extension; files ObsPy cannot read are listed in ``skipped`` with the reason).
        catalog: a CSV with ``origin_time`` and ``file`` and/or ``event_id``; None: STA/LTA picks.
        out: folder for ``traces.csv``, ``events.csv`` and ``skipped.csv`` (None: nothing written).
        batch_size: traces per forward pass.
        threshold: the explosion probability from which a binary model predicts ``explosion``.
        progress: show a progress bar over the files.

    Returns:
        A :class:`Prediction`.

    Raises:
        CheckpointError: the model file cannot be read or is not a seismic model.
        DataError: the catalog cannot be read. (A folder without one readable trace is no error: the tables are
            empty and ``skipped`` says why each file was left out.)
    """
    import pandas as pd

    from robustlab.common.errors import CheckpointError, ConfigError
    from robustlab.common.modelfile import load_model
    from robustlab.common.progress import progress as progress_bar
    from robustlab.seismic.data.traces import index_folder, read_trace
    from robustlab.seismic.evaluation import OODScore, penultimate_features, waveform_statistics
    from robustlab.seismic.preprocessing import PreprocessConfig, preprocess_trace
    from robustlab.seismic.training import predict_proba

    loaded = load_model(model_file)
    pre = loaded.preprocessing
    if not isinstance(pre, dict) or pre.get("kind") != MODEL_KIND:
        raise CheckpointError(f"{model_file} is a model file of another kind (its preprocessing is not "
                              f"{MODEL_KIND!r}); give a model file written by `robustlab seismic train`")
    missing = [k for k in ("classes", "config") if k not in pre]
    if missing:
        raise CheckpointError(f"{model_file}: its preprocessing record lacks {', '.join(missing)}; give a model file "
                              "written by `robustlab seismic train`")
    try:
        classes = list(pre["classes"])
        config = replace(PreprocessConfig.from_dict(pre["config"]), noise_window=(0.0, 0.0))
        ood = OODScore.from_dict(pre["ood"]) if pre.get("ood") else None
    except (ConfigError, DataError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{model_file}: its preprocessing record cannot be read ({e})") from e
    folder = Path(folder)
    cat = _read_catalog(catalog) if catalog is not None else None
    window_from = "origin" if cat is not None else "sta_lta"

    index = index_folder(folder, pattern=("*",))  # every file: the ones ObsPy cannot read are reported, not ignored
    skipped: list[dict[str, str]] = [{"file": str(f), "trace_id": "", "reason": str(r)}
                                     for f, r in _skipped_of(index)]
    # candidates: (file, trace_id, station, channel, rate, event_id or None, origin or None)
    candidates: list[dict[str, Any]] = []
    for _, row in index.iterrows():
        file = str(row["file"])
        path = Path(file) if Path(file).is_absolute() else folder / file
        ids = [(t, float(row["sampling_rate"])) for t in str(row.get("trace_ids") or row["trace_id"]).split(";") if t]
        vertical = [(t, r) for t, r in ids if t.split(".")[-1].endswith("Z")]
        if not vertical:
            skipped.append({"file": file, "trace_id": ",".join(t for t, _ in ids),
                            "reason": "no vertical component (channels "
                                      + ", ".join(t.split(".")[-1] for t, _ in ids) + ")"})
            continue
        for trace_id, rate in vertical:
            net, sta, _loc, cha = (trace_id.split(".") + ["", "", "", ""])[:4]
            item = {"file": file, "path": path, "trace_id": trace_id, "station": f"{net}.{sta}", "channel": cha,
                    "rate": rate, "event_id": None, "origin": None}
            if cat is not None:
                found = _catalog_event(cat, file, row["starttime"], row["endtime"])
                if found is None:
                    skipped.append({"file": file, "trace_id": trace_id,
                                    "reason": "no catalog event: no row names the file and no origin_time lies in "
                                              f"its span {row['starttime']} - {row['endtime']}"})
                    continue
                item["event_id"], item["origin"] = found
            candidates.append(item)

    # read, pick (without a catalog) and preprocess every candidate
    done: list[dict[str, Any]] = []
    for item in progress_bar(candidates, desc="traces", enabled=progress, unit="trace"):
        reason = None
        try:
            trace = read_trace(item["path"], item["trace_id"], max_gap=config.max_gap)
            item["rate"] = float(trace.stats.sampling_rate)
            if item["rate"] < config.min_rate * (1 - 1e-4):
                raise DataError(f"rate below {config.min_rate:g} Hz")
            origin = item["origin"]
            if origin is None:
                if len(trace.data) == 0:
                    raise DataError("empty trace (0 samples)")
                data = np.asarray(trace.data, dtype=np.float64)
                if not np.isfinite(data).all():
                    raise DataError(f"NaN/inf samples ({int((~np.isfinite(data)).sum())} of {len(data)})")
                if data.min() == data.max():
                    raise DataError("flat line: constant over the whole trace")
                pick, peak = sta_lta_pick(trace, config)
                if pick is None:
                    raise DataError(f"no STA/LTA trigger (the ratio peaks at {peak:.2f} < {PICK_PARAMS['on']:g})")
                item["pick"] = pick
                origin = pick - PICK_PARAMS["before"] - config.window[0]
            signal, _ = preprocess_trace(trace, origin, config, file=item["file"])
            item["x"], item["window_start"] = signal, origin + config.window[0]
            done.append(item)
        except DataError as e:
            reason = getattr(e, "reason", None) or _strip_file(str(e), item["file"])
        except Exception as e:  # ObsPy on a damaged record: report the file, never a traceback
            reason = f"unreadable: {type(e).__name__}: {e}"
        if reason is not None:
            skipped.append({"file": item["file"], "trace_id": item["trace_id"], "reason": reason})

    if cat is None:
        _group_by_picks(done)
    chosen = _one_per_station(done, skipped)

    n = len(chosen)
    x = np.stack([c["x"] for c in chosen])[:, None, :] if n else np.zeros((0, 1, config.n_samples), np.float32)
    prob = predict_proba(loaded.model, x, batch_size=batch_size) if n else np.zeros((0, len(classes)))
    if ood is not None and n:
        scores = ood.score(penultimate_features(loaded.model, x, batch_size=batch_size),
                           waveform_statistics(x) if ood.stat_mean is not None else None)
        flags = ood.flag(scores)
    else:
        scores, flags = np.full(n, np.nan), np.zeros(n, bool)
    binary = len(classes) == 2
    pred = (prob[:, 1] >= threshold).astype(int) if binary and n else (prob.argmax(1) if n else np.zeros(0, int))
    traces = pd.DataFrame({
        "file": [c["file"] for c in chosen], "trace_id": [c["trace_id"] for c in chosen],
        "station": [c["station"] for c in chosen], "channel": [c["channel"] for c in chosen],
        "event_id": [c["event_id"] for c in chosen], "window_from": window_from,
        "window_start": [str(c["window_start"]) for c in chosen],
        **{f"p_{k}": prob[:, i] if n else [] for i, k in enumerate(classes)},
        "predicted": [classes[k] for k in pred], "ood_score": scores, "ood_flag": flags})
    if "p_explosion" not in traces.columns and binary:
        traces["p_explosion"] = prob[:, 1]
    events = _events(traces, classes, threshold)
    skipped_frame = pd.DataFrame(skipped, columns=["file", "trace_id", "reason"])
    files: list[Path] = []
    if out is not None:
        from robustlab.common.io import atomic_write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("traces.csv", traces), ("events.csv", events), ("skipped.csv", skipped_frame)):
            atomic_write_text(out / name, frame.to_csv(index=False, float_format="%.6g"))
            files.append(out / name)
    return Prediction(traces=traces, events=events, skipped=skipped_frame, window_from=window_from, files=files)


def _skipped_of(index) -> list[tuple[str, str]]:
    """The files ``index_folder`` could not read, as (file, reason) pairs."""
    raw = index.attrs.get("skipped")
    if raw is None:
        return []
    if hasattr(raw, "iterrows"):
        return [(str(r.get("file", "")), str(r.get("reason", ""))) for _, r in raw.iterrows()]
    if isinstance(raw, dict):
        return [(str(f), str(r)) for f, r in raw.items()]
    out = []
    for entry in raw:
        if isinstance(entry, dict):
            out.append((str(entry.get("file", "")), str(entry.get("reason", ""))))
        else:
            out.append((str(entry[0]), str(entry[1])))
    return out


def _strip_file(message: str, file: str) -> str:
    """A reason without the file name a DataError message starts with (the report has its own column)."""
    for prefix in (f"{file}: ", f"{Path(file).name}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _group_by_picks(items: list[dict[str, Any]]) -> None:
    """Events from picks: traces whose picks lie within ``group_s`` of the previous one form one event."""
    items.sort(key=lambda c: c["pick"])
    event, last = None, None
    for c in items:
        if last is None or c["pick"] - last > PICK_PARAMS["group_s"]:
            event = "pick_" + c["pick"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"
        c["event_id"], last = event, c["pick"]


def _one_per_station(items: list[dict[str, Any]], skipped: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One trace per station and event (:func:`choose_channel`); the others are reported."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in items:
        groups.setdefault((c["event_id"], c["station"]), []).append(c)
    chosen = []
    for (_event, _station), members in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        order = choose_channel([(m["channel"], m["rate"]) for m in members])
        best = members[order[0]]
        chosen.append(best)
        for i in order[1:]:
            m = members[i]
            skipped.append({"file": m["file"], "trace_id": m["trace_id"],
                            "reason": f"another channel of {m['station']} for this event was used "
                                      f"({best['trace_id']}; preference HH > EH > BH > others, then rate)"})
    return chosen


def _events(traces, classes: list[str], threshold: float):
    import pandas as pd

    cols = [f"p_{k}" for k in classes]
    if len(traces) == 0:
        return pd.DataFrame(columns=["event_id", "n_traces", *cols, "predicted", "ood_share"])
    g = traces.groupby("event_id", sort=True)
    events = g[cols].mean().reset_index()
    events.insert(1, "n_traces", g.size().values)
    p = events[cols].to_numpy()
    pred = (p[:, 1] >= threshold).astype(int) if len(classes) == 2 else p.argmax(1)
    events["predicted"] = [classes[k] for k in pred]
    events["ood_share"] = g["ood_flag"].mean().values
    if "p_explosion" not in events.columns and len(classes) == 2:
        events["p_explosion"] = p[:, 1]
    return events

