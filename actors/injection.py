"""Records put into a running DAG as if one of its subscribers had read them (SPEC §13: inject, redrive).

:func:`inject_at_subscriber` is the one way in from outside the sources: the records take
ingress-gate slots like a read would (so an injection waits while the DAG is full, and
nothing is dropped), are counted as the subscriber's ``records``, and reach the
coordinator as an ``Ingest`` without a source position, so they get seqs, epochs and
checkpoints like any others while nothing is committed to the source for them.

Usage::

    accepted = inject_at_subscriber(runtime, "prices", [{"price": 2}, {"price": 3}])   # 2
"""

from __future__ import annotations

import time
from typing import Any

from actors.context import COORDINATOR
from actors.messages import Ingest, encode, encode_records
from graphs.values import reject_reason

INJECT_TIMEOUT = 10.0  # seconds an injection waits for room in the DAG's ingress gate


class InjectionError(ValueError):
    """The records cannot be injected: an unknown subscriber, a record that is not a map, a stopped DAG."""


def inject_at_subscriber(runtime: Any, subscriber: str, records: list[Any],
                         timeout: float = INJECT_TIMEOUT, count: bool = True) -> int:
    """Send ``records`` into ``runtime``'s DAG (an :class:`actors.runtime.DagRuntime`, which uses this
    module: hence no import of it here) as read by ``subscriber``; how many went in (all of them).
    ``count``: add them to the subscriber's ``records`` (a redrive does; an operator's inject does not,
    that figure being what the source gave).

    Raises :class:`InjectionError` before sending anything when the subscriber is unknown or feeds no
    node, a record could not enter the DAG, or the DAG is not running; TimeoutError when the gate
    stays full for ``timeout`` seconds (what was sent until then stays sent).
    """
    dag = runtime.dag
    if subscriber not in dag.subscribers:
        raise InjectionError(f"dag {dag.name!r} has no subscriber {subscriber!r} "
                             f"(it has: {', '.join(dag.subscribers) or 'none'})")
    if dag.node_for_subscriber(subscriber) is None:
        raise InjectionError(f"subscriber {subscriber!r} of dag {dag.name!r} feeds no node")
    for i, record in enumerate(records):
        reason = reject_reason(record)
        if reason is not None:
            raise InjectionError(f"records[{i}]: {reason}")
    ctx = runtime.incarnation
    if ctx is None or ctx.tearing_down.is_set():
        raise InjectionError(f"dag {dag.name!r} is not running ({runtime.state})")
    deadline = time.monotonic() + timeout
    sent = 0
    while sent < len(records):
        batch = records[sent:sent + dag.max_records]
        granted = 0
        while granted < len(batch):
            if ctx.tearing_down.is_set():
                ctx.gate.give_back(granted)
                raise InjectionError(f"dag {dag.name!r} stopped while records were injected ({sent} went in)")
            left = deadline - time.monotonic()
            if left <= 0:
                ctx.gate.give_back(granted)
                raise TimeoutError(f"dag {dag.name!r} had no room for injected records for {timeout:g}s "
                                   f"({sent} went in)")
            granted += ctx.gate.acquire(len(batch) - granted, min(left, 0.25))
        payload = encode_records(batch)
        ctx.gate.charge(len(batch), len(payload))
        if count:
            runtime.stats.subscribers[subscriber].add(len(batch))
        ctx.send(COORDINATOR, encode(Ingest(subscriber, len(batch), None, payload)))
        sent += len(batch)
    return sent
