"""Tests of the supervisor process: supervision/ (config, placement, check) and real `dagserver serve` runs."""
