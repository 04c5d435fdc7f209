"""Helpers shared by the tests: waiting, supervised servers, user classes and adapters, DAG strategies."""
