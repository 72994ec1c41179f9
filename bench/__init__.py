"""Benchmarks (not tests); how to run them: bench/README.md."""
