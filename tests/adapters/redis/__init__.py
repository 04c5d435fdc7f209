"""Tests of adapters/redis/ (redis:// and redischannel://) against a real server."""
