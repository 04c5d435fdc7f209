"""Tests of actors/: the runtime's building blocks one by one, and whole DAG runtimes in one process."""
