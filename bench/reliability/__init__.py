"""Reliability under faults, load and shutdown (`python -m bench.reliability`): the figures of
docs/reliability.md. The parts it runs (chaos, load, shutdown) live in `tests/reliability/`, which
the test suite also runs briefly; this package only runs them at length and prints the figures."""
