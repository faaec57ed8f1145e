from __future__ import annotations

import compileall
import os
import shutil
import sys
import tempfile
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

ROOT = Path(__file__).resolve().parent.parent
CHECK_KEY = "signing-key-for-tests-0123456789"  # the signing key of the `hook` receiver

__all__ = ["past_window", "sim_config"]  # imported by test modules from here


def pytest_configure(config: pytest.Config) -> None:
    # The suite starts some 200 Python processes (workers, gunicorn, the commands): with
    # PYTHONDONTWRITEBYTECODE each of them compiles every module it imports again, and pytest
    # rewrites every test module again in each worker. Their bytecode goes instead to one
    # directory outside the checkout, shared by this run's processes and removed after it.
    if hasattr(config, "workerinput") or not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return
    prefix = tempfile.mkdtemp(prefix="collector-tests-bytecode-")
    config.add_cleanup(lambda: shutil.rmtree(prefix, ignore_errors=True))
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    sys.dont_write_bytecode, sys.pycache_prefix = False, prefix
    # Compiled once here, before the workers start and would each compile them at once.
    compileall.compile_dir(ROOT / "collector", quiet=1)
    import hypothesis.strategies  # noqa: F401 - rewritten by pytest, as a plugin's package


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
