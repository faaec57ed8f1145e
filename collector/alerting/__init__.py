"""Alert rules over the collector's metrics: decide, notify, remember."""
