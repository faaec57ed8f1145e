"""`GET /status` in a real browser: headless Chromium (Debian's `chromium` package) loads the
page from a loopback server after real /check runs against the simulator, and its DOM and a
screenshot are checked; at a phone's 400 px the laid-out page is measured over the DevTools
protocol (tests/cdp.py). The screenshots are kept under test-artifacts/ (git-ignored) and the
test's own temporary directory.

Without Chromium the browser tests are skipped with the reason, except in CI (CI set), where
they fail: .ci/run installs Chromium first.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.app import create_app
from collector.http.relative_time import Shown, ago, shown
from collector.simulator import Simulator
from collector.stores import Document
from collector.window import iso
from tests.cdp import Chromium
from tests.helpers import ROOT, installed, make_settings, state_path, wsgi_server
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
    {
        "name": "weekly",
        "metric": "events",
        "window_minutes": 30,
        "drop_pct": 50,
        "baseline": "week",
    },
)
SEEN = NOW + timedelta(minutes=3)  # when the page is looked at


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


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The app on a loopback port: its base URL."""
    with wsgi_server(app) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def page(sim: Simulator, store: Document, tmp_path: Path) -> Iterator[str]:
    """The URL of /status, 3 minutes after two runs: `busy` fires and its webhook keeps
    answering 500 with an HTML body, which the state keeps as the notification's last error."""
    with WebhookReceiver() as hook:
        hook.script([Reply(500, HOSTILE)] * 2)
        app: Any = app_for(sim, RULES, store, NOW, hook.url)
        assert app.test_client().get("/check").status_code == 200
    with served(app_for(sim, RULES, store, SEEN)) as base:
        yield f"{base}/status"


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
    r = requests.get(page, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src")
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    assert '<a href="rules">/rules</a>' in r.text  # relative: works behind a proxy's prefix


def test_times_read_as_ago_with_the_utc_time_on_hover(page: str, tmp_path: Path) -> None:
    # Before, "Since" and "Last check" were bare ISO stamps a reader had to subtract.
    done = browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    stamp = f'<time datetime="{iso(NOW)}" title="{NOW:%Y-%m-%d %H:%M:%S} UTC">3 min ago</time>'
    busy = row(done.stdout, "busy")
    assert busy.count(stamp) == 2  # since and last check: both the first run's
    assert f"read at {SEEN:%Y-%m-%d %H:%M:%S} UTC" in done.stdout


def test_fires_when_names_the_baseline(page: str, tmp_path: Path) -> None:
    # Before: "drop of 50%", against what not said.
    done = browse(page, tmp_path, "--dump-dom")
    assert ">drops 50% against the same window a week earlier</td>" in row(done.stdout, "weekly")
    assert ">above 0</td>" in row(done.stdout, "busy")


def row(dom: str, rule: str) -> str:
    """The table row of `rule` in a dumped DOM."""
    start = dom.index(f'id="rule-{rule}"')
    return dom[start : dom.index("</tr>", start)]


LAYOUT = """(() => {
  const root = document.documentElement;
  const cells = [...document.querySelectorAll('tbody td')];
  const label = td => getComputedStyle(td, '::before').content;
  return {
    width: root.clientWidth,
    scroll: root.scrollWidth,
    outside: cells.filter(td => {
      const r = td.getBoundingClientRect();
      return r.left < 0 || r.right > root.clientWidth;
    }).length,
    hidden: cells.filter(td => !td.offsetParent || td.getBoundingClientRect().height === 0)
      .length,
    cells: cells.length,
    smallest_font: Math.min(...cells.map(td => parseFloat(getComputedStyle(td).fontSize))),
    labels: [...document.querySelectorAll('#rule-busy td')].map(label),
    names: [...document.querySelectorAll('tbody strong')].map(e => e.innerText),
  };
})()"""


def test_at_400_px_the_page_has_no_horizontal_scrolling_and_every_cell_is_labelled(
    page: str, tmp_path: Path
) -> None:
    # Before, the seven columns made the page about twice as wide as a phone's screen.
    with Chromium(chromium(), FLAGS, tmp_path / "profile-cdp") as browser:
        browser.open(page, 400, 800)
        seen = browser.evaluate(LAYOUT)
        shot = browser.screenshot()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "status-400px.png").write_bytes(shot)
    assert (seen["width"], seen["scroll"]) == (400, 400), seen
    assert seen["cells"] == 3 * 7 and seen["outside"] == 0 and seen["hidden"] == 0, seen
    assert seen["smallest_font"] >= 13, seen
    assert seen["names"] == ["busy", "quiet", "weekly"]
    # Without the header row, each value says which column it is.
    assert seen["labels"] == [
        '"Rule"',
        '"State"',
        '"Since"',
        '"Last value"',
        '"Fires when"',
        '"Last check"',
        '"Pending notifications"',
    ]
    width, _ = struct.unpack(">II", shot[16:24])
    assert width == 400


