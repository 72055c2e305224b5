"""Patches of mammograms: abnormality-centred crops and normal-tissue crops, and splits by patient.

:func:`extract_patches` turns :class:`~robustlab.vision.data.mammograms.ImageRecord` s into a :class:`PatchSet` of
square uint8 patches with their lesion masks, for one of two tasks:

- ``"abnormal"`` (classes ``normal``, ``abnormal``): every located lesion (``lesion_crops`` jittered crops each)
  against crops of breast tissue from the NORMAL images, as many as ``normal_ratio`` times the lesion crops, each
  with the side (relative to the image width) and the breast share (of
  :func:`~robustlab.vision.data.mammograms.breast_mask`) of a lesion crop drawn at random, so that neither the
  crop's scale nor the background beside the skin line tells its class (``match_coverage=False``: at least 90 %
  breast);
- ``"malignancy"`` (classes ``benign``, ``malignant``): the lesion crops only.

A lesion crop's side is ``clip(context * 2 * radius, min_side, W / 2)`` pixels of the loaded image, its centre
the lesion's moved by up to ``jitter * side / 2`` along each axis (so the lesion's centre stays in the crop);
beyond the image border the crop is zero (black, like the film's background); it is resized to ``size`` pixels
with Pillow's antialiased bicubic filter.

:func:`patient_folds` and :func:`subsample_patients` split by patient (mini-MIAS: both breasts of a woman), so
no woman is on both sides of a split.

Importing this module loads NumPy only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustlab.common.errors import ConfigError, DataError

__all__ = ["TASKS", "PatchSet", "extract_patches", "holdout_split", "patient_folds", "subsample_patients"]

TASKS: dict[str, tuple[str, str]] = {"abnormal": ("normal", "abnormal"), "malignancy": ("benign", "malignant")}
"""The classes of each task, by label."""

_ARRAYS = ("x", "y", "mask", "image_id", "patient", "severity", "lesion_class", "side", "centre")
_REQUIRED = ("x", "y", "mask", "classes", "image_id", "patient")
_MIN_BREAST = 0.9
_TRIES = 200
_COVERAGE_TOL = 0.1
"""With ``match_coverage``, a normal crop's breast share is within this of the lesion crop it is matched to."""


@dataclass
class PatchSet:
    """Square patches with their labels and where they come from.

    Attributes:
        x: uint8 pixels ``(N, S, S)``.
        y: int64 labels ``(N,)``, indices into ``classes``.
        mask: bool ``(N, S, S)``, the lesion circles of the source image in patch coordinates (all False for
            normal tissue).
        image_id: the source image of each patch.
        patient: its patient (split on this).
        severity: ``"benign"``, ``"malignant"`` or ``"normal"``.
        lesion_class: the abnormality class (``CIRC``...), ``"NORM"`` for normal tissue.
        classes: the class names.
        side: the crop's side in pixels of the source image ``(N,)`` float.
        centre: the crop's centre ``(row, col)`` in pixels of the source image ``(N, 2)`` float.
        skipped: lesions left out because the data gives no location.

    Shape:
        x, mask ``(N, S, S)``; the others ``(N,)``.
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    image_id: np.ndarray
    patient: np.ndarray
    severity: np.ndarray
    lesion_class: np.ndarray
    classes: tuple[str, ...]
    side: np.ndarray = field(default_factory=lambda: np.zeros(0))
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    skipped: int = 0

    def __post_init__(self) -> None:
        n = len(self.x)
        if len(self.side) != n:
            self.side = np.full(n, np.nan)
        if len(self.centre) != n:
            self.centre = np.full((n, 2), np.nan)
        for name in _ARRAYS:
            if len(getattr(self, name)) != n:
                raise DataError(f"PatchSet: {name} has {len(getattr(self, name))} entries, x has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def counts(self) -> dict[str, int]:
        """Patches per class name."""
        return {c: int(n) for c, n in zip(self.classes, np.bincount(self.y, minlength=len(self.classes)))}

    def subset(self, idx) -> PatchSet:
        """The patches at ``idx`` (indices or a boolean mask), ``skipped`` kept."""
        idx = np.asarray(idx)
        return PatchSet(**{name: getattr(self, name)[idx] for name in _ARRAYS}, classes=self.classes,
                        skipped=self.skipped)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write the set to an NPZ file atomically (no pickled objects: strings are fixed-width unicode arrays).

        Keys: ``x``, ``y``, ``mask``, ``image_id``, ``patient``, ``severity``, ``lesion_class``, ``side``,
        ``centre``, ``classes``, ``skipped``.
        """
        from robustlab.common.io import atomic_write

        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAYS}
        arrays["classes"] = np.array(self.classes, dtype=str)
        arrays["skipped"] = np.array(self.skipped, dtype=np.int64)
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> PatchSet:
        """Read a set written by :meth:`save_npz` (or by ``robustlab vision prepare-mias``).

        Raises:
            DataError: not an NPZ file, a missing key (``x``, ``y``, ``mask``, ``classes``, ``image_id``,
                ``patient``), or arrays of the wrong type or shape; the message names the file and the key.
        """
        from robustlab.common.io import read_npz

        data = read_npz(path, required=_REQUIRED, what="patches file")
        x, y, mask = data["x"], data["y"], data["mask"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise DataError(f"patches file {path}: 'x' is {x.dtype} {x.shape}; expected uint8 (N, S, S)")
        if mask.shape != x.shape:
            raise DataError(f"patches file {path}: 'mask' has shape {mask.shape}; expected {x.shape} as 'x'")
        classes = tuple(str(c) for c in np.atleast_1d(data["classes"]))
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x) \
                or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
            raise DataError(f"patches file {path}: 'y' must hold {len(x)} integer labels in 0..{len(classes) - 1}")
        n = len(x)
        fill = {"severity": np.full(n, ""), "lesion_class": np.full(n, ""), "side": np.full(n, np.nan),
                "centre": np.full((n, 2), np.nan)}
        try:
            return cls(x=x, y=y.astype(np.int64), mask=mask.astype(bool), classes=classes,
                       skipped=int(data.get("skipped", 0)),
                       **{k: data.get(k, fill.get(k)) for k in ("image_id", "patient", *fill)})
        except DataError as e:
            raise DataError(f"patches file {path}: {e}") from None


