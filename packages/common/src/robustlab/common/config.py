"""Frozen-dataclass configuration: ``key=value`` overrides and TOML run files.

Settings live in frozen dataclasses next to the code they configure; a run changes them with overrides, never by
mutation::

    profile = apply_overrides(profile, ["epochs=5", "eval_eps=0.1,0.2", "optim.lr=3e-4"])
    profile = apply_overrides(profile, load_toml("run.toml"), source="run.toml")

``key=value`` strings are parsed to the type annotated on the field: ``int``, ``float``, ``bool`` (true/false,
yes/no, on/off, 1/0), ``str``, ``pathlib.Path``, ``Literal[...]``, ``X | None`` (``none`` or ``null`` give None),
tuples and lists (``0.1,0.2``, ``[0.1, 0.2]`` or ``(0.1, 0.2)``; strings quoted or not), dicts (a JSON object or
TOML inline table) and nested dataclasses through dotted keys (``optim.lr=0.1``). Typed values (from TOML or a
mapping) are checked and converted only where nothing is lost: an int for a float, a list for a tuple; the string
``"3"`` for an int field is an error there. A typo never passes silently: an unknown key raises
:class:`~robustlab.common.errors.ConfigError` naming it and listing the valid keys, and a value that does not
parse names the key, the value and the type expected.

Ranges are declared once, on the field, with :func:`bounded`, and checked by :func:`check_values` whenever
:func:`apply_overrides` builds an instance (and by classes that call it in ``__post_init__``)::

    @dataclass(frozen=True)
    class Profile:
        epochs: int = bounded(10, ge=1)
        lr: float = bounded(1e-3, gt=0)
        regimes: tuple[str, ...] = bounded(("erm",), choices=("erm", "trades"), min_len=1, unique=True)
        device: str = bounded("cpu", device=True)

        def __post_init__(self) -> None:
            check_values(self)

``apply_overrides(Profile(), ["lr=-1"])`` then raises ``ConfigError: lr must be > 0, got -1.0``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.errors import ConfigError

__all__ = ["Bounds", "apply_overrides", "bounded", "check_device", "check_values", "config_keys", "load_toml"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}
_UNION_TYPES: tuple[Any, ...] = (typing.Union, types.UnionType)


class _BadValue(Exception):
    """A value that does not fit a type (turned into a ConfigError naming the key)."""


def apply_overrides(obj: Any, overrides: Iterable[str] | Mapping[str, Any], *, source: str | None = None) -> Any:
    """A copy of the frozen dataclass ``obj`` with ``overrides`` applied (``dataclasses.replace``).

    Args:
        obj: a dataclass instance (frozen or not; it is never modified).
        overrides: ``"key=value"`` strings, applied in order (a later one wins), or a mapping of keys to values,
            e.g. from :func:`load_toml`. String values are parsed to the field's type; other values are checked
            and converted (an int for a float field, a list for a tuple field). Nested dataclass fields are set
            with dotted keys (``"optim.lr=0.1"``) or, in a mapping, with a nested mapping.
        source: where the overrides come from (a file name), prefixed to error messages.

    Returns:
        A new instance of the same class; ``__post_init__`` validation runs on it, then :func:`check_values`
        (the ranges declared with :func:`bounded`, nested dataclasses included).

    Raises:
        ConfigError: a key is unknown (the message lists the valid keys), a value does not parse to the field's
            type (the message names key, value and expected type), an override is not ``key=value``, a value
            lies outside its declared range (the message names key, value and range), or the new instance fails
            its own validation.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {type(obj).__name__}")
    items = _items(overrides, source)
    try:
        return check_values(_apply(obj, items, prefix=""))
    except ConfigError as e:
        if source:
            raise ConfigError(f"{source}: {e}") from None
        raise


def config_keys(obj: Any) -> list[str]:
    """Every key :func:`apply_overrides` accepts for ``obj``, nested fields as dotted keys."""
    keys: list[str] = []
    for f in _fields(obj):
        value = getattr(obj, f.name)
        if _is_dataclass_instance(value):
            keys += [f"{f.name}.{k}" for k in config_keys(value)]
        else:
            keys.append(f.name)
    return keys


