"""Kafka: ``kafka://topic/NAME`` (SPEC §6) — the URI rules, config keys and sharing this adapter owns.

The source and sink (kafka-python, ``pip install 'dagserver[kafka]'``) are not written yet:
a DAG naming this scheme validates, and fails to start with a message saying so.
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri, always_shared, kind_and_name

KEYS = ("bootstrap_servers", "group_id", "start", "max_depth", "format")


def check_kafka_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, ("topic",))


ADAPTER = Adapter("kafka", check_kafka_uri, source_keys=(*KEYS, "consumer_config"),
                  sink_keys=(*KEYS, "key_attribute", "producer_config"),
                  shareable=always_shared,  # consumer groups spread partitions over the replicas
                  extra="kafka")
