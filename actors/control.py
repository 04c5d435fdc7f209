"""The control channel between the supervisor and a worker process: frames on a pipe (SPEC §4-§5).

Frames are msgpack arrays sent with ``send_bytes``::

    supervisor -> worker   [REQUEST, id, command, args]
    worker -> supervisor   [REPLY, id, ok, payload, seq]
                           [HEARTBEAT, seq, {dag: details, ...}]

``seq`` numbers every snapshot a worker takes, in the order it takes them, so the
supervisor keeps the newest view of each DAG whichever frame arrives last. Commands:
``deploy``, ``start``, ``stop``, ``suspend``, ``resume``, ``details``, ``node``, ``shutdown``,
``lease`` (``{"until": monotonic deadline}``: how long a high-availability worker may read and
publish, SPEC §9), and ``tap``, ``inject``, ``capture``, ``capture_status`` (a node's latest computes,
records handed in, the next inputs and outputs recorded: :mod:`actors.observing`, SPEC §13).

Usage::

    conn.send_bytes(pack([REQUEST, 7, "stop", {"name": "prices", "timeout": 15}]))
    kind, *rest = unpack(conn.recv_bytes())
"""

from __future__ import annotations

from typing import Any

import msgpack

REQUEST, REPLY, HEARTBEAT = 0, 1, 2


def pack(frame: list[Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True, default=repr)


def unpack(data: bytes) -> list[Any]:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)  # type: ignore[no-any-return]
