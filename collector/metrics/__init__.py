"""Metrics: what is counted, how it merges, and how one read answers a request."""

from collector.metrics.registry import REGISTRY

METRICS = tuple(REGISTRY)  # every metric's name, in the registry's order