def test_a_corrupt_state_store_is_an_html_page_that_says_what_to_fix(
    sim: Simulator, store: Document, tmp_path: Path
) -> None:
    # Before: the raw JSON of the 503 in the browser.
    state_path(store).write_text('{"rules": {"busy": ')
    queries = sim.queries
    with served(app_for(sim, RULES, store, NOW)) as base:
        r = requests.get(f"{base}/status", timeout=10)
        done = browse(f"{base}/status", tmp_path, "--dump-dom")
    assert r.status_code == 503 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert r.headers["Cache-Control"] == "no-store"
    dom = done.stdout
    assert "<title>Rule status unavailable · rt-mp-collector</title>" in dom
    assert "<h1>Rule status unavailable</h1>" in dom
    assert f"rule state store unavailable: file:{state_path(store)} is not valid JSON" in dom
    assert "nothing was queried and nothing changed" in dom
    assert "<code>state_store_unavailable</code>" in dom
    assert '<meta http-equiv="refresh" content="60">' in dom  # back by itself once it is fixed
    assert '<a href="rules">/rules</a>' in dom
    assert sim.queries == queries and state_path(store).read_text() == '{"rules": {"busy": '


def test_without_rules_the_page_says_which_setting_to_set(sim: Simulator) -> None:
    with served(create_app(make_settings(sim.url))) as base:
        r = requests.get(f"{base}/status", timeout=10)
    assert r.status_code == 503 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Rule status unavailable</h1>" in r.text
    assert "no alert rules are configured: set COLLECTOR_RULES" in r.text


def test_an_unknown_parameter_is_a_400_page_with_a_link_to_the_plain_page(
    sim: Simulator, store: Document
) -> None:
    # Before, /status?anything answered the page as if nothing had been asked.
    with served(app_for(sim, RULES, store, NOW)) as base:
        r = requests.get(f"{base}/status?rule=busy&x=%3Cb%3E", timeout=10)
    assert r.status_code == 400 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Rule status: bad request</h1>" in r.text
    says = "unknown parameter(s): &#39;rule&#39;, &#39;x&#39;; /status takes no parameters"
    assert says in r.text
    assert "<b>" not in r.text
    assert '<a href="status">/status</a>' in r.text
    assert "refresh" not in r.text  # the same request would fail the same way


@pytest.mark.parametrize(
    ("seconds", "says"),
    [
        (0, "just now"),
        (59, "just now"),
        (60, "1 min ago"),
        (3 * 60 + 59, "3 min ago"),
        (2 * 3600, "2 h ago"),
        (2 * 3600 + 5 * 60, "2 h 5 min ago"),
        (86400 + 4 * 3600, "1 day 4 h ago"),
        (3 * 86400, "3 days ago"),
        (-3 * 60, "in 3 min"),  # another instance's clock a little ahead
    ],
)
def test_relative_times(seconds: int, says: str) -> None:
    assert ago(NOW - timedelta(seconds=seconds), NOW) == says


def test_a_stamp_that_cannot_be_read_is_shown_as_it_is() -> None:
    assert shown("yesterday-ish", NOW) == Shown("yesterday-ish", "yesterday-ish", "yesterday-ish")
    assert shown(None, NOW) is None
    assert shown("2026-11-23T10:00:00", NOW).utc == "2026-11-23 10:00:00 UTC"  # type: ignore[union-attr]
