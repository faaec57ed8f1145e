"""Distinct counting past the exact cap: an HLL sketch, flagged, within its stated error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from collector.export.budget import QueryBudget
from collector.export.decode import Row
from collector.export.reader import ExportReader
from collector.metrics.aggregators import DistinctUsers
from collector.metrics.answer import MetricRequest
from collector.simulator import Simulator
from collector.window import Window
from tests.conftest import past_window, sim_config
from tests.helpers import compute, make_settings

ROOT = Path(__file__).resolve().parent.parent


def rows(ids: range) -> list[Row]:
    return [Row("e", f"user-{i}", 0.0, None) for i in ids]


def test_exact_up_to_the_cap_and_flagged_past_it() -> None:
    at_cap = DistinctUsers(exact_cap=70_000)
    for start in range(0, 70_000, 7_000):  # in batches, with every batch read twice (a retry)
        at_cap.add(rows(range(start, start + 7_000)))
        at_cap.add(rows(range(start, start + 7_000)))
    assert at_cap.result() == {"value": 70_000, "estimate": False}

    past = DistinctUsers(exact_cap=69_999)
    past.add(rows(range(70_000)))
    result = past.result()
    assert result["estimate"] is True
    # The stated 95% bound itself is checked on simulator data below; here only a sanity
    # bound far out in the tail (about 8 sigma).
    assert abs(result["value"] - 70_000) <= 70_000 * 4 * result["relative_error"]
    past.add(rows(range(70_000)))  # re-read by a retry: a sketch is idempotent too
    assert past.value() == result["value"]


def test_a_cap_of_zero_never_estimates() -> None:
    agg = DistinctUsers(exact_cap=0)
    agg.add(rows(range(100_000)))
    assert agg.result() == {"value": 100_000, "estimate": False}


@pytest.fixture(scope="module")
def crowd() -> Simulator:
    with Simulator(sim_config(users=20_000, events_per_minute=400, malformed_per_query=0)) as s:
        yield s


def test_the_cap_boundary_on_simulator_data(crowd: Simulator) -> None:
    window = past_window(30)
    truth = crowd.truth(window.start, window.end).distinct_users
    for cap, estimate in ((truth, False), (truth - 1, True)):
        reader = ExportReader(
            make_settings(crowd.url, EXACT_DISTINCT_CAP=str(cap)), QueryBudget(60, 3)
        )
        body = compute(MetricRequest("distinct_users", window), reader, cap)
        assert body["estimate"] is estimate and body["complete"] is True
        if not estimate:
            assert body["value"] == truth


PROBE = """
import json, sys
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.metrics.answer import MetricRequest
from tests.helpers import compute
from collector.window import Window, parse_instant
from tests.helpers import make_settings
url, start, end = sys.argv[1:4]
reader = ExportReader(make_settings(url), QueryBudget(60, 3))
window = Window(parse_instant(start, "from"), parse_instant(end, "to"))
print(json.dumps(compute(MetricRequest("distinct_users", window), reader, 1000)))
"""


def estimate_in_a_new_process(crowd: Simulator, start, end, hash_seed: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, crowd.url, start.isoformat(), end.isoformat()],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("offset", [0, 60, 120])
def test_sketch_error_is_within_its_stated_bound(crowd: Simulator, offset: int) -> None:
    start = past_window(60).start - timedelta(minutes=offset)
    end = start + timedelta(minutes=60)
    truth = crowd.truth(start, end).distinct_users
    reader = ExportReader(make_settings(crowd.url), QueryBudget(60, 3))
    body = compute(MetricRequest("distinct_users", Window(start, end)), reader, 1000)
    assert body["estimate"] is True and truth > 1000
    assert abs(body["value"] - truth) <= truth * body["relative_error"], (body["value"], truth)


def test_the_estimate_is_the_same_in_any_process(crowd: Simulator) -> None:
    """Hashes are stable (FarmHash Fingerprint64), not Python's per-process `hash()`: the
    same data gives the same sketch whatever the process's hash seed."""
    start = past_window(60).start
    end = start + timedelta(minutes=60)
    answers = [estimate_in_a_new_process(crowd, start, end, seed)["value"] for seed in "01"]
    reader = ExportReader(make_settings(crowd.url), QueryBudget(60, 3))
    here = compute(MetricRequest("distinct_users", Window(start, end)), reader, 1000)["value"]
    assert answers == [here, here]
