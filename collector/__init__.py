"""rt-mp-collector: metrics from the Mixpanel Raw Event Export API, honest under failure."""

# The one place the version is written: pyproject.toml reads it, and so do `collector
# --version`, /healthz and the start-up log entry.
__version__ = "0.3.0"
