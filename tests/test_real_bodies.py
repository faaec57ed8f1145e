"""Real Mixpanel export bodies, served as they are over loopback, counted as Mixpanel counts them.

The bodies come from public sources (tests/data/realdata/sources.json); expected.json says what
Mixpanel would count for each. The simulator serves each body byte for byte (its `raw_body`
fault), chunked or gzip, to the real reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.errors import UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.metrics.answer import MetricRequest
from collector.simulator import Fault, Simulator
from collector.window import Window
from tests.conftest import sim_config
from tests.helpers import compute, make_settings

DATA = Path(__file__).parent / "data" / "realdata"
EXPECTED = {
    k: v for k, v in json.loads((DATA / "expected.json").read_text()).items() if k[0] != "_"
}
ATTEMPTS = 2


def body_of(name: str) -> bytes:
    return (DATA / name).read_bytes()


def window_of(body: bytes) -> Window:
    """A window around every row of the body (times as written: the setting says UTC)."""
    times = []
    for line in body.split(b"\n"):
        try:
            t = json.loads(line)["properties"]["time"]
        except (ValueError, KeyError, TypeError):
            continue
        times.append(t / 1000 if t > 1e11 else t)
    if not times:  # a body that is only the marker: any past window
        times = [datetime(2024, 1, 1, tzinfo=UTC).timestamp()]
    start = datetime.fromtimestamp(min(times), UTC) - timedelta(days=1)
    return Window(start, datetime.fromtimestamp(max(times), UTC) + timedelta(days=1))


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as running:
        yield running


def read(sim: Simulator, name: str, metric: str, gzip: bool) -> dict:
    body = body_of(name)
    sim.script([Fault.raw_body(body.decode("utf-8", "surrogateescape"))] * ATTEMPTS)
    settings = make_settings(
        sim.url, EXPORT_GZIP=str(gzip).lower(), EXPORT_MAX_ATTEMPTS=str(ATTEMPTS)
    )
    reader = ExportReader(settings, QueryBudget(60, 3))
    try:
        return compute(MetricRequest(metric, window_of(body)), reader)
    finally:
        sim.clear_faults()


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_body_is_counted_as_mixpanel_counts_it(
    sim: Simulator, name: str, gzip: bool
) -> None:
    expected = EXPECTED[name]
    if expected["marker"] and expected["events"] == 0:
        # Only the marker: nothing was read, so there is no number at all.
        with pytest.raises(UpstreamUnavailable) as failed:
            read(sim, name, "events", gzip)
        kinds = [e["kind"] for e in failed.value.export["errors"]]
        assert kinds == ["terminated_early"] * ATTEMPTS
        return
    events = read(sim, name, "events", gzip)
    users = read(sim, name, "distinct_users", gzip)
    assert events["value"] == expected["events"]
    assert users["value"] == expected["distinct_users"]
    assert events["export"]["bad_lines"] == users["export"]["bad_lines"] == 0
    if expected["marker"]:
        assert events["complete"] is users["complete"] is False
        assert [e["kind"] for e in events["export"]["errors"]] == ["terminated_early"] * ATTEMPTS
        assert events["note"].startswith("partial")
    else:
        assert events["complete"] is users["complete"] is True
        assert events["export"]["attempts"] == 1


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if not e["marker"]))
def test_a_project_zone_shows_in_the_data_and_the_answer_names_the_setting(
    sim: Simulator, name: str
) -> None:
    hours = EXPECTED[name].get("zone_offset_hours")
    warnings = read(sim, name, "events", False)["export"].get("warnings", [])
    zone = [w for w in warnings if "MIXPANEL_PROJECT_TIMEZONE" in w]
    if hours is None:
        assert zone == []
    else:
        (text,) = zone
        assert f"UTC-{abs(hours):02d}:00" in text and f"{abs(hours)} h" in text
