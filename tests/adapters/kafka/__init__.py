"""Tests of adapters/kafka/ against a real broker (tests/support/kafka_broker.py)."""
