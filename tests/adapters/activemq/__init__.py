"""Tests of adapters/activemq/ against a real broker (tests/support/activemq_broker.py)."""
