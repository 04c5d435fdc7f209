"""The multi-host test bed itself: hosts reach each other only through the bridge, a link goes
down and up, the delay line holds frames 200 ms ± 50 ms and loses about 1 % of them, and
nothing of a bed is left once it is closed.
"""

from __future__ import annotations

import socket
import statistics
import struct
import time

import pytest

from tests.support.delay_line import DelayLine
from tests.support.hosts import PREFIX, SUBNET, Host, TestBed, ip

pytestmark = pytest.mark.hosts

PORT = 7000
DATAGRAMS = 2000  # 1 % loss: 20 expected; 5..40 holds but for a chance below 1 in 10,000


def connect_seconds(host: Host, address: str, port: int = PORT, timeout: float = 5.0) -> float:
    """How long a TCP connect from ``host`` to ``address:port`` takes (one round trip)."""
    def connect() -> float:
        started = time.monotonic()
        with socket.create_connection((address, port), timeout=timeout):
            return time.monotonic() - started
    return host.run(connect)


def listener(host: Host, kind: int = socket.SOCK_STREAM, port: int = PORT) -> socket.socket:
    def bind() -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        sock.bind((host.address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        return sock
    return host.run(bind)


def test_hosts_reach_each_other_and_a_link_goes_down_and_up() -> None:
    with TestBed() as bed:
        a, b = bed.add_host("a"), bed.add_host("b")
        server = listener(a)
        try:
            assert connect_seconds(b, a.address) < 1.0
            a.link_down()
            with pytest.raises(OSError):
                connect_seconds(b, a.address, timeout=1.0)
            a.link_up()
            assert connect_seconds(b, a.address) < 2.0
        finally:
            server.close()
        # the bed's addresses and its bridge exist only inside its namespaces (no traffic is sent to see it)
        assert a.address not in ip("-4", "addr").stdout and "br0" not in ip("link").stdout
        assert SUBNET not in ip("route").stdout
        names = [bed.bridge, a.netns, b.netns]
    left = ip("netns", "list").stdout
    assert not any(name in left for name in names), left


def test_the_delay_line_holds_frames_200_ms_plus_minus_50_and_loses_one_percent() -> None:
    with TestBed() as bed:
        slow, fast = bed.add_host("slow", delay=DelayLine(0.2, 0.05, 0.01)), bed.add_host("fast")
        server = listener(slow)
        receiver = listener(fast, socket.SOCK_DGRAM, PORT + 1)
        try:
            rounds = sorted(connect_seconds(fast, slow.address) for _ in range(7))  # the first also resolves ARP
            # a connect crosses the slow link twice (SYN in, SYN-ACK out): 400 ms ± 100 ms
            assert 0.30 <= statistics.median(rounds) <= 0.55, rounds

            def send() -> None:  # slow -> fast: each datagram crosses the slow link once
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    for i in range(DATAGRAMS):
                        sock.sendto(struct.pack("!Id", i, time.monotonic()), (fast.address, PORT + 1))
                        if i % 20 == 19:
                            time.sleep(0.02)  # pacing: about 1,000 a second

            delays: dict[int, float] = {}

            def receive() -> None:
                receiver.settimeout(1.0)
                deadline = time.monotonic() + 30
                while len(delays) < DATAGRAMS and time.monotonic() < deadline:
                    try:
                        data = receiver.recv(64)
                    except TimeoutError:
                        return  # a second with nothing more: the rest was lost
                    number, sent = struct.unpack("!Id", data)
                    delays[number] = time.monotonic() - sent

            receiving = fast.submit(receive)
            slow.run(send)
            receiving.result(60)
        finally:
            server.close()
            receiver.close()
        counts = bed.forwarder_counts()
    lost = DATAGRAMS - len(delays)
    held = sorted(delays.values())
    figures = (f"lost {lost}/{DATAGRAMS}; delay min {held[0] * 1000:.0f} ms, median "
               f"{statistics.median(held) * 1000:.0f} ms, max {held[-1] * 1000:.0f} ms, "
               f"stdev {statistics.pstdev(held) * 1000:.0f} ms; forwarder {counts}")
    print(figures)
    assert 5 <= lost <= 40, figures
    assert held[0] >= 0.149, figures  # never earlier than delay - jitter
    assert 0.185 <= statistics.median(held) <= 0.230, figures
    assert 0.020 <= statistics.pstdev(held) <= 0.040, figures  # uniform over 100 ms: 29 ms
    assert held[int(len(held) * 0.99)] <= 0.30, figures  # late only by the scheduling of a busy machine


def test_a_bed_left_behind_by_a_dead_test_process_is_removed() -> None:
    stale = f"{PREFIX}999999999-dead-bridge"
    ip("netns", "add", stale)
    try:
        with TestBed():
            assert stale not in ip("netns", "list").stdout
    finally:
        ip("netns", "del", stale, check=False)
