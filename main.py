"""WSGI entry point for gunicorn: `gunicorn main:app` (the application is collector/wsgi.py)."""

from collector.wsgi import app

__all__ = ["app"]
