"""Mammograms: the mini-MIAS database (Suckling et al. 1994) and any folder of images with a labels CSV, read into
:class:`ImageRecord` s (a uint8 image, its patient, its label and its lesions as circles on the loaded image's
pixel grid), with the breast's mask and the lesions' mask.

mini-MIAS: 322 mediolateral oblique films of 161 women, 1024 x 1024 pixels at 200 micron, 8-bit PGM (``P5``),
described by ``Info.txt``: one line per abnormality (an image with two has two lines) or per normal image::

    mdb001 G CIRC B 535 425 197      reference, tissue (F/G/D), class, severity (B/M), x, y, radius
    mdb003 D NORM
    mdb216 D CALC M *NOTE 3*         widely distributed calcifications: no centre, no radius

``x`` and ``y`` are on the 1024 grid with the origin at the BOTTOM-left corner, so the lesion's row from the top is
``1024 - y``. Films come in pairs: ``mdb001`` and ``mdb002`` are the two breasts of one woman (``Info.txt``'s note 1),
so the patient of ``mdbNNN`` is ``(NNN + 1) // 2``. Copies at another size (PNG files downsampled to 512 x 512, say)
read the same: the coordinates are scaled to the loaded image.

The licence (research use only, no redistribution) means that robustlab never ships nor downloads the data: the
user downloads it (http://peipa.essex.ac.uk/info/mias.html) and names the folder (``root=`` or
``$ROBUSTLAB_MINI_MIAS``).

Importing this module loads NumPy only; Pillow and SciPy load in the functions that use them.

Reference: Suckling, J. et al. The Mammographic Image Analysis Society digital mammogram database. Excerpta Medica,
International Congress Series 1069:375-378, 1994.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustlab.common.errors import ConfigError, DataError

__all__ = ["ENV_VAR", "MIAS_CLASSES", "MIAS_SIZE", "ImageRecord", "InfoRow", "Lesion", "breast_mask",
           "image_label", "lesion_mask", "load_mias", "parse_info", "read_image", "read_image_folder",
           "read_pgm"]

ENV_VAR = "ROBUSTLAB_MINI_MIAS"
"""The environment variable naming the mini-MIAS folder when ``load_mias`` gets none."""

MIAS_SIZE = 1024
"""The side of the original mini-MIAS films, the grid of ``Info.txt``'s coordinates."""

MIAS_CLASSES: dict[str, str] = {
    "CALC": "calcification",
    "CIRC": "well-defined/circumscribed mass",
    "SPIC": "spiculated mass",
    "MISC": "other, ill-defined mass",
    "ARCH": "architectural distortion",
    "ASYM": "asymmetry",
    "NORM": "normal",
}
"""``Info.txt``'s abnormality classes."""

_SEVERITY = {"B": "benign", "M": "malignant"}
_RANK = {"normal": 0, "benign": 1, "malignant": 2}
_WHERE = ("mini-MIAS is not redistributable: download it yourself (http://peipa.essex.ac.uk/info/mias.html, "
          "the 322 mdbNNN.pgm files and Info.txt) and pass its folder (--data / root=) or set $" + ENV_VAR)
