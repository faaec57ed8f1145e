"""`GET /status` in a real browser: headless Chromium (Debian's `chromium` package) loads the
page from a loopback server after real /check runs against the simulator, and its DOM and a
screenshot are checked. The screenshot is kept under test-artifacts/ (git-ignored) and the
test's own temporary directory.

Without Chromium the browser tests are skipped with the reason, except in CI (CI set), where
they fail: .ci/run installs Chromium first.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.alerting.store import FileStateStore
from collector.simulator import Simulator
from tests.helpers import ROOT, installed, wsgi_server
from tests.test_check import NOW, app_for, rules_doc
from tests.webhook_receiver import Reply, WebhookReceiver

ARTIFACTS = ROOT / "test-artifacts"
# A closed network: without these, Chromium's own connections (updates, sync, QUIC probes)
# are refused and slow every start.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,720",
]
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
RULES = rules_doc(
    {"name": "busy", "metric": "events", "window_minutes": 30, "above": 0},
    {"name": "quiet", "metric": "distinct_users", "window_minutes": 15, "below": 1},
)


def chromium() -> str:
    return installed(
        "chromium",
        "chromium-browser",
        needed_for="the /status browser test needs headless Chromium: apt-get install -y chromium",
    )


def browse(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a new, empty one
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def page(sim: Simulator, store: FileStateStore, tmp_path: Path) -> Iterator[str]:
    """The URL of /status after two runs: `busy` fires and its webhook keeps answering 500
    with an HTML body, which the state keeps as the notification's last error."""
    with WebhookReceiver() as hook:
        hook.script([Reply(500, HOSTILE)] * 2)
        app: Any = app_for(sim, RULES, store, NOW, hook.url)
        assert app.test_client().get("/check").status_code == 200
    with wsgi_server(app) as server:
        yield f"http://127.0.0.1:{server.server_port}/status"


def test_the_status_page_renders_every_rule_and_escapes_what_receivers_said(
    page: str, tmp_path: Path
) -> None:
    done = browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<title>Rule status · rt-mp-collector</title>" in dom
    assert '<tr class="ALERTING" id="rule-busy">' in dom
    assert '<tr class="OK" id="rule-quiet">' in dom
    assert "firing to hook, 1 attempt(s)" in dom
    # The receiver's HTML is text on the page: no element was made of it.
    assert '&lt;img src=x onerror="alert(1)"&gt;&lt;script&gt;alert(2)&lt;/script&gt;' in dom
    assert "<img" not in dom and "<script" not in dom


def test_the_status_page_screenshot_is_kept(page: str, tmp_path: Path) -> None:
    shot = tmp_path / "status.png"
    done = browse(page, tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 720)
    assert len(data) > 20_000  # a rendered table, not a blank page
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "status.png")


def test_the_page_allows_no_script_and_is_never_cached(page: str) -> None:
    import requests

    r = requests.get(page, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src")
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    assert '<a href="rules">/rules</a>' in r.text  # relative: works behind a proxy's prefix
