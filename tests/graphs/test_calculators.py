"""Built-in calculators, config checking, and component resolution (SPEC §2)."""

from __future__ import annotations

import copy
import logging
import math
import pickle
from typing import Any

import pytest

from graphs.aggregate import AggregateCalculator
from graphs.calculators import (
    AdditionCalculator,
    ApplyDefaultsCalculator,
    AttributeFilterAwayCalculator,
    AttributeFilterCalculator,
    AttributeNameChangeCalculator,
    Calculator,
    MultiplicationCalculator,
    NullCalculator,
    PassthruCalculator,
)
from graphs.catalog import (
    CALCULATOR_TYPES,
    TRANSFORMER_TYPES,
    build_component,
    callable_of,
    resolve_component_class,
)
from graphs.components import ComponentConfigError, UnknownComponentType
from graphs.model import ComponentSpec, frozen

RECORD: dict[str, Any] = {"a": 1, "b": "2.5", "c": None, "nested": {"xs": [1, 2]}, "name": "x"}

# (class, config) for every built-in, with a config that exercises it.
BUILTINS: list[tuple[type, dict[str, Any]]] = [
    (NullCalculator, {}),
    (PassthruCalculator, {}),
    (AttributeFilterAwayCalculator, {"filter_attributes": ["a", "nested"]}),
    (AttributeFilterCalculator, {"keep_attributes": ["a", "nested"]}),
    (ApplyDefaultsCalculator, {"defaults": {"c": [0], "d": {"k": 1}, "a": 99}}),
    (AdditionCalculator, {"arguments": ["a", "b", "c", "name"]}),
    (MultiplicationCalculator, {"arguments": ["a", "b"]}),
    (AttributeNameChangeCalculator, {"name_mapping": {"a": "alpha", "nested": "n"}}),
    (AggregateCalculator, {"key": ["name"], "aggregates": {"n": {"op": "count"}, "s": {"op": "sum", "of": "a"}}}),
]


def calc(cls: type, **config: Any) -> Any:
    return cls(name="c", config=config)


def test_registry_names_every_builtin() -> None:
    assert set(CALCULATOR_TYPES) == {cls.__name__ for cls, _ in BUILTINS}
    assert all(issubclass(cls, Calculator) for cls in CALCULATOR_TYPES.values())
    assert "NullDataTransformer" in TRANSFORMER_TYPES


@pytest.mark.parametrize(("cls", "config"), BUILTINS, ids=lambda v: getattr(v, "__name__", ""))
def test_no_builtin_mutates_its_input(cls: type, config: dict[str, Any]) -> None:
    record = copy.deepcopy(RECORD)
    out = cls(name="c", config=config).calculate(record)
    assert record == RECORD
    assert out is not None
    if cls is not PassthruCalculator:
        assert out is not record
        out.clear()  # the output is the caller's: changing it leaves the input alone
        assert record == RECORD


