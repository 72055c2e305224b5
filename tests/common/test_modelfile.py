"""Model files: class path + constructor arguments + weights + preprocessing, rebuilt with no flags, no code run."""

import json
import os

import pytest
import torch
from torch import nn

from robustlab.common.checkpoint import read_payload, save_checkpoint
from robustlab.common.errors import CheckpointError, ConfigError
from robustlab.common.modelfile import (
    MODEL_FORMAT,
    RecordsArgs,
    load_model,
    load_state_dict_into,
    register_model_class,
    save_model,
)
from robustlab.common.models import MLP, SmallCNN


class Outside(RecordsArgs, nn.Linear):
    """A module outside robustlab, importable from this test module."""

    def __init__(self, n: int, *, bias: bool = True) -> None:
        super().__init__(n, 2, bias=bias)


@pytest.mark.parametrize(("model", "x"), [(MLP(3, 4, hidden=(5, 6), dropout=0.1), torch.randn(7, 3)),
                                          (SmallCNN(), torch.rand(2, 1, 28, 28))])
def test_a_model_file_rebuilds_the_same_model(tmp_path, model, x):
    path = save_model(model, tmp_path / "m.pt", preprocessing={"mean": 0.5}, metadata={"epoch": 3})
    loaded = load_model(path)
    assert type(loaded.model) is type(model) and loaded.args == model.model_args
    assert loaded.preprocessing == {"mean": 0.5} and loaded.metadata == {"epoch": 3} and loaded.path == path
    assert not loaded.model.training
    torch.testing.assert_close(loaded.model(x), model.eval()(x), rtol=0, atol=0)


class PassThrough(MLP):
    """A subclass passing everything on: rebuilt with its parent's recorded arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


class WithKwargs(RecordsArgs, nn.Linear):
    def __init__(self, n: int, **options):
        super().__init__(n, 2, **options)


def test_constructor_arguments_are_recorded_with_defaults_and_as_json():
    import numpy as np

    m = MLP(np.int64(3), 4, hidden=(5,))
    assert m.model_args == {"in_features": 3, "num_classes": 4, "hidden": [5], "dropout": 0.0}
    assert type(m.model_args["in_features"]) is int
    json.dumps(m.model_args)
    assert PassThrough(2, 3, hidden=(4,)).model_args == {"in_features": 2, "num_classes": 3, "hidden": [4],
                                                          "dropout": 0.0}
    assert WithKwargs(3, bias=False).model_args == {"n": 3, "bias": False}


def test_pass_through_and_keyword_subclasses_rebuild(tmp_path):
    x = torch.randn(4, 2)
    for model in (PassThrough(2, 3, hidden=(4,)), WithKwargs(2, bias=False)):
        register_model_class(type(model))
        loaded = load_model(save_model(model, tmp_path / f"{type(model).__name__}.pt")).model
        assert type(loaded) is type(model)
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def _rewrite(path, **fields):
    payload = read_payload(path)
    payload.update(fields)
    payload.pop("version", None)
    save_checkpoint(path, payload)


def test_a_class_outside_robustlab_is_never_imported_or_called(tmp_path):
    path = save_model(MLP(2, 2, hidden=(3,)), tmp_path / "m.pt")
    _rewrite(path, **{"class": "os:system", "args": json.dumps({"command": f"touch {tmp_path / 'pwned'}"})})
    with pytest.raises(CheckpointError, match="neither a class of robustlab nor registered") as e:
        load_model(path)
    assert str(path) in str(e.value) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("name", "match"), [("robustlab.common.nothere:Net", "not installed"),
                                             ("robustlab.common.io:atomic_write", "not a torch.nn.Module"),
                                             ("no-colon", "module:ClassName"),
                                             # torch's classes reached through a robustlab module's attributes
                                             ("robustlab.common.modelfile:torch.nn.Identity", "neither"),
                                             ("robustlab.common.modelfile:nn.Linear", "neither"),
                                             ("robustlab.common.models:MLP.__base__", "neither")])
def test_an_unknown_class_names_the_file(tmp_path, name, match):
    path = save_model(MLP(2, 2, hidden=(3,)), tmp_path / "m.pt")
    _rewrite(path, **{"class": name})
    with pytest.raises(CheckpointError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_missing_or_wrong_arguments_name_the_file(tmp_path):
    path = save_model(MLP(2, 2, hidden=(3,)), tmp_path / "m.pt")
    _rewrite(path, args=json.dumps({"in_features": 2}))
    with pytest.raises(CheckpointError, match="do not fit MLP") as e:
        load_model(path)
    assert str(path) in str(e.value) and "num_classes" in str(e.value)


@pytest.mark.parametrize("args", [{"in_features": -3, "num_classes": 2},  # the constructor's own error
                                  {"in_features": 2, "num_classes": 2, "hidden": "abc"},
                                  {"in_features": 2 ** 33, "num_classes": 2, "hidden": [3]}])  # never allocated
def test_arguments_the_class_refuses_name_the_file(tmp_path, args):
    path = save_model(MLP(2, 2, hidden=(3,)), tmp_path / "m.pt")
    _rewrite(path, args=json.dumps(args))
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_weights_of_another_shape_name_the_file(tmp_path):
    path = save_model(MLP(2, 2, hidden=(3,)), tmp_path / "m.pt")
    _rewrite(path, args=json.dumps({"in_features": 2, "num_classes": 2, "hidden": [4]}))
    with pytest.raises(CheckpointError, match="weights do not fit MLP") as e:
        load_model(path)
    assert str(path) in str(e.value) and "size mismatch" in str(e.value)


def test_a_training_checkpoint_or_state_dict_is_not_a_model_file_but_loads_into_a_named_architecture(tmp_path):
    model = MLP(2, 2, hidden=(3,))
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    save_checkpoint(tmp_path / "best.pt", {"model": model.state_dict(), "epoch": 1})
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_model(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="training checkpoint"):
        load_model(tmp_path / "best.pt")
    x = torch.randn(4, 2)
    for f in ("plain.pt", "best.pt"):
        for cls in (MLP, "robustlab.common.models.mlp:MLP"):
            rebuilt = load_state_dict_into(cls, tmp_path / f, args=model.model_args)
            torch.testing.assert_close(rebuilt(x), model.eval()(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="size mismatch") as e:
        load_state_dict_into(MLP, tmp_path / "plain.pt", args={"in_features": 2, "num_classes": 5})
    assert "plain.pt" in str(e.value)


def test_a_class_outside_robustlab_is_saved_and_rebuilt_once_registered(tmp_path):
    model = Outside(3, bias=False)
    with pytest.raises(ConfigError, match="register_model_class"):
        save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    register_model_class(Outside)
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert isinstance(loaded.model, Outside) and loaded.args == {"n": 3, "bias": False}


def test_what_cannot_be_saved_is_refused_clearly(tmp_path):
    class Local(nn.Linear):
        pass

    with pytest.raises(ConfigError, match="pass args="):
        save_model(nn.Linear(2, 2), tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="inside a function"):
        save_model(Local(2, 2), tmp_path / "b.pt", args={"in_features": 2, "out_features": 2})
    with pytest.raises(ConfigError, match="JSON"):
        save_model(MLP(2, 2), tmp_path / "c.pt", preprocessing={"f": object()})
    assert not any(tmp_path.iterdir())


def test_loading_never_runs_code_carried_by_the_file(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": MODEL_FORMAT, "class": "robustlab.common.models.mlp:MLP", "weights": Evil()},
               tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "evil.pt")
    message = str(e.value)
    assert "evil.pt" in message and "weights_only" not in message and not (tmp_path / "pwned").exists()
