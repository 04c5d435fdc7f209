"""Built-in data transformers and user transformers (SPEC §2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from graphs.calculators import (
    ApplyDefaultsCalculator,
    AttributeFilterAwayCalculator,
    AttributeFilterCalculator,
    AttributeNameChangeCalculator,
    NullCalculator,
)
from graphs.catalog import (
    TRANSFORMER_TYPES,
    build_component,
    callable_of,
    resolve_component_class,
)
from graphs.components import ComponentConfigError, UnknownComponentType
from graphs.model import ComponentSpec
from graphs.transformers import (
    ApplyDefaultsDataTransformer,
    AttributeFilterAwayDataTransformer,
    AttributeFilterDataTransformer,
    AttributeNameChangeDataTransformer,
    DataTransformer,
    NullDataTransformer,
    PassthruDataTransformer,
)

RECORD: dict[str, Any] = {"v": 1, "w": None, "deep": {"xs": [1]}, "name": "ada"}

BUILTINS: list[tuple[type, dict[str, Any]]] = [
    (NullDataTransformer, {}),
    (PassthruDataTransformer, {}),
    (AttributeFilterAwayDataTransformer, {"filter_attributes": ["v"]}),
    (AttributeFilterDataTransformer, {"keep_attributes": ["v", "deep"]}),
    (ApplyDefaultsDataTransformer, {"defaults": {"w": 2, "z": [3]}}),
    (AttributeNameChangeDataTransformer, {"name_mapping": {"v": "value"}}),
]

# Each transformer and the calculator doing the same operation.
TWINS: list[tuple[type, type, dict[str, Any]]] = [
    (NullDataTransformer, NullCalculator, {}),
    (AttributeFilterAwayDataTransformer, AttributeFilterAwayCalculator, {"filter_attributes": ["v", "q"]}),
    (AttributeFilterDataTransformer, AttributeFilterCalculator, {"keep_attributes": ["name", "v"]}),
    (ApplyDefaultsDataTransformer, ApplyDefaultsCalculator, {"defaults": {"w": 0, "v": 5, "n": None}}),
    (AttributeNameChangeDataTransformer, AttributeNameChangeCalculator, {"name_mapping": {"v": "name"}}),
]

ids = lambda v: getattr(v, "__name__", "")  # noqa: E731


def test_registry_names_every_builtin() -> None:
    assert set(TRANSFORMER_TYPES) == {cls.__name__ for cls, _ in BUILTINS}
    assert all(issubclass(cls, DataTransformer) for cls in TRANSFORMER_TYPES.values())


@pytest.mark.parametrize(("cls", "config"), BUILTINS, ids=ids)
def test_no_builtin_mutates_its_input(cls: type, config: dict[str, Any]) -> None:
    record = copy.deepcopy(RECORD)
    out = cls(name="t", config=config).transform(record)
    assert record == RECORD
    assert out is not None
    if cls is not PassthruDataTransformer:
        assert out is not record


@pytest.mark.parametrize(("transformer", "calculator", "config"), TWINS, ids=ids)
def test_transformers_match_their_calculator_twins(
    transformer: type, calculator: type, config: dict[str, Any]
) -> None:
    assert transformer.CONFIG_KEYS == calculator.CONFIG_KEYS
    out = transformer(name="t", config=config).transform(RECORD)
    assert out == calculator(name="c", config=config).calculate(RECORD)
    assert list(out or {}) == list(calculator(name="c", config=config).calculate(RECORD) or {})


def test_null_is_a_deep_copy_and_passthru_is_identity() -> None:
    out = NullDataTransformer(name="n", config={}).transform(RECORD)
    assert out == RECORD and out is not RECORD and out["deep"]["xs"] is not RECORD["deep"]["xs"]
    assert PassthruDataTransformer(name="p", config={}).transform(RECORD) is RECORD


def test_each_operation() -> None:
    record = {"a": 1, "b": None, "c": 3}
    away = AttributeFilterAwayDataTransformer(name="t", config={"filter_attributes": ["a"]})
    assert away.transform(record) == {"b": None, "c": 3}
    keep = AttributeFilterDataTransformer(name="t", config={"keep_attributes": ["c", "zz"]})
    assert keep.transform(record) == {"c": 3}
    defaults = ApplyDefaultsDataTransformer(name="t", config={"defaults": {"b": 2, "d": 4, "a": 0}})
    assert defaults.transform(record) == {"a": 1, "b": 2, "c": 3, "d": 4}
    rename = AttributeNameChangeDataTransformer(name="t", config={"name_mapping": {"a": "x"}})
    assert rename.transform(record) == {"x": 1, "b": None, "c": 3}
    assert record == {"a": 1, "b": None, "c": 3}


@pytest.mark.parametrize(
    ("cls", "config", "key", "suggestion"),
    [
        (NullDataTransformer, {"filter_attributes": []}, "filter_attributes", None),
        (PassthruDataTransformer, {"x": 1}, "x", None),
        (AttributeFilterAwayDataTransformer, {"filter_atributes": ["a"]}, "filter_atributes",
         "filter_attributes"),
        (AttributeFilterAwayDataTransformer, {"filter_attributes": "a"}, "filter_attributes", None),
        (AttributeFilterDataTransformer, {"keep_attributes": [1]}, "keep_attributes[0]", None),
        (ApplyDefaultsDataTransformer, {"defaults": 3}, "defaults", None),
        (ApplyDefaultsDataTransformer, {"default": {}}, "default", "defaults"),
        (AttributeNameChangeDataTransformer, {"name_mapping": {"a": None}}, "name_mapping.a", None),
    ],
)
def test_bad_config_is_rejected(
    cls: type, config: dict[str, Any], key: str, suggestion: str | None
) -> None:
    with pytest.raises(ComponentConfigError) as info:
        cls(name="t", config=config)
    assert info.value.key == key
    assert info.value.suggestion == suggestion


def test_user_transformer_by_dotted_path() -> None:
    spec = ComponentSpec("up", "tests.support.userclasses.UpperNameTransformer", {"any": "key"})
    component = build_component(spec, "transformer")
    transform = callable_of(component, "transformer")
    record = {"name": "ada", "n": 1}
    assert transform(record) == {"name": "ADA", "n": 1}
    assert record == {"name": "ada", "n": 1}
    assert transform({"n": 1}) == {"n": 1}


def test_calculator_class_is_not_a_transformer() -> None:
    with pytest.raises(UnknownComponentType, match=r"has no transform\(record\) method"):
        resolve_component_class("tests.support.userclasses.RaisingCalculator", "transformer")


def test_unknown_builtin_transformer_suggestions() -> None:
    with pytest.raises(UnknownComponentType) as info:
        resolve_component_class("NullTransformer", "transformer")
    assert info.value.suggestion == "NullDataTransformer"
    with pytest.raises(UnknownComponentType) as short:
        resolve_component_class("Passthru", "transformer")
    assert short.value.suggestion == "PassthruDataTransformer"
    with pytest.raises(UnknownComponentType) as other:
        resolve_component_class("NullCalculator", "transformer")
    assert "is a built-in calculator, not a transformer" in str(other.value)


def test_build_builtin_transformer() -> None:
    spec = ComponentSpec("d", "ApplyDefaultsDataTransformer", {"defaults": {"unit": "EUR"}})
    transform = callable_of(build_component(spec, "transformer"), "transformer")
    assert transform({"v": 1}) == {"v": 1, "unit": "EUR"}


def test_base_class_requires_transform() -> None:
    with pytest.raises(NotImplementedError):
        DataTransformer(name="base", config={}).transform({})