@dataclass(frozen=True)
class Bounds:
    """The range of a field, declared with :func:`bounded` and checked by :func:`check_values`.

    For a list or tuple, ``ge``/``gt``/``le``/``lt`` and ``choices`` apply to every element, ``min_len`` and
    ``unique`` to the sequence; for a scalar they apply to the value. None (an optional field left unset) is
    never checked.

    Attributes:
        ge, gt, le, lt: the value must be ``>=``, ``>``, ``<=``, ``<`` these (None: no bound). NaN fails every
            bound.
        choices: the allowed values (None: any).
        min_len: the fewest elements a sequence may hold (None: any, the empty one included).
        unique: a sequence may not hold a value twice.
        device: the value names a torch device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (see
            :func:`check_device`; ``check_values(..., devices=True)`` also checks that this machine has it).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int | None = None
    unique: bool = False
    device: bool = False

    def __post_init__(self) -> None:
        if self.ge is not None and self.gt is not None:
            raise TypeError("give ge and gt, not both")
        if self.le is not None and self.lt is not None:
            raise TypeError("give le and lt, not both")

    def describe(self) -> str:
        """The numeric range in words: ``"> 0"``, ``">= 0 and <= 1"``."""
        parts = [f"{op} {_num(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)

    def _expected(self, v: Any) -> str:
        finite = isinstance(v, float) and not math.isfinite(v)
        return ("a finite number " if finite else "") + self.describe()

    def check(self, name: str, value: Any, *, devices: bool = False) -> None:
        """Raise :class:`ConfigError` naming ``name``, ``value`` and the range when ``value`` lies outside it."""
        if value is None:
            return
        if isinstance(value, (list, tuple)):
            if self.min_len is not None and len(value) < self.min_len:
                raise ConfigError(f"{name} must hold at least {self.min_len} value{'s' * (self.min_len != 1)}, "
                                  f"got {_show_seq(value)}")
            if self.unique:
                seen: list[Any] = []
                for v in value:
                    if v in seen:
                        raise ConfigError(f"{name} holds {v!r} more than once: {_show_seq(value)}")
                    seen.append(v)
            if self.choices is not None:
                bad = [v for v in value if v not in self.choices]
                if bad:
                    raise ConfigError(f"unknown {name} {bad!r}; choose from {_choices(self.choices)}")
            for v in value:
                if not self._in_range(v):
                    raise ConfigError(f"every value of {name} must be {self._expected(v)}, got {_num(v)} in "
                                      f"{_show_seq(value)}")
                if self.device and devices:
                    check_device(v, what=f"every value of {name}")
                elif self.device:
                    _device_name(v, f"every value of {name}")
            return
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{name} must be one of {_choices(self.choices)}, got {value!r}")
        if not self._in_range(value):
            raise ConfigError(f"{name} must be {self._expected(value)}, got {_num(value)}")
        if self.device:
            if devices:
                check_device(value, what=name)
            else:
                _device_name(value, name)

    def _in_range(self, v: Any) -> bool:
        if self.ge is None and self.gt is None and self.le is None and self.lt is None:
            return True
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False  # a declared numeric range is a finite one: NaN and infinities are outside it
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
    min_len: int | None = None,
    unique: bool = False,
    device: bool = False,
) -> Any:
    """A dataclass field with a declared range (a :class:`Bounds` in its metadata under ``"bounds"``).

    ``lr: float = bounded(1e-3, gt=0)`` is ``dataclasses.field(default=1e-3, metadata={"bounds": Bounds(gt=0)})``.
    :func:`apply_overrides` checks it on every instance it builds; call :func:`check_values` in the class's
    ``__post_init__`` to check instances built directly too.

    Args:
        default, default_factory: as for :func:`dataclasses.field` (one of them, or neither for a required field).
        ge, gt, le, lt, choices, min_len, unique, device: see :class:`Bounds`.

    Raises:
        TypeError: both ``default`` and ``default_factory``, or both ``ge`` and ``gt`` (``le`` and ``lt``).
    """
    if default is not dataclasses.MISSING and default_factory is not dataclasses.MISSING:
        raise TypeError("bounded takes a default or a default_factory, not both")
    bounds = Bounds(ge=ge, gt=gt, le=le, lt=lt, choices=None if choices is None else tuple(choices),
                    min_len=min_len, unique=unique, device=device)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"bounds": bounds})


def check_values(obj: Any, *, devices: bool = False, prefix: str = "") -> Any:
    """Check every field of the dataclass ``obj`` declared with :func:`bounded`, nested dataclasses included.

    Args:
        obj: a dataclass instance.
        devices: also check that this machine has the devices named by ``device=True`` fields
            (:func:`check_device`); without it only their spelling is checked, so that a profile written for a
            GPU can be built, read back and merged on a CPU.
        prefix: put before field names in messages (``"optim."``).

    Returns:
        ``obj`` itself.

    Raises:
        ConfigError: a value lies outside its range: the message names the field (dotted for a nested one), the
            value and the range, e.g. ``"lr must be > 0, got -1.0"``.
    """
    for f in _fields(obj):
        value = getattr(obj, f.name)
        bounds = f.metadata.get("bounds")
        if isinstance(bounds, Bounds):
            bounds.check(prefix + f.name, value, devices=devices)
        if _is_dataclass_instance(value):
            check_values(value, devices=devices, prefix=f"{prefix}{f.name}.")
    return obj


_DEVICE = re.compile(r"(cpu|auto|mps|cuda)(?::(\d+))?")


def _device_name(device: Any, what: str) -> str:
    text = str(device).strip() if isinstance(device, str) else ""
    m = _DEVICE.fullmatch(text)
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"{what} must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {device!r}")
    return text


def check_device(device: str, *, what: str = "device") -> str:
    """``device`` if it names a torch device this machine has: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.

    ``auto`` (CUDA when available, else the CPU) and ``cpu`` are always available. torch is imported only to
    check ``cuda`` and ``mps``.

    Args:
        device: the name, surrounding spaces ignored.
        what: how messages name the value (``"device"``, ``"'--device'"``).

    Returns:
        The name without surrounding spaces.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), ``cuda`` or ``cuda:N`` without a CUDA
            device (or ``N`` beyond the last one), ``mps`` without MPS; the message names the value.
    """
    text = _device_name(device, what)
    if text in ("cpu", "auto"):
        return text
    try:
        import torch
    except ModuleNotFoundError:
        raise ConfigError(f"{what} {text!r}: torch is not installed") from None
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} {text!r}: no CUDA device is available on this machine "
                              "(torch.cuda.is_available() is False); use 'cpu', or 'auto' to take a GPU when there is one")
        n = torch.cuda.device_count()
        if ":" in text and int(text.split(":", 1)[1]) >= n:
            raise ConfigError(f"{what} {text!r}: this machine has {n} CUDA device{'s' * (n != 1)} "
                              f"(cuda:0 .. cuda:{n - 1})")
    elif not torch.backends.mps.is_available():  # the only other name: mps
        raise ConfigError(f"{what} {text!r}: MPS (Apple GPU) is not available on this machine; use 'cpu' or 'auto'")
    return text


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML run file into overrides: a mapping of keys to values.

    Top-level keys set fields; a table (``[optim]`` then ``lr = 0.1``, or ``optim.lr = 0.1``) sets the fields
    of a nested dataclass (or fills a dict-typed field). Pass the result to :func:`apply_overrides` with
    ``source=str(path)`` so that errors name the file.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not valid TOML; the message names the file.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading TOML on Python 3.10 needs the 'tomli' package") from None
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark, as some editors write, is let be
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} on line {line}); TOML files are "
                          "UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or inline tables nested too deeply") from None


# -- internals ------------------------------------------------------------------------------------------------


def _num(v: Any) -> str:
    """A bound or value as written in messages: ``0``, ``-1.0``, ``nan``, ``'x'``."""
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return repr(v)


def _show_seq(value: Sequence[Any]) -> str:
    inner = ", ".join(_num(v) for v in value)
    if isinstance(value, tuple):
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return f"[{inner}]"


def _choices(choices: Sequence[Any]) -> str:
    return ", ".join(repr(c) for c in choices)


def _items(overrides: Iterable[str] | Mapping[str, Any], source: str | None) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    items = []
    for text in overrides:
        if not isinstance(text, str) or "=" not in text:
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}an override must be key=value, got {text!r}")
        key, _, value = text.partition("=")
        if not key.strip():
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}an override must be key=value, got {text!r} (empty key)")
        items.append((key.strip(), _RawString(value.strip())))
    return items


class _RawString(str):
    """A value typed on the command line: parsed to the field's type (a TOML string is taken as it is)."""


