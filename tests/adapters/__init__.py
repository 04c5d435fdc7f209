"""Tests of adapters/: one folder per external system (as in adapters/), the registry and the contract here."""
