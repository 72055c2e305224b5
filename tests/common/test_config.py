"""robustlab.common.config: key=value overrides on frozen dataclasses, TOML run files."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import torch

from robustlab.common.config import (
    apply_overrides,
    bounded,
    check_device,
    check_values,
    config_keys,
    load_toml,
)
from robustlab.common.errors import ConfigError


@dataclass(frozen=True)
class Optim:
    lr: float = 0.1
    momentum: float = 0.9


@dataclass(frozen=True)
class Cfg:
    epochs: int = 3
    lr: float = 1e-3
    amp: bool = False
    name: str = "run"
    eps: tuple[float, ...] = (0.1,)
    names: tuple[str, ...] = ("a",)
    pair: tuple[int, float] = (1, 0.5)
    hidden: list[int] = field(default_factory=lambda: [4])
    seed: Optional[int] = None  # noqa: UP045 (typing.Union is parsed too, not only X | Y)
    ramp: int | str = "auto"
    mode: Literal["min", "max"] = "min"
    path: Path = Path(".")
    weights: dict[str, float] = field(default_factory=dict)
    optim: Optim = Optim()


@dataclass(frozen=True)
class Checked:
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got {self.low} >= {self.high}")


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("epochs=5", "epochs", 5),
        ("epochs= 7 ", "epochs", 7),
        ("lr=3e-4", "lr", 3e-4),
        ("lr=2", "lr", 2.0),
        ("amp=true", "amp", True),
        ("amp=No", "amp", False),
        ("amp=1", "amp", True),
        ("name=hello world", "name", "hello world"),
        ('name="quoted"', "name", "quoted"),
        ("eps=0.1,0.2", "eps", (0.1, 0.2)),
        ("eps=[0.1, 0.2, 0.3]", "eps", (0.1, 0.2, 0.3)),
        ("eps=(0.3)", "eps", (0.3,)),
        ("eps=0.5", "eps", (0.5,)),
        ("eps=1", "eps", (1.0,)),
        ("eps=[]", "eps", ()),
        ("names=a,b", "names", ("a", "b")),
        ("names=[x, y]", "names", ("x", "y")),
        ('names=["x", "y z"]', "names", ("x", "y z")),
        ("pair=2,0.25", "pair", (2, 0.25)),
        ("hidden=[8, 16]", "hidden", [8, 16]),
        ("hidden=8", "hidden", [8]),
        ("seed=none", "seed", None),
        ("seed=null", "seed", None),
        ("seed=4", "seed", 4),
        ("ramp=3", "ramp", 3),
        ("ramp=auto", "ramp", "auto"),
        ("mode=max", "mode", "max"),
        ("path=/tmp/x", "path", Path("/tmp/x")),
        ('weights={"a": 1, "b": 0.5}', "weights", {"a": 1.0, "b": 0.5}),
        ("weights={a = 2}", "weights", {"a": 2.0}),
    ],
)
def test_values_parse_to_the_field_type(override, key, expected):
    cfg = apply_overrides(Cfg(), [override])
    value = getattr(cfg, key)
    assert value == expected
    assert type(value) is type(expected)


def test_returns_a_new_instance_and_leaves_the_original():
    base = Cfg()
    new = apply_overrides(base, ["epochs=9", "optim.lr=0.5"])
    assert base.epochs == 3 and base.optim.lr == 0.1
    assert new.epochs == 9 and new.optim == Optim(lr=0.5, momentum=0.9)
    assert dataclasses.is_dataclass(new) and type(new) is Cfg


def test_later_override_wins():
    assert apply_overrides(Cfg(), ["epochs=1", "epochs=2"]).epochs == 2


def test_mapping_overrides_are_checked_and_converted():
    cfg = apply_overrides(Cfg(), {"epochs": 4, "lr": 1, "eps": [0.2, 0.3], "optim": {"momentum": 0.5}})
    assert cfg.epochs == 4 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.eps == (0.2, 0.3)
    assert cfg.optim == Optim(lr=0.1, momentum=0.5)
    assert apply_overrides(Cfg(), {"optim.lr": 0.3}).optim.lr == 0.3


@pytest.mark.parametrize(
    "override, key, listed",
    [("epohs=3", "epohs", ["epochs", "optim.lr"]), ("epochs.x=1", "epochs.x", ["epochs", "optim.lr"]),
     ("optim.lrr=1", "optim.lrr", ["optim.lr", "optim.momentum"])],
)
def test_unknown_key_names_it_and_lists_valid_keys(override, key, listed):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), [override])
    msg = str(err.value)
    assert repr(key) in msg
    assert "valid keys:" in msg
    assert all(k in msg.split("valid keys:")[1] for k in listed)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        apply_overrides(Cfg(), ["epoch=3"])


@pytest.mark.parametrize(
    "override, expected_type",
    [
        ("epochs=abc", "int"),
        ("epochs=1.5", "int"),
        ("lr=fast", "float"),
        ("amp=maybe", "bool"),
        ("eps=a,b", "tuple of float"),
        ("eps=0.1,,0.2", "tuple of float"),
        ("pair=1", "tuple of (int, float)"),
        ("mode=avg", "one of 'min', 'max'"),
        ("seed=x", "int or None"),
        ("weights=[1, 2]", "a mapping"),
    ],
)
def test_bad_value_names_key_value_and_expected_type(override, expected_type):
    key, _, value = override.partition("=")
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), [override])
    msg = str(err.value)
    assert repr(key) in msg
    assert repr(value) in msg
    assert f"expected {expected_type}" in msg


def test_typed_mapping_values_are_not_coerced_silently():
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(Cfg(), {"epochs": "3"})
    with pytest.raises(ConfigError, match="expected bool"):
        apply_overrides(Cfg(), {"amp": 1})


def test_override_must_be_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Cfg(), ["epochs"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Cfg(), ["=3"])


def test_a_group_needs_a_dotted_key():
    with pytest.raises(ConfigError, match="optim.lr"):
        apply_overrides(Cfg(), ["optim=1"])


def test_validation_of_the_dataclass_becomes_a_config_error():
    with pytest.raises(ConfigError, match="low must be below high"):
        apply_overrides(Checked(), ["low=2"])


def test_config_keys_lists_nested_keys():
    keys = config_keys(Cfg())
    assert keys[0] == "epochs"
    assert "optim.lr" in keys and "optim.momentum" in keys and "optim" not in keys


def test_unresolvable_annotations_fall_back_to_the_current_value_types():
    class Local:
        pass

    @dataclass(frozen=True)
    class C:
        n: "int" = 1
        other: "Local | None" = None
        eps: "tuple[float, ...]" = (0.1,)

    c = apply_overrides(C(), ["n=3", "eps=0.2,0.3", "other=[1, 2]"])
    assert c.n == 3 and c.eps == (0.2, 0.3) and c.other == [1, 2]
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(C(), ["n=x"])


def test_load_toml_reads_a_run_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 12\neps = [0.1, 0.2]\nname = "toml run"\n\n[optim]\nlr = 0.05\n')
    overrides = load_toml(path)
    assert overrides == {"epochs": 12, "eps": [0.1, 0.2], "name": "toml run", "optim": {"lr": 0.05}}
    cfg = apply_overrides(Cfg(), overrides, source=str(path))
    assert cfg.epochs == 12 and cfg.eps == (0.1, 0.2) and cfg.name == "toml run" and cfg.optim.lr == 0.05


def test_load_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="missing.toml"):
        load_toml(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text("epohs = 3\n")
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), load_toml(typo), source=str(typo))
    assert "typo.toml" in str(err.value) and "'epohs'" in str(err.value)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('epochs = "many"\n')
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), load_toml(wrong), source=str(wrong))
    assert "wrong.toml" in str(err.value) and "expected int" in str(err.value)


# -- ranges: bounded fields, check_values, check_device ----------------------------------------------------------


@dataclass(frozen=True)
class RangedOptim:
    lr: float = bounded(0.1, gt=0)


@dataclass(frozen=True)
class Ranged:
    epochs: int = bounded(3, ge=1)
    lr: float = bounded(1e-3, gt=0)
    frac: float = bounded(0.5, ge=0, le=1)
    warmup: float = bounded(0.0, ge=0, lt=1)
    eps: tuple[float, ...] = bounded((0.1,), gt=0, min_len=1, unique=True)
    kind: str = bounded("a", choices=("a", "b"))
    kinds: tuple[str, ...] = bounded(("a",), choices=("a", "b"), min_len=1)
    patience: int | None = bounded(None, ge=1)
    device: str = bounded("cpu", device=True)
    hidden: list[int] = bounded(default_factory=lambda: [4], ge=1)
    optim: RangedOptim = RangedOptim()


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=0", "epochs must be >= 1, got 0"),
        ("lr=-1", "lr must be > 0, got -1.0"),
        ("lr=0", "lr must be > 0, got 0.0"),
        ("lr=nan", "lr must be a finite number > 0, got nan"),
        ("lr=inf", "lr must be a finite number > 0, got inf"),
        ("eps=0.1,inf", "every value of eps must be a finite number > 0, got inf in (0.1, inf)"),
        ("frac=1.5", "frac must be >= 0 and <= 1, got 1.5"),
        ("warmup=1", "warmup must be >= 0 and < 1, got 1.0"),
        ("eps=", "eps must hold at least 1 value, got ()"),
        ("eps=0.1,-0.2", "every value of eps must be > 0, got -0.2 in (0.1, -0.2)"),
        ("eps=0.1,0.1", "eps holds 0.1 more than once"),
        ("kind=c", "kind must be one of 'a', 'b', got 'c'"),
        ("kinds=a,c", "unknown kinds ['c']; choose from 'a', 'b'"),
        ("patience=0", "patience must be >= 1, got 0"),
        ("device=gpu", "device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got 'gpu'"),
        ("hidden=4,0", "every value of hidden must be >= 1, got 0 in [4, 0]"),
        ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ],
)
def test_a_value_out_of_its_range_names_field_value_and_range(override, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Ranged(), [override])
    assert message in str(err.value)


def test_values_in_range_pass_and_none_skips_the_range(tmp_path):
    cfg = apply_overrides(Ranged(), ["epochs=1", "lr=2", "frac=1", "frac=0", "eps=0.1,0.2", "kinds=b,a",
                                     "patience=none", "patience=3", "device=cuda:1", "device=auto", "hidden=[]"])
    assert cfg.patience == 3 and cfg.frac == 0 and cfg.hidden == [] and cfg.device == "auto"
    assert check_values(cfg) is cfg  # syntax only: cuda:1 would pass too, whether or not it exists
    assert check_values(Ranged(device="cuda:1")).device == "cuda:1"
    path = tmp_path / "run.toml"
    path.write_text("lr = -0.5\n")
    with pytest.raises(ConfigError, match=r"run.toml: lr must be > 0, got -0.5"):
        apply_overrides(Ranged(), load_toml(path), source=str(path))


def test_check_values_checks_an_instance_built_directly():
    bad = Ranged(epochs=0)  # no __post_init__: the class does not check itself
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0"):
        check_values(bad)
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        check_values(Ranged(optim=RangedOptim(lr=-1.0)))

    @dataclass(frozen=True)
    class SelfChecked:
        n: int = bounded(1, ge=1)

        def __post_init__(self):
            check_values(self)

    with pytest.raises(ConfigError, match="n must be >= 1, got -2"):
        SelfChecked(n=-2)
    assert issubclass(ConfigError, ValueError)  # classes that raised ValueError before still do


def test_bounded_refuses_a_bad_declaration():
    with pytest.raises(TypeError, match="ge and gt"):
        bounded(1, ge=0, gt=0)
    with pytest.raises(TypeError, match="default"):
        bounded((1,), default_factory=tuple)


@pytest.mark.parametrize("device", ["cpu", "auto", " cpu "])
def test_check_device_accepts_the_cpu_and_auto(device):
    assert check_device(device) == device.strip()


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cuda0", "", "CPU:0"])
def test_check_device_refuses_an_unknown_name(device):
    with pytest.raises(ConfigError, match=r"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"):
        check_device(device)
    with pytest.raises(ConfigError, match=r"^--device must be"):
        check_device(device, what="--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_check_device_refuses_cuda_without_a_cuda_device(device):
    with pytest.raises(ConfigError) as err:
        check_device(device)
    assert f"device {device!r}" in str(err.value) and "no CUDA device is available" in str(err.value)
    with pytest.raises(ConfigError, match="no CUDA device"):
        check_values(Ranged(device=device), devices=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_device_accepts_an_existing_cuda_device_and_refuses_a_missing_one():
    assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda:0"
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=f"cuda:{n}"):
        check_device(f"cuda:{n}")
