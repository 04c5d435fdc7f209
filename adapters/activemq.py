"""ActiveMQ over STOMP: ``activemq://queue/NAME``, ``activemq://topic/NAME`` (SPEC §6) — rules and keys.

The source and sink (stomp.py, ``pip install 'dagserver[activemq]'``) are not written yet:
a DAG naming this scheme validates, and fails to start with a message saying so.
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri, kind_and_name

KEYS = ("host", "port", "username", "password", "max_depth", "format")


def check_activemq_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, ("queue", "topic"))


ADAPTER = Adapter("activemq", check_activemq_uri, source_keys=(*KEYS, "durable_name"), sink_keys=KEYS,
                  shareable=lambda u: u.part(0) == "queue",  # queue consumers compete; topic ones all get all
                  extra="activemq")
