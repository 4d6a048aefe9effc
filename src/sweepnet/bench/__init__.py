"""Benchmarks against per-network baselines and the machine's limits."""
