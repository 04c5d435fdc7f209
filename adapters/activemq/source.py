"""The ``activemq://`` source: a STOMP subscription whose messages are acknowledged only once committed.

The subscription uses ack mode ``client-individual``: ``read_batch`` hands messages out
and remembers their ack ids, ``commit(position)`` sends the ``ACK`` of every message the
position covers. Nothing is acknowledged before its epoch completed and a checkpoint
covered it (SPEC §3). Messages not acknowledged when a connection ends are delivered again
by the broker (to this source once it reconnects, or to a competing consumer); their old
ack ids are forgotten, since the broker refuses acks on another connection.

The broker sends at most ``prefetch`` unacknowledged messages ahead. As acknowledgements
wait for checkpoints, ``prefetch`` must be at least :func:`minimum_prefetch`, or reading stalls
for good (``dagserver check`` refuses a smaller one; at run time it is logged).

A commit whose acknowledgements fail is counted in ``commit_errors`` (never raised): acks due for
a connection that is gone (they cannot be sent on another one: the broker refuses ack ids of
another connection and delivers those messages again, so there is nothing to keep for a retry; the
next commit covering the redelivered messages acknowledges them), and acks sent on a connection that
ended before the broker confirmed them (each commit's last ACK carries a receipt, checked at the
next commit).

The position is ``{"session": TOKEN, "count": N}``: N messages handed out by this open
source. Positions of an earlier session (from a checkpoint) commit nothing; where a source
resumes is the broker's business (what was not acknowledged comes again).

Usage::

    src = ActiveMQSource("activemq://queue/orders", {"host": "mq1", "username": "u", "password": "${MQ_PW}"})
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.commit(src.position()); src.close()
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.activemq.link import (
    CONNECT_TIMEOUT,
    BrokerRefused,
    LinkLost,
    StompLink,
    connect_first,
    endpoint,
    frame,
    keep_connected,
    load_stomp,
)
from adapters.base import CLOSED, CONNECTED, RECONNECTING, Source, default_group, positive_setting, setting
from adapters.formats import decode_record

log = logging.getLogger(__name__)

DEFAULT_PREFETCH = 20_000  # unacknowledged messages the broker may send: more than a default DAG's checkpoint span
SUBSCRIPTION_ID = "dagserver"
STALL_WARNING = 10.0  # seconds with the prefetch window full and nothing new before it is logged
NUDGE_CHECK, NUDGE_MAX = 0.1, 5.0  # seconds: how often to look whether the queue needs a nudge; the backoff cap
NUDGE_SELECTOR = "dagserver_nudge = 'never'"  # a consumer that gets nothing; coming and going, it wakes the queue


def minimum_prefetch(every_epochs: int, max_records: int) -> int:
    """The least ``prefetch`` with which a DAG never stalls: ``(every_epochs - 1) * max_records + 1``.

    A message is acknowledged once the checkpoint covering its epoch was written; checkpoints come
    every ``every_epochs`` epochs, each of at most ``max_records`` records (whole reads, each at most
    ``max_records``). After the last checkpoint the DAG must cut ``every_epochs`` more epochs to reach
    the next: the first ``every_epochs - 1`` may take ``max_records`` messages each, the checkpoint
    epoch needs one more. With fewer in the window the broker sends nothing, no epoch is cut and no
    checkpoint comes. (The checkpoint before is acknowledged as soon as it is written, which waits
    for nothing read later.) Messages rejected at ingress hold a place in the window without counting
    as records: leave headroom when many are expected.

    >>> minimum_prefetch(10, 1000)
    9001
    """
    return (every_epochs - 1) * max_records + 1


class ActiveMQSource(Source):
    """Reads ``activemq://queue/NAME`` (competing consumers) or ``activemq://topic/NAME`` (every one gets all)."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.where = endpoint(self.config, self.parsed)
        self.prefetch = positive_setting(self.config, self.parsed, "prefetch", DEFAULT_PREFETCH)
        self.durable_name = setting(self.config, self.parsed, "durable_name", None)
        if self.durable_name is not None and self.where.kind != "topic":
            raise ValueError(f"'durable_name' is for topic subscribers, not {uri!r}")
        self.client_id: str | None = setting(self.config, self.parsed, "client_id", None) or (
            default_group(self.config, self.where.name) if self.durable_name is not None else None)
        self._cond = threading.Condition()
        self._buffer: deque[tuple[int, Any]] = deque()  # (generation, MESSAGE frame) not handed out yet
        self._unacked: deque[tuple[int, str, int]] = deque()  # (count, ack id, generation) handed out
        self._count = 0
        self._orphaned: tuple[int, int] | None = None  # counts handed out whose connection went before their ack
        self._receipts: deque[tuple[int, str]] = deque()  # (generation, receipt) of commits not yet confirmed
        self._full_since: float | None = None  # when reading found the prefetch window full
        self._stall_told = False
        self._last_arrival = self._last_nudge = 0.0
        self._nudge_every = NUDGE_CHECK
        self._session = uuid.uuid4().hex[:16]
        self._link: StompLink | None = None
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    # -- connecting -----------------------------------------------------------------------------------
    def open(self, position: Any | None) -> None:
        """Connect and subscribe (``position`` is not used: the broker redelivers what was not committed).

        A broker that refuses the login raises; one that cannot be reached leaves the source
        ``reconnecting`` while a helper thread keeps trying.
        """
        self._link = StompLink(load_stomp(), self.where, label=self.uri, client_id=self.client_id,
                               on_message=self._arrived)
        self._closing.clear()
        try:
            self._connect(first=True)
            self.status = CONNECTED
        except BrokerRefused:
            raise
        except ConnectionError as exc:
            log.warning("%s: %s; retrying in the background", self.uri, exc)
            self.status = RECONNECTING
        queue = self.where.kind == "queue"  # topic subscriptions are not paged from a queue's store
        self._keeper = threading.Thread(
            target=keep_connected, args=(self._link, self._reconnect, self._set_status, self._closing),
            kwargs={"check_every": NUDGE_CHECK if queue else 1.0, "idle": self._nudge_if_stuck if queue else None},
            daemon=True, name=f"activemq-{self.where.name}")
        self._keeper.start()

    def _connect(self, first: bool = False) -> None:
        link = self._link
        assert link is not None
        generation = connect_first(link) if first else link.connect()
        headers = {"activemq.prefetchSize": str(self.prefetch)}
        if self.durable_name is not None:
            headers["activemq.subscriptionName"] = str(self.durable_name)
        receipt = link.new_receipt()
        headers["receipt"] = receipt
        link.call(generation, "subscribe", self.where.destination, id=SUBSCRIPTION_ID, ack="client-individual",
                  headers=headers)
        if not link.wait_receipt(generation, receipt, CONNECT_TIMEOUT):  # subscribed: a topic sends from now on
            link.drop()
            raise ConnectionError(f"{self.uri}: the broker did not confirm the subscription "
                                  f"({link.last_error or 'silent'})")

    def _reconnect(self) -> None:
        self._forget_connection()
        if not self._closing.is_set():
            self._connect()

    def _set_status(self, status: str) -> None:
        self.status = status

    def _nudge_if_stuck(self) -> None:
        """Wake the broker's queue when it may be holding back (see NUDGE_SELECTOR), backing off while idle.

        ActiveMQ pages a queue's stored messages in by pages of a few hundred, and moves to the
        next page when something wakes the queue: an ack, a new message, a consumer coming or
        going. A consumer holding unacknowledged messages (waiting for a checkpoint) can get
        stuck after a page until its expiry timer fires (30 s). So when nothing arrived for a
        while and messages are held, a consumer that matches nothing comes and goes.
        """
        now = time.monotonic()
        with self._cond:
            held = bool(self._unacked) and not self._buffer
            quiet = now - max(self._last_arrival, self._last_nudge) >= self._nudge_every
        if not held:
            self._nudge_every = NUDGE_CHECK
        link = self._link
        if not (held and quiet) or link is None:
            return
        generation = link.generation
        try:
            link.send_frames(generation, frame("SUBSCRIBE", {"destination": self.where.destination, "id": "nudge",
                                                             "ack": "auto", "selector": NUDGE_SELECTOR})
                             + frame("UNSUBSCRIBE", {"id": "nudge"}))
        except LinkLost:
            return
        self._last_nudge = now
        self._nudge_every = min(self._nudge_every * 2, NUDGE_MAX)

    def _forget_connection(self) -> None:
        """The connection is gone: the broker delivers its unread and unacknowledged messages again
        (a commit covering those handed out counts as failed: their acks cannot be sent any more)."""
        with self._cond:
            self._buffer.clear()
            if self._unacked:
                low, high = self._unacked[0][0], self._unacked[-1][0]
                if self._orphaned is not None:
                    low, high = min(low, self._orphaned[0]), max(high, self._orphaned[1])
                self._orphaned = (low, high)
            self._unacked.clear()

    def _arrived(self, generation: int, message: Any) -> None:
        if message.headers.get("subscription") != SUBSCRIPTION_ID:
            return
        with self._cond:
            self._buffer.append((generation, message))
            self._last_arrival = time.monotonic()
            self._nudge_every = NUDGE_CHECK
            self._cond.notify()

    # -- reading --------------------------------------------------------------------------------------
    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        link = self._link
        if link is None:
            raise RuntimeError(f"{self!r} is not open")
        with self._cond:
            if not self._buffer:
                self._cond.wait_for(lambda: bool(self._buffer), max(0.0, timeout))
            generation = link.generation  # messages of an older connection come again on this one
            messages = []
            while self._buffer and len(messages) < max(1, max_records):
                gen, message = self._buffer.popleft()
                if gen == generation:
                    self._count += 1
                    self._unacked.append((self._count, message.headers["ack"], gen))
                    messages.append(message)
            if not messages:
                self._watch_stall()
                return []
            self._full_since = None
        fmt = self.where.format
        return [decode_record(message.body or None, fmt) for message in messages]

    def _watch_stall(self) -> None:
        """Log once when the broker holds back because every message it may send waits for a checkpoint."""
        if len(self._unacked) < self.prefetch:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = time.monotonic()
        elif time.monotonic() - self._full_since > STALL_WARNING and not self._stall_told:
            self._stall_told = True
            log.warning("%s: %d messages wait for a checkpoint and the broker sends no more (prefetch %d): "
                        "raise 'prefetch' to (checkpoint.every_epochs - 1) * epochs.max_records + 1 or more",
                        self.uri, len(self._unacked), self.prefetch)

    def position(self) -> dict[str, Any]:
        return {"session": self._session, "count": self._count}

    def commit(self, position: Any) -> None:
        """ACK every message ``position`` covers; never raises. Acks that cannot reach the broker (their
        connection is gone, now or before it confirmed an earlier commit) add one to ``commit_errors``:
        the broker delivers those messages again, and a later commit acknowledges them."""
        link = self._link
        if link is None or not isinstance(position, Mapping) or position.get("session") != self._session:
            return
        upto = int(position.get("count", 0))
        failures = self._unconfirmed(link)
        due: list[tuple[int, str, int]] = []
        with self._cond:
            while self._unacked and self._unacked[0][0] <= upto:
                due.append(self._unacked.popleft())
            if self._orphaned is not None and upto >= self._orphaned[0]:  # handed out on a connection now gone
                failures.append(f"messages {self._orphaned[0]}..{min(upto, self._orphaned[1])} were received on a "
                                "connection that is gone")
                self._orphaned = None if upto >= self._orphaned[1] else (upto + 1, self._orphaned[1])
        generation = link.generation
        ack_ids = [ack_id for _, ack_id, gen in due if gen == generation]
        if len(ack_ids) < len(due):
            failures.append(f"{len(due) - len(ack_ids)} acks belong to an earlier connection")
        if ack_ids:
            receipt = link.new_receipt()
            acks = b"".join(frame("ACK", {"id": ack_id}) for ack_id in ack_ids[:-1])
            acks += frame("ACK", {"id": ack_ids[-1], "receipt": receipt})
            try:
                link.send_frames(generation, acks)
                self._receipts.append((generation, receipt))
            except LinkLost as exc:
                failures.append(f"{len(ack_ids)} acks not sent ({exc})")
        if failures:
            self.commit_errors += 1
            log.warning("%s: a commit failed (%s): the broker delivers those messages again; %d failed commits "
                        "so far", self.uri, "; ".join(failures), self.commit_errors)

    def _unconfirmed(self, link: StompLink) -> list[str]:
        """Earlier commits whose connection ended before the broker confirmed their acks (each is a failure);
        those confirmed are forgotten, those still pending on a live connection kept."""
        failures, pending = [], deque()
        while self._receipts:
            generation, receipt = self._receipts.popleft()
            try:
                if not link.wait_receipt(generation, receipt, 0.0):
                    pending.append((generation, receipt))
            except LinkLost:
                failures.append("the acks of an earlier commit were lost with their connection")
        self._receipts = pending
        return failures

    def backlog(self) -> int | None:
        """None: STOMP does not tell how many messages wait on the broker."""
        return None

    def close(self) -> None:
        """Disconnect; messages not acknowledged are delivered again by the broker."""
        self._closing.set()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(5.0)
        with self._cond:
            self._buffer.clear()
            self._unacked.clear()
            self._orphaned = None
        self._receipts.clear()
        self.status = CLOSED
