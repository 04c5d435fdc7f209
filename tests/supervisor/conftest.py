"""Fixtures of the supervisor tests: a real ZooKeeper (see tests/support/zookeeper.py)."""

from tests.support.zookeeper import zookeeper

__all__ = ["zookeeper"]
