"""Model files that rebuild themselves: class path, constructor arguments (JSON), weights and preprocessing.

A model file is what a trained model is shipped as (SeisBench keeps ``model_args`` beside the weights the same
way): loading it needs no flags and never executes code. The file is read with ``torch.load(weights_only=True)``;
the class is looked up among robustlab's own modules (``robustlab.*``) or the classes registered with
:func:`register_model_class`, must be a ``torch.nn.Module``, and is called with the stored JSON arguments.

A class takes part by inheriting :class:`RecordsArgs`, which records the arguments of its constructor call as
``model.model_args``; any other module can be saved by passing ``args=`` explicitly. A class outside robustlab
is saved and rebuilt once registered with :func:`register_model_class` (in the saving and the loading process).

Examples::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from robustlab.common.models import MLP
    >>> from robustlab.common.modelfile import load_model, save_model
    >>> model = MLP(2, 3, hidden=(8,))
    >>> path = save_model(model, Path(tempfile.mkdtemp()) / "model.pt", preprocessing={"scale": 1.0})
    >>> loaded = load_model(path)
    >>> type(loaded.model).__name__, loaded.args, loaded.preprocessing
    ('MLP', {'dropout': 0.0, 'hidden': [8], 'in_features': 2, 'num_classes': 3}, {'scale': 1.0})
    >>> x = torch.randn(4, 2)
    >>> torch.equal(loaded.model(x), model.eval()(x))
    True
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.common.errors import CheckpointError, ConfigError

__all__ = [
    "MODEL_FORMAT",
    "LoadedModel",
    "RecordsArgs",
    "class_path",
    "is_model_file",
    "load_model",
    "load_state_dict_into",
    "model_from_payload",
    "register_model_class",
    "save_model",
]

MODEL_FORMAT = "robustlab-model"
_VERSION = 1
_REGISTERED: dict[str, type[nn.Module]] = {}


class RecordsArgs:
    """Mixin recording the arguments of a module's constructor call as ``self.model_args`` (a JSON-able dict).

    The outermost constructor that can be replayed from keyword arguments records them, defaults included (a file
    keeps meaning the same model when a default changes later); ``**kwargs`` are merged in. A constructor taking
    ``*args`` or positional-only parameters cannot be replayed from keywords: it records nothing and lets the
    constructor it calls record (a pass-through subclass ``def __init__(self, *args, **kwargs)`` is rebuilt with
    its parent's arguments). NumPy scalars are stored as numbers; anything else JSON cannot hold makes
    :func:`save_model` ask for ``args=``.
    """

    model_args: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__dict__["__init__"]
        signature = inspect.signature(init)
        kinds = {p.kind for p in list(signature.parameters.values())[1:]}
        if kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY}:
            return  # not replayable from keywords: the constructor it calls records

        @functools.wraps(init)
        def __init__(self, *args: Any, **kw: Any) -> None:
            if "model_args" not in self.__dict__:  # the outermost recording constructor
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                recorded: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:
                    if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                        recorded.update(value)
                    else:
                        recorded[name] = value
                object.__setattr__(self, "model_args", _jsonable(recorded))
            init(self, *args, **kw)

        cls.__init__ = __init__  # type: ignore[method-assign]


def _jsonable(obj: Any) -> Any:
    """Tuples as lists, NumPy scalars as numbers; anything else JSON cannot hold is kept (save_model reports it)."""
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return obj.item()
    return obj


def class_path(cls: type) -> str:
    """``"module:QualName"`` of a class, as a model file stores it."""
    return f"{cls.__module__}:{cls.__qualname__}"


def register_model_class(cls: type[nn.Module]) -> type[nn.Module]:
    """Allow :func:`load_model` to rebuild ``cls`` although it lives outside ``robustlab.*`` (usable as decorator).

    Loading resolves a class path only among robustlab's modules and the registered classes, so a file can never
    make the loader import or call anything else.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_model_class needs a torch.nn.Module subclass, got {cls!r}")
    _REGISTERED[class_path(cls)] = cls
    return cls


@dataclass
class LoadedModel:
    """What :func:`load_model` returns.

    Attributes:
        model: the rebuilt module, with its weights, in eval mode, on the CPU (or ``map_location``).
        args: the constructor arguments it was built with.
        preprocessing: what the model expects of its input (as the saver described it), e.g. the sequence length.
        metadata: anything else the saver stored (training options, metrics).
        path: the file.
    """

    model: nn.Module
    args: dict[str, Any]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_model(model: nn.Module, path: str | os.PathLike, *, args: dict[str, Any] | None = None,
               preprocessing: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a model file (atomically): class path, constructor arguments, weights, preprocessing.

    Args:
        model: the module; its class must be importable from its module (not defined inside a function).
        path: the file to write.
        args: the constructor arguments; default ``model.model_args`` (see :class:`RecordsArgs`).
        preprocessing: what the model expects of its input (JSON): shapes, alphabet, scaling, sampling rate.
        metadata: anything else worth keeping (JSON): training options, the epoch, metrics.

    Raises:
        ConfigError: no arguments are known, they are not JSON, or the class cannot be found by its path.
    """
    from robustlab.common.checkpoint import save_checkpoint

    cls = type(model)
    if args is None:
        args = getattr(model, "model_args", None)
        if args is None:
            raise ConfigError(f"{cls.__name__} does not record its constructor arguments (it does not inherit "
                              "robustlab.common.modelfile.RecordsArgs); pass args= to save_model")
    if "<locals>" in cls.__qualname__:
        raise ConfigError(f"{cls.__qualname__} is defined inside a function; a model file needs a class importable "
                          "from its module")
    try:  # a file that load_model would refuse is not written
        _resolve_class(class_path(cls), f"model file {path}")
        inspect.signature(cls).bind(**args)
    except (CheckpointError, TypeError) as e:
        raise ConfigError(f"{cls.__name__} cannot be saved as a model file: {e}") from None
    texts = {}
    for name, value in (("args", args), ("preprocessing", preprocessing or {}), ("metadata", metadata or {})):
        try:
            texts[name] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"the {name} of the model file {path} must be JSON (numbers, strings, lists, "
                              f"dicts): {e}") from e
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_checkpoint(path, {"format": MODEL_FORMAT, "version": _VERSION, "class": class_path(cls),
                                  "weights": state, **texts})


def is_model_file(payload: Any) -> bool:
    """Whether a loaded payload is a model file (rather than a training checkpoint or a plain state dict)."""
    return isinstance(payload, dict) and payload.get("format") == MODEL_FORMAT


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model of a model file written by :func:`save_model`, without flags and without executing code.

    Raises:
        CheckpointError: the file is missing, unreadable, not a model file (a training checkpoint or a plain
            state dict: the message says what to do), names a class outside robustlab and the registered
            classes, its arguments do not fit the class, or its weights do not fit the rebuilt model. The message
            names the file.
    """
    from robustlab.common.checkpoint import read_payload

    path = Path(path)
    return model_from_payload(read_payload(path, map_location=map_location), path, map_location=map_location)


def model_from_payload(payload: Any, path: str | os.PathLike, *,
                       map_location: str | torch.device = "cpu") -> LoadedModel:
    """:func:`load_model` for a file already read (``checkpoint.read_payload``), e.g. by a caller that first
    looks at what kind of file it is; ``path`` names it in messages.

    Raises:
        CheckpointError: as :func:`load_model`.
    """
    path = Path(path)
    if not is_model_file(payload):
        raise CheckpointError(_not_a_model_file(path, payload))
    where = f"model file {path}"
    try:
        args = json.loads(payload["args"])
        preprocessing = json.loads(payload.get("preprocessing", "{}"))
        metadata = json.loads(payload.get("metadata", "{}"))
        name, weights = payload["class"], payload["weights"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where} is damaged: its field {e} is missing or not JSON") from e
    if not all(isinstance(v, dict) for v in (args, preprocessing, metadata, weights)):
        raise CheckpointError(f"{where} is damaged: 'args', 'preprocessing' and 'metadata' must be JSON objects and "
                              "'weights' a state dict")
    cls = _resolve_class(name, where)
    model = _build(cls, args, where, weights)
    _load_weights(model, weights, where)
    return LoadedModel(model=model.to(map_location).eval(), args=args, preprocessing=preprocessing,
                       metadata=metadata, path=path)


def load_state_dict_into(cls: type[nn.Module] | str, path: str | os.PathLike, *, args: dict[str, Any] | None = None,
                         map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a plain PyTorch state dict (or the model of a robustlab training checkpoint) into a named architecture.

    Args:
        cls: the class, or its path ``"robustlab.genomics.models:LocalNet"``.
        path: a file of ``torch.save(model.state_dict())``, or a ``best.pt``/``last.pt`` of robustlab's engine.
        args: the constructor arguments.

    Returns:
        The model with the file's weights, in eval mode.

    Raises:
        CheckpointError: the file cannot be read, holds no state dict, or its weights do not fit (names the file).
    """
    from robustlab.common.checkpoint import read_payload

    path = Path(path)
    where = f"{path}"
    if isinstance(cls, str):
        cls = _resolve_class(cls, where)
    payload = read_payload(path, map_location=map_location)
    if is_model_file(payload):
        state = payload.get("weights")
    elif isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        state = payload["model"]  # a training checkpoint of the engine
    else:
        state = payload
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where} holds no state dict (a mapping of parameter names to tensors)")
    model = _build(cls, dict(args or {}), where, state)
    _load_weights(model, state, where)
    return model.to(map_location).eval()


def _not_a_model_file(path: Path, payload: Any) -> str:
    from robustlab.common.checkpoint import FORMAT

    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return (f"{path} is a training checkpoint, not a model file: it holds weights but not the model's class and "
                f"arguments. Use the model.pt written beside it, or load its weights into a named architecture "
                f"(robustlab.common.modelfile.load_state_dict_into)")
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return (f"{path} is a plain state dict, not a model file: name the architecture to load it into "
                f"(robustlab.common.modelfile.load_state_dict_into)")
    return f"{path} is not a robustlab model file (no format={MODEL_FORMAT!r} field)"


def _resolve_class(name: Any, where: str) -> type[nn.Module]:
    if not isinstance(name, str) or ":" not in name:
        raise CheckpointError(f"{where} names its class as {name!r}; expected 'module:ClassName'")
    if name in _REGISTERED:
        return _REGISTERED[name]
    module_name, _, qualname = name.partition(":")
    refused = CheckpointError(
        f"{where} names the class {name!r}, which is neither a class of robustlab nor registered: only robustlab's "
        "own classes and those passed to robustlab.common.modelfile.register_model_class are rebuilt"
    )
    if not (module_name == "robustlab" or module_name.startswith("robustlab.")) or "__" in qualname:
        raise refused
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"{where} names the class {name!r}, which is not installed here ({e}); install the "
                              "package that defines it") from e
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise CheckpointError(f"{where} names {name!r}, which is not a torch.nn.Module class")
    if class_path(obj) != name:  # reached through another module's attribute (e.g. an imported torch class)
        raise refused
    return obj


def _build(cls: type[nn.Module], args: dict[str, Any], where: str, weights: dict[str, Any] | None = None
           ) -> nn.Module:
    """``cls(**args)``, first on the meta device (no memory), its shapes checked against ``weights``."""
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as e:
        raise CheckpointError(f"{where}: the arguments {args} do not fit {cls.__name__}: {e}") from e
    try:
        if weights is not None:
            with torch.device("meta"):
                shapes = {k: tuple(v.shape) for k, v in cls(**args).state_dict().items()}
            stored = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
            wrong = [f"{k}: {stored[k]} in the file, {shapes[k]} in the model" for k in shapes
                     if k in stored and stored[k] != shapes[k]]
            if wrong:
                raise CheckpointError(f"{where}: the weights do not fit {cls.__name__}({_show(args)}): size mismatch "
                                      f"for {'; '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''}")
        return cls(**args)
    except CheckpointError:
        raise
    except Exception as e:  # the constructor's own checks: negative sizes, unknown options...
        raise CheckpointError(f"{where}: {cls.__name__}({_show(args)}) failed: {type(e).__name__}: {e}") from e


def _show(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _load_weights(model: nn.Module, state: dict[str, Any], where: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: the weights do not fit {type(model).__name__}: {_first_lines(e)}") from e


def _first_lines(e: BaseException, n: int = 6) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:n]) + (" ..." if len(lines) > n else "")
