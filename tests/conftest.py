from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from collector.simulator import Simulator
from collector.window import Window
from tests.gcs import bucket, gcs_emulator  # noqa: F401 - fixtures shared by test modules
from tests.helpers import sim_config

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
