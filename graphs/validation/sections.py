"""Validation of the named sections: subscribers, publishers, calculators, transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphs.catalog import build_component
from graphs.components import ComponentConfigError, UnknownComponentType
from graphs.errors import MISSING
from graphs.model import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_RECORDS,
    DEFAULT_TYPES,
    ComponentSpec,
    frozen,
)
from graphs.record_schema import avro_problems, schema_problems
from graphs.suggest import did_you_mean, mean_phrase
from graphs.validation.base import (
    Collector,
    a,
    check_keys,
    expect_object,
    expect_string,
    is_number,
    item_path,
    key_path,
    kind_of,
)

SUBSCRIBER_KEYS = ("name", "config")
PUBLISHER_KEYS = ("name", "config")
COMPONENT_KEYS = ("name", "type", "config")


@dataclass
class Index:
    """What the sections declare, for the cross-reference checks (valid names only)."""

    subscribers: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    publishers: dict[str, int] = field(default_factory=dict)
    calculators: dict[str, int] = field(default_factory=dict)
    transformers: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    node_types: dict[str, str | None] = field(default_factory=dict)


def section_entries(col: Collector, data: dict[str, Any], key: str, what: str) -> list[tuple[int, dict]]:
    """The object entries of the list ``data[key]`` as ``(index, entry)``; null means empty."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        col.add(key, f"{key} must be a list of {what} objects, not {kind_of(value)}", value)
        return []
    entries = []
    for index, entry in enumerate(value):
        if expect_object(col, entry, item_path(key, index), a(what)):
            entries.append((index, entry))
    return entries


def register_name(
    col: Collector, entry: dict[str, Any], section: str, index: int, what: str, seen: dict[str, int]
) -> str | None:
    """Check ``entry["name"]``; record it in ``seen`` unless it is a duplicate."""
    path = item_path(section, index)
    if "name" not in entry:
        col.add(path, f"{a(what)} needs a name")
        return None
    name = entry["name"]
    if not expect_string(col, name, key_path(path, "name"), f"{a(what)} name"):
        return None
    if name in seen:
        col.add(
            key_path(path, "name"),
            f"duplicate {what} name {name!r} (first declared at {item_path(section, seen[name])})",
            name,
        )
        return None
    seen[name] = index
    return name


def check_uri(col: Collector, uri: str, path: str, role: str) -> None:
    """Ask the collector's URI rules whether ``uri`` names a known scheme for ``role``."""
    try:
        message = col.uris.check_uri(uri, role)
    except Exception as exc:  # a rules bug must not hide the rest of the report
        col.add(path, f"cannot check this URI: {type(exc).__name__}: {exc}", uri)
        return
    if message:
        col.add(path, str(message), uri)


def check_config_keys(col: Collector, uri: str, config: dict[str, Any], path: str, role: str) -> None:
    """Every key of an endpoint's ``config`` must be one its adapter accepts (SPEC §6)."""
    try:
        accepted = col.uris.config_keys(uri, role)
    except Exception:  # the URI itself was reported, or the rules cannot tell: nothing to add
        return
    check_values = getattr(col.uris, "check_values", None)  # rules may bound values too (the server's: paths)
    if check_values is not None:
        for key, message in check_values(uri, config, role):
            col.add(key_path(path, key), message, config.get(key))
    if accepted is None:
        return
    for key in config:
        if key not in accepted:
            col.add(key_path(path, key), f"unknown config key for {uri.split('://', 1)[0]} {role}s", config[key],
                    mean_phrase(key, accepted) or f"accepted: {', '.join(accepted)}")


def dag_settings(data: dict[str, Any]) -> dict[str, int]:
    """The DAG settings adapters may check an endpoint against, defaults applied (a bad value: the default;
    it is reported on its own)."""
    defaults = {"checkpoint.every_epochs": DEFAULT_CHECKPOINT_EVERY, "epochs.max_records": DEFAULT_MAX_RECORDS,
                "epochs.max_inflight": DEFAULT_MAX_INFLIGHT}
    settings = {}
    for name, default in defaults.items():
        section, key = name.split(".")
        value = (data.get(section) or {}).get(key) if isinstance(data.get(section), dict) else None
        settings[name] = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    return settings


def check_endpoint_config(col: Collector, uri: str, config: dict[str, Any], path: str, role: str,
                          settings: dict[str, int]) -> None:
    """What the endpoint's adapter finds wrong with its config in this DAG (e.g. a prefetch too small)."""
    rules = getattr(col.uris, "check_config", None)
    if rules is None:
        return
    try:
        problems = rules(uri, config, role, settings)
    except Exception as exc:  # a rules bug must not hide the rest of the report
        col.add(path, f"cannot check this config: {type(exc).__name__}: {exc}")
        return
    for problem in problems:
        col.add(key_path(path, problem.key), problem.message, config.get(problem.key, MISSING), problem.suggestion)


