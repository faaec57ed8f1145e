"""The export simulator over real loopback sockets, read with `requests` as the collector does."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.simulator import Fault, SimConfig, Simulator, Truth

TODAY = date(2025, 11, 23)
DAY = "2025-11-22"
HOUR = datetime(2025, 11, 22, 10, tzinfo=UTC)  # a one-hour window inside DAY
AUTH = ("sim-user", "sim-secret")
PLAIN = {"Accept-Encoding": "identity"}
ROOT = Path(__file__).resolve().parents[1]


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def where(lo: int, hi: int) -> str:
    return f'properties["$time"] >= datetime({lo}) and properties["$time"] < datetime({hi})'


def export_params(start: datetime | None = HOUR, minutes: int = 60, **extra: str) -> dict:
    params = {"project_id": "1", "from_date": DAY, "to_date": DAY}
    if start is not None:
        params["where"] = where(ts(start), ts(start) + minutes * 60)
    return params | extra


def fetch(sim: Simulator, params: dict | None = None, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("headers", PLAIN)
    kwargs.setdefault("timeout", 10)
    return requests.get(sim.url, params=export_params() if params is None else params, **kwargs)


def parse(body: bytes) -> Iterator[tuple[str, dict]]:
    """Valid events of a body, split on b"\\n" (never splitlines: U+2028 is inside strings)."""
    for line in body.split(b"\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        props = obj.get("properties") if isinstance(obj, dict) else None
        # Mixpanel's rules: an event has a name and a numeric time; distinct_id is optional.
        if not isinstance(props, dict) or not isinstance(obj.get("event"), str):
            continue
        if not isinstance(props.get("time"), int | float):
            continue
        yield obj["event"], props


def count(
    body: bytes, lo: float | None = None, hi: float | None = None, names: Iterable | None = None
) -> Truth:
    """The ground truth recomputed independently from a served body (times as written)."""
    keyed: set[tuple] = set()
    unkeyed: Counter[str] = Counter()
    users: set[str] = set()
    wanted = None if names is None else set(names)
    for name, props in parse(body):
        if lo is not None and not lo <= props["time"] < hi:
            continue
        if wanted is not None and name not in wanted:
            continue
        user = props.get("distinct_id", "")
        if user != "":
            users.add(user)  # an empty or missing distinct_id is no user
        if "$insert_id" in props:
            keyed.add((name, user, props["time"], props["$insert_id"]))
        else:
            unkeyed[name] += 1
    by_event = Counter(key[0] for key in keyed) + unkeyed
    return Truth(len(users), sum(by_event.values()), dict(by_event))


def keyed_times(body: bytes) -> dict[str, int]:
    return {p["$insert_id"]: p["time"] for _n, p in parse(body) if "$insert_id" in p}


def hour_truth(sim: Simulator, start: datetime = HOUR, minutes: int = 60, **kw) -> Truth:
    return sim.truth(start, start + timedelta(minutes=minutes), **kw)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=7, events_per_minute=20, today=TODAY, api_secret="legacy")) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim: Simulator) -> Iterator[None]:
    sim.clear_faults()
    yield
    sim.clear_faults()


# -- events and truth -----------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    cfg = SimConfig(seed=11, events_per_minute=10, today=TODAY)
    bodies = []
    for config in (cfg, cfg, SimConfig(seed=12, events_per_minute=10, today=TODAY)):
        with Simulator(config) as s:
            bodies.append(fetch(s).content)
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_truth_equals_an_independent_count_of_the_body(sim: Simulator) -> None:
    r = fetch(sim)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Transfer-Encoding"] == "chunked"
    body = r.content
    assert count(body) == hour_truth(sim)
    assert hour_truth(sim).events > 500


def test_late_events_appear_when_the_clock_passes_their_processing_time() -> None:
    """With a clock, a body holds only the events processed by then (each line's own
    `mp_processing_time_ms`), and truth(arrived_by=...) counts the same."""
    config = SimConfig(seed=3, events_per_minute=20, today=TODAY, late_rate=0.25, late_hours=30)
    end = HOUR + timedelta(hours=1)
    with Simulator(config) as s:
        whole = fetch(s).content
        processed = [p["mp_processing_time_ms"] / 1000 for _n, p in parse(whole)]
        late = [
            p
            for p, (_n, props) in zip(processed, parse(whole), strict=True)
            if p > end.timestamp() + 3600
        ]
        assert len(late) > 0.15 * len(processed)  # a quarter, less the ones early in the hour
        assert max(processed) <= end.timestamp() + 30 * 3600
        for hours in (1, 6, 31):
            now = end + timedelta(hours=hours)
            s.set_clock(lambda now=now: now)
            body = fetch(s).content
            seen = [p["mp_processing_time_ms"] / 1000 for _n, p in parse(body)]
            assert seen and max(seen) <= now.timestamp()
            assert count(body) == hour_truth(s, arrived_by=now)
            assert len(seen) == sum(1 for p in processed if p <= now.timestamp())
        assert count(body) == hour_truth(s)  # 31 h after: everything has arrived
        s.set_clock(None)
        assert fetch(s).content == whole


def test_body_looks_like_a_real_export(sim: Simulator) -> None:
    body = fetch(sim).content
    assert body.endswith(b"\n")
    lines = body.split(b"\n")[:-1]
    events = list(parse(body))
    assert len(lines) - len(events) == sim.config.malformed_per_query
    json.loads(lines[-1])  # a bad line never ends the body: that would look like a cut
    ids = Counter(props.get("$insert_id") for _name, props in events)
    assert any(n == 2 for key, n in ids.items() if key), "some keyed lines are sent twice"
    assert ids[None] > 0, "some events have no $insert_id"
    times = [props["time"] for _name, props in events]
    assert times != sorted(times), "lines are not sorted by time"
    assert all(isinstance(t, int) for t in times)
    assert b"\xe2\x80\xa8" in body, "some strings carry a raw U+2028"
    assert 600 < len(body) / len(lines) < 1000
    assert min(len(p) for _name, p in events if p.get("distinct_id")) >= 20
    no_user = [p for _name, p in events if not p.get("distinct_id")]
    assert any("distinct_id" not in p for p in no_user), "some events leave distinct_id out"
    assert any(p.get("distinct_id") == "" for p in no_user), 'some say "distinct_id": ""'
    for _name, props in events:
        assert props["mp_processing_time_ms"] >= props["time"] * 1000


def test_truth_semantics_half_open_and_event_names(sim: Simulator) -> None:
    whole = hour_truth(sim)
    halves = [hour_truth(sim, HOUR + timedelta(minutes=m), 30) for m in (0, 30)]
    assert whole.events == sum(h.events for h in halves)
    assert whole.distinct_users <= sum(h.distinct_users for h in halves)
    some = hour_truth(sim, events=["Purchase", "Sign Up", "No Such Event"])
    assert set(some.by_event) == {"Purchase", "Sign Up"}
    assert some.by_event == {k: whole.by_event[k] for k in ("Purchase", "Sign Up")}
    assert hour_truth(sim, events=[]) == Truth(0, 0, {})
    assert hour_truth(sim, events="Purchase").by_event == {"Purchase": whole.by_event["Purchase"]}
    with pytest.raises(ValueError):
        sim.truth(datetime(2025, 11, 22), datetime(2025, 11, 23))  # naive datetimes


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 3600), st.integers(0, 3600))
def test_event_counts_add_up_over_any_split(a: int, b: int) -> None:
    source = Simulator(SimConfig(seed=3, events_per_minute=5))
    lo, mid, hi = ts(HOUR), ts(HOUR) + min(a, b), ts(HOUR) + max(a, b)
    parts = [source.truth(lo, mid), source.truth(mid, hi)]
    whole = source.truth(lo, hi)
    assert whole.events == parts[0].events + parts[1].events
    assert Counter(whole.by_event) == Counter(parts[0].by_event) + Counter(parts[1].by_event)


# -- where and event filters ----------------------------------------------------------------------


def test_where_is_honoured(sim: Simulator) -> None:
    start = HOUR + timedelta(minutes=7)
    body = fetch(sim, export_params(start, 11)).content
    times = [props["time"] for _name, props in parse(body)]
    assert times and all(ts(start) <= t < ts(start) + 660 for t in times)
    assert count(body) == hour_truth(sim, start, 11)


def test_where_ignored_sends_whole_days() -> None:
    cfg = SimConfig(seed=7, events_per_minute=2, today=TODAY, honour_where=False)
    with Simulator(cfg) as s:
        body = fetch(s).content
    times = [props["time"] for _name, props in parse(body)]
    day = datetime(2025, 11, 22, tzinfo=UTC)
    assert min(times) < ts(HOUR) and max(times) >= ts(HOUR) + 3600
    assert all(ts(day) <= t < ts(day) + 86400 for t in times)
    assert count(body, ts(HOUR), ts(HOUR) + 3600) == hour_truth(s)


def test_event_filter_is_honoured(sim: Simulator) -> None:
    names = ["Sign Up", "Purchase"]
    body = fetch(sim, export_params(event=json.dumps(names))).content
    assert {name for name, _props in parse(body)} == set(names)
    assert count(body) == hour_truth(sim, events=names)


def test_event_filter_ignored_sends_every_name() -> None:
    cfg = SimConfig(seed=7, events_per_minute=20, today=TODAY, honour_event_filter=False)
    names = ["Sign Up"]
    with Simulator(cfg) as s:
        body = fetch(s, export_params(event=json.dumps(names))).content
        assert len({name for name, _props in parse(body)}) == len(cfg.event_names)
        assert count(body, names=names) == hour_truth(s, events=names)


def test_limit_caps_event_lines(sim: Simulator) -> None:
    body = fetch(sim, export_params(limit="10")).content
    assert len(list(parse(body))) == 10


# -- project timezone -----------------------------------------------------------------------------


def test_project_timezone_shifts_written_time_not_truth() -> None:
    # 2025-11-02 is the day New York leaves daylight saving time: a 25-hour local day.
    zone = ZoneInfo("America/New_York")
    local = SimConfig(seed=5, events_per_minute=1, today=TODAY, project_timezone=str(zone))
    utc = SimConfig(seed=5, events_per_minute=1, today=TODAY)
    day = {"project_id": "1", "from_date": "2025-11-02", "to_date": "2025-11-02"}
    with Simulator(local) as ny, Simulator(utc) as plain:
        shifted = keyed_times(fetch(ny, day).content)
        both = day | {"from_date": "2025-11-02", "to_date": "2025-11-03"}
        true = keyed_times(fetch(plain, both).content)
        start = datetime(2025, 11, 2, tzinfo=zone)
        end = datetime(2025, 11, 3, tzinfo=zone)
        assert end.timestamp() - start.timestamp() == 25 * 3600
        assert ny.truth(start, end) == plain.truth(start, end)
        assert len(shifted) > 1400
        assert ny.truth(start, end).events == len(shifted) + sum(
            1 for _n, p in parse(fetch(ny, day).content) if "$insert_id" not in p
        )
    offsets = set()
    for insert_id, written in shifted.items():
        moment = datetime.fromtimestamp(true[insert_id], zone)
        offset = int(moment.utcoffset().total_seconds())
        assert written == true[insert_id] + offset
        assert moment.date() == date(2025, 11, 2)
        offsets.add(offset)
    assert offsets == {-4 * 3600, -5 * 3600}


def test_where_in_a_shifted_project_compares_written_time() -> None:
    cfg = SimConfig(seed=5, events_per_minute=10, today=TODAY, project_timezone="Asia/Kolkata")
    with Simulator(cfg) as s:
        lo = ts(HOUR) + 19800  # the same UTC hour, as Kolkata wall-clock seconds
        body = fetch(s, export_params(None, where=where(lo, lo + 3600))).content
        assert count(body, lo, lo + 3600) == count(body)
        truth = hour_truth(s)
    assert count(body) == truth


# -- auth and parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "params", "status"),
    [
        (None, {}, 401),
        (("sim-user", "wrong"), {}, 401),
        (("nobody", "sim-secret"), {}, 401),
        (("legacy", "not-empty"), {}, 401),
        (AUTH, {"project_id": None}, 400),
        (AUTH, {"project_id": "2"}, 400),
        (("legacy", ""), {"project_id": None}, 200),
        (AUTH, {}, 200),
    ],
)
def test_auth(sim: Simulator, auth: tuple | None, params: dict, status: int) -> None:
    query = {k: v for k, v in (export_params() | params).items() if v is not None}
    r = fetch(sim, query, auth=auth)
    assert r.status_code == status
    if status == 401:
        assert r.json() == {"error": "Invalid credentials"}
        assert sim.requests[-1]["auth"] is None
    elif status == 400:
        assert r.json()["error"] == "Unable to authenticate request"
        assert r.json()["request"].startswith("/api/2.0/export?")
    else:
        kind = "api_secret" if auth[0] == "legacy" else "service_account"
        assert sim.requests[-1]["auth"] == kind


def test_legacy_secret_refused_when_not_configured() -> None:
    with Simulator(SimConfig(today=TODAY)) as s:
        assert fetch(s, auth=("", "")).status_code == 401


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"from_date": None}, "'from_date' is a required parameter"),
        ({"to_date": None}, "'to_date' is a required parameter"),
        ({"from_date": "2025/11/22"}, "yyyy-mm-dd"),
        ({"from_date": "2025-02-30"}, "not a valid date"),
        ({"from_date": "2025-11-23", "to_date": DAY}, "cannot be later than 'to_date'"),
        ({"to_date": "2025-11-24"}, "to_date cannot be later than today"),
        ({"event": "Sign Up"}, "JSON array"),
        ({"event": "[]"}, "JSON array"),
        ({"where": 'properties["$time"] > 5'}, "where"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_parameters_get_400_json(sim: Simulator, change: dict, message: str) -> None:
    query = {k: v for k, v in (export_params() | change).items() if v is not None}
    r = fetch(sim, query)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert r.json()["request"].startswith("/api/2.0/export?")


def test_today_defaults_to_the_real_date_in_the_project_zone() -> None:
    with Simulator(SimConfig(project_timezone="Pacific/Kiritimati")) as s:
        today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
        later = (today + timedelta(days=1)).isoformat()
        r = fetch(s, {"project_id": "1", "from_date": later, "to_date": later})
        assert r.status_code == 400
        assert r.json()["error"] == "to_date cannot be later than today"
        now = datetime.now(UTC)
        query = export_params(None, from_date=today.isoformat(), to_date=today.isoformat())
        query["where"] = where(ts(now) - 120, ts(now) - 60)
        assert fetch(s, query).status_code == 200


def test_where_variants_are_tolerated(sim: Simulator) -> None:
    lo, hi = ts(HOUR), ts(HOUR) + 600
    spaced = f"  properties[ '$time' ]>=datetime( {lo} )  AND properties[\"$time\"]<datetime({hi}) "
    r = fetch(sim, export_params(None, where=spaced))
    assert r.status_code == 200
    assert count(r.content) == hour_truth(sim, minutes=10)


def test_other_paths_and_methods(sim: Simulator) -> None:
    before = sim.queries
    sim.script([Fault.status(503)])
    r = requests.get(sim.base_url + "/api/2.0/other", timeout=5)
    assert r.status_code == 404 and "error" in r.json()
    r = requests.post(sim.url, auth=AUTH, timeout=5)
    assert r.status_code == 405 and "error" in r.json()
    assert sim.queries == before + 1  # counted, but only a GET query takes a fault
    assert sim.faults_pending == 1


# -- faults ---------------------------------------------------------------------------------------


def test_reset_mid_body(sim: Simulator) -> None:
    sim.script([Fault.reset(after_bytes=20_000)])
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="reset by peer"):
        fetch(sim)
    assert sim.requests[-1]["fault"] == "reset"


def test_reset_before_the_body(sim: Simulator) -> None:
    sim.script([Fault.reset(after_bytes=0)])
    errors = (requests.exceptions.ChunkedEncodingError, requests.ConnectionError)
    with pytest.raises(errors, match="reset by peer"):
        fetch(sim)


def test_cut_chunked(sim: Simulator) -> None:
    sim.script([Fault.cut_chunked(after_bytes=20_000)])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fetch(sim)


def test_cut_length(sim: Simulator) -> None:
    sim.script([Fault.cut_length(after_bytes=20_000)])
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        fetch(sim)


def test_cut_silent_gives_no_error_only_a_short_body(sim: Simulator) -> None:
    sim.script([Fault.cut_silent(after_bytes=20_000)])
    r = fetch(sim)
    assert r.status_code == 200
    assert "Content-Length" not in r.headers and "Transfer-Encoding" not in r.headers
    assert abs(len(r.content) - 20_000) <= 4  # a cut on a line boundary moves into the record
    assert not r.content.endswith(b"\n")


@pytest.mark.parametrize("headers", [PLAIN, {}], ids=["identity", "gzip"])
def test_terminated_early(sim: Simulator, headers: dict) -> None:
    sim.script([Fault.terminated_early(after_bytes=20_000)])
    r = fetch(sim, headers=headers)
    assert r.status_code == 200
    body = r.content
    assert body.endswith(b"\nterminated early\n")
    lines = body.split(b"\n")
    assert 15_000 < len(body) < 25_000
    with pytest.raises(ValueError):
        json.loads(lines[-3])  # the record before the marker is cut
    lines[-3].decode()  # ...on a character boundary


def test_terminated_early_beyond_the_body_cuts_its_last_record(sim: Simulator) -> None:
    full = fetch(sim, export_params(minutes=1)).content
    sim.script([Fault.terminated_early(after_bytes=10_000_000)])
    body = fetch(sim, export_params(minutes=1)).content
    assert body.endswith(b"\nterminated early\n")
    assert full.startswith(body[: -len(b"\nterminated early\n")])


@pytest.mark.timing
def test_stall_mid_body_fires_the_read_timeout_as_connection_error(sim: Simulator) -> None:
    sim.script([Fault.stall(after_bytes=20_000, seconds=30)])
    began = time.monotonic()
    with pytest.raises(requests.ConnectionError, match="Read timed out") as caught:
        fetch(sim, timeout=(2, 0.5))
    assert not isinstance(caught.value, requests.Timeout)  # `except Timeout` would miss it
    assert time.monotonic() - began < 5


def test_stall_before_headers_is_a_read_timeout(sim: Simulator) -> None:
    sim.script([Fault.stall_headers(seconds=30)])
    with pytest.raises(requests.exceptions.ReadTimeout):
        fetch(sim, timeout=(2, 0.5))


def test_short_stall_then_close(sim: Simulator) -> None:
    sim.script([Fault.stall(after_bytes=1000, seconds=0.2)])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fetch(sim, timeout=5)


def test_trickle_never_fires_the_read_timeout(sim: Simulator) -> None:
    sim.script([Fault.trickle(after_bytes=5_000, interval=0.05)])
    r = fetch(sim, stream=True, timeout=(2, 0.3))
    got = 0
    began = time.monotonic()
    with r:
        for chunk in r.iter_content(chunk_size=1):
            got += len(chunk)
            if got >= 5_000 + 25:
                break
    # 25 bytes took over a second, longer than the read timeout, and no timeout fired.
    assert time.monotonic() - began > 1.0


@pytest.mark.parametrize(
    ("fault", "content_type", "body"),
    [
        (Fault.status(503), "text/plain; charset=utf-8", "Service Unavailable"),
        (Fault.status(500), "text/plain; charset=utf-8", "Internal Server Error"),
        (Fault.status(429, retry_after=1), "application/json", "Query rate limit exceeded"),
        (Fault.status(402), "application/json", "Your plan does not allow API calls"),
        (Fault.status(403), "application/json", ""),
        (Fault.status(401), "application/json", "Invalid credentials"),
        (Fault.status(400), "application/json", ""),
        (Fault.status(502, body="<html>bad gateway</html>"), "text/plain", "<html>"),
        (Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), "application/json", ""),
    ],
)
def test_status_faults(sim: Simulator, fault: Fault, content_type: str, body: str) -> None:
    sim.script([fault])
    r = fetch(sim)
    assert r.status_code == fault.status_code
    assert r.headers["Content-Type"].startswith(content_type)
    assert body in r.text
    if content_type == "application/json":
        assert "error" in r.json()
        assert ("request" in r.json()) == (fault.status_code == 400)
    if fault.retry_after is not None:
        assert r.headers["Retry-After"] == str(fault.retry_after)
    else:
        assert "Retry-After" not in r.headers


@pytest.mark.parametrize("headers", [PLAIN, {}], ids=["identity", "gzip"])
def test_gzip_corrupt(sim: Simulator, headers: dict) -> None:
    sim.script([Fault.gzip_corrupt(after_bytes=5_000)])
    with pytest.raises(requests.exceptions.ContentDecodingError):
        fetch(sim, headers=headers)


def test_fifo_of_faults_and_none(sim: Simulator) -> None:
    sim.script([Fault.status(503), Fault.none()])
    sim.script([Fault.status(429, retry_after=1)])
    assert sim.faults_pending == 3
    statuses = [fetch(sim, export_params(minutes=1)).status_code for _ in range(4)]
    assert statuses == [503, 200, 429, 200]
    assert [r["fault"] for r in sim.requests[-4:]] == ["status", "none", "status", None]


def test_faults_apply_to_refused_queries_too(sim: Simulator) -> None:
    sim.script([Fault.status(503), Fault.reset(0)])
    assert fetch(sim, auth=None).status_code == 503
    assert fetch(sim, auth=None).status_code == 401  # a body fault cannot hit a refusal
    assert sim.faults_pending == 0


def test_duplicate_lines_and_leak_do_not_change_truth(sim: Simulator) -> None:
    normal = fetch(sim, export_params(minutes=20, event='["Page View"]')).content
    sim.script([Fault.duplicate_lines(0.5), Fault.leak()])
    dup = fetch(sim, export_params(minutes=20, event='["Page View"]')).content
    leak = fetch(sim, export_params(minutes=20, event='["Page View"]')).content
    truth = hour_truth(sim, minutes=20, events=["Page View"])
    assert len(dup) > 1.3 * len(normal)
    assert count(dup) == count(normal) == truth
    lo = ts(HOUR)
    assert len(leak) > 10 * len(normal)
    assert count(leak, lo, lo + 1200, ["Page View"]) == truth


def test_gzip_when_asked(sim: Simulator) -> None:
    plain = fetch(sim).content
    r = fetch(sim, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Transfer-Encoding"] == "chunked"
    raw = r.raw.read(decode_content=False)
    assert raw[:2] == b"\x1f\x8b"
    assert len(raw) < len(plain) / 3
    assert gzip.decompress(raw) == plain
    assert sim.requests[-1]["headers"]["accept-encoding"] == "gzip"


def test_fault_after_bytes_counts_compressed_bytes(sim: Simulator) -> None:
    sim.script([Fault.cut_chunked(after_bytes=3_000)])
    r = fetch(sim, headers={"Accept-Encoding": "gzip"}, stream=True)
    raw = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        while chunk := r.raw.read(100, decode_content=False):
            raw += chunk
    assert len(raw) == 3_000


def test_fault_constructors_validate() -> None:
    for bad in (
        lambda: Fault.reset(-1),
        lambda: Fault.reset(1.5),
        lambda: Fault.stall(10, seconds=-1),
        lambda: Fault.trickle(10, interval=0),
        lambda: Fault.status(99),
        lambda: Fault.status(True),
        lambda: Fault.duplicate_lines(2),
        lambda: Fault.from_dict({"kind": "explode"}),
        lambda: Fault.from_dict({"kind": "reset"}),
        lambda: Fault.from_dict({"kind": "reset", "after_bytes": 1, "colour": "red"}),
    ):
        with pytest.raises(ValueError):
            bad()
    fault = Fault.status(429, retry_after=2)
    assert Fault.from_dict(fault.to_dict()) == fault
    assert fault.to_dict() == {"kind": "status", "status": 429, "retry_after": 2}


# -- observation, control, lifecycle --------------------------------------------------------------


def test_queries_and_requests_log(sim: Simulator) -> None:
    before = sim.queries
    sim.script([Fault.status(503)])
    fetch(sim, export_params(minutes=1))
    fetch(sim, export_params(minutes=1), auth=None)
    requests.get(sim.base_url + "/_sim/stats", timeout=5)  # not an export query
    assert sim.queries == before + 2
    first, second = sim.requests[-2:]
    assert first["fault"] == "status" and first["auth"] == "service_account"
    assert second["fault"] is None and second["auth"] is None
    assert first["params"]["from_date"] == DAY and "where" in first["params"]
    assert first["headers"]["accept-encoding"] == "identity"


def test_control_endpoints(sim: Simulator) -> None:
    base = sim.base_url
    spec = {"faults": [{"kind": "status", "status": 429, "retry_after": 1}, {"kind": "none"}]}
    r = requests.post(f"{base}/_sim/faults", json=spec, timeout=5)
    assert r.status_code == 200 and r.json()["faults_pending"] == 2
    stats = requests.get(f"{base}/_sim/stats", timeout=5).json()
    assert stats == {"queries": sim.queries, "faults_pending": 2}
    assert fetch(sim, export_params(minutes=1)).status_code == 429
    requests.delete(f"{base}/_sim/faults", timeout=5)
    assert sim.faults_pending == 0
    for bad in ({"faults": [{"kind": "explode"}]}, {"faults": [{"kind": "reset"}]}, {"x": 1}):
        r = requests.post(f"{base}/_sim/faults", json=bad, timeout=5)
        assert r.status_code == 400 and "error" in r.json()
    r = requests.post(f"{base}/_sim/faults", data=b"{not json", timeout=5)
    assert r.status_code == 400
    assert sim.faults_pending == 0

    end = HOUR + timedelta(minutes=30)
    query = {"from": HOUR.isoformat(), "to": str(ts(end)), "event": ["Purchase", "Search"]}
    got = requests.get(f"{base}/_sim/truth", params=query, timeout=5).json()
    want = sim.truth(HOUR, end, ["Purchase", "Search"])
    assert got == {
        "distinct_users": want.distinct_users,
        "events": want.events,
        "by_event": want.by_event,
    }
    naive = {"from": "2025-11-22T10:00:00", "to": "2025-11-22T10:30:00"}
    got = requests.get(f"{base}/_sim/truth", params=naive, timeout=5).json()
    assert got["events"] == sim.truth(HOUR, end).events
    assert requests.get(f"{base}/_sim/truth", timeout=5).status_code == 400


@pytest.mark.timing
def test_stop_returns_promptly_while_responses_stall() -> None:
    s = Simulator(SimConfig(seed=2, events_per_minute=20, today=TODAY)).start()
    s.script([Fault.stall(after_bytes=10_000, seconds=600), Fault.stall_headers(600)])
    s.script([Fault.trickle(after_bytes=10_000, interval=5)])
    errors: list[BaseException] = []

    def client() -> None:
        try:
            fetch(s, timeout=60)
        except requests.RequestException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    while s.queries < 3:
        time.sleep(0.02)
    time.sleep(0.2)
    began = time.monotonic()
    s.stop()
    assert time.monotonic() - began < 1.5
    for t in threads:
        t.join(timeout=3)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 3
    s.stop()  # idempotent


def test_client_disconnects_are_quiet(sim: Simulator, capfd: pytest.CaptureFixture) -> None:
    sim.script([Fault.trickle(after_bytes=1000, interval=0.01)])
    with fetch(sim, stream=True) as r:
        next(r.iter_content(100))
    with fetch(sim, params=export_params(start=None), stream=True) as r:
        next(r.iter_content(100))  # a whole day: the server is mid-body when we leave
    time.sleep(0.5)
    assert fetch(sim, export_params(minutes=1)).status_code == 200
    assert capfd.readouterr().err == ""


def test_keep_alive_across_queries(sim: Simulator) -> None:
    with requests.Session() as session:
        session.auth = AUTH
        session.headers.update(PLAIN)
        bodies = [session.get(sim.url, params=export_params(), timeout=5).content for _ in range(2)]
    assert bodies[0] == bodies[1]


def test_module_entry_point_runs_and_stops() -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "collector.simulator"]
    helped = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=env, timeout=20)
    assert helped.returncode == 0 and "--events-per-minute" in helped.stdout
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--seed", "3", "--events-per-minute", "5", "--users", "50"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        output = "".join(proc.stdout.readline() for _ in range(3))
        url = next(w for w in output.split() if w.endswith("/api/2.0/export"))
        yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        query = {"project_id": "1", "from_date": yesterday, "to_date": yesterday}
        r = requests.get(url, params=query | {"limit": "5"}, auth=AUTH, timeout=10)
        assert r.status_code == 200 and len(list(parse(r.content))) == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
