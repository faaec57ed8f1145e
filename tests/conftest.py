from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.alerting.store import FileStateStore
from collector.simulator import Simulator
from collector.window import Window
from tests.gcs import bucket, gcs_emulator  # noqa: F401 - fixtures shared by test modules
from tests.helpers import sim_config
from tests.webhook_receiver import WebhookReceiver

CHECK_KEY = "signing-key-for-tests-0123456789"  # the signing key of the `hook` receiver

__all__ = ["past_window", "sim_config"]  # imported by test modules from here


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").clear_faults()


def past_window(minutes: int = 30) -> Window:
    """A settled window yesterday, so every query is inside the project's 'today'."""
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return Window(start, start + timedelta(minutes=minutes))


@pytest.fixture
def store(tmp_path: Path) -> FileStateStore:
    """A rules state file of this test's own."""
    return FileStateStore(tmp_path / "state.json")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A loopback webhook that checks signatures made with CHECK_KEY."""
    with WebhookReceiver(signing_key=CHECK_KEY) as receiver:
        yield receiver
