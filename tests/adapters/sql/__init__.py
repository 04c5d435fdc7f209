"""Tests of adapters/sql/ against real MariaDB and PostgreSQL servers."""