def _fields(obj: Any) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(obj) if f.init]


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _apply(obj: Any, items: list[tuple[str, Any]], prefix: str) -> Any:
    fields = {f.name: f for f in _fields(obj)}
    hints = _type_hints(type(obj))
    changes: dict[str, Any] = {}
    nested: dict[str, list[tuple[str, Any]]] = {}
    for key, value in items:
        head, dot, rest = key.partition(".")
        if head not in fields:
            raise ConfigError(_unknown_key(prefix + key, obj, prefix))
        current = getattr(obj, head)
        if _is_dataclass_instance(current):
            if dot:
                nested.setdefault(head, []).append((rest, value))
            elif isinstance(value, Mapping):
                nested.setdefault(head, []).extend((str(k), v) for k, v in value.items())
            else:
                keys = ", ".join(f"{prefix}{head}.{k}" for k in config_keys(current))
                raise ConfigError(f"{prefix}{head!s} is a group of settings; set one of its keys: {keys}")
            continue
        if dot:
            raise ConfigError(_unknown_key(prefix + key, obj, prefix))
        tp = hints.get(head, Any)
        if tp is Any:
            tp = _type_of(current)
        try:
            changes[head] = _convert(value, tp)
        except _BadValue:
            raise ConfigError(
                f"cannot set {prefix + head!r} to {_show(value)}: expected {_type_name(tp)}"
            ) from None
    for head, sub in nested.items():
        changes[head] = _apply(getattr(obj, head), sub, prefix=f"{prefix}{head}.")
    try:
        return dataclasses.replace(obj, **changes)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        keys = ", ".join(prefix + k for k in changes)
        raise ConfigError(f"invalid setting of {keys} for {type(obj).__name__}: {e}") from None


