"""Every request and JSON body the README and docs/ show, run as they are written against a live
service (docs/deploy.md, docs/ledger.md and the benchmark commands have tests of their own).

The service is started by docs/operations.md's own commands for a service with rules (the
example rules file copied, a file state store under `$PWD`), in a scratch directory that links
to the checkout, reading the simulator; each curl line is taken from the documents' text and run
by bash with `$URL` set to the service's address. Nothing is retyped: an example that changes is
run as changed. Where docs/ is not there (the build's upload), the same service is started by
the container's command, and the README's examples still run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.cli.serve import serving
from collector.simulator import Simulator
from tests.helpers import ROOT, clean_env, free_port, gunicorn, service_env
from tests.test_docs import README, code_blocks, section

DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
needs_docs = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/ is not part of the build upload")
# Where requests are shown; deploy.md and ledger.md are held by their own tests, benchmarks.md
# shows the benchmark's commands.
DOCUMENTS = ["README.md", "docs/operations.md", "docs/contract.md", "docs/architecture.md"]
LINKED = ["rules.example.yaml", "gunicorn.conf.py", "main.py", "collector"]


@dataclass
class Live:
    """The service the documents' commands started: its address and its log, and where it keeps
    the rules' state."""

    url: str
    log: Path
    state: Path
    sim: Simulator

    def curl(self, line: str) -> tuple[int, Any]:
        """Run one documented curl line with `$URL` set; its status and its JSON answer."""
        # -w adds the status after the body: the line itself runs as written.
        done = subprocess.run(
            ["bash", "-c", f"{line} -w '\\n%{{http_code}}'"],
            env={**os.environ, "URL": self.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (line, done.stderr)
        body, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(body)


def operations_block(marker: str) -> str:
    """The code block of docs/operations.md holding `marker`, as bash would be given it."""
    [block] = [b for b in code_blocks(OPERATIONS.read_text()) if marker in "\n".join(b)]
    return "\n".join(block)


@pytest.fixture(scope="module")
def live(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    here = tmp_path_factory.mktemp("checkout")
    # The build uploads no docs/: there the same service is started without its commands.
    start = documented if OPERATIONS.exists() else shipped
    with start(sim, here) as url:
        yield Live(url, here / "service.log", here / "collector-state.json", sim)


@contextmanager
def documented(sim: Simulator, here: Path) -> Iterator[str]:
    """The service started by docs/operations.md's commands, run by bash in `here`."""
    for name in LINKED:
        (here / name).symlink_to(ROOT / name)
    # The documented `.venv/bin/gunicorn` is this interpreter's gunicorn.
    (here / ".venv" / "bin").mkdir(parents=True)
    (here / ".venv" / "bin" / "gunicorn").symlink_to(Path(sys.executable).parent / "gunicorn")
    commands = operations_block("COLLECTOR_RULES=rules.yaml")
    port = free_port()
    env = clean_env()
    env.update(service_env(sim, LOG_FORMAT="text"), PORT=str(port))
    with (here / "service.log").open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-e", "-c", commands],
            cwd=here,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the shell and gunicorn: stopped together
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert serving(proc, url, 90), (here / "service.log").read_text()[-3000:]
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@contextmanager
def shipped(sim: Simulator, here: Path) -> Iterator[str]:
    """The same service (the example rules, a state file in `here`) under the container's
    command."""
    env = service_env(
        sim,
        LOG_FORMAT="text",
        COLLECTOR_RULES=str(ROOT / "rules.example.yaml"),
        STATE_STORE=f"file:{here / 'collector-state.json'}",
    )
    with gunicorn(env, here / "service.log", workers=1, threads=8) as service:
        yield service.base


# -- the README -------------------------------------------------------------------------------

ENDPOINT_LINES = code_blocks(section(README, "Endpoints"))[0]
EXAMPLE_RULES = ["signups-low", "purchases-dropped", "users-spike"]


@pytest.mark.parametrize("line", ENDPOINT_LINES)
def test_each_endpoints_curl_line_of_the_readme_is_answered(live: Live, line: str) -> None:
    assert line.startswith("curl -s ") and "$URL/" in line
    path = re.search(r"\$URL(/[a-z-]+)", line).group(1)  # type: ignore[union-attr]
    status, body = live.curl(line)
    assert status == 200, body
    if path == "/check":
        assert body["dry_run"] is True and body["saved"] is False
        assert sorted(r["name"] for r in body["rules"]) == sorted(EXAMPLE_RULES)
        assert all(r["state"] in {"OK", "ALERTING", "NO_DATA"} for r in body["rules"]), body
    else:
        assert body["metric"] == path[1:].replace("-", "_") and body["complete"] is True
        assert "hint" not in body, body  # every name the README asks for is read


def readme_answer() -> dict[str, Any]:
    [block] = re.findall(r"```json\n(.*?)```", section(README, "Endpoints"), re.S)
    return json.loads(block)


def test_the_readme_answer_example_has_the_shape_of_the_answer_to_its_curl_line(
    live: Live,
) -> None:
    example = readme_answer()
    window = example["window"]
    [line] = [x for x in ENDPOINT_LINES if f"from={window['from']}&to={window['to']}" in x]
    status, real = live.curl(line)
    assert status == 200
    assert real["metric"] == example["metric"] and real["window"] == example["window"]
    # Each field shown, at the top and in `export`, is in the real answer with the same type.
    for shown, got in ((example, real), (example["export"], real["export"])):
        for key, value in shown.items():
            assert type(got[key]) is type(value), (key, got.get(key), value)
    # Every field of the real answer is in the example or named in the README.
    named = set(re.findall(r"`([a-z_]+)`", README))
    assert set(real) - set(example) <= named, set(real) - set(example) - named
    assert set(real["export"]) - set(example["export"]) <= named
    assert set(example["by_event"]) <= set(real["by_event"])


def test_a_400_answers_the_body_the_readme_shows(live: Live) -> None:
    [row] = [r for r in section(README, "Endpoints").splitlines() if r.startswith("| 400 |")]
    shown = re.search(r"`(\{.*\})`", row).group(1)  # type: ignore[union-attr]
    keys = re.findall(r'"(\w+)":', shown)
    code = re.search(r'"code": "(\w+)"', shown).group(1)  # type: ignore[union-attr]
    before = live.sim.queries
    # A request of the row's first kind: an unknown parameter.
    r = requests.get(f"{live.url}/events?colour=red", timeout=30)
    assert r.status_code == 400 and sorted(r.json()) == sorted(keys) and r.json()["code"] == code
    assert live.sim.queries == before  # "no query was spent"


# -- docs/operations.md -----------------------------------------------------------------------


@needs_docs
def test_the_dry_run_lines_of_operations_run_against_the_service_with_rules(live: Live) -> None:
    """The documented POST /check with {"dry_run": true} (a 400 before) and its GET form."""
    lines = operations_block('"dry_run": true').strip().splitlines()
    assert any("-X POST" in x and '{"dry_run": true}' in x for x in lines)
    for line in lines:
        before = live.state.read_bytes() if live.state.exists() else None
        queries = live.sim.queries
        status, body = live.curl(line)
        assert status == 200, (line, body)
        assert body["dry_run"] is True and body["saved"] is False
        assert sorted(r["name"] for r in body["rules"]) == sorted(EXAMPLE_RULES)
        assert all("would_notify" in r for r in body["rules"])
        assert live.sim.queries > queries  # evaluated for real
        assert (live.state.read_bytes() if live.state.exists() else None) == before


@needs_docs
def test_the_log_line_operations_shows_is_what_the_service_writes(live: Live) -> None:
    text = " ".join(OPERATIONS.read_text().split())
    shown = re.search(r"`(GET /events\?minutes=60 -> [^`]+)`", text).group(1)  # type: ignore[union-attr]
    request, _, _ = shown.partition(" -> ")
    pattern = re.escape(shown).replace(r"\.\.\.", ".*")
    pattern = re.sub(r"\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", pattern)
    assert requests.get(f"{live.url}{request.split()[1]}", timeout=60).status_code == 200
    lines = [x for x in live.log.read_text().splitlines() if f"collector.http: {request} " in x]
    assert lines and re.search(pattern, lines[-1]), (shown, lines[-1:])


# -- every request the documents name ---------------------------------------------------------

ROUTES = ("/distinct-users", "/events", "/active-users", "/check", "/rules", "/status", "/healthz")


def named_requests(doc: str) -> list[str]:
    """Each `GET /path?...` or `/path?query` a document shows, of this service's routes."""
    text = (ROOT / doc).read_text()
    shown = re.findall(r"\b(?:GET|POST) (/[a-z-]+(?:\?[^\s`]*)?)", text)
    shown += re.findall(r"`(/[a-z-]+\?[^\s`]+)`", text)
    return [s for s in dict.fromkeys(shown) if s.split("?")[0] in ROUTES]


def test_the_documents_name_the_requests_this_module_runs() -> None:
    assert {"/check?dry_run=1", "/rules", "/status"} <= set(named_requests("README.md"))
    if DOCS.is_dir():
        named = named_requests("docs/operations.md") + named_requests("docs/architecture.md")
        assert {"/events?minutes=60", "/check", "/check?dry_run"} <= set(named)


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_every_request_a_document_names_is_answered(live: Live, doc: str) -> None:
    if not (ROOT / doc).exists():
        pytest.skip("docs/ is not part of the build upload")
    for target in named_requests(doc):
        r = requests.get(f"{live.url}{target}", timeout=60)
        assert r.status_code == 200, (doc, target, r.text[:500])
        if target == "/status":
            assert r.headers["Content-Type"].startswith("text/html"), target
            assert all(f'id="rule-{name}"' in r.text for name in EXAMPLE_RULES)
        else:
            assert "error" not in r.json(), (doc, target, r.json())


# -- docs/contract.md -------------------------------------------------------------------------


@needs_docs
def test_the_where_narrowing_contract_shows_is_what_mixpanel_is_sent(live: Live) -> None:
    text = (DOCS / "contract.md").read_text()
    shown = re.search(r"`where=(properties[^`]+)`", text).group(1)  # type: ignore[union-attr]
    start, end = "2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z"
    r = requests.get(f"{live.url}/distinct-users?from={start}&to={end}", timeout=60)
    assert r.status_code == 200 and r.json()["complete"] is True
    epochs = [str(int(datetime.fromisoformat(t).timestamp())) for t in (start, end)]
    expected = shown.replace("<epoch>", epochs[0], 1).replace("<epoch>", epochs[1], 1)
    assert live.sim.requests[-1]["params"]["where"] == expected
