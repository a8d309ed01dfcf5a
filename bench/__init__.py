"""Benchmarks: they print figures (JSON), they never assert."""
