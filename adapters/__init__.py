"""Adapters: one module per external system, looked up by URI scheme.

Importing this package is cheap: adapter modules (and their client libraries) are only
imported when a URI of their scheme is first used.

Usage::

    from adapters import check_uri, open_source

    problem = check_uri("mem://queue/in", "source")      # None: fine
    src = open_source("mem://queue/in", {"max_size": 100})
    src.open(None)
"""

from adapters.base import (
    CLOSED,
    CONNECTED,
    RECONNECTING,
    Adapter,
    ParsedUri,
    RejectedRecord,
    Sink,
    Source,
    parse_uri,
)
from adapters.registry import (
    MODULES,
    AdapterNotAvailable,
    check_uri,
    config_keys,
    is_shareable,
    open_sink,
    open_source,
    register,
    register_sink,
    register_source,
)

__all__ = [
    "CLOSED",
    "CONNECTED",
    "MODULES",
    "RECONNECTING",
    "Adapter",
    "AdapterNotAvailable",
    "ParsedUri",
    "RejectedRecord",
    "Sink",
    "Source",
    "check_uri",
    "config_keys",
    "is_shareable",
    "open_sink",
    "open_source",
    "parse_uri",
    "register",
    "register_sink",
    "register_source",
]
