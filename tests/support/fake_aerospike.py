"""An in-process, in-memory fake of the few aerospike client calls adapters/aerospike/ makes. Not a server.

No Aerospike server can run here, so the adapter's tests put :meth:`FakeCluster.client` in the
place of ``aerospike.client`` (``adapters.aerospike.client.new_client``). It fakes, with the
shapes the client's documentation gives and the real ``aerospike.exception`` classes (so the
adapter's ``except`` clauses meet what they would meet):

- ``aerospike.client(config)``: connects at once (as the 19.x client does) and raises
  ``ConnectionError`` when the cluster is down; ``config["policies"]["write"]`` (``key``,
  ``exists``, ``ttl``) is the client's default write policy. ``connect()``, ``is_connected()``,
  ``close()``.
- ``put(key, bins, meta=None, policy=None)``: key ``(namespace, set, user key)``, digest by the
  real ``aerospike.calc_digest`` (which raises for a key of another type); the user key is kept
  only with ``POLICY_KEY_SEND``; ``exists`` IGNORE merges bins, CREATE_OR_REPLACE replaces them;
  a bin name over 15 bytes raises ``BinNameError``, a bin value outside the documented data
  mapping ``ParamError``. ``meta`` (its ``ttl`` deprecated since client 19.1) is not faked.
- ``query(namespace, set).foreach(callback, policy)``: record tuples
  ``((namespace, set, user key or None, digest), {"gen": ..., "ttl": ...}, bins)``; the filter
  ``policy["expressions"]`` is evaluated when made of And, comparisons, LastUpdateTime and integers
  (anything else raises NotImplementedError: the fake does not pretend); a callback returning
  False ends the stream.

Each stored record keeps its bins, generation, ttl (no expiry is simulated) and last-update time:
nanoseconds since the epoch at millisecond resolution, as the server keeps it, from ``clock``
(settable, so records can share one update time). Switches for outage tests: ``down`` (calls
raise ``ConnectionError``, ``is_connected()`` is False) and ``fail_query_after`` (the next query
raises ``TimeoutError`` after that many records).

Usage::

    cluster = FakeCluster()
    monkeypatch.setattr(aerospike_client, "new_client", cluster.client)
    cluster.client({"hosts": [("h", 3000)]}).put(("test", "demo", "k"), {"a": 1})
    cluster.records("test", "demo")          # {digest: StoredRecord(user_key=None, bins={'a': 1}, ...)}
"""

from __future__ import annotations

import copy
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aerospike
from aerospike import exception
from aerospike_helpers.expressions.resources import _ExprOp

NAMESPACE_DEFAULT_TTL = 2_592_000  # 30 days, a namespace's usual default-ttl
BIN_TYPES = (int, float, str, bytes, bytearray, list, dict)  # the documented data mapping (bool is an int)
COMPARE = {_ExprOp.EQ: operator.eq, _ExprOp.NE: operator.ne, _ExprOp.GT: operator.gt, _ExprOp.GE: operator.ge,
           _ExprOp.LT: operator.lt, _ExprOp.LE: operator.le}


def error(cls: type[exception.AerospikeError], message: str) -> exception.AerospikeError:
    """An aerospike exception filled in as the client fills it (args and attributes)."""
    exc = cls(cls.code, message, __file__, 0, False)
    exc.msg, exc.file, exc.line, exc.in_doubt = message, __file__, 0, False
    return exc


@dataclass
class StoredRecord:
    user_key: Any
    bins: dict[str, Any]
    gen: int
    ttl: int
    lut: int  # ns since the epoch, whole milliseconds


