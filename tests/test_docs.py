"""The README a newcomer reads, held to what the code does: the Quickstart's two commands, the
settings it lists, the endpoints its curl lines call, the local run it documents, and links
that lead somewhere. docs/ is a checkout's (the build upload leaves it out)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from collector.app import create_app
from collector.config import setting_names
from collector.env_names import GUNICORN_NAMES, PREFIXES
from tests.helpers import ROOT, clean_env, free_port, make_settings
from tests.helpers import code_blocks as fenced

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
CONTRACT_SECTIONS = (
    "## The exactness contract",
    "### How the end of a body is proven",
    "### What a line is",
    "### Mixpanel's counting rules",
    "### Projects in a project time zone",
    "### The `where` narrowing",
    "### How a run ends",
)
needs_docs = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/ is not part of the build upload")


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str) -> list[list[str]]:
    return [b.strip("\n").splitlines() for b in fenced(text)]


def test_the_readme_is_short_and_run_it_locally_follows_the_quickstart() -> None:
    assert len(README.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:2] == ["Quickstart", "Run it locally"]
    for heading in headings:  # the table of contents names every section
        slug = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        assert f"](#{slug})" in README, heading


def test_the_quickstart_is_two_commands_from_a_fresh_clone() -> None:
    [block, *_] = code_blocks(section(README, "Quickstart"))
    assert block == [
        "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt"
        " && .venv/bin/python -m collector.demo",
        "python3 -m venv .venv && .venv/bin/pip install -q --no-compile -r requirements-dev.txt"
        " && .venv/bin/python -m pytest -q",
    ]
    # .ci/run runs the second one, as it reads it.
    extract = "awk '/^## Quickstart/{q=1} q&&/^```/{n++; next} q&&n==1' README.md | sed -n 2p"
    assert extract in (ROOT / ".ci" / "run").read_text() if (ROOT / ".ci").is_dir() else True


def test_the_configuration_table_lists_every_setting_and_only_settings() -> None:
    table = section(README, "Configuration")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    known = setting_names() | GUNICORN_NAMES
    assert known - {"K_SERVICE", "GUNICORN_CMD_ARGS"} <= documented
    # Every other such name the README shows is a setting too, but for the typo it shows as one.
    shown = set(re.findall(r"`([A-Z][A-Z0-9_]{3,}[A-Z0-9])", README)) - {"EXPORT_DEADLINE_SECOND"}
    assert {n for n in shown if n.startswith(PREFIXES)} <= known


def test_every_endpoint_the_readme_calls_exists() -> None:
    app = create_app(make_settings())
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    called = set(re.findall(r"\$URL(/[a-z-]+)", README))
    called |= set(re.findall(r"^\| `(/[a-z-]+)`", section(README, "Endpoints"), re.M))
    assert called and called <= routes, called - routes
    assert {"/rules", "/status", "/check", "/healthz"} <= called


@needs_docs
def test_the_detailed_contract_moved_whole_to_docs_contract() -> None:
    contract = (DOCS / "contract.md").read_text()
    assert [h for h in CONTRACT_SECTIONS if h not in contract] == []
    assert not [h for h in CONTRACT_SECTIONS[1:] if h in README]
    assert "](docs/contract.md)" in section(README, "The contract in short")


@needs_docs
def test_reliability_starts_with_the_current_figures_and_their_plot() -> None:
    text = (DOCS / "reliability.md").read_text()
    first = text.split("\n## ")[1]
    assert first.startswith("Current figures")
    assert "![" in first and "(reliability.png)" in first
    assert (DOCS / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert text.rindex("\n## History") > text.index("\n## Current figures")


@needs_docs
@pytest.mark.parametrize(
    "doc", ["README.md", "docs/deploy.md", "docs/operations.md", "docs/reliability.md"]
)
def test_relative_links_lead_to_files_and_headings(doc: str) -> None:
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{doc}: {target}"
        if anchor and linked.suffix == ".md":
            slugs = {
                re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            }
            assert anchor in slugs, f"{doc}: {target}"


def test_the_documented_way_to_point_the_service_at_a_simulator_works(tmp_path: Path) -> None:
    """The README's two lines, on free ports instead of 8081 and 8080."""
    [block] = [b for b in code_blocks(section(README, "Run it locally")) if "--port 8081" in b[0]]
    sim_port, port = free_port(), free_port()
    simulator = block[0].rstrip(" &").replace("8081", str(sim_port)).replace(".venv/bin/", "")
    service = " ".join(line.rstrip("\\ ") for line in block[1:]).replace("8081", str(sim_port))
    service = service.replace(".venv/bin/gunicorn", str(Path(sys.executable).parent / "gunicorn"))
    env = clean_env()
    sim = subprocess.Popen(
        simulator.replace("python", sys.executable, 1).split(),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    gunicorn = subprocess.Popen(
        ["bash", "-c", f"exec env PORT={port} {service}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "log").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/distinct-users", timeout=30)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail((tmp_path / "log").read_text()[-2000:])
        assert answer.status_code == 200 and answer.json()["complete"] is True
    finally:
        for proc in (gunicorn, sim):
            proc.terminate()
            proc.wait(timeout=15)
