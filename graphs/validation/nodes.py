"""Validation of ``nodes``: keys, types, references and the per-type rules."""

from __future__ import annotations

from typing import Any

from graphs.model import (
    CALCULATION_NODE,
    METRONOME_NODE,
    NODE_TYPES,
    PROPAGATE_ALWAYS,
    PROPAGATE_CHANGES,
    PUBLICATION_NODE,
    SUBSCRIPTION_NODE,
)
from graphs.suggest import mean_phrase
from graphs.validation.base import (
    Collector,
    check_keys,
    expect_object,
    expect_string,
    is_number,
    item_path,
    key_path,
    name_list,
)
from graphs.validation.sections import Index, register_name, section_entries

NODE_KEYS = (
    "name", "type", "config", "subscriber", "publishers", "calculator",
    "input_transformers", "output_transformers", "propagate",
)
PROPAGATE_VALUES = (PROPAGATE_CHANGES, PROPAGATE_ALWAYS)
TAKES_SUBSCRIBER = (SUBSCRIPTION_NODE, METRONOME_NODE)
PUBLISHES = (PUBLICATION_NODE, METRONOME_NODE)
ROOT_TYPES = (SUBSCRIPTION_NODE, METRONOME_NODE)


def check_propagate(col: Collector, value: Any, path: str) -> None:
    """``propagate`` must be ``changes`` or ``always`` (null means the default)."""
    if value is None or value in PROPAGATE_VALUES:
        return
    col.add(path, "propagate must be 'changes' or 'always'", value,
            mean_phrase(value, PROPAGATE_VALUES) if isinstance(value, str) else None)


def check_ref(
    col: Collector, index: Index, name: str, path: str, what: str, section: str
) -> bool:
    """True when ``name`` is declared in ``section``; otherwise report it with a hint."""
    declared: dict[str, int] = getattr(index, section)
    if name in declared:
        return True
    suggestion = mean_phrase(name, declared)
    if suggestion is None:
        for other, other_what in (("subscribers", "subscriber"), ("publishers", "publisher"),
                                  ("calculators", "calculator"), ("transformers", "transformer"),
                                  ("nodes", "node")):
            if other != section and name in getattr(index, other):
                suggestion = f"{name!r} is a {other_what}, not a {what}"
                break
    if suggestion is None and not declared:
        suggestion = f'declare it in "{section}"'
    col.add(path, f"unknown {what} {name!r}", name, suggestion)
    return False


def _node_type(col: Collector, node: dict[str, Any], path: str) -> str | None:
    value = node.get("type")
    if value is None:
        return CALCULATION_NODE
    tpath = key_path(path, "type")
    if not expect_string(col, value, tpath, "a node type"):
        return None
    if value in NODE_TYPES:
        return value
    if "." in value:
        col.add(tpath, "user node classes are not supported", value,
                "use a CalculationNode whose calculator has this user class as its type")
    else:
        col.add(tpath, f"unknown node type {value!r}", value,
                mean_phrase(value, NODE_TYPES) or f"node types: {', '.join(NODE_TYPES)}")
    return None


def _check_config(col: Collector, node: dict[str, Any], path: str, node_type: str | None) -> None:
    config = node.get("config")
    if config is None:
        config = {}
    elif not expect_object(col, config, key_path(path, "config"), "a node config"):
        return
    if node_type == METRONOME_NODE and "interval" in config:
        interval = config["interval"]
        if not (is_number(interval) and interval > 0):
            col.add(key_path(key_path(path, "config"), "interval"),
                    "a MetronomeNode interval must be a positive number of seconds", interval)


def _unused_subscribers(data: dict[str, Any], index: Index) -> str | None:
    unused = [s for s in index.subscribers if not _mentioned(data, s)]
    return f"unused subscribers: {', '.join(repr(s) for s in unused)}" if unused else None


