"""Benchmarks: ``python -m bench [--quick] [--json]`` (also ``make bench``)."""
