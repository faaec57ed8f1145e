"""Reliability under faults, load and shutdown (`python -m bench.reliability`): the figures of
docs/reliability.md. `common` holds the simulator setup and real gunicorn; `chaos`, `load` and
`shutdown` are the three parts; `__main__` runs and prints them."""