@pytest.mark.parametrize(("cls", "config"), BUILTINS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_builtin_declares_and_documents_its_keys(cls: type, config: dict[str, Any]) -> None:
    assert isinstance(cls.CONFIG_KEYS, dict)
    assert set(config) <= set(cls.CONFIG_KEYS)
    assert all(key in (cls.__doc__ or "") for key in cls.CONFIG_KEYS)


def test_null_is_a_deep_copy() -> None:
    out = calc(NullCalculator).calculate(RECORD)
    assert out == RECORD
    assert out is not RECORD
    assert out["nested"] is not RECORD["nested"]
    assert out["nested"]["xs"] is not RECORD["nested"]["xs"]


def test_null_copies_values_of_other_types_too() -> None:
    record = {"t": (1, [2]), "s": {1, 2}}
    out = calc(NullCalculator).calculate(record)
    assert out == record
    assert out["t"][1] is not record["t"][1]


def test_passthru_returns_the_record_itself() -> None:
    assert calc(PassthruCalculator).calculate(RECORD) is RECORD


def test_filter_away_drops_listed_keys_and_ignores_absent_ones() -> None:
    out = calc(AttributeFilterAwayCalculator, filter_attributes=["a", "missing"]).calculate(RECORD)
    assert out == {k: v for k, v in RECORD.items() if k != "a"}


def test_filter_keeps_only_listed_keys_in_record_order() -> None:
    out = calc(AttributeFilterCalculator, keep_attributes=["name", "a", "missing"]).calculate(RECORD)
    assert out == {"a": 1, "name": "x"}
    assert list(out) == ["a", "name"]


def test_defaults_set_missing_and_none_but_keep_present_values() -> None:
    c = calc(ApplyDefaultsCalculator, defaults={"c": 3, "d": "new", "a": 99, "f": False})
    out = c.calculate({"a": 1, "c": None, "e": 0})
    assert out == {"a": 1, "c": 3, "e": 0, "d": "new", "f": False}
    assert list(out) == ["a", "c", "e", "d", "f"]


def test_defaults_keep_falsy_present_values() -> None:
    out = calc(ApplyDefaultsCalculator, defaults={"x": 1, "y": 1, "z": 1}).calculate(
        {"x": 0, "y": "", "z": False}
    )
    assert out == {"x": 0, "y": "", "z": False}


def test_defaults_values_are_not_shared_between_outputs() -> None:
    c = calc(ApplyDefaultsCalculator, defaults={"tags": ["t"]})
    first = c.calculate({})
    assert first is not None
    first["tags"].append("changed")
    assert c.calculate({}) == {"tags": ["t"]}


def test_defaults_none_default_sets_the_key() -> None:
    assert calc(ApplyDefaultsCalculator, defaults={"k": None}).calculate({}) == {"k": None}


def test_name_change_renames_in_place() -> None:
    c = calc(AttributeNameChangeCalculator, name_mapping={"a": "alpha", "missing": "m"})
    out = c.calculate({"z": 0, "a": 1, "b": 2})
    assert out == {"z": 0, "alpha": 1, "b": 2}
    assert list(out) == ["z", "alpha", "b"]


def test_name_change_swaps_and_renamed_value_wins() -> None:
    swap = calc(AttributeNameChangeCalculator, name_mapping={"a": "b", "b": "a"})
    assert swap.calculate({"a": 1, "b": 2}) == {"b": 1, "a": 2}
    over = calc(AttributeNameChangeCalculator, name_mapping={"a": "b"})
    assert over.calculate({"b": 2, "a": 1}) == {"b": 1}


# -- arithmetic ---------------------------------------------------------------------------------
def test_addition_converts_and_outputs_only_the_result() -> None:
    c = calc(AdditionCalculator, arguments=["a", "b", "c", "absent"])
    assert c.calculate({"a": 1, "b": "2.5", "c": None, "other": 7}) == {"result": 3.5}


def test_addition_custom_output_attribute_and_bool_goes_through_float() -> None:
    c = calc(AdditionCalculator, arguments=["x", "y"], output_attribute="total")
    out = c.calculate({"x": True, "y": 2})
    assert out == {"total": 3.0}
    assert isinstance(out["total"], float)


def test_addition_is_exactly_rounded() -> None:
    c = calc(AdditionCalculator, arguments=[f"v{i}" for i in range(10)])
    assert c.calculate({f"v{i}": 0.1 for i in range(10)}) == {"result": 1.0}


def test_addition_of_infinities_gives_nan_not_an_error() -> None:
    c = calc(AdditionCalculator, arguments=["a", "b"])
    out = c.calculate({"a": "inf", "b": "-inf"})
    assert out is not None and math.isnan(out["result"])
    huge = c.calculate({"a": 1e308, "b": 1e308})
    assert huge == {"result": math.inf}


def test_multiplication_converts_and_outputs_only_the_result() -> None:
    c = calc(MultiplicationCalculator, arguments=["price", "qty"], output_attribute="amount")
    out = c.calculate({"price": "2", "qty": 3, "keep": "no"})
    assert out == {"amount": 6.0}
    assert isinstance(out["amount"], float)


def test_no_usable_argument_gives_the_identity() -> None:
    assert calc(AdditionCalculator, arguments=["a"]).calculate({}) == {"result": 0.0}
    assert calc(MultiplicationCalculator, arguments=["a"]).calculate({"a": None}) == {"result": 1.0}


@pytest.mark.parametrize("bad", ["abc", [1], {"x": 1}, "", 10**400])
def test_unconvertible_arguments_are_skipped_with_a_warning(
    bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    add = AdditionCalculator(name="adder", config={"arguments": ["a", "bad", "b"]})
    mul = MultiplicationCalculator(name="mult", config={"arguments": ["a", "bad", "b"]})
    record = {"a": 2, "bad": bad, "b": "3"}
    with caplog.at_level(logging.WARNING, logger="graphs.calculators"):
        assert add.calculate(record) == {"result": 5.0}
        assert mul.calculate(record) == {"result": 6.0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'adder'" in warnings[0] and "'bad'" in warnings[0]


# -- config errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "config", "key"),
    [
        (AttributeFilterAwayCalculator, {}, "filter_attributes"),
        (AttributeFilterAwayCalculator, {"filter_attributes": "a"}, "filter_attributes"),
        (AttributeFilterAwayCalculator, {"filter_attributes": ["a", 3]}, "filter_attributes[1]"),
        (AttributeFilterCalculator, {"keep_attributes": None}, "keep_attributes"),
        (AttributeFilterCalculator, {"keep_attributes": {"a": 1}}, "keep_attributes"),
        (ApplyDefaultsCalculator, {"defaults": ["a"]}, "defaults"),
        (ApplyDefaultsCalculator, {}, "defaults"),
        (AttributeNameChangeCalculator, {"name_mapping": "a"}, "name_mapping"),
        (AttributeNameChangeCalculator, {"name_mapping": {"a": 1}}, "name_mapping.a"),
        (AttributeNameChangeCalculator, {"name_mapping": {"a": ""}}, "name_mapping.a"),
        (AttributeNameChangeCalculator, {"name_mapping": {"a": "x", "b": "x"}}, "name_mapping.b"),
        (AdditionCalculator, {}, "arguments"),
        (AdditionCalculator, {"arguments": []}, "arguments"),
        (AdditionCalculator, {"arguments": "a"}, "arguments"),
        (MultiplicationCalculator, {"arguments": [None]}, "arguments[0]"),
        (MultiplicationCalculator, {"arguments": ["a"], "output_attribute": ""}, "output_attribute"),
        (AdditionCalculator, {"arguments": ["a"], "output_attribute": 5}, "output_attribute"),
        (NullCalculator, {"anything": 1}, "anything"),
    ],
)
def test_bad_config_is_rejected_at_construction(cls: type, config: dict[str, Any], key: str) -> None:
    with pytest.raises(ComponentConfigError) as info:
        cls(name="c", config=config)
    assert info.value.key == key
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{key}: ")


def test_unknown_key_suggests_the_closest_known_key() -> None:
    with pytest.raises(ComponentConfigError) as info:
        AdditionCalculator(name="c", config={"arguments": ["a"], "output_atribute": "x"})
    err = info.value
    assert (err.key, err.value, err.suggestion) == ("output_atribute", "x", "output_attribute")
    assert "did you mean 'output_attribute'?" in str(err)
    with pytest.raises(ComponentConfigError) as far:
        AdditionCalculator(name="c", config={"arguments": ["a"], "zzz": 1})
    assert far.value.suggestion is None


def test_config_must_be_a_map() -> None:
    with pytest.raises(ComponentConfigError) as info:
        NullCalculator(name="c", config=["a"])  # type: ignore[arg-type]
    assert info.value.key == ""


def test_errors_survive_pickling() -> None:
    err = ComponentConfigError("k", [1], "bad", "key")
    back = pickle.loads(pickle.dumps(err))
    assert (back.key, back.value, back.message, back.suggestion) == ("k", [1], "bad", "key")
    unknown = UnknownComponentType("Nul", "calculator", "NullCalculator")
    again = pickle.loads(pickle.dumps(unknown))
    assert str(again) == str(unknown) and isinstance(again, KeyError)


def test_config_is_copied_not_shared() -> None:
    config = {"filter_attributes": ["a"]}
    c = AttributeFilterAwayCalculator(name="c", config=config)
    config["filter_attributes"].append("b")
    assert c.calculate({"a": 1, "b": 2}) == {"b": 2}


# -- resolution and building --------------------------------------------------------------------
def test_build_builtin_from_spec_with_frozen_config() -> None:
    spec = ComponentSpec("sum", "AdditionCalculator", frozen({"arguments": ["a", "b"]}))
    component = build_component(spec, "calculator")
    assert isinstance(component, AdditionCalculator)
    assert component.name == "sum"
    assert callable_of(component, "calculator")({"a": 1, "b": 2}) == {"result": 3.0}


@pytest.mark.parametrize(
    ("type_name", "suggestion"),
    [("AdditonCalculator", "AdditionCalculator"), ("Addition", "AdditionCalculator"),
     ("Null", "NullCalculator"), ("Adition", "AdditionCalculator"), ("Nothing", None)],
)
def test_unknown_builtin_suggests_a_close_name(type_name: str, suggestion: str | None) -> None:
    with pytest.raises(UnknownComponentType) as info:
        resolve_component_class(type_name, "calculator")
    assert info.value.suggestion == suggestion
    assert isinstance(info.value, KeyError)
    assert type_name in str(info.value)


def test_transformer_name_used_as_calculator_is_explained() -> None:
    with pytest.raises(UnknownComponentType) as info:
        resolve_component_class("NullDataTransformer", "calculator")
    assert "is a built-in transformer, not a calculator" in str(info.value)


def test_user_classes_resolve_by_dotted_path() -> None:
    raising = build_component(ComponentSpec("r", "tests.support.userclasses.RaisingCalculator"), "calculator")
    run = callable_of(raising, "calculator")
    assert run({"x": 1}) == {"x": 1}
    with pytest.raises(ValueError, match="boom"):
        run({"boom": True})
    drop = build_component(ComponentSpec("d", "tests.support.userclasses.DropFilterCalculator"), "calculator")
    assert not isinstance(drop, Calculator)
    assert callable_of(drop, "calculator")({"drop": 1}) is None
    assert callable_of(drop, "calculator")({"keep": 1}) == {"keep": 1}


def test_builtins_also_resolve_by_dotted_path() -> None:
    assert resolve_component_class("graphs.calculators.NullCalculator", "calculator") is NullCalculator


@pytest.mark.parametrize(
    ("type_name", "fragment", "suggestion"),
    [
        ("no_such_module_xyz.Calc", "module 'no_such_module_xyz' not found", None),
        ("tests.no_such_module.Calc", "module 'tests.no_such_module' not found", None),
        ("tests.support.userclasses.RaisingCalculatr", "has no class 'RaisingCalculatr'",
         "tests.support.userclasses.RaisingCalculator"),
        ("tests.support.userclasses.NOT_A_CLASS", "is a int, not a class", None),
        ("tests.support.userclasses.NoMethodComponent", "has no calculate(record) method", None),
        ("tests.support.userclasses.", "not a 'module.Class' path", None),
        (".Calc", "not a 'module.Class' path", None),
    ],
)
def test_bad_dotted_paths_are_clear(type_name: str, fragment: str, suggestion: str | None) -> None:
    with pytest.raises(UnknownComponentType) as info:
        resolve_component_class(type_name, "calculator")
    assert fragment in str(info.value)
    assert info.value.suggestion == suggestion
    assert info.value.type_name == type_name and info.value.kind == "calculator"


def test_module_failing_on_import_is_reported(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_user_mod.py").write_text("import not_installed_dep_xyz\n")
    (tmp_path / "crashing_user_mod.py").write_text("raise RuntimeError('bad init')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownComponentType, match="importing module 'broken_user_mod' failed"):
        resolve_component_class("broken_user_mod.Calc", "calculator")
    with pytest.raises(UnknownComponentType, match="RuntimeError: bad init"):
        resolve_component_class("crashing_user_mod.Calc", "calculator")


def test_user_constructor_errors_are_wrapped() -> None:
    spec = ComponentSpec("f", "tests.support.userclasses.FailingConstructorCalculator", {"fail": True})
    with pytest.raises(ComponentConfigError) as info:
        build_component(spec, "calculator")
    err = info.value
    assert err.key == "" and err.value == spec.type
    assert "cannot start: fail requested" in err.message and "RuntimeError" in err.message
    assert isinstance(err.__cause__, RuntimeError)
    ok = build_component(ComponentSpec("f", spec.type, {"fail": False}), "calculator")
    assert callable_of(ok, "calculator")({"a": 1}) == {"a": 1}


def test_builtin_config_errors_pass_through_build_unchanged() -> None:
    spec = ComponentSpec("f", "AttributeFilterCalculator", {"keep_atributes": ["a"]})
    with pytest.raises(ComponentConfigError) as info:
        build_component(spec, "calculator")
    assert info.value.key == "keep_atributes"
    assert info.value.suggestion == "keep_attributes"


def test_callable_of_needs_the_method_of_its_kind() -> None:
    calculator = NullCalculator(name="n", config={})
    assert callable_of(calculator, "calculator") == calculator.calculate
    with pytest.raises(UnknownComponentType, match=r"has no transform\(record\) method"):
        callable_of(calculator, "transformer")


def test_kind_must_be_known() -> None:
    with pytest.raises(ValueError, match="kind"):
        resolve_component_class("NullCalculator", "node")  # type: ignore[arg-type]


def test_base_class_requires_calculate() -> None:
    with pytest.raises(NotImplementedError):
        Calculator(name="base", config={}).calculate({})
    assert repr(NullCalculator(name="n")) == "NullCalculator(name='n', config={})"
