"""Metrics: what is counted (`registry`, every metric once), how it merges, and how one read
answers a request."""
