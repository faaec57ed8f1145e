"""`/check`, its dry run and `collector check` list the rules in the rules file's order, as
`/rules` and `/status` do. Before, they came in the order of their windows' starts (the
query plan's), which for most files looked alphabetical and matched neither."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from collector.simulator import Simulator
from collector.stores import Document
from tests.helpers import collector_command, service_env
from tests.test_check import NOW, app_for, rules_doc

# In file order; the plan reads the longest window first: alpha, mid, zeta.
RULES = [
    {"name": "zeta", "metric": "events", "window_minutes": 5, "above": 10**9},
    {"name": "alpha", "metric": "distinct_users", "window_minutes": 60, "above": 10**9},
    {"name": "mid", "metric": "events", "window_minutes": 20, "drop_pct": 99},
]
FILE_ORDER = ["zeta", "alpha", "mid"]


def names(body: dict) -> list[str]:
    return [rule["name"] for rule in body["rules"]]


def test_check_and_its_dry_run_list_the_rules_in_file_order(
    sim: Simulator, store: Document
) -> None:
    client = app_for(sim, rules_doc(*RULES), store, NOW).test_client()
    assert names(client.get("/check?dry_run=1").get_json()) == FILE_ORDER
    assert names(client.get("/check").get_json()) == FILE_ORDER
    assert names(client.get("/rules").get_json()) == FILE_ORDER
    # A selection is listed in file order too, whatever order it was asked in.
    picked = client.get("/check?dry_run=1&rule=mid&rule=zeta").get_json()
    assert names(picked) == ["zeta", "mid"]


def test_the_command_lists_the_rules_in_file_order(sim: Simulator, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": RULES}, sort_keys=False))
    done = collector_command(
        "check", "--dry-run", "--rules", str(rules), env=service_env(sim, LOG_FORMAT="text")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert names(json.loads(done.stdout)) == FILE_ORDER
