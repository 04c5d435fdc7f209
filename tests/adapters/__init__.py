"""Tests of adapters/: one module per URI scheme."""
