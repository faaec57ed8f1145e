"""The reliability run's parts (`python -m bench.reliability` prints their figures, the tests run
them briefly): `common` (what they share), `chaos`, `load` and `shutdown`."""
