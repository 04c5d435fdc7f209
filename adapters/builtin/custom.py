"""User adapters: ``custom://package.module.Class``.

The class is built as ``Cls(uri=uri, config=config)``. It can be used as a source if it
has ``read_batch(max_records, timeout)`` and as a sink if it has ``write_batch(records)``;
subclassing :class:`adapters.base.Source` / :class:`~adapters.base.Sink` is optional. The
other methods (``open``, ``position``, ``commit``, ``flush``, ``close``) are called when
present and are no-ops otherwise; without ``position`` the position is None. A ``status``
attribute, when the class has one, is reported as the adapter's status, and a class
attribute ``shareable = True`` lets DAG replicas share the source.

Usage::

    # mypkg/feeds.py
    class Numbers:
        def __init__(self, uri, config):
            self.left = list(range(config.get("count", 3)))
        def read_batch(self, max_records, timeout):
            out, self.left = self.left[:max_records], self.left[max_records:]
            return [{"n": n} for n in out]

    src = open_source("custom://mypkg.feeds.Numbers", {"count": 5}); src.open(None)
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, Adapter, ParsedUri, RejectedRecord, Sink, Source
from graphs.dotted import DottedPathError, load_dotted

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def load_class(target: str) -> type:
    """Import ``package.module.Class`` (or ``package.module:Class``); ValueError if it fails."""
    try:
        cls = load_dotted(target)
    except DottedPathError as exc:
        if exc.module is not None:
            raise ValueError(f"custom adapter {target!r}: {exc.reason}") from exc
        if "module.Class" in exc.reason:
            raise ValueError(f"custom adapter {target!r} must be given as package.module.Class") from exc
        raise ValueError(f"custom adapter {target!r}: cannot import: {exc.reason}") from exc
    if not callable(cls):
        raise ValueError(f"custom adapter {target!r} is not a class")
    return cls


def check_custom_uri(parsed: ParsedUri) -> str | None:
    target = parsed.body.replace(":", ".")
    if not _DOTTED.match(target):
        return f"custom URI {parsed.raw!r} must name a class as custom://package.module.Class"
    return None


def _shareable(parsed: ParsedUri) -> bool:
    """A user source class says so with a class attribute ``shareable = True``."""
    return bool(getattr(load_class(parsed.body), "shareable", False))


def _build(parsed: ParsedUri, uri: str, config: Mapping[str, Any], needs: str, role: str) -> Any:
    cls = load_class(parsed.body)
    if not callable(getattr(cls, needs, None)):
        raise TypeError(f"custom adapter {parsed.body!r} has no {needs}() and cannot be a {role}")
    return cls(uri=uri, config=config)


def _call(obj: Any, name: str, *args: Any) -> Any:
    method = getattr(obj, name, None)
    return method(*args) if callable(method) else None


class _UserStatus:
    """The user object's own ``status`` when it has one, else the one the wrapper keeps."""

    user: Any
    _own_status: str

    @property
    def status(self) -> str:
        return str(getattr(getattr(self, "user", None), "status", self._own_status))

    @status.setter
    def status(self, value: str) -> None:
        self._own_status = value


class CustomSource(_UserStatus, Source):
    """Wraps a user object that has ``read_batch``; never returns more than ``max_records``.

    Items beyond ``max_records`` are held for the next calls; while some are held,
    ``position()`` reports where that batch began, so a resume re-reads rather than skips.
    """

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.user = _build(self.parsed, uri, self.config, "read_batch", "source")
        self._extra: deque[Any] = deque()
        self._before: Any = None
        self._own_status = CLOSED

    def open(self, position: Any | None) -> None:
        self._extra.clear()
        _call(self.user, "open", position)
        self.status = CONNECTED

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if not self._extra:
            self._before = _call(self.user, "position")
            self._extra.extend(self.user.read_batch(max_records, timeout) or [])
        n = min(max_records, len(self._extra))
        return [self._extra.popleft() for _ in range(n)]

    def position(self) -> Any:
        # While items of an oversized batch are held back, resuming must re-read that
        # whole batch: report where it started (at-least-once, never a skip).
        return self._before if self._extra else _call(self.user, "position")

    def commit(self, position: Any) -> None:
        _call(self.user, "commit", position)

    def keep_alive(self) -> None:
        _call(self.user, "keep_alive")

    def close(self) -> None:
        _call(self.user, "close")
        self._extra.clear()
        self.status = CLOSED


class CustomSink(_UserStatus, Sink):
    """Wraps a user object that has ``write_batch``."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.user = _build(self.parsed, uri, self.config, "write_batch", "sink")
        self._own_status = CLOSED

    def open(self) -> None:
        _call(self.user, "open")
        self.status = CONNECTED

    def write_batch(self, records: list[dict]) -> list[RejectedRecord] | None:
        """The user's write; what it returns counts as refused only when it is a list of RejectedRecord."""
        refused = self.user.write_batch(records)
        if isinstance(refused, list) and all(isinstance(r, RejectedRecord) for r in refused):
            return refused
        return None

    def flush(self) -> None:
        _call(self.user, "flush")

    def close(self) -> None:
        _call(self.user, "close")
        self.status = CLOSED


ADAPTER = Adapter("custom", check_custom_uri, source=CustomSource, sink=CustomSink,
                  source_keys=None, sink_keys=None,  # a user class takes whatever config it likes
                  shareable=_shareable)
