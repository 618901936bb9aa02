"""Benchmark modules: each has run() -> [{"name", "value", "unit"}, ...]."""
