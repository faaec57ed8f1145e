"""gunicorn settings, read automatically from the working directory: collector/gunicorn_config.py
holds them (`collector serve` and an installed package read that module itself)."""

from collector.gunicorn_config import *  # noqa: F403
