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
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robustlab.common.errors import ConfigError

__all__ = ["apply_overrides", "config_keys", "load_toml"]

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
        A new instance of the same class; ``__post_init__`` validation runs on it.

    Raises:
        ConfigError: a key is unknown (the message lists the valid keys), a value does not parse to the field's
            type (the message names key, value and expected type), an override is not ``key=value``, or the
            new instance fails its own validation.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {type(obj).__name__}")
    items = _items(overrides, source)
    try:
        return _apply(obj, items, prefix="")
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


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML run file into overrides: a mapping of keys to values.

    Top-level keys set fields; a table (``[optim]`` then ``lr = 0.1``, or ``optim.lr = 0.1``) sets the fields
    of a nested dataclass (or fills a dict-typed field). Pass the result to :func:`apply_overrides` with
    ``source=str(path)`` so that errors name the file.

    Raises:
        ConfigError: the file is missing or is not valid TOML; the message names the file.
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
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return data


# -- internals ------------------------------------------------------------------------------------------------


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
