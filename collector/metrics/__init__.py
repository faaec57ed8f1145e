"""Metrics: what is counted, how it merges, and how one read answers a request."""

METRICS = ("distinct_users", "events", "active_users")
