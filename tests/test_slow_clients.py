"""What docs/operations.md says of clients that connect and then send nothing, or part of a
request, to gunicorn with the shipped configuration (real gunicorn, one thread so that one such
client is enough to show it): a connection that sends nothing is closed by gunicorn; one that
sends part of a request holds its thread until the client goes, and nothing else is answered
meanwhile. Off Cloud Run a proxy that reads whole requests belongs in front (the docs say so)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from collector.simulator import Simulator
from tests.helpers import gunicorn, service_env

HANG_GUARD = 60  # seconds: a socket that never closes fails the test instead of hanging it


def test_a_connection_that_sends_nothing_is_closed_by_gunicorn(
    sim: Simulator, tmp_path: Path
) -> None:
    with gunicorn(service_env(sim), tmp_path / "log", workers=1, threads=1) as service:
        port = int(service.base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.settimeout(HANG_GUARD)
            assert idle.recv(1) == b""  # closed without a byte sent either way
        assert requests.get(f"{service.base}/healthz", timeout=30).status_code == 200


def test_a_partial_request_holds_its_thread_until_the_client_goes(
    sim: Simulator, tmp_path: Path
) -> None:
    with gunicorn(service_env(sim), tmp_path / "log", workers=1, threads=1) as service:
        port = int(service.base.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: collector\r\n")  # and no end of headers
        # Nothing else is answered while it holds the only thread (a slow machine only makes
        # an answer later, never sooner).
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{service.base}/healthz", timeout=(HANG_GUARD, 3))
        slow.close()
        assert requests.get(f"{service.base}/healthz", timeout=HANG_GUARD).status_code == 200
