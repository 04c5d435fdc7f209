"""Tests of adapters/aerospike/ against an in-process fake of the client (tests/support/fake_aerospike.py)."""
