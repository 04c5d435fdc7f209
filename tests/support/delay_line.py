"""A slow, lossy link for test hosts, without ``netem``: a forwarder between two TAP devices.

This kernel has no ``netem`` qdisc, so a host's link is made slow in user space: the
forwarder opens two TAP devices (``INNER`` becomes the host's ``eth0``, ``OUTER`` is a port
of the bed's bridge), reads every frame from either, drops it with probability ``loss``,
and otherwise writes it to the other device after a delay drawn uniformly from ``delay ±
jitter`` seconds. Each frame's delay is its own, as with ``netem``'s jitter, so frames may
overtake each other. TAP devices have no offloads, so the kernel hands over frames of at
most the MTU. A bounded queue (``MAX_HELD`` frames) stands for the link's buffer: past it,
frames are dropped.

The forwarder prints ``ready`` once both devices exist and stops when its standard input
closes (or on SIGTERM), printing ``frames=N dropped=M``; the devices vanish with it.

Usage (what :meth:`tests.support.hosts.TestBed.add_host` does, in the bridge's namespace)::

    python -m tests.support.delay_line t10h t10b --delay 0.2 --jitter 0.05 --loss 0.01 --seed 7
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import sys
import time
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
MAX_FRAME = 65536
MAX_HELD = 20_000  # frames in flight on the link; more are dropped (a full buffer)
MAX_BATCH = 256  # frames read from one device before looking at the clock again


@dataclass(frozen=True)
class DelayLine:
    """How a host's link misbehaves: ``delay`` ± ``jitter`` seconds each way, ``loss`` (0..1) of frames lost."""

    delay: float = 0.2
    jitter: float = 0.05
    loss: float = 0.01
    seed: int = 7

    def arguments(self) -> list[str]:
        return ["--delay", str(self.delay), "--jitter", str(self.jitter), "--loss", str(self.loss),
                "--seed", str(self.seed)]


def open_tap(name: str) -> int:
    """A new TAP device ``name`` (no packet information header); its file descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Forwarder:
    """Moves frames between two TAP file descriptors, each held ``delay ± jitter`` s, ``loss`` dropped."""

    def __init__(self, inner: int, outer: int, line: DelayLine) -> None:
        self.peer = {inner: outer, outer: inner}
        self.line = line
        self.random = random.Random(line.seed)
        self.held: list[tuple[float, int, int, bytes]] = []  # (release time, order, to fd, frame)
        self.frames = self.dropped = self.order = 0

    def take(self, fd: int, now: float) -> None:
        """Read what ``fd`` has (up to MAX_BATCH frames) and hold or drop each."""
        for _ in range(MAX_BATCH):
            try:
                frame = os.read(fd, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:  # the device is down
                return
            self.frames += 1
            if self.random.random() < self.line.loss or len(self.held) >= MAX_HELD:
                self.dropped += 1
                continue
            wait = self.line.delay + self.random.uniform(-self.line.jitter, self.line.jitter)
            self.order += 1
            heapq.heappush(self.held, (now + max(0.0, wait), self.order, self.peer[fd], frame))

    def release(self, now: float) -> float | None:
        """Write every frame whose time has come; seconds until the next one (None: nothing held)."""
        while self.held and self.held[0][0] <= now:
            _due, _order, fd, frame = heapq.heappop(self.held)
            try:
                os.write(fd, frame)
            except OSError:  # the other side is down: the frame is lost on the wire
                self.dropped += 1
        return max(0.0, self.held[0][0] - now) if self.held else None

    def serve(self, stop_fd: int) -> None:
        """Forward until ``stop_fd`` (standard input) reaches its end."""
        watched = [*self.peer, stop_fd]
        while True:
            wait = self.release(time.monotonic())
            readable, _w, _x = select.select(watched, [], [], 1.0 if wait is None else wait)
            if stop_fd in readable and not os.read(stop_fd, 4096):
                return
            now = time.monotonic()
            for fd in readable:
                if fd != stop_fd:
                    self.take(fd, now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.delay_line", description=__doc__.split("\n")[0])
    parser.add_argument("inner")
    parser.add_argument("outer")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=0.05)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    forwarder = Forwarder(open_tap(args.inner), open_tap(args.outer),
                          DelayLine(args.delay, args.jitter, args.loss, args.seed))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        forwarder.serve(sys.stdin.fileno())
    finally:
        print(f"frames={forwarder.frames} dropped={forwarder.dropped}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
