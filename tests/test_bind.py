"""Where gunicorn listens, with the shipped configuration (real gunicorn, the sockets read from
the arbiter's process): loopback on a laptop, every interface on Cloud Run or when asked."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.helpers import free_port, gunicorn

ENV = {
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
    "MIXPANEL_SERVICE_ACCOUNT_SECRET": "secret-value-1",
    "MIXPANEL_PROJECT_ID": "7",
    "LOG_FORMAT": "text",
}


def listening(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.mark.parametrize(
    ("extra", "host"),
    [
        ({}, "127.0.0.1"),  # a laptop: before, 0.0.0.0 (every network the laptop joins)
        ({"K_SERVICE": "rt-mp-collector"}, "0.0.0.0"),  # Cloud Run's front end must reach it
        ({"GUNICORN_HOST": "0.0.0.0"}, "0.0.0.0"),  # asked for, e.g. `docker run -p`
        ({"K_SERVICE": "rt-mp-collector", "GUNICORN_HOST": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_gunicorn_binds_loopback_unless_on_cloud_run_or_told(
    extra: dict[str, str], host: str, tmp_path: Path
) -> None:
    port = free_port()
    with gunicorn({**ENV, **extra}, tmp_path / "log", workers=1, threads=1, port=port) as svc:
        assert listening(svc.proc.pid) == {(host, port)}
    assert f"Listening at: http://{host}:{port}" in svc.log_text()


def test_the_image_asks_for_every_interface() -> None:
    # A container is reached through its own network namespace (`docker run -p 8080:8080`).
    from tests.test_container import dockerfile_env

    assert dockerfile_env()["GUNICORN_HOST"] == "0.0.0.0"
