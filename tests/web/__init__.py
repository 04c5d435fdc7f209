"""Tests of web/: the JSON API and the metrics exposition."""
