"""Benchmarks (run by hand on an idle machine, not by the test suite)."""
