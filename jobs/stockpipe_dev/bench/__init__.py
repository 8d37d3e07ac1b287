"""Benchmarks, fault scenarios and the synthetic lake they write: harnesses, never run by a workload's image."""
