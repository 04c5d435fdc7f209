"""Tests of graphs/: loading and validation, calculators and transformers, the reference evaluator, windows."""
