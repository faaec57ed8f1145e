"""`collector serve --simulator`: a local run in one command, as a new user would type it, and
every curl line it prints answered. The real command: the simulator on loopback, the service
under real gunicorn with the shipped settings."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from collector import __version__
from collector.cli.serve import __doc__ as serve_doc
from tests.helpers import ROOT, clean_env, read_banner


@dataclass
class Served:
    proc: subprocess.Popen[str]
    banner: list[str]

    def url(self, label: str) -> str:
        [line] = [x for x in self.banner if x.startswith(label)]
        return re.search(r"http://[\d.:]+(/api/2.0/export)?", line).group(0)  # type: ignore[union-attr]


def start(
    *args: str, env: dict[str, str] | None = None, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "serve", *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a shell starts a job in the background of a script: SIGINT ignored.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    proc = start("--simulator")
    try:
        yield Served(proc, read_banner(proc))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_it_prints_where_the_service_and_the_simulator_listen_on_free_loopback_ports(
    served: Served,
) -> None:
    base, sim = served.url("service:"), served.url("simulator:")
    assert base.startswith("http://127.0.0.1:") and sim.startswith("http://127.0.0.1:")
    assert base.rsplit(":", 1)[1] != sim.split(":")[2].split("/")[0]  # no collision on 8080
    assert any(
        line.startswith("rules:     rules.example.yaml  (state: file:") for line in served.banner
    )
    gunicorn_master = psutil.Process(served.proc.pid).children()[0]
    listening = {
        c.laddr.ip
        for c in gunicorn_master.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {"127.0.0.1"}


def test_every_curl_line_it_prints_is_answered(served: Served) -> None:
    curls = [
        line.split("curl -s ", 1)[1].split("#")[0].strip().strip("'")
        for line in served.banner
        if "curl -s" in line
    ]
    assert len(curls) == 7  # in order: the real /check runs before /rules
    answers = {url.split("/", 3)[3]: requests.get(url, timeout=60) for url in curls}
    assert all(r.status_code == 200 for r in answers.values()), answers
    assert answers["healthz"].json()["version"] == __version__
    users = answers["distinct-users?minutes=60"].json()
    assert users["complete"] is True and users["value"] > 0
    events = answers["events?minutes=60&event=Sign%20Up&event=Purchase"].json()
    assert set(events["by_event"]) == {"Sign Up", "Purchase"}
    dry = answers["check?dry_run=1"].json()
    assert dry["dry_run"] is True and len(dry["rules"]) == 3
    assert answers["check"].json()["notifications"]["failed"] == 0
    rules = answers["rules"].json()
    assert {r["state"] for r in rules["rules"]} <= {"OK", "ALERTING", "NO_DATA"}  # checked once
    page = requests.get(served.url("service:") + "/status", timeout=10)
    assert page.status_code == 200 and "<h1>Rule status</h1>" in page.text


def test_seventy_curls_in_a_row_all_answer(served: Served) -> None:
    # Before, the simulator run kept Mixpanel's 60 queries an hour: the 61st curl answered 503
    # budget_exhausted, "free again in 3581 s".
    [budget] = [x for x in served.banner if x.startswith("budget:")]
    assert budget == (
        "budget:    100000 Export queries an hour, 1000 a second (the simulator enforces no "
        "limit; against Mixpanel the service keeps its 60 and 3)"
    )
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`serve --simulator` sets 100000 / 1000;" in readme
    assert "budget of 100000 an hour and 1000 a second" in " ".join(serve_doc.split())
    url = served.url("service:") + "/distinct-users?minutes=60"
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]
    codes = [
        subprocess.run(curl, capture_output=True, text=True, timeout=60).stdout for _ in range(70)
    ]
    assert codes == ["200"] * 70
    health = requests.get(served.url("service:") + "/healthz", timeout=10).json()
    assert 100000 - 80 < health["queries_left_this_hour"] <= 100000 - 70


SHIPPED = ("workers", "threads", "worker_class", "timeout", "graceful_timeout", "keepalive")


def test_it_runs_the_shipped_gunicorn_settings() -> None:
    # Before, serve ran 4 threads where gunicorn.conf.py (and the README) say 8.
    clean = clean_env()
    shipped = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, collector.gunicorn_config as c; "
            f"print(json.dumps({{k: str(getattr(c, k)) for k in {SHIPPED!r}}}))",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = json.loads(shipped.stdout)
    assert (expected["threads"], expected["workers"]) == ("8", "1")
    log: list[str] = []
    # gunicorn's arbiter logs every setting it runs with at debug level.
    proc = start("--simulator", env={**clean, "GUNICORN_LOGLEVEL": "debug"})
    try:
        read_banner(proc, log=log)
        until = time.monotonic() + 30
        while not [x for x in log if x.startswith("  threads: ")] and time.monotonic() < until:
            time.sleep(0.1)
        running = dict(m.groups() for m in map(re.compile(r"^  (\w+): (.*)$").match, log) if m)
        assert {k: running.get(k) for k in SHIPPED} == expected, log[:80]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_ctrl_c_stops_both_and_removes_the_temporary_state(served: Served) -> None:
    base, sim = served.url("service:"), served.url("simulator:")
    [rules_line] = [x for x in served.banner if x.startswith("rules:")]
    state = rules_line.split("state: file:", 1)[1].rstrip(")")
    assert os.path.exists(state)  # written by the real /check above
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(timeout=30) == 0
    for url in (base + "/healthz", sim):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    assert not os.path.exists(os.path.dirname(state))


def test_sigint_stops_it_even_when_started_in_the_background_of_a_script() -> None:
    # Before, `collector serve --simulator &` in a script kept running on SIGINT (`kill -INT`).
    proc = start("--simulator", sigint_ignored=True)
    try:
        read_banner(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def booted_workers(proc: subprocess.Popen[str], workers: int) -> list[psutil.Process]:
    """gunicorn's workers under `collector serve`, once `workers` of them are up (ready means
    one worker answers; the others may still be booting)."""
    [master] = [
        p for p in psutil.Process(proc.pid).children() if "gunicorn" in " ".join(p.cmdline())
    ]
    booted = master.children()
    until = time.monotonic() + 20
    while len(booted) < workers and time.monotonic() < until:
        time.sleep(0.2)
        booted = master.children()
    return booted


def test_workers_threads_and_the_ledger_follow_the_environment(tmp_path: Path) -> None:
    env = {
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "3",
        "LEDGER_STORE": str(tmp_path / "ledger"),
    }
    # A quiet simulator: the week the days=7 line asks for is read in full the first time.
    proc = start("--simulator", "--events-per-minute", "4", env=env)
    try:
        banner = read_banner(proc)
        booted = booted_workers(proc, 2)
        assert len(booted) == 2
        # gthread starts its threads as requests come: the setting is what can be seen.
        assert {w.environ()["GUNICORN_THREADS"] for w in booted} == {"3"}
        # With a ledger it prints a days=N line, and answers it from the ledger the second time.
        [line] = [x for x in banner if "days=7" in x]
        url = line.split("curl -s ", 1)[1].split("#")[0].strip().strip("'")
        first = requests.get(url, timeout=120).json()
        second = requests.get(url, timeout=120).json()
        assert first["complete"] and second["value"] == first["value"]
        assert second["ledger"]["slices_from_ledger"] > 0 and "error" not in second["ledger"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_a_flag_wins_over_the_environment() -> None:
    env = {"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "3"}
    proc = start("--simulator", "--workers", "1", "--threads", "5", env=env)
    try:
        banner = read_banner(proc)
        booted = booted_workers(proc, 1)
        time.sleep(1)  # a second worker, were one booting, would be there by now
        assert len(booted_workers(proc, 1)) == 1
        assert {w.environ()["GUNICORN_THREADS"] for w in booted} == {"5"}
        assert not [x for x in banner if "days=" in x]  # no ledger, no days=N line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"EXPORT_DEADLINE_SECOND": "30"}, "did you mean EXPORT_DEADLINE_SECONDS?"),
        ({"GUNICORN_WORKERS": "abc"}, "GUNICORN_WORKERS='abc' must be a whole number"),
        ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS='0' must be a whole number, at least 1"),
    ],
)
def test_a_bad_setting_stops_it_with_the_one_line_that_says_so(env: dict, says: str) -> None:
    proc = start("--simulator", env=env)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 3 and out == ""
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "-1"], "argument --port: -1 is not a port"),
        (["--workers", "0"], "argument --workers: 0 must be at least 1"),
        (["--events-per-minute", "lots"], "argument --events-per-minute: 'lots' is not a whole"),
    ],
)
def test_a_bad_option_is_a_usage_line(args: list[str], message: str) -> None:
    proc = start("--simulator", *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and message in err and "Traceback" not in err