def _endpoint_section(
    col: Collector, data: dict[str, Any], section: str, what: str, uri_key: str, role: str
) -> tuple[dict[str, int], dict[str, str]]:
    seen: dict[str, int] = {}
    uris: dict[str, str] = {}
    settings = dag_settings(data)
    for index, entry in section_entries(col, data, section, what):
        path = item_path(section, index)
        check_keys(col, entry, path, SUBSCRIBER_KEYS if role == "source" else PUBLISHER_KEYS, f"a {what}")
        name = register_name(col, entry, section, index, what, seen)
        if "config" not in entry:
            hint = f'put it under "config": {{"{uri_key}": ...}}' if uri_key in entry else None
            col.add(key_path(path, "config"), f'a {what} needs a "config" with a "{uri_key}" URI',
                    suggestion=hint)
            continue
        config = entry["config"]
        cpath = key_path(path, "config")
        if not expect_object(col, config, cpath, f"a {what} config"):
            continue
        if uri_key not in config:
            near = did_you_mean(uri_key, config)
            col.add(key_path(cpath, uri_key), f'a {what} config needs a "{uri_key}" URI',
                    suggestion=f"did you mean {uri_key!r} instead of {near!r}?" if near else None)
            continue
        uri = config[uri_key]
        upath = key_path(cpath, uri_key)
        if role == "destination" and config.get("publish_timeout") is not None:
            timeout = config["publish_timeout"]
            if not (is_number(timeout) and timeout > 0):
                col.add(key_path(cpath, "publish_timeout"), "publish_timeout must be a positive number of seconds",
                        timeout)
        if expect_string(col, uri, upath, f"the {uri_key} URI"):
            check_uri(col, uri, upath, role)
            check_config_keys(col, uri, config, cpath, role)
            check_endpoint_config(col, uri, config, cpath, role, settings)
            for key, message in avro_problems(config, col.file):
                col.add(key_path(cpath, key), message, config.get(key, MISSING))
            if role == "source" and "schema" in config:
                for parts, message in schema_problems(config["schema"], col.file):
                    where = key_path(cpath, "schema")
                    for part in parts:
                        where = f"{where}[{part}]" if isinstance(part, int) else key_path(where, part)
                    col.add(where, message, config["schema"] if isinstance(config["schema"], str) else MISSING)
            if name is not None:
                uris[name] = uri
    return seen, uris


def check_subscribers(col: Collector, data: dict[str, Any], index: Index) -> None:
    """Validate ``subscribers``; fill ``index.subscribers`` and ``index.sources``."""
    index.subscribers, index.sources = _endpoint_section(
        col, data, "subscribers", "subscriber", "source", "source"
    )


def check_publishers(col: Collector, data: dict[str, Any], index: Index) -> None:
    """Validate ``publishers``; fill ``index.publishers``."""
    index.publishers, _ = _endpoint_section(
        col, data, "publishers", "publisher", "destination", "destination"
    )


def _suggestion_text(raw: Any) -> str | None:
    return f"did you mean {str(raw)!r}?" if raw else None


def config_path(path: str, key: Any) -> str:
    """Where a component config problem is: ``path.config`` plus the component's own key.

    Keys may already be paths (``arguments[1]``, ``name_mapping.old``) and are appended as is.
    """
    base = key_path(path, "config")
    if not key:
        return base
    text = str(key)
    return f"{base}{text}" if text.startswith("[") else f"{base}.{text}"


def build_component_problems(col: Collector, spec: ComponentSpec, path: str, kind: str) -> None:
    """Resolve and construct one component, reporting type and config problems.

    A user class (``module.Class``) is first checked by name with the rules' ``check_user_class``
    when they have one; rules whose ``imports_user_code`` is False (the server's) stop there: the
    class is imported, and its config checked, only where the DAG runs.
    """
    if "." in spec.type:
        check_class = getattr(col.uris, "check_user_class", None)
        refused = check_class(spec.type, kind) if check_class is not None else None
        if refused:
            col.add(key_path(path, "type"), refused, spec.type)
            return
        if not getattr(col.uris, "imports_user_code", True):
            return
    try:
        build_component(spec, kind)  # type: ignore[arg-type]
    except UnknownComponentType as exc:
        col.add(key_path(path, "type"), exc.reason, spec.type, _suggestion_text(exc.suggestion))
    except ComponentConfigError as exc:
        col.add(config_path(path, exc.key), exc.message, exc.value, _suggestion_text(exc.suggestion))
    except (Exception, SystemExit) as exc:  # user classes may fail in any way at all
        col.add(path, f"{kind} {spec.name!r} of type {spec.type!r} cannot be built: "
                f"{type(exc).__name__}: {exc}", spec.type)


def _component_section(
    col: Collector, data: dict[str, Any], section: str, kind: str
) -> dict[str, int]:
    seen: dict[str, int] = {}
    for index, entry in section_entries(col, data, section, kind):
        path = item_path(section, index)
        check_keys(col, entry, path, COMPONENT_KEYS, f"a {kind}")
        name = register_name(col, entry, section, index, kind, seen)
        type_name = entry.get("type")
        if type_name is None:
            type_name = DEFAULT_TYPES[kind]
        elif not expect_string(col, type_name, key_path(path, "type"), f"a {kind} type"):
            type_name = None
        config = entry.get("config")
        if config is None:
            config = {}
        elif not expect_object(col, config, key_path(path, "config"), f"a {kind} config"):
            config = None
        if type_name is not None and config is not None:
            spec = ComponentSpec(name=name or path, type=type_name, config=frozen(config))
            build_component_problems(col, spec, path, kind)
    return seen


def check_components(col: Collector, data: dict[str, Any], index: Index) -> None:
    """Validate ``calculators`` and ``transformers``; fill their name indexes."""
    index.calculators = _component_section(col, data, "calculators", "calculator")
    index.transformers = _component_section(col, data, "transformers", "transformer")
