"""The aerospike plumbing both ends of ``aerospike://NAMESPACE/SET`` share (see :mod:`adapters.aerospike`).

The URI rule, the lazy import of the client (:func:`load_aerospike`), the one factory of
clients (:func:`new_client`: tests put a fake client in its place), which client errors are
worth retrying, and :class:`Endpoint`, the settings and connection code of source and sink.

Usage::

    from adapters.aerospike import client as aerospike_client

    aerospike, expressions = aerospike_client.load_aerospike()   # or AdapterNotAvailable
    client = aerospike_client.new_client({"hosts": [("127.0.0.1", 3000)]})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import ParsedUri, from_environment, positive_param, setting
from adapters.registry import AdapterNotAvailable

KEYS = ("hosts", "key_attribute", "username", "password", "max_depth")
DEFAULT_HOSTS = [("127.0.0.1", 3000)]
DEFAULT_KEY_ATTRIBUTE = "__dagserver_key"
BIN_NAME_MAX = 15  # bytes: the server's limit on a bin name
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0  # seconds; SPEC §6: reconnect with a backoff capped at 10 s
QUEUE_SIZE = 10_000  # records the poller may fetch ahead of read_batch
CLOSE_TIMEOUT = 5.0
MS = 1_000_000  # ns; the server keeps last-update times in milliseconds
# errors after which the same call may succeed later: the cluster is away, busy or changing
TRANSIENT = ("ConnectionError", "TimeoutError", "ClusterError", "InvalidNodeError", "NoMoreConnectionsError",
             "MaxRetriesExceeded", "MaxErrorRateExceeded", "NoResponse", "AsyncConnectionError", "DeviceOverload",
             "RecordBusy", "ServerFull", "QueryAbortedError", "ScanAbortedError")
REFUSALS = ("ParamError", "RecordError")  # a record the server will never take (checked after TRANSIENT)


def check_aerospike_uri(parsed: ParsedUri) -> str | None:
    if len(parsed.parts) != 2:
        return f"aerospike URI {parsed.raw!r} must look like aerospike://NAMESPACE/SET"
    return positive_param(parsed, "poll_interval")


def load_aerospike() -> tuple[Any, Any]:
    """The aerospike client module and its expression helpers, or a clear error naming the extra."""
    try:
        import aerospike
        from aerospike_helpers import expressions
    except ImportError as exc:
        raise AdapterNotAvailable("aerospike:// needs the Python package aerospike: "
                                  "pip install 'dagserver[aerospike]'") from exc
    return aerospike, expressions


def new_client(config: dict[str, Any]) -> Any:
    """``aerospike.client(config)``: the one place this adapter makes clients (tests put a fake here)."""
    return load_aerospike()[0].client(config)


def client_errors(aerospike: Any, names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    found = (getattr(aerospike.exception, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


def describe(exc: BaseException) -> str:
    """An aerospike error in one line: its class and message (``str()`` of one is its args tuple)."""
    message = getattr(exc, "msg", None) or (exc.args[1] if len(exc.args) > 1 else exc)
    return f"{type(exc).__name__}: {message}"


def _hosts(value: Any) -> list[tuple[str, int]]:
    """``[[host, port], ...]`` or ``"host:port,host:port"`` as the client's ``[(host, port), ...]``."""
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
    hosts = []
    try:
        for item in items:
            host, port = (item.rpartition(":")[::2] if ":" in item else (item, 3000)) if isinstance(item, str) else item
            hosts.append((str(host), int(port)))
    except (TypeError, ValueError):
        hosts = []
    if not hosts:
        raise ValueError(f"aerospike 'hosts' must be a list of [host, port] (or 'host:port,...'), not {value!r}")
    return hosts


def _secret(config: Mapping[str, Any], key: str) -> str | None:
    """``config[key]``, or the environment variable it names as ``"${NAME}"``."""
    value = from_environment(config.get(key), f"aerospike {key!r}")
    return None if value is None else str(value)


class Endpoint:
    """What source and sink share: the set, the cluster, the key attribute, and how a client is made."""

    uri: str
    config: dict[str, Any]
    parsed: ParsedUri
    status: str

    def _configure(self) -> None:
        if problem := check_aerospike_uri(self.parsed):
            raise ValueError(problem)
        self.namespace, self.set = self.parsed.parts
        self.hosts = _hosts(setting(self.config, self.parsed, "hosts", DEFAULT_HOSTS))
        self.key_attribute = str(setting(self.config, self.parsed, "key_attribute", DEFAULT_KEY_ATTRIBUTE))
        self.username, self.password = _secret(self.config, "username"), _secret(self.config, "password")
        self._client: Any = None

    def _load(self) -> None:
        self._aerospike, self._exp = load_aerospike()
        self._transient = client_errors(self._aerospike, TRANSIENT)

    def _connect(self, policies: dict[str, Any]) -> Any:
        """A client connected to the cluster; raises one of the transient errors when it cannot be reached."""
        config: dict[str, Any] = {"hosts": self.hosts, "policies": policies}
        if self.username:
            config.update(user=self.username, password=self.password or "")
        client = new_client(config)  # recent clients connect as they are made
        client.connect()  # a no-op when connected: "if there is currently no connection, connect"
        return client
