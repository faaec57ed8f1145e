"""The metric registry is the one place a metric is declared: every row has its route (which
answers it), its schedule target, its place in the rules file, and the aggregator the export,
the /check fan-out and the ledger count it with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.alerting.rules import load_rules
from collector.app import create_app
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.fanout import Slot
from collector.metrics.registry import REGISTRY, metric
from collector.schedule.jobs import parse_job
from collector.schedule.targets import PARSERS, check_target
from collector.simulator import Simulator
from collector.window import Window
from tests.helpers import make_settings

ROWS = list(REGISTRY.values())


@pytest.fixture(scope="module")
def http(sim: Simulator) -> Any:
    return create_app(make_settings(sim.url)).test_client()


@pytest.mark.parametrize("row", ROWS, ids=[m.name for m in ROWS])
def test_every_metric_of_the_registry_has_a_route_that_answers_it(http: Any, row: Any) -> None:
    query = "date=2026-11-22" if row.params == "day" else "minutes=60&lag=5"
    body = http.get(f"{row.path}?{query}").get_json()
    assert body["metric"] == row.name and isinstance(body["value"], int)
    assert ("by_event" in body) == (row.counts == "events")
    assert ("estimate" in body) == (row.counts == "users")
    if row.takes_events:
        narrowed = http.get(f"{row.path}?{query}&event=Sign%20Up").get_json()
        assert narrowed["event"] == ["Sign Up"] and narrowed["value"] <= body["value"]
    else:
        refused = http.get(f"{row.path}?{query}&event=Sign%20Up")
        assert refused.status_code == 400


@pytest.mark.parametrize("row", ROWS, ids=[m.name for m in ROWS])
def test_every_metric_can_be_scheduled_and_watched_by_a_rule(tmp_path: Path, row: Any) -> None:
    assert row.path in PARSERS
    query = "" if row.params == "day" else "?minutes=15"
    job = parse_job(f"job={row.path}{query}@*/15 * * * *")
    settings = make_settings()
    assert check_target(job, settings, datetime(2026, 11, 22, 12, tzinfo=UTC)) == job
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"rules:\n  - name: r\n    metric: {row.name}\n    window_minutes: 60\n    below: 1\n"
    )
    assert load_rules(rules, {}).rules[0].metric == row.name


@pytest.mark.parametrize("row", ROWS, ids=[m.name for m in ROWS])
def test_every_metric_counts_with_the_aggregator_of_its_kind(row: Any) -> None:
    kind = EventCounts if row.counts == "events" else DistinctUsers
    assert isinstance(row.aggregator(), kind)
    window = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 22, 1, tzinfo=UTC))
    assert isinstance(Slot(row.name, window, ()).agg, kind)


def test_the_names_are_the_registrys_and_an_unknown_one_names_them() -> None:
    assert tuple(REGISTRY) == ("distinct_users", "events", "active_users")
    with pytest.raises(ValueError, match="unknown metric 'users': one of distinct_users, "):
        metric("users")