def _check_subscriber(
    col: Collector, index: Index, node: dict[str, Any], path: str, node_type: str | None,
    name: str | None, feeds: dict[str, str], data: dict[str, Any],
) -> None:
    sub = node.get("subscriber")
    spath = key_path(path, "subscriber")
    if sub is None:
        if node_type == SUBSCRIPTION_NODE:
            col.add(spath, "a SubscriptionNode needs a subscriber",
                    suggestion=_unused_subscribers(data, index))
        return
    if not expect_string(col, sub, spath, "a subscriber name"):
        return
    if node_type is not None and node_type not in TAKES_SUBSCRIBER:
        col.add(spath, f"a {node_type} takes no subscriber (only SubscriptionNode and MetronomeNode do)",
                sub, 'set "type": "SubscriptionNode"')
        return
    if not check_ref(col, index, sub, spath, "subscriber", "subscribers"):
        return
    if sub in feeds:
        col.add(spath, f"subscriber {sub!r} already feeds node {feeds[sub]!r}; a subscriber feeds "
                "exactly one node", sub, "declare another subscriber for this node")
    elif name is not None:
        feeds[sub] = name


def _check_publishers(
    col: Collector, index: Index, node: dict[str, Any], path: str, node_type: str | None
) -> None:
    ppath = key_path(path, "publishers")
    raw = node.get("publishers")
    names = name_list(col, raw, ppath, "publishers")
    seen: set[str] = set()
    for i, pub in names:
        if pub in seen:
            col.add(item_path(ppath, i), f"publisher {pub!r} is listed twice", pub)
            continue
        seen.add(pub)
        check_ref(col, index, pub, item_path(ppath, i), "publisher", "publishers")
    if names and node_type is not None and node_type not in PUBLISHES:
        col.add(ppath, f"a {node_type} does not publish (only PublicationNode and MetronomeNode do)",
                raw, 'set "type": "PublicationNode"')
    if node_type == PUBLICATION_NODE and not names and (raw is None or raw == []):
        col.add(ppath, "a PublicationNode needs at least one publisher",
                suggestion=f"declared publishers: {', '.join(index.publishers)}" if index.publishers
                else None)


def _check_components(col: Collector, index: Index, node: dict[str, Any], path: str) -> None:
    calc = node.get("calculator")
    if calc is not None:
        cpath = key_path(path, "calculator")
        if expect_string(col, calc, cpath, "a calculator name"):
            check_ref(col, index, calc, cpath, "calculator", "calculators")
    for key in ("input_transformers", "output_transformers"):
        tpath = key_path(path, key)
        for i, name in name_list(col, node.get(key), tpath, key):
            check_ref(col, index, name, item_path(tpath, i), "transformer", "transformers")


def check_nodes(col: Collector, data: dict[str, Any], index: Index) -> None:
    """Validate ``nodes``; fill ``index.nodes`` and ``index.node_types``."""
    if data.get("nodes") is None:
        col.add("nodes", 'a DAG needs a "nodes" list')
        return
    if isinstance(data["nodes"], list | tuple) and not data["nodes"]:
        col.add("nodes", "a DAG needs at least one node", [])
        return
    feeds: dict[str, str] = {}
    for i, node in section_entries(col, data, "nodes", "node"):
        path = item_path("nodes", i)
        check_keys(col, node, path, NODE_KEYS, "a node")
        name = register_name(col, node, "nodes", i, "node", index.nodes)
        node_type = _node_type(col, node, path)
        if name is not None:
            index.node_types[name] = node_type
        _check_config(col, node, path, node_type)
        _check_subscriber(col, index, node, path, node_type, name, feeds, data)
        _check_publishers(col, index, node, path, node_type)
        _check_components(col, index, node, path)
        check_propagate(col, node.get("propagate"), key_path(path, "propagate"))
    for sub, i in index.subscribers.items():
        if sub not in feeds and not _mentioned(data, sub):
            col.add(item_path("subscribers", i), f"subscriber {sub!r} feeds no node", sub,
                    "give a SubscriptionNode this subscriber, or remove it")


def _mentioned(data: dict[str, Any], sub: str) -> bool:
    """Whether some node names ``sub`` as its subscriber (even if that node has other problems)."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list | tuple):
        return False
    return any(isinstance(n, dict) and n.get("subscriber") == sub for n in nodes)

