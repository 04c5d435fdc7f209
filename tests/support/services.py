"""Whether a real service a test needs is here: skip when it is not, fail under CI.

Tests that need a service call one of these first. Without the service they are skipped
with the reason, unless the environment says ``DAGSERVER_REQUIRE_SERVICES=1`` (CI), where
an absent service is a failure.

Usage::

    def test_round_trip():
        require_port("127.0.0.1", 6379, "Redis")
        ...
"""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest

REQUIRE_ENV = "DAGSERVER_REQUIRE_SERVICES"


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when services are required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


def require_module(module: str, extra: str) -> None:
    """The Python client ``module`` is installed (``pip install 'dagserver[EXTRA]'``)."""
    if importlib.util.find_spec(module) is None:
        unavailable(f"{module} is not installed (pip install 'dagserver[{extra}]')")


def require_port(host: str, port: int, service: str, timeout: float = 1.0) -> None:
    """Something listens on ``host:port`` (the service named ``service``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        unavailable(f"no {service} on {host}:{port} ({exc})")
