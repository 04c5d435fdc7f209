"""The seed's config keys on every scheme (SPEC §6): ``max_depth`` is accepted on every subscriber.

The seed put ``max_depth`` on its subscribers whatever their source; its DAG files must pass
``dagserver check`` unchanged. Where a scheme has no use for it, it is accepted and ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.base import SOURCE
from tests.support.dag_check import check_paths

# one subscriber config per scheme that can be a source, as a seed DAG file would have it
SEED_SUBSCRIBERS: dict[str, dict[str, Any]] = {
    "mem": {"source": "mem://queue/prices"},
    "file": {"source": "file:///tmp/prices.jsonl"},
    "metronome": {"source": "metronome"},
    "custom": {"source": "custom://tests.support.toy_adapter.ToySource"},
    "kafka": {"source": "kafka://topic/prices"},
    "activemq": {"source": "activemq://queue/prices"},
    "redis": {"source": "redis://list/prices"},
    "redischannel": {"source": "redischannel://prices"},
    "sql": {"source": "sql://prices", "db_type": "postgres", "select_statement": "SELECT 1"},
    "aerospike": {"source": "aerospike://test/prices"},
}
EXTRA_SUBSCRIBERS: dict[str, dict[str, Any]] = {  # the other shapes of a scheme
    "mem topic": {"source": "mem://topic/prices"},
    "redis stream": {"source": "redis://stream/prices"},
    "redis channel": {"source": "redis://channel/prices"},
    "activemq topic": {"source": "activemq://topic/prices"},
}


def source_schemes() -> list[str]:
    return sorted(s for s in registry.MODULES if SOURCE in registry.adapter_for(s).roles)


def test_every_source_scheme_has_a_sample() -> None:
    assert source_schemes() == sorted(SEED_SUBSCRIBERS)


def seed_dag(subscriber: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "seed",
        "subscribers": [{"name": "in", "config": {**subscriber, "max_depth": 100}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "nodes": [{"name": "src", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "pub", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "src", "to_node": "pub"}],
    }


@pytest.mark.parametrize("subscriber", [*SEED_SUBSCRIBERS.values(), *EXTRA_SUBSCRIBERS.values()],
                         ids=[*SEED_SUBSCRIBERS, *EXTRA_SUBSCRIBERS])
def test_check_accepts_max_depth_on_every_subscriber(tmp_path: Path, subscriber: dict[str, Any]) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed_dag(subscriber)))
    code, _, err = check_paths([str(path)])
    assert (code, err) == (0, "")
    assert "max_depth" in (registry.config_keys(subscriber["source"], "source") or ("max_depth",))
