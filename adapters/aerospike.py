"""Aerospike: ``aerospike://NAMESPACE/SET`` (SPEC §6) — the URI rules and config keys this adapter owns.

The source and sink (the aerospike client, ``pip install 'dagserver[aerospike]'``) are not
written yet: a DAG naming this scheme validates, and fails to start with a message saying
so. A scan of a set is one reader's: it cannot be shared by replicas.
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri

KEYS = ("hosts", "key_attribute")


def check_aerospike_uri(parsed: ParsedUri) -> str | None:
    if len(parsed.parts) != 2:
        return f"aerospike URI {parsed.raw!r} must look like aerospike://NAMESPACE/SET"
    return None


ADAPTER = Adapter("aerospike", check_aerospike_uri, source_keys=(*KEYS, "poll_interval"), sink_keys=(*KEYS, "ttl"),
                  extra="aerospike")