def _unknown_key(key: str, obj: Any, prefix: str) -> str:
    valid = [prefix + k for k in config_keys(obj)]
    msg = f"unknown key {key!r} for {type(obj).__name__}"
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    return msg + f"; valid keys: {', '.join(valid)}"


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # annotations naming local types: fall back to the types of the current values
        return {}


def _type_of(value: Any) -> Any:
    """A type to parse against, inferred from a field's current value (when its annotation cannot be resolved)."""
    if value is None:
        return Any
    if isinstance(value, tuple):
        return tuple[_type_of(value[0]), ...] if value else tuple
    if isinstance(value, list):
        return list[_type_of(value[0])] if value else list
    return type(value)


def _show(value: Any) -> str:
    return repr(str(value)) if isinstance(value, _RawString) else repr(value)


def _convert(value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp``, or ``_BadValue``."""
    if tp is Any or tp is object:
        return _literal(value) if isinstance(value, _RawString) else value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNION_TYPES:
        return _convert_union(value, args)
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise _BadValue
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, _RawString) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _BadValue
    if tp is int or tp is float:
        if isinstance(value, bool):
            raise _BadValue
        if isinstance(value, _RawString):
            try:
                return tp(value.strip())
            except ValueError:
                raise _BadValue from None
        if tp is float and isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise _BadValue
    if tp is str:
        if isinstance(value, _RawString):
            return _unquote(str(value))
        if isinstance(value, str):
            return value
        raise _BadValue
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        return _convert_sequence(value, origin or tp, args)
    if origin in (dict, Mapping) or tp is dict:
        return _convert_mapping(value, args)
    if isinstance(tp, type) and issubclass(tp, Path):
        if isinstance(value, (str, os.PathLike)):
            return tp(_unquote(str(value)) if isinstance(value, _RawString) else value)
        raise _BadValue
    if isinstance(tp, type):
        if isinstance(value, tp) and not isinstance(value, _RawString):
            return value
        try:
            return tp(_unquote(str(value)) if isinstance(value, _RawString) else value)
        except Exception:
            raise _BadValue from None
    raise _BadValue


def _convert_union(value: Any, args: tuple) -> Any:
    none_ok = type(None) in args
    if value is None and none_ok:
        return None
    if none_ok and isinstance(value, str) and value.strip().lower() in _NONE:
        return None
    # Typed arms before str: "3" for ``int | str`` is 3, "auto" falls through to str.
    arms = sorted((a for a in args if a is not type(None)), key=lambda a: a is str)
    for arm in arms:
        try:
            return _convert(value, arm)
        except _BadValue:
            continue
    raise _BadValue


def _convert_sequence(value: Any, origin: Any, args: tuple) -> Any:
    if isinstance(value, _RawString):
        items = _parse_sequence(str(value))
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _BadValue
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise _BadValue
        converted = [_convert(v, a) for v, a in zip(items, args)]
    else:
        elem = args[0] if args else Any
        converted = [_convert(v, elem) for v in items]
    return list(converted) if origin is list else tuple(converted)


def _convert_mapping(value: Any, args: tuple) -> dict:
    if isinstance(value, _RawString):
        parsed = _literal(value)
        if not isinstance(parsed, Mapping):
            raise _BadValue
        value = parsed
    if not isinstance(value, Mapping):
        raise _BadValue
    kt, vt = args if len(args) == 2 else (Any, Any)
    return {_convert(k, kt): _convert(v, vt) for k, v in value.items()}


def _parse_sequence(text: str) -> list[Any]:
    """``"0.1,0.2"``, ``"[0.1, 0.2]"``, ``"(a, b)"``, ``'["a", "b"]'`` as a list (elements raw strings or values)."""
    text = text.strip()
    if text in ("", "[]", "()"):
        return []
    if text[0] == "[":
        parsed = _json_or_toml(text)
        if isinstance(parsed, list):
            return parsed
    if (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        text = text[1:-1]
    parts = [p.strip() for p in text.split(",")]
    if parts and parts[-1] == "":  # a trailing comma, "0.1," is a one-element tuple
        parts.pop()
    if any(p == "" for p in parts):
        raise _BadValue
    return [_RawString(p) for p in parts]


def _json_or_toml(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return None


def _literal(value: str) -> Any:
    """A command-line value for a field of unknown type: a JSON/TOML literal if it is one, else the string."""
    text = str(value).strip()
    if text.lower() in _NONE:
        return None
    parsed = _json_or_toml(text)
    return _unquote(text) if parsed is None else parsed


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNION_TYPES:
        names = [_type_name(a) for a in args if a is not type(None)]
        if type(None) in args:
            names.append("None (none/null)")
        return " or ".join(names)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if tp is bool:
        return "bool (true/false)"
    if origin in (tuple, list) or tp in (tuple, list):
        word = "list" if (origin or tp) is list else "tuple"
        if args and not (len(args) == 2 and args[1] is Ellipsis) and (origin or tp) is tuple:
            inner = ", ".join(_type_name(a) for a in args)
            return f"{word} of ({inner}), e.g. {','.join(_example(a) for a in args)}"
        elem = args[0] if args else Any
        ex = _example(elem)
        return f"{word} of {_type_name(elem)}, comma-separated (e.g. {ex},{ex} or [{ex}, {ex}])"
    if origin is dict or tp is dict:
        return "a mapping (a JSON object or TOML inline table)"
    if tp is Any:
        return "a value"
    return getattr(tp, "__name__", str(tp))


def _example(tp: Any) -> str:
    return {int: "1", float: "0.1", str: "a", bool: "true"}.get(tp, "x")
