"""WSGI entry point for gunicorn: `gunicorn main:app`."""

from collector.app import create_app

app = create_app()
