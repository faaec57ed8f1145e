from __future__ import annotations

import contextlib
import os
import py_compile
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.util import cache_from_source
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from collector.simulator import Simulator
from collector.stores import Document, file_document
from collector.window import Window
from tests.gcs import bucket, gcs_emulator  # noqa: F401 - fixtures shared by test modules
from tests.helpers import sim_config
from tests.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
# No per-example deadline: hypothesis's default (200 ms) fails a correct example on a loaded
# machine, and a test's speed is the benchmarks' business, not the suite's.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")
CHECK_KEY = "signing-key-for-tests-0123456789"  # the signing key of the `hook` receiver

__all__ = ["past_window", "sim_config"]  # imported by test modules from here


def pytest_configure(config: pytest.Config) -> None:
    # The suite starts some 200 Python processes (its workers, gunicorn, the commands). Each
    # would compile again every module it imports that has no bytecode yet, and the workers
    # all start at once: so everything this process has loaded is compiled here, once,
    # before they start. With PYTHONDONTWRITEBYTECODE no bytecode would ever be kept; it goes
    # instead to a directory outside the checkout, shared by this run and removed after it.
    if hasattr(config, "workerinput"):
        return
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        prefix = tempfile.mkdtemp(prefix="collector-tests-bytecode-")
        config.add_cleanup(lambda: shutil.rmtree(prefix, ignore_errors=True))
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = prefix
        sys.dont_write_bytecode, sys.pycache_prefix = False, prefix
    if sys.dont_write_bytecode:
        return  # -B on the command line: as asked
    sources = [str(p) for p in (ROOT / "collector").rglob("*.py")]
    sources += [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    for source in sources:
        if source.endswith(".py") and not os.path.exists(cache_from_source(source)):
            with contextlib.suppress(OSError, SyntaxError, py_compile.PyCompileError):
                py_compile.compile(source, doraise=True)
    # hypothesis is a plugin's package, which pytest rewrites as it does test modules: imported
    # here, its rewritten bytecode is kept for the workers.
    import hypothesis.strategies  # noqa: F401


def asserts_timing(markexpr: str) -> bool:
    """Whether a run selected by `-m markexpr` keeps the tests marked `timing`."""
    from _pytest.mark.expression import Expression

    if not markexpr:
        return True
    return Expression.compile(markexpr).evaluate(lambda name, **_: name == "timing")


@pytest.fixture(scope="session")
def timing_asserted(request: pytest.FixtureRequest) -> bool:
    """Whether this run asserts durations: False when it leaves out the `timing` tests (the
    build's `-m "not timing"`), so that a test whose larger check includes a time bound (the
    contract's "answered inside the deadline") leaves out that part there, and only that."""
    return asserts_timing(request.config.getoption("markexpr"))


# The modules that run longest (real gunicorn, the demo, property tests against the simulator),
# longest first. Workers take whole modules in order: one of these taken last would run alone
# at the end while the other workers sit idle.
LONG_MODULES = (
    "test_ledger.py",
    "test_ledger_invariants.py",
    "test_deploy_guide.py",
    "test_contract.py",
    "test_bench.py",
    "test_shared_budget_gunicorn.py",
    "test_demo.py",
    "test_delivery.py",
    "test_ledger_deployment.py",
    "test_secrets.py",
    "test_serve.py",
    "test_upload.py",
    "test_faults.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: the rest keep their order


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
def store(tmp_path: Path) -> Document:
    """A rules state file of this test's own."""
    return file_document(tmp_path / "state.json")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A loopback webhook that checks signatures made with CHECK_KEY."""
    with WebhookReceiver(signing_key=CHECK_KEY) as receiver:
        yield receiver
