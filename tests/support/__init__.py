"""Helpers shared by the test tiers and the benchmarks (bench/): strategies, request builders."""