_IMAGE_SUFFIXES = (".pgm", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Lesion:
    """One abnormality: its class, severity and enclosing circle on the loaded image's pixel grid.

    Attributes:
        cls: the abnormality class (mini-MIAS: ``CALC``, ``CIRC``, ``SPIC``, ``MISC``, ``ARCH``, ``ASYM``; a
            labels CSV: its class column, or its label).
        severity: ``"benign"`` or ``"malignant"`` (a labels CSV may give other labels).
        row, col: the centre, in pixels of the loaded image, row counted from the top (pixel ``i`` spans
            ``[i, i + 1)``); None when the data gives no location.
        radius: the circle's radius in pixels of the loaded image; None without location.
    """

    cls: str
    severity: str
    row: float | None = None
    col: float | None = None
    radius: float | None = None

    @property
    def located(self) -> bool:
        """Whether the lesion has a centre and a radius."""
        return self.row is not None and self.col is not None and self.radius is not None


@dataclass(frozen=True)
class ImageRecord:
    """One mammogram and its annotation.

    Attributes:
        image_id: ``mdb001``, or the image's name in a labels CSV.
        patient: the woman it belongs to (mini-MIAS: ``p001`` for ``mdb001`` and ``mdb002``).
        image: uint8 pixels ``(H, W)``.
        label: ``"normal"``, ``"benign"`` or ``"malignant"`` (the worst of its lesions; see :func:`image_label`).
        tissue: the background tissue (mini-MIAS: ``F`` fatty, ``G`` fatty-glandular, ``D`` dense-glandular), or "".
        lesions: its abnormalities, located or not.
    """

    image_id: str
    patient: str
    image: np.ndarray = field(repr=False)
    label: str
    tissue: str = ""
    lesions: tuple[Lesion, ...] = ()


@dataclass(frozen=True)
class InfoRow:
    """One line of mini-MIAS ``Info.txt``, verbatim (coordinates on the 1024 grid, origin bottom-left).

    Attributes:
        image_id: ``mdbNNN``.
        tissue: ``F``, ``G`` or ``D``.
        cls: a key of :data:`MIAS_CLASSES`.
        severity: ``"B"``, ``"M"`` or None (normal images).
        x, y, radius: the circle, or None when the line gives none (``*NOTE 3*``, ``mdb059``).
        note: what follows the numbers (``"*NOTE 3*"``), else "".
        line: the line number in the file (from 1).
    """

    image_id: str
    tissue: str
    cls: str
    severity: str | None
    x: int | None
    y: int | None
    radius: int | None
    note: str = ""
    line: int = 0


# -- image files ----------------------------------------------------------------------------------------------


def _pgm_tokens(data: bytes, path: Path, count: int) -> tuple[list[int], int]:
    """The first ``count`` header integers after the magic number, skipping comments; and the offset after the
    single whitespace that ends the last one."""
    values, i, n = [], 2, len(data)
    while len(values) < count:
        while i < n and data[i:i + 1].isspace():
            i += 1
        if i < n and data[i:i + 1] == b"#":
            while i < n and data[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        start = i
        while i < n and not data[i:i + 1].isspace() and data[i:i + 1] != b"#":
            i += 1
        token = data[start:i]
        if not token:
            raise DataError(f"PGM file {path} has a truncated header: {len(values)} of width, height and maxval "
                            "found before the end of the file")
        if not token.isdigit():
            raise DataError(f"PGM file {path} has a malformed header: {token[:20]!r} where "
                            f"{('width', 'height', 'maxval')[len(values)]} (a positive integer) was expected")
        values.append(int(token))
    if i >= n or not data[i:i + 1].isspace():
        raise DataError(f"PGM file {path} has a malformed header: no whitespace after maxval")
    return values, i + 1


def _read_pgm(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"PGM file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    data = path.read_bytes()
    magic = data[:2]
    if magic not in (b"P5", b"P2"):
        raise DataError(f"{path} is not a PGM file: it starts with {data[:16]!r}, expected the magic number P5 "
                        "(binary) or P2 (plain)")
    (width, height, maxval), offset = _pgm_tokens(data, path, 3)
    if width < 1 or height < 1:
        raise DataError(f"PGM file {path} has a malformed header: size {width} x {height}")
    if not 1 <= maxval <= 65535:
        raise DataError(f"PGM file {path} has a malformed header: maxval {maxval} is outside 1..65535")
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    count = width * height
    if magic == b"P5":
        need = count * np.dtype(dtype).itemsize
        if len(data) - offset < need:
            raise DataError(f"PGM file {path} is truncated: its header says {width} x {height} pixels "
                            f"({need} bytes) but {len(data) - offset} bytes follow the header")
        pixels = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    else:
        text = re.sub(rb"#[^\r\n]*", b" ", data[offset - 1:])
        try:
            pixels = np.array(text.split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"plain PGM file {path} holds a pixel value that is not an integer") from None
        if len(pixels) < count:
            raise DataError(f"PGM file {path} is truncated: its header says {width} x {height} pixels but "
                            f"{len(pixels)} values follow the header")
        pixels = pixels[:count]
        if int(pixels.min(initial=0)) < 0:
            raise DataError(f"plain PGM file {path} holds a negative pixel value {int(pixels.min())}")
    if int(pixels.max(initial=0)) > maxval:
        raise DataError(f"PGM file {path} holds a pixel value {int(pixels.max())} above its maxval {maxval}")
    out = pixels.reshape(height, width).astype(np.uint8 if maxval < 256 else np.uint16)
    return out, maxval


def read_pgm(path: str | os.PathLike) -> np.ndarray:
    """The pixels of a PGM file: binary (``P5``) or plain (``P2``), comments allowed in the header.

    Args:
        path: the file.

    Returns:
        ``(height, width)`` pixels, uint8 when maxval < 256, else uint16 (16-bit files are big-endian), as stored
        (not rescaled to maxval).

    Raises:
        DataError: a missing file, another format, a malformed header (size, maxval outside 1..65535), fewer
            pixels than the header says, or a value above maxval; the message names the file.

    Examples::

        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.pgm"
        >>> _ = p.write_bytes(b"P5\\n# a comment\\n3 2\\n255\\n" + bytes(range(6)))
        >>> read_pgm(p)
        array([[0, 1, 2],
               [3, 4, 5]], dtype=uint8)
    """
    return _read_pgm(path)[0]


def _to_uint8(pixels: np.ndarray, maxval: int | None = None) -> np.ndarray:
    if pixels.dtype == np.uint8 and maxval in (None, 255):
        return pixels
    top = float(maxval if maxval is not None else max(int(pixels.max(initial=0)), 1))
    return np.clip(np.rint(pixels.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A grey image as uint8 ``(H, W)``: PGM through :func:`read_pgm` (rescaled by its maxval), other formats
    through Pillow (colour converted to grey; 16-bit images stretched linearly from 0..their maximum to 0..255).

    Raises:
        DataError: a missing or unreadable file (named).
    """
    path = Path(path)
    if path.suffix.lower() == ".pgm":
        return _to_uint8(*_read_pgm(path))
    if not path.is_file():
        raise DataError(f"image {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return _to_uint8(np.asarray(im))
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"image {path} cannot be read: {type(e).__name__}: {e}") from None


# -- Info.txt ---------------------------------------------------------------------------------------------------

_ROW = re.compile(r"^\s*(mdb\d{3})\s+(\S+)\s+(\S+)(.*)$", re.IGNORECASE)


def parse_info(path: str | os.PathLike) -> list[InfoRow]:
    """The abnormality lines of mini-MIAS ``Info.txt`` (the preamble and notes are skipped), in file order.

    Several lines for one image are several abnormalities; a line with class and severity but no coordinates
    (``mdb216 D CALC M *NOTE 3*``: calcifications spread over the breast; also ``mdb059 F CIRC B``) is kept with
    ``x``, ``y`` and ``radius`` None.

    Args:
        path: the ``Info.txt`` file.

    Returns:
        One :class:`InfoRow` per line.

    Raises:
        DataError: a missing file, no ``mdbNNN`` line at all, or a line with an unknown tissue, class or severity,
            one or two coordinates instead of three, or a normal line with a severity; the message names the file,
            the line and the value.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mini-MIAS Info.txt {path} does not exist")
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise DataError(f"mini-MIAS Info.txt {path} cannot be read: {e}") from None
    rows: list[InfoRow] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _ROW.match(line)
        if not m:
            continue
        image_id, tissue, cls = m.group(1).lower(), m.group(2).upper(), m.group(3).upper()
        where = f"mini-MIAS Info.txt {path} line {number} ({line.strip()!r})"
        if tissue not in ("F", "G", "D"):
            raise DataError(f"{where}: tissue {tissue!r} is not F, G or D")
        if cls not in MIAS_CLASSES:
            raise DataError(f"{where}: class {cls!r} is not one of {', '.join(MIAS_CLASSES)}")
        rest = m.group(4).split()
        severity = None
        if rest and rest[0].upper() in _SEVERITY:
            severity = rest.pop(0).upper()
        numbers = []
        while rest and re.fullmatch(r"[+-]?\d+(\.\d+)?", rest[0]):
            numbers.append(rest.pop(0))
        note = " ".join(rest)
        if cls == "NORM":
            if severity is not None or numbers:
                raise DataError(f"{where}: a normal image with a severity or coordinates")
        elif severity is None:
            raise DataError(f"{where}: abnormality {cls} without severity B or M")
        if len(numbers) not in (0, 3):
            raise DataError(f"{where}: {len(numbers)} coordinate(s); expected x, y and radius, or none")
        x, y, radius = (int(round(float(v))) for v in numbers) if numbers else (None, None, None)
        rows.append(InfoRow(image_id, tissue, cls, severity, x, y, radius, note, number))
    if not rows:
        raise DataError(f"{path} holds no mini-MIAS line ('mdbNNN TISSUE CLASS ...'); is it Info.txt?")
    return rows


# -- mini-MIAS --------------------------------------------------------------------------------------------------


def image_label(lesions: Sequence[Lesion]) -> str:
    """``"normal"`` without lesions, else the worst severity (malignant over benign); labels other than these must
    agree (DataError otherwise, as for a CSV whose rows of one image disagree)."""
    severities = {lesion.severity for lesion in lesions}
    if not severities:
        return "normal"
    if severities <= set(_RANK):
        return max(severities, key=_RANK.__getitem__)
    if len(severities) == 1:
        return severities.pop()
    raise DataError(f"lesions of one image have labels {sorted(severities)} that cannot be ordered")


def _resolve_root(root: str | os.PathLike | None) -> tuple[Path, str]:
    source = ""
    if root is None:
        if not os.environ.get(ENV_VAR):
            raise ConfigError(f"no mini-MIAS folder given. {_WHERE}")
        root, source = os.environ[ENV_VAR], f" (from ${ENV_VAR})"
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"mini-MIAS folder {folder}{source} does not exist or is not a folder. {_WHERE}")
    return folder, source


def _mias_files(folder: Path) -> dict[str, Path]:
    """``mdbNNN`` -> its image file in ``folder`` (PGM preferred over PNG when both)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and re.fullmatch(r"mdb\d{3}\.(pgm|png)", p.name, re.IGNORECASE):
            key = p.stem.lower()
            if key not in found or p.suffix.lower() == ".pgm":
                found[key] = p
    return found


def load_mias(root: str | os.PathLike | None = None, *, images: str | os.PathLike | None = None,
              ids: Sequence[str] | None = None, progress: bool = False) -> list[ImageRecord]:
    """The mini-MIAS images with their lesions, read from a folder the user downloaded.

    ``Info.txt`` is looked for in ``root`` and its subfolders (the shallowest wins); the images (``mdbNNN.pgm``, or
    ``mdbNNN.png`` copies at any size) in the folder under ``root`` holding the most of them, unless ``images``
    names the folder. Lesion coordinates are scaled from ``Info.txt``'s 1024 grid (origin bottom-left) to the
    loaded image: ``row = (1024 - y) * H / 1024``, ``col = x * W / 1024``, ``radius * W / 1024``.

    Args:
        root: the mini-MIAS folder; None: ``$ROBUSTLAB_MINI_MIAS``.
        images: the folder of the image files (default: found under ``root``).
        ids: load only these images (``"mdb001"``...), in this order; default all of ``Info.txt``, in its order.
        progress: show a progress display while reading.

    Returns:
        One :class:`ImageRecord` per image (322 for the full set), patient ``p001`` for ``mdb001`` and ``mdb002``.

    Raises:
        ConfigError: no folder given and ``$ROBUSTLAB_MINI_MIAS`` unset (the message says where to get the data), or
            an id that ``Info.txt`` does not list.
        DataError: a missing folder, ``Info.txt`` or image file (named), a malformed ``Info.txt`` line or PGM file,
            or a lesion centre outside its image (naming the image).
    """
    from robustlab.common.progress import progress as progress_bar

    folder, source = _resolve_root(root)
    infos = sorted((p for p in folder.rglob("*") if p.name.lower() == "info.txt" and p.is_file()),
                   key=lambda p: (len(p.relative_to(folder).parts), str(p)))
    if not infos:
        raise DataError(f"mini-MIAS folder {folder}{source} holds no Info.txt (in it or its subfolders). {_WHERE}")
    rows = parse_info(infos[0])
    if images is not None:
        image_dir = Path(images).expanduser()
        if not image_dir.is_dir():
            raise DataError(f"mini-MIAS image folder {image_dir} does not exist or is not a folder")
        files = _mias_files(image_dir)
    else:
        candidates = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
        listed = [(d, _mias_files(d)) for d in candidates]
        image_dir, files = max(listed, key=lambda t: len(t[1]))  # the first of the fullest
    if not files:
        raise DataError(f"mini-MIAS folder {image_dir} holds no mdbNNN.pgm or mdbNNN.png image. {_WHERE}")
    by_image: dict[str, list[InfoRow]] = {}
    for row in rows:
        by_image.setdefault(row.image_id, []).append(row)
    wanted = list(by_image) if ids is None else [str(i).lower() for i in ids]
    unknown = [i for i in wanted if i not in by_image]
    if unknown:
        raise ConfigError(f"{', '.join(unknown[:5])} {'is' if len(unknown) == 1 else 'are'} not listed in "
                          f"{infos[0]}")
    missing = [i for i in wanted if i not in files]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"mini-MIAS image folder {image_dir} lacks {', '.join(f'{i}.pgm/.png' for i in missing[:5])}"
                        f"{more}, listed in {infos[0]}")
    records = []
    for image_id in progress_bar(wanted, desc="mini-MIAS", unit="image", enabled=progress):
        path = files[image_id]
        pixels = read_image(path)
        h, w = pixels.shape
        lesions = []
        for r in by_image[image_id]:
            if r.cls == "NORM":
                continue
            severity = _SEVERITY[r.severity]
            if r.x is None:
                lesions.append(Lesion(r.cls, severity))
                continue
            if not (0 <= r.x <= MIAS_SIZE and 0 <= r.y <= MIAS_SIZE) or r.radius <= 0:
                raise DataError(f"mini-MIAS image {image_id}: the lesion at x={r.x}, y={r.y}, radius={r.radius} "
                                f"({infos[0]} line {r.line}) is outside the {MIAS_SIZE} x {MIAS_SIZE} image "
                                "or has no positive radius")
            lesions.append(Lesion(r.cls, severity, row=(MIAS_SIZE - r.y) * h / MIAS_SIZE,
                                  col=r.x * w / MIAS_SIZE, radius=r.radius * w / MIAS_SIZE))
        number = int(image_id[3:])
        records.append(ImageRecord(image_id=image_id, patient=f"p{(number + 1) // 2:03d}", image=pixels,
                                   label=image_label(lesions), tissue=by_image[image_id][0].tissue,
                                   lesions=tuple(lesions)))
    return records


# -- a folder of images and a labels CSV ------------------------------------------------------------------------


def _find_image(root: Path, name: str) -> Path | None:
    path = root / name
    if path.is_file():
        return path
    if not path.suffix:
        for suffix in _IMAGE_SUFFIXES:
            for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
                if candidate.is_file():
                    return candidate
    return None


def _number(value: str, csv_path: Path, line: int, column: str) -> float | None:
    value = value.strip()
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"labels CSV {csv_path} line {line}: {column} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DataError(f"labels CSV {csv_path} line {line}: {column} {value!r} is not finite")
    return number


def read_image_folder(root: str | os.PathLike, labels_csv: str | os.PathLike, *, image_column: str = "image",
                      label_column: str = "label", patient_column: str | None = None, x_column: str | None = None,
                      y_column: str | None = None, radius_column: str | None = None, class_column: str | None = None,
                      origin: str = "top-left",
                      coordinate_size: int | tuple[int, int] | None = None) -> list[ImageRecord]:
    """Images of a folder and their labels from a CSV file: a reader for CBIS-DDSM-, INbreast- or
    mini-MIAS-like sets converted to image files.

    One CSV row per image or per lesion: rows of one image with label ``normal`` mean no lesion; any other label is
    a lesion with that severity (``benign``, ``malignant``...), located when the coordinate columns are given and
    filled, else kept without location. The image's label is the worst of its lesions' (:func:`image_label`).

    Args:
        root: the folder the image column's paths are relative to.
        labels_csv: the CSV file (a header row, comma-separated).
        image_column: the image's path under ``root`` (an extension may be left out: ``.pgm``, ``.png``, ``.tif``,
            ``.jpg``, ``.bmp`` are tried); the image id is its path without the extension.
        label_column: ``normal``, ``benign``, ``malignant`` or another label (letter case ignored).
        patient_column: the patient of each image (default: every image is its own patient).
        x_column, y_column, radius_column: the lesion's centre (x across, y down with ``origin="top-left"``) and
            radius; all three or none.
        class_column: the abnormality class (default: the label).
        origin: ``"top-left"`` or ``"bottom-left"`` (mini-MIAS: y up from the bottom edge).
        coordinate_size: the grid the coordinates are given on, ``S`` or ``(width, height)`` (mini-MIAS: 1024); they
            are scaled to the loaded image. None: pixels of the image file.

    Returns:
        One :class:`ImageRecord` per image, in the CSV's order of first appearance.

    Raises:
        ConfigError: some but not all coordinate columns, or an unknown origin.
        DataError: a missing CSV, column or image file, a coordinate that is not a number or outside the image,
            a non-positive radius, normal and lesion rows for one image, or rows of one image that name different
            patients; the message names the CSV line and the image.
    """
    if origin not in ("top-left", "bottom-left"):
        raise ConfigError(f"origin must be 'top-left' or 'bottom-left', got {origin!r}")
    coords = (x_column, y_column, radius_column)
    if any(c is not None for c in coords) and any(c is None for c in coords):
        raise ConfigError("give x_column, y_column and radius_column together (or none)")
    if isinstance(coordinate_size, int):
        coordinate_size = (coordinate_size, coordinate_size)
    root, csv_path = Path(root).expanduser(), Path(labels_csv).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    if not csv_path.is_file():
        raise DataError(f"labels CSV {csv_path} does not exist")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            table = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"labels CSV {csv_path} is not a readable CSV file: {type(e).__name__}: {e}") from None
    needed = [c for c in (image_column, label_column, patient_column, *coords, class_column) if c is not None]
    lacking = [c for c in needed if c not in header]
    if lacking:
        raise DataError(f"labels CSV {csv_path} lacks the column(s) {', '.join(map(repr, lacking))} (its header: "
                        f"{', '.join(map(repr, header)) or 'none'})")
    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in table:
        name = (row.get(image_column) or "").strip()
        if not name:
            raise DataError(f"labels CSV {csv_path} line {line}: empty {image_column!r}")
        grouped.setdefault(name, []).append((line, row))
    records = []
    for name, rows in grouped.items():
        path = _find_image(root, name)
        if path is None:
            raise DataError(f"image {name!r} (labels CSV {csv_path} line {rows[0][0]}) is missing from {root}")
        pixels = read_image(path)
        h, w = pixels.shape
        image_id = str(Path(name).with_suffix("")) if Path(name).suffix.lower() in _IMAGE_SUFFIXES else name
        patients = {(row[patient_column] or "").strip() for _, row in rows} if patient_column else {image_id}
        if len(patients) != 1 or "" in patients:
            raise DataError(f"image {name!r} in labels CSV {csv_path}: rows name the patients {sorted(patients)}; "
                            "expected one")
        lesions, normal = [], False
        for line, row in rows:
            label = (row[label_column] or "").strip().lower()
            if not label:
                raise DataError(f"labels CSV {csv_path} line {line}: image {name!r} has an empty {label_column!r}")
            if label == "normal":
                normal = True
                continue
            cls = (row[class_column] or "").strip() if class_column else label
            if x_column is None:
                lesions.append(Lesion(cls, label))
                continue
            x, y, r = (_number(row[c] or "", csv_path, line, c) for c in coords)
            if x is None and y is None and r is None:
                lesions.append(Lesion(cls, label))
                continue
            if x is None or y is None or r is None:
                raise DataError(f"labels CSV {csv_path} line {line}: image {name!r} has only some of "
                                f"{x_column}, {y_column}, {radius_column}")
            gw, gh = coordinate_size if coordinate_size is not None else (w, h)
            row_px = (gh - y if origin == "bottom-left" else y) * h / gh
            col_px, r_px = x * w / gw, r * w / gw
            if not (0 <= row_px <= h and 0 <= col_px <= w) or r_px <= 0:
                raise DataError(f"image {name!r} (labels CSV {csv_path} line {line}): the lesion at x={x:g}, "
                                f"y={y:g}, radius={r:g} is outside the {gw} x {gh} coordinate grid of the image "
                                "or has no positive radius")
            lesions.append(Lesion(cls, label, row=row_px, col=col_px, radius=r_px))
        if normal and lesions:
            raise DataError(f"image {name!r} in labels CSV {csv_path} has both 'normal' rows and lesion rows")
        try:
            label = image_label(lesions)
        except DataError as e:
            raise DataError(f"image {name!r} in labels CSV {csv_path}: {e}") from None
        records.append(ImageRecord(image_id=image_id, patient=patients.pop(), image=pixels, label=label,
                                   lesions=tuple(lesions)))
    if not records:
        raise DataError(f"labels CSV {csv_path} has no rows")
    return records


# -- masks ------------------------------------------------------------------------------------------------------


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values: the level maximizing the between-class variance."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between = np.nan_to_num(between, nan=-1.0, posinf=-1.0)
    return float(np.argmax(between))


def breast_mask(image: np.ndarray, *, work_size: int = 256) -> np.ndarray:
    """The breast: Otsu's threshold of the smoothed image, its largest connected component, holes filled.

    Removes the dark background, film labels and scanner marks (smaller bright components apart from the
    breast). The pectoral muscle, bright and joined to the breast, stays in. Computed on a copy reduced to at most
    ``work_size`` pixels a side (box filter) and scaled back (nearest), so it takes milliseconds.

    Args:
        image: uint8 pixels ``(H, W)``.
        work_size: the side of the reduced copy.

    Returns:
        bool ``(H, W)``, True on the breast.

    Examples::

        >>> import numpy as np
        >>> img = np.zeros((64, 64), np.uint8); img[8:56, :30] = 150; img[2:6, 50:60] = 250  # breast, a label
        >>> m = breast_mask(img)
        >>> bool(m[30, 10]), bool(m[4, 55]), bool(m[30, 50])
        (True, False, False)
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise DataError(f"breast_mask takes uint8 (H, W) pixels, got {image.dtype} {image.shape}")
    h, w = image.shape
    mask, factor = _small_breast_mask(image, work_size)
    if factor > 1:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 127
    return mask


def _small_breast_mask(image: np.ndarray, work_size: int = 256) -> tuple[np.ndarray, int]:
    """:func:`breast_mask` on the image reduced by an integer factor to at most ``work_size`` a side; and the
    factor (pixel ``(i, j)`` of the mask covers rows ``i * factor`` to ``(i + 1) * factor`` of the image)."""
    from PIL import Image
    from scipy import ndimage

    factor = max(1, int(np.ceil(max(image.shape) / work_size)))
    small = np.asarray(Image.fromarray(image).reduce(factor)) if factor > 1 else image
    smooth = ndimage.gaussian_filter(small.astype(np.float32), sigma=max(small.shape) / 200.0)
    levels = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
    labels, n = ndimage.label(smooth > _otsu(levels))
    if n == 0:
        return np.zeros(small.shape, dtype=bool), factor
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == int(np.argmax(sizes))
    holes, _ = ndimage.label(~mask)  # background parts that do not touch the border are holes
    border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    mask |= (holes > 0) & ~np.isin(holes, border)
    return mask, factor


def lesion_mask(shape: tuple[int, int], lesions: Sequence[Lesion]) -> np.ndarray:
    """The located lesions' circles: pixel ``(i, j)`` is in when its centre ``(i + 0.5, j + 0.5)`` lies within a
    radius of a lesion's centre. Lesions without location are ignored.

    Args:
        shape: ``(H, W)``.
        lesions: :class:`Lesion` s on that grid.

    Returns:
        bool ``(H, W)``.

    Examples::

        >>> m = lesion_mask((8, 8), [Lesion("CIRC", "benign", row=4.0, col=4.0, radius=2.0)])
        >>> int(m.sum()), bool(m[4, 4]), bool(m[0, 0])
        (12, True, False)
    """
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    rows = np.arange(h)[:, None] + 0.5
    cols = np.arange(w)[None, :] + 0.5
    for lesion in lesions:
        if lesion.located:
            mask |= (rows - lesion.row) ** 2 + (cols - lesion.col) ** 2 <= lesion.radius ** 2
    return mask