class FakeCluster:
    """The store and the switches; :meth:`client` stands in for ``aerospike.client``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sets: dict[tuple[str, str], dict[bytes, StoredRecord]] = {}
        self.down = False
        self.fail_query_after: int | None = None
        self.clock: Callable[[], int] = time.time_ns
        self.configs: list[dict[str, Any]] = []  # what each client was made with

    def client(self, config: dict[str, Any]) -> FakeClient:
        hosts = config.get("hosts")
        if not hosts or not all(isinstance(h, tuple) and isinstance(h[0], str) and isinstance(h[1], int)
                                for h in hosts):
            raise error(exception.ParamError, "Hosts must be a list of (address, port) tuples")
        self.check_up()
        self.configs.append(copy.deepcopy(config))
        return FakeClient(self, config)

    def check_up(self) -> None:
        if self.down:
            raise error(exception.ConnectionError, "Failed to connect")

    def lut(self) -> int:
        now = self.clock()
        return now - now % 1_000_000

    def records(self, namespace: str, set_name: str) -> dict[bytes, StoredRecord]:
        with self.lock:
            return copy.deepcopy(self.sets.get((namespace, set_name), {}))


class FakeClient:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.write_policy = dict((config.get("policies") or {}).get("write") or {})
        self.connected = True

    def connect(self, username: str | None = None, password: str | None = None) -> FakeClient:
        self.cluster.check_up()
        self.connected = True
        return self

    def is_connected(self) -> bool:
        return self.connected and not self.cluster.down

    def close(self) -> None:
        self.connected = False

    def _usable(self) -> None:
        if not self.connected:
            raise error(exception.ClientError, "Invalid aerospike object (closed)")
        self.cluster.check_up()

    def put(self, key: tuple, bins: dict[str, Any], meta: dict | None = None, policy: dict | None = None,
            serializer: Any = None) -> None:
        self._usable()
        policy = {**self.write_policy, **(policy or {})}
        if meta is not None or serializer is not None:
            raise NotImplementedError("the fake takes no meta (deprecated by the client) nor serializer")
        ttl = policy.get("ttl", 0)
        namespace, set_name, user_key = key[:3]
        digest = bytes(aerospike.calc_digest(namespace, set_name, user_key))
        for name, value in bins.items():
            if len(name.encode("utf-8")) > 15:
                raise error(exception.BinNameError, "A bin name should not exceed 15 characters limit")
            if not isinstance(value, BIN_TYPES):
                raise error(exception.ParamError, f"value of bin {name!r} is of an unsupported type")
        with self.cluster.lock:
            table = self.cluster.sets.setdefault((namespace, set_name), {})
            old = table.get(digest)
            replace = old is None or policy.get("exists") == aerospike.POLICY_EXISTS_CREATE_OR_REPLACE
            kept = old.user_key if old else None
            table[digest] = StoredRecord(
                user_key=user_key if policy.get("key") == aerospike.POLICY_KEY_SEND else kept,
                bins={**({} if replace else old.bins), **copy.deepcopy(bins)},
                gen=old.gen + 1 if old else 1, ttl=ttl or NAMESPACE_DEFAULT_TTL, lut=self.cluster.lut())

    def query(self, namespace: str, set: str | None = None) -> FakeQuery:  # "set": the client's parameter name
        self._usable()
        return FakeQuery(self.cluster, namespace, set)


class FakeQuery:
    def __init__(self, cluster: FakeCluster, namespace: str, set_name: str | None) -> None:
        self.cluster, self.namespace, self.set = cluster, namespace, set_name

    def foreach(self, callback: Callable[[tuple], Any], policy: dict | None = None,
                options: dict | None = None) -> None:
        cluster = self.cluster
        cluster.check_up()
        expression = (policy or {}).get("expressions")
        with cluster.lock:
            rows = list(cluster.sets.get((self.namespace, self.set), {}).items())
        sent = 0
        for digest, stored in rows:
            if expression is not None and not evaluate(expression, 0, stored)[0]:
                continue
            if cluster.fail_query_after is not None and sent >= cluster.fail_query_after:
                cluster.fail_query_after = None
                raise error(exception.TimeoutError, "Timeout: the query was interrupted")
            cluster.check_up()
            key = (self.namespace, self.set, stored.user_key, bytearray(digest))
            sent += 1
            if callback((key, {"gen": stored.gen, "ttl": stored.ttl}, copy.deepcopy(stored.bins))) is False:
                return


def evaluate(nodes: list[tuple], at: int, stored: StoredRecord) -> tuple[Any, int]:
    """The value of the compiled expression node at ``at`` (op, result type, fixed, children) for
    ``stored``, and where the node after it starts."""
    op = nodes[at][0]
    if op == _ExprOp.VAL:
        return nodes[at][2]["val"], at + 1
    if op == _ExprOp.META_LAST_UPDATE_TIME:
        return stored.lut, at + 1
    if op == _ExprOp.AND:
        result, at = True, at + 1
        while nodes[at][0] != _ExprOp._AS_EXP_CODE_END_OF_VA_ARGS:
            value, at = evaluate(nodes, at, stored)
            result = result and value
        return result, at + 1
    if op in COMPARE:
        left, at = evaluate(nodes, at + 1, stored)
        right, at = evaluate(nodes, at, stored)
        return COMPARE[op](left, right), at
    raise NotImplementedError(f"the fake does not evaluate expression op {op}")
