"""Turn a validated DAG document into a :class:`graphs.model.DagModel`.

Only call :func:`build_model` on a document :func:`graphs.validation.validate_dag` found no
problem in: it trusts every key, type and reference. That is how a worker builds the DAGs the
supervisor validated, without checking them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from graphs.model import (
    CALCULATION_NODE,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CHECKPOINT_IDLE,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_RECORDS,
    DEFAULT_TYPES,
    PROPAGATE_CHANGES,
    ComponentSpec,
    DagModel,
    EdgeSpec,
    NodeSpec,
    PublisherSpec,
    SubscriberSpec,
    build_topology,
    frozen,
)
from graphs.record_schema import with_schema_files
from graphs.window import parse_duration


def _entries(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return list(data.get(key) or [])


def _components(data: Mapping[str, Any], key: str, kind: str) -> Mapping[str, ComponentSpec]:
    return MappingProxyType({
        e["name"]: ComponentSpec(e["name"], e.get("type") or DEFAULT_TYPES[kind], frozen(e.get("config")))
        for e in _entries(data, key)
    })


def _node(entry: Mapping[str, Any], dag_propagate: str) -> NodeSpec:
    return NodeSpec(
        name=entry["name"],
        type=entry.get("type") or CALCULATION_NODE,
        config=frozen(entry.get("config")),
        subscriber=entry.get("subscriber"),
        publishers=tuple(entry.get("publishers") or ()),
        calculator=entry.get("calculator"),
        input_transformers=tuple(entry.get("input_transformers") or ()),
        output_transformers=tuple(entry.get("output_transformers") or ()),
        propagate=entry.get("propagate") or dag_propagate,
    )


def _setting(data: Mapping[str, Any], section: str, key: str, default: int) -> int:
    value = (data.get(section) or {}).get(key)
    return default if value is None else int(value)


def build_model(data: Mapping[str, Any], source_path: str = "<memory>") -> DagModel:
    """The :class:`DagModel` of a valid DAG document, with its topology filled in."""
    propagate = data.get("propagate") or PROPAGATE_CHANGES
    duration = data.get("duration")
    replicas = data.get("replicas")
    dag = DagModel(
        name=data["name"],
        subscribers=MappingProxyType({
            e["name"]: SubscriberSpec(e["name"], frozen(with_schema_files(e["config"], source_path)))
            for e in _entries(data, "subscribers")
        }),
        publishers=MappingProxyType({
            e["name"]: PublisherSpec(e["name"], frozen(with_schema_files(e["config"], source_path)))
            for e in _entries(data, "publishers")
        }),
        calculators=_components(data, "calculators", "calculator"),
        transformers=_components(data, "transformers", "transformer"),
        nodes=MappingProxyType({e["name"]: _node(e, propagate) for e in _entries(data, "nodes")}),
        edges=tuple(
            EdgeSpec(e["from_node"], e["to_node"], e.get("data_transformer")) for e in _entries(data, "edges")
        ),
        source_path=source_path,
        description=data.get("description") or "",
        start_time=data.get("start_time"),
        end_time=data.get("end_time"),
        duration_seconds=parse_duration(duration) if duration is not None else None,
        schedule=frozen(data["schedule"]) if data.get("schedule") is not None else None,
        propagate=propagate,
        dead_letter=data.get("dead_letter"),
        replicas=1 if replicas is None else int(replicas),
        worker=data.get("worker"),
        checkpoint_every=_setting(data, "checkpoint", "every_epochs", DEFAULT_CHECKPOINT_EVERY),
        checkpoint_idle=float((data.get("checkpoint") or {}).get("idle_seconds") or DEFAULT_CHECKPOINT_IDLE),
        max_records=_setting(data, "epochs", "max_records", DEFAULT_MAX_RECORDS),
        max_inflight=_setting(data, "epochs", "max_inflight", DEFAULT_MAX_INFLIGHT),
        max_bytes=_setting(data, "epochs", "max_bytes", DEFAULT_MAX_BYTES),
        raw=data,
    )
    return build_topology(dag)
