"""rt-mp-collector: metrics from the Mixpanel Raw Event Export API, honest under failure."""
