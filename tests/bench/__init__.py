"""Tests of bench/: the benchmark's own figures, measured at tiny sizes (smoke tests, no timings asserted)."""