def _side(radius: float, width: int, context: float, min_side: float) -> float:
    return float(min(max(context * 2.0 * radius, min_side), width / 2.0))


class _Cropper:
    """Crops of one image, zero beyond its border, resized with Pillow."""

    def __init__(self, image: np.ndarray, size: int) -> None:
        from PIL import Image

        h, w = image.shape
        self.pad = max(h, w)
        self.image = Image.fromarray(np.pad(image, self.pad))
        self.size = size

    def crop(self, row: float, col: float, side: float) -> np.ndarray:
        from PIL import Image

        top, left = row - side / 2 + self.pad, col - side / 2 + self.pad
        box = (left, top, left + side, top + side)
        out = self.image.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
        return np.asarray(out, dtype=np.uint8)


def _patch_mask(lesions, row: float, col: float, side: float, size: int) -> np.ndarray:
    """The lesion circles on the patch grid of the crop centred at (row, col) of that side."""
    coords = (np.arange(size) + 0.5) * (side / size) - side / 2
    rr, cc = row + coords[:, None], col + coords[None, :]
    mask = np.zeros((size, size), dtype=bool)
    for lesion in lesions:
        if lesion.located:
            mask |= (rr - lesion.row) ** 2 + (cc - lesion.col) ** 2 <= lesion.radius ** 2
    return mask


def _check(task: str, size: int, lesion_crops: int, jitter: float, context: float, min_side: float,
           normal_ratio: float) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    if int(size) != size or size < 4:
        raise ConfigError(f"size must be an integer >= 4 (pixels), got {size!r}")
    if int(lesion_crops) != lesion_crops or lesion_crops < 1:
        raise ConfigError(f"lesion_crops must be an integer >= 1, got {lesion_crops!r}")
    if not 0 <= jitter <= 1:
        raise ConfigError(f"jitter must be in [0, 1] (a share of half the crop's side), got {jitter!r}")
    if not (np.isfinite(context) and context > 0):
        raise ConfigError(f"context must be a positive number (crop side / lesion diameter), got {context!r}")
    if not (np.isfinite(min_side) and min_side > 0):
        raise ConfigError(f"min_side must be a positive number of pixels, got {min_side!r}")
    if not (np.isfinite(normal_ratio) and normal_ratio >= 0):
        raise ConfigError(f"normal_ratio must be a finite number >= 0, got {normal_ratio!r}")


