"""One-hot encoding of DNA: strings to ``(N, 4, L)`` float32 arrays (channels A, C, G, T) and back.

The encoder is a 256-entry lookup table over the bytes of the sequences, so a batch of any size is encoded in a
handful of NumPy operations with no Python loop over characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustlab.common.errors import DataError

__all__ = ["ALPHABET", "decode", "one_hot"]

ALPHABET = "ACGT"
"""The channel order of every one-hot array in robustlab.genomics."""

_AMBIGUITY = ("uniform", "error")

# IUPAC nucleotide codes and the bases they stand for (the channel set gets weight 1/len each).
_IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T",
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG",
    "N": "ACGT",
}

_PAD = 0  # the byte written where a sequence shorter than pad_to ends; its table row is all zeros


def _tables(ambiguity: str) -> tuple[np.ndarray, np.ndarray]:
    """The lookup table ``(4, 256)`` float32 and the byte validity ``(256,)`` bool for one ambiguity policy."""
    if ambiguity not in _AMBIGUITY:
        raise ValueError(f"ambiguity must be one of {', '.join(map(repr, _AMBIGUITY))}, got {ambiguity!r}")
    table = np.zeros((4, 256), dtype=np.float32)
    valid = np.zeros(256, dtype=bool)
    for code, bases in _IUPAC.items():
        if ambiguity == "error" and len(bases) > 1:
            continue
        for byte in (ord(code), ord(code.lower())):
            valid[byte] = True
            for base in bases:
                table[ALPHABET.index(base), byte] = 1.0 / len(bases)
    return table, valid


def one_hot(
    sequences: Sequence[str | bytes],
    *,
    ambiguity: str = "uniform",
    pad_to: int | None = None,
    ids: Sequence[str] | None = None,
) -> np.ndarray:
    """One-hot encode DNA sequences of equal length (or padded to one length).

    Ambiguity policy (``ambiguity="uniform"``, the default): a column sums to 1 and spreads its mass evenly over
    the bases an IUPAC code stands for.

    ========================  =========================  ===============================
    code                      bases                      value on each of those channels
    ========================  =========================  ===============================
    A, C, G, T                itself                     1
    R, Y, S, W, K, M          AG, CT, CG, AT, GT, AC     0.5
    B, D, H, V                CGT, AGT, ACT, ACG         1/3
    N                         ACGT                       0.25
    ========================  =========================  ===============================

    Lowercase letters (soft-masked repeats) encode as their uppercase code. ``ambiguity="error"`` accepts only
    A, C, G, T (either case) and rejects every other code, N included. Any other character (``U``, ``-``, ``.``,
    digits, non-ASCII, ...) is always an error.

    Padding: without ``pad_to`` every sequence must have the same length. With ``pad_to=L`` shorter sequences are
    padded on the right with all-zero columns (a column of zeros is "no base", unlike N), and a sequence longer
    than ``L`` is an error: nothing is ever truncated silently.

    Args:
        sequences: strings (or bytes, or objects whose ``str()`` is the sequence, like Biopython's ``Seq``).
        ambiguity: ``"uniform"`` (the table above) or ``"error"``.
        pad_to: the output length; shorter sequences get trailing zero columns.
        ids: record names for error messages (same length as ``sequences``); default the record index.

    Returns:
        float32 array with the channels in the order A, C, G, T.

    Shape:
        output: ``(N, 4, L)`` where ``L`` is the common length or ``pad_to``.

    Raises:
        DataError: a record holds a character the policy does not accept (the message names the record, the
            0-based position and the character), lengths differ without ``pad_to`` (names the first record whose
            length differs and both lengths), or a record is longer than ``pad_to``.
        ValueError: ``ambiguity`` is unknown or ``pad_to`` is negative.
        TypeError: ``sequences`` is a single string rather than a sequence of them.
    """
    if isinstance(sequences, str | bytes):
        raise TypeError("one_hot takes a sequence of sequences; wrap a single sequence in a list: one_hot([seq])")
    if pad_to is not None and pad_to < 0:
        raise ValueError(f"pad_to must be >= 0, got {pad_to}")
    table, valid = _tables(ambiguity)
    raw = [_as_bytes(s, i, ids) for i, s in enumerate(sequences)]
    n = len(raw)
    if ids is not None and len(ids) != n:
        raise ValueError(f"ids has {len(ids)} names but there are {n} sequences")
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)

    if pad_to is None:
        if n and (lengths != lengths[0]).any():
            j = int(np.argmax(lengths != lengths[0]))
            raise DataError(
                f"sequences differ in length: {_name(j, ids)} has length {lengths[j]} but {_name(0, ids)} has "
                f"length {lengths[0]}; pass pad_to=L to pad shorter sequences with zero columns"
            )
        length = int(lengths[0]) if n else 0
        codes = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(n, length)
        padded = None
    else:
        length = pad_to
        if n and lengths.max() > pad_to:
            j = int(np.argmax(lengths > pad_to))
            raise DataError(f"{_name(j, ids)} has length {lengths[j]}, longer than pad_to={pad_to}")
        codes = np.full((n, length), _PAD, dtype=np.uint8)
        flat = np.frombuffer(b"".join(raw), dtype=np.uint8)
        rows = np.repeat(np.arange(n), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(flat)) - np.repeat(starts, lengths)
        codes[rows, cols] = flat
        padded = np.arange(length)[None, :] >= lengths[:, None]

    bad = ~valid[codes]
    if padded is not None:
        bad &= ~padded
    if bad.any():
        i, pos = np.unravel_index(int(np.argmax(bad)), bad.shape)
        char = chr(codes[i, pos])
        strict = ambiguity == "error" and char.upper() in _IUPAC
        hint = " (ambiguity='error' accepts only A, C, G, T)" if strict else ""
        raise DataError(f"{_name(int(i), ids)} has the invalid character {char!r} at position {pos}{hint}")

    out = np.empty((n, 4, length), dtype=np.float32)
    for c in range(4):
        np.take(table[c], codes, out=out[:, c, :])
    return out


def _as_bytes(s, i: int, ids: Sequence[str] | None) -> bytes:
    if isinstance(s, bytes):
        return s
    text = s if isinstance(s, str) else str(s)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as e:
        raise DataError(
            f"{_name(i, ids)} has the invalid character {text[e.start]!r} at position {e.start}"
        ) from None


def _name(i: int, ids: Sequence[str] | None) -> str:
    return f"record {ids[i]!r} (index {i})" if ids is not None and i < len(ids) else f"record {i}"


# Decoding: the set of channels tied at the column maximum, as a 4-bit mask, names an IUPAC code.
_DECODE = np.frombuffer(
    bytes(
        ord(next((code for code, bases in _IUPAC.items()
                  if sum(1 << ALPHABET.index(b) for b in bases) == mask), "N")) if mask else 0
        for mask in range(16)
    ),
    dtype=np.uint8,
)


def decode(onehot, *, atol: float = 1e-6) -> list[str] | str:
    """Turn one-hot (or any ``(N, 4, L)`` score) arrays back into sequences.

    Each column becomes the base of its largest value (argmax); when several channels tie for the maximum the
    column becomes the IUPAC code of the tied bases, so a uniform column is ``N`` and ``decode(one_hot(s))``
    gives back ``s`` in uppercase for every sequence the default policy accepts. All-zero columns at the end of a
    row are padding (see ``one_hot(pad_to=...)``) and are dropped; an all-zero column before a base decodes as
    ``N``.

    Args:
        onehot: a NumPy array or a CPU tensor of shape ``(N, 4, L)`` (or ``(4, L)`` for a single sequence).
        atol: values within ``atol`` of the column maximum count as tied.

    Returns:
        A list of ``N`` strings, or one string for a ``(4, L)`` input.
    """
    if hasattr(onehot, "detach"):
        onehot = onehot.detach().cpu().numpy()
    x = np.asarray(onehot)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[1] != 4:
        raise DataError(f"decode expects an array of shape (N, 4, L) or (4, L), got {tuple(np.shape(onehot))}")
    top = x.max(axis=1, keepdims=True)
    tied = (np.abs(x - top) <= atol) & (top > atol)
    mask = (tied * np.array([1, 2, 4, 8], dtype=np.uint8)[None, :, None]).sum(axis=1, dtype=np.uint8)
    chars = _DECODE[mask]
    out = [row.tobytes().rstrip(b"\x00").replace(b"\x00", b"N").decode("ascii") for row in chars]
    return out[0] if single else out
