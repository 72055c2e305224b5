"""robustlab.common.config: key=value overrides on frozen dataclasses, TOML run files."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from robustlab.common.config import apply_overrides, config_keys, load_toml
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