def extract_patches(records: Sequence, *, task: str = "abnormal", size: int = 64, lesion_crops: int = 4,
                    jitter: float = 0.25, context: float = 2.0, min_side: float = 64, normal_ratio: float = 1.0,
                    match_coverage: bool = True, seed: int = 0) -> PatchSet:
    """Lesion-centred crops (and, for ``task="abnormal"``, normal-tissue crops) of mammograms.

    Args:
        records: :class:`~robustlab.vision.data.mammograms.ImageRecord` s (:func:`load_mias`,
            :func:`read_image_folder`).
        task: ``"abnormal"`` (normal tissue vs lesions) or ``"malignancy"`` (benign vs malignant lesions); see
            :data:`TASKS`.
        size: the patches' side in pixels.
        lesion_crops: crops per located lesion (each with its own jitter).
        jitter: the largest shift of a crop's centre from the lesion's, as a share of half the crop's side.
        context: the crop's side over the lesion's diameter.
        min_side: the smallest crop side, pixels of the loaded image (small calcification clusters get this much
            context); the largest is half the image width.
        normal_ratio: normal-tissue crops per lesion crop (task ``"abnormal"``).
        match_coverage: each normal crop copies the side and the breast share (the share of its pixels inside
            :func:`~robustlab.vision.data.mammograms.breast_mask`, within 0.1) of a lesion crop drawn at random,
            so that neither the scale nor the black background beside the skin line tells the classes apart
            (lesions often lie near the skin line: on mini-MIAS 40 % of the lesion crops are less than 90 %
            breast); False takes normal crops with at least 90 % breast.
        seed: seeds the jitter, the normal crops' images, sides and places.

    Returns:
        A :class:`PatchSet`: the lesion crops in the records' order, then the normal crops; ``skipped`` counts
        the lesions without location, which give no crop.

    Raises:
        ConfigError: an unknown task or an option out of range.
        DataError: no located lesion, a lesion of another severity than benign/malignant for
            ``task="malignancy"``, no normal image to crop tissue from (``task="abnormal"`` with
            ``normal_ratio > 0``), or a normal image without enough breast for a crop (named).

    Shape:
        ``x`` and ``mask`` ``(N, size, size)``.
    """
    _check(task, size, lesion_crops, jitter, context, min_side, normal_ratio)
    classes = TASKS[task]
    rng = np.random.default_rng(seed)
    xs, masks, ys, ids, patients, severities, kinds, sides, centres = [], [], [], [], [], [], [], [], []
    skipped = 0
    for record in records:
        located = [lesion for lesion in record.lesions if lesion.located]
        skipped += len(record.lesions) - len(located)
        if not located:
            continue
        h, w = record.image.shape
        cropper = _Cropper(record.image, size)
        for lesion in located:
            if task == "malignancy":
                if lesion.severity not in classes:
                    raise DataError(f"image {record.image_id}: a lesion of severity {lesion.severity!r}; the "
                                    "malignancy task needs 'benign' or 'malignant'")
                label = classes.index(lesion.severity)
            else:
                label = 1
            side = _side(lesion.radius, w, context, min_side)
            shifts = rng.uniform(-jitter * side / 2, jitter * side / 2, size=(lesion_crops, 2))
            for dr, dc in shifts:
                row, col = lesion.row + dr, lesion.col + dc
                xs.append(cropper.crop(row, col, side))
                masks.append(_patch_mask(located, row, col, side, size))
                ys.append(label)
                ids.append(record.image_id)
                patients.append(record.patient)
                severities.append(lesion.severity)
                kinds.append(lesion.cls)
                sides.append(side)
                centres.append((row, col))
    if not xs:
        raise DataError(f"no located lesion among the {len(records)} image(s) ({skipped} lesion(s) without location)")
    n_normal = int(round(normal_ratio * len(xs))) if task == "abnormal" else 0
    if n_normal:
        width = {r.image_id: r.image.shape[1] for r in records}
        rel = np.array(sides) / np.array([width[i] for i in ids])  # sides as shares of the image width
        coverage = _coverages(records, ids, centres, sides) if match_coverage else None
        normals = [r for r in records if r.label == "normal"]
        if not normals:
            raise DataError("the abnormal task needs normal images to crop tissue from, and the records hold none "
                            "(or pass normal_ratio=0)")
        order = np.concatenate([rng.permutation(len(normals)) for _ in range(n_normal // len(normals) + 1)])
        places = _Places(normals, rng)
        chosen: dict[int, list[tuple[float, float, float]]] = {}
        pick = rng.integers(len(rel), size=n_normal)  # the lesion crop each normal crop copies
        for k, j in zip(order[:n_normal], pick):
            k, crop = places.find(int(k), float(rel[j]), None if coverage is None else float(coverage[j]))
            chosen.setdefault(k, []).append(crop)
        for k in sorted(chosen):
            record = normals[k]
            cropper = _Cropper(record.image, size)
            for row, col, side in chosen[k]:
                xs.append(cropper.crop(row, col, side))
                masks.append(np.zeros((size, size), dtype=bool))
                ys.append(0)
                ids.append(record.image_id)
                patients.append(record.patient)
                severities.append("normal")
                kinds.append("NORM")
                sides.append(side)
                centres.append((row, col))
    return PatchSet(x=np.stack(xs), y=np.array(ys, dtype=np.int64), mask=np.stack(masks),
                    image_id=np.array(ids, dtype=str), patient=np.array(patients, dtype=str),
                    severity=np.array(severities, dtype=str), lesion_class=np.array(kinds, dtype=str),
                    classes=classes, side=np.array(sides, dtype=np.float64),
                    centre=np.array(centres, dtype=np.float64).reshape(-1, 2), skipped=skipped)


def _coverages(records, ids, centres, sides) -> np.ndarray:
    """The breast share of each lesion crop (pixels outside the image count as background)."""
    from robustlab.vision.data.mammograms import _small_breast_mask

    by_id = {r.image_id: r for r in records}
    cache: dict[str, tuple[np.ndarray, int]] = {}
    out = np.empty(len(ids))
    for i, (image_id, (row, col), side) in enumerate(zip(ids, centres, sides)):
        if image_id not in cache:
            mask, factor = _small_breast_mask(by_id[image_id].image)
            cache[image_id] = _integral(mask), factor
        integral, factor = cache[image_id]
        out[i] = _box_share(integral, row / factor, col / factor, max(int(round(side / factor)), 1))
    return out


def _integral(mask: np.ndarray) -> np.ndarray:
    """The summed-area table of a mask, one row and column of zeros in front: box sums in four lookups."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    return integral


def _box_share(integral: np.ndarray, row: float, col: float, n: int) -> float:
    """The share of an ``n`` x ``n`` box centred at ``(row, col)`` (reduced grid) inside the mask."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    r0, c0 = int(round(row - n / 2)), int(round(col - n / 2))
    r1, c1 = min(r0 + n, h), min(c0 + n, w)
    r0, c0 = max(r0, 0), max(c0, 0)
    if r1 <= r0 or c1 <= c0:
        return 0.0
    return float(integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]) / (n * n)


class _Places:
    """Places for normal-tissue crops: centres whose crop has at least 90 % of its pixels inside the breast, or
    a given breast share (within a tolerance)."""

    def __init__(self, records, rng: np.random.Generator) -> None:
        self.records, self.rng = records, rng
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}

    def _breast(self, k: int):
        """The breast mask of image ``k`` at the reduced resolution of :func:`breast_mask` (enough to place crops),
        its integral image and its pixels."""
        if k not in self._cache:
            from robustlab.vision.data.mammograms import _small_breast_mask

            mask, factor = _small_breast_mask(self.records[k].image)
            rows, cols = np.nonzero(mask)
            self._cache[k] = _integral(mask), rows, cols, factor
        return self._cache[k]

    def _try(self, k: int, share: float, coverage: float | None, tol: float) -> tuple[float, float, float] | None:
        integral, rows, cols, factor = self._breast(k)
        width = self.records[k].image.shape[1]
        side = float(min(share * width, width / 2))
        n = max(int(round(side / factor)), 1)  # the side on the reduced grid
        low, high = (_MIN_BREAST, 1.0) if coverage is None else (coverage - tol, coverage + tol)
        if len(rows) < low * n * n or not len(rows):
            return None
        for _ in range(_TRIES):
            i = int(self.rng.integers(len(rows)))
            # a breast pixel, moved anywhere within half a crop when a share below 1 is wanted (near the skin line)
            spread = 1.0 if coverage is None else n
            row = rows[i] + 0.5 + self.rng.uniform(-spread / 2, spread / 2)
            col = cols[i] + 0.5 + self.rng.uniform(-spread / 2, spread / 2)
            if low <= _box_share(integral, row, col, n) <= high:
                return row * factor, col * factor, side
        return None

    def find(self, k: int, share: float, coverage: float | None = None) -> tuple[int, tuple[float, float, float]]:
        """A crop of side ``share * width`` (and breast share ``coverage``, within :data:`_COVERAGE_TOL`, the
        tolerance doubled once when no normal image offers one) in image ``k``, else in another normal image
        (large crops do not fit in small breasts)."""
        for tol in (_COVERAGE_TOL, 2 * _COVERAGE_TOL):
            for j in (k, *self.rng.permutation(len(self.records)).tolist()):
                crop = self._try(j, share, coverage, tol)
                if crop is not None:
                    return j, crop
            if coverage is None:
                break
        raise DataError(f"none of the {len(self.records)} normal images has room for a crop of {share:.0%} of its "
                        f"width with {_MIN_BREAST:.0%} of it inside the breast (a lesion crop that large: lower "
                        "min_side or context)")


def holdout_split(patients, y, holdout: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out sample indices, whole patients, stratified by ``y``: the split that ``robustlab
    vision train-gan`` and ``robustlab vision train`` share (the same ``holdout`` and ``seed`` hold out the same
    patients, so a GAN never sees the patients its classifier is scored on).

    Args:
        patients: the patient of each sample.
        y: the class of each sample.
        holdout: the share of the samples to hold out, in ``[0, 1)``; 0 keeps every sample for training.
        seed: seeds :func:`robustlab.common.data.splits.group_split` (groups in a random order).

    Examples::

        >>> train, test = holdout_split(["a", "a", "b", "b", "c", "c", "d", "d"], [0, 1] * 4, 0.25, seed=0)
        >>> len(train), len(test), sorted(set(train) & set(test))
        (6, 2, [])
    """
    from robustlab.common.data.splits import group_split

    patients, y = np.asarray(patients), np.asarray(y)
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1), got {holdout!r}")
    if holdout == 0.0:
        return np.arange(len(y)), np.zeros(0, dtype=np.int64)
    train, test = group_split(patients, (1.0 - holdout, holdout), seed=seed, stratify=y, shuffle=True)
    return train, test


def patient_folds(patients, y, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` folds by patient: each patient's samples are all in one test fold, classes balanced across folds.

    Uses :func:`robustlab.common.data.splits.group_split` (stratified by ``y``, groups in a seeded random order).

    Args:
        patients: the patient of each sample ``(N,)``.
        y: the label of each sample ``(N,)``.
        k: the number of folds (>= 2).
        seed: seeds the assignment.

    Returns:
        ``k`` pairs ``(train_idx, test_idx)`` of sorted int64 indices; the test folds partition ``0..N-1``.

    Raises:
        ConfigError: ``k < 2``, fewer patients than folds, or lengths that differ.

    Examples::

        >>> import numpy as np
        >>> patients = np.repeat(np.arange(10), 2); y = np.arange(20) % 2
        >>> folds = patient_folds(patients, y, k=5, seed=0)
        >>> [len(test) for _, test in folds]
        [4, 4, 4, 4, 4]
        >>> any(set(patients[tr]) & set(patients[te]) for tr, te in folds)
        False
    """
    from robustlab.common.data.splits import group_split

    if int(k) != k or k < 2:
        raise ConfigError(f"k must be an integer >= 2 (folds), got {k!r}")
    patients, y = np.asarray(patients), np.asarray(y)
    if len(patients) != len(y):
        raise ConfigError(f"patients ({len(patients)}) and y ({len(y)}) differ in length")
    parts = group_split(patients, [1.0 / k] * k, seed=seed, stratify=y, shuffle=True)
    n = len(patients)
    folds = []
    for test in parts:
        train = np.setdiff1d(np.arange(n), test).astype(np.int64)
        folds.append((train, test))
    return folds


def subsample_patients(idx, patients, y, fraction: float, seed: int = 0) -> np.ndarray:
    """A share of the patients of ``idx`` (whole patients), every class of ``idx`` kept.

    For learning curves at 25 %, 50 %, 100 % of the training patients: the patients are split by
    :func:`~robustlab.common.data.splits.group_split` (stratified, seeded order) and, should a class be missing
    from the kept share, one patient holding it is added.

    Args:
        idx: sample indices to draw from (a training fold).
        patients: the patient of every sample ``(N,)`` (indexed by ``idx``).
        y: the label of every sample ``(N,)``.
        fraction: the share of the patients in ``(0, 1]``; 1 returns ``idx`` sorted.
        seed: seeds the draw.

    Returns:
        Sorted int64 indices, a subset of ``idx``.

    Raises:
        ConfigError: ``fraction`` outside ``(0, 1]``, or an empty ``idx``.
    """
    from robustlab.common.data.splits import group_split

    if not (np.isfinite(fraction) and 0 < fraction <= 1):
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    if len(idx) == 0:
        raise ConfigError("subsample_patients needs at least one index")
    patients, y = np.asarray(patients)[idx], np.asarray(y)[idx]
    groups = np.unique(patients)
    if fraction == 1 or len(groups) < 2:
        return idx
    keep = group_split(patients, [fraction, 1 - fraction], seed=seed, stratify=y, shuffle=True)[0]
    rng = np.random.default_rng(seed)
    kept_patients = set(patients[keep].tolist())
    for c in np.unique(y):
        if not np.any(y[keep] == c):
            holders = np.unique(patients[y == c])
            kept_patients.add(holders[int(rng.integers(len(holders)))])
    chosen = np.isin(patients, list(kept_patients))
    return idx[chosen]
