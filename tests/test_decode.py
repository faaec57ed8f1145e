from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.export.decode import Batch, BodyEnd, EventFilter, LineSplitter, LineStats, Row
from collector.window import ProjectTime, Window

W = Window(datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 11, tzinfo=UTC))
T0 = int(W.start_ts)


def line(event: str = "Sign Up", did: object = "u1", t: object = T0 + 5, **extra: object) -> bytes:
    props: dict[str, object] = {"time": t, "distinct_id": did, "$browser": "Chrome", **extra}
    return json.dumps({"event": event, "properties": props}).encode() + b"\n"


def decode(block: bytes, names: list[str] | None = None, zone: str = "UTC"):
    stats, end = LineStats(), BodyEnd()
    batch = EventFilter(W, names, ProjectTime(zone)).decode_block(block, stats, end)
    # A batch yields plain tuples in Row's field order; name the fields for the assertions.
    return [Row(*r) for r in batch], end, stats


def fed(splitter: LineSplitter, chunk: bytes) -> bytes:
    return b"".join(bytes(b) for b in splitter.feed(chunk))


def test_splitter_carries_partial_lines_between_chunks() -> None:
    body = line(did="a") + line(did="b") + line(did="c")
    splitter = LineSplitter()
    blocks = [fed(splitter, body[i : i + 7]) for i in range(0, len(body), 7)]
    assert b"".join(blocks) == body
    assert not splitter.unfinished


def test_splitter_reports_a_body_cut_inside_a_line() -> None:
    splitter = LineSplitter()
    splitter.feed(line(did="a") + line(did="b")[:20])
    assert splitter.unfinished


def test_splitter_decodes_whole_lines_in_place_and_joins_only_the_spanning_one() -> None:
    body = line(did="a") + line(did="b") + line(did="c")
    cut = len(line(did="a")) + 10
    splitter = LineSplitter()
    assert [bytes(b) for b in splitter.feed(body[:cut])] == [line(did="a")]
    second = body[cut:]
    blocks = splitter.feed(second)
    assert [bytes(b) for b in blocks] == [line(did="b"), line(did="c")]
    assert isinstance(blocks[1], memoryview) and blocks[1].obj is second  # a view, not a copy
    assert not splitter.unfinished


def test_splitter_drops_an_overlong_line_without_holding_it() -> None:
    splitter = LineSplitter(max_line=100)
    out = fed(splitter, b"x" * 80) + fed(splitter, b"y" * 80) + fed(splitter, b"z\n" + line())
    assert out == line()
    assert splitter.dropped == 1


def test_u2028_inside_a_string_does_not_split_a_line() -> None:
    props = f'"time":{T0 + 1},"distinct_id":"u1","t":"a\u2028b"'
    raw = '{"event":"Sign Up","properties":{' + props + "}}\n"
    rows, _, stats = decode(raw.encode())
    assert [r.distinct_id for r in rows] == ["u1"]
    assert stats.bad_lines == 0


def test_unreadable_lines_are_counted_sampled_and_skipped() -> None:
    block = line(did="a") + b"not json at all\n" + b'{"event":"x","properties":{\n' + line(did="b")
    rows, end, stats = decode(block)
    assert [r.distinct_id for r in rows] == ["a", "b"]
    assert (stats.bad_lines, stats.unreadable, end.unreadable) == (2, 2, 2)
    assert stats.lines == 4
    assert not end.marker and end.last_ok
    assert [s.split(":")[0] for s in stats.samples] == ["unreadable (not JSON)"] * 2
    assert all(len(s) < 260 for s in stats.samples)


def test_an_event_without_distinct_id_is_an_event_with_no_user() -> None:
    no_user = json.dumps({"event": "Sign Up", "properties": {"time": T0}}).encode() + b"\n"
    rows, end, stats = decode(line(did="a") + no_user + line(did=""))
    assert [r.distinct_id for r in rows] == ["a", "", ""]
    assert stats.bad_lines == 0 and end.last_ok


def test_lines_that_are_json_but_not_events_leave_the_answer_exact() -> None:
    local = T0 + 5 - 8 * 3600  # written as Los Angeles wall clock (UTC-8 in November)
    block = (
        line(did="a", t=local)
        + b'{"properties":{"time":%d,"distinct_id":"x"}}\n' % local  # no event name
        + b'{"event":"A","properties":{"distinct_id":"x"}}\n'  # no time
        + line(t=True)  # a wrong type
        + line(t=1e300)  # out of range (and no date in any time zone)
        + line(t=-5)  # before 1970
        + b"[1, 2]\n"  # not an object
        + line(did="b", t=local)
    )
    rows, end, stats = decode(block, zone="America/Los_Angeles")
    assert [(r.distinct_id, r.time) for r in rows] == [("a", T0 + 5), ("b", T0 + 5)]
    assert (stats.bad_lines, stats.unreadable, end.unreadable) == (6, 0, 0)
    assert end.last_ok
    assert all(s.startswith("not an event") for s in stats.samples)


@pytest.mark.parametrize("field", ["event", "distinct_id", "$insert_id"])
def test_invalid_utf8_in_any_string_is_an_unreadable_line(field: str) -> None:
    bad = line(**{"$insert_id": "id-1"}).replace(
        b'"%s": "' % field.encode(), b'"%s": "\xff' % field.encode()
    )
    assert b"\xff" in bad
    rows, end, stats = decode(line(did="a") + bad + line(did="b"))
    assert [r.distinct_id for r in rows] == ["a", "b"]
    assert (stats.unreadable, end.unreadable) == (1, 1)
    assert "invalid UTF-8" in stats.samples[0]


def test_the_last_line_decides_whether_the_block_ends_on_an_event() -> None:
    assert decode(line() + b'{"event":"A","properties":{}}\n')[1].last_ok is False
    assert decode(line() + line(t=1e300))[1].last_ok is False
    assert decode(line(t="soon") + line())[1].last_ok is True


@pytest.mark.parametrize(
    "marker",
    [
        b"terminated early",
        b"export terminated early",
        b"Export Terminated Early",
        b"[terminated early]",
    ],
)
def test_every_form_of_the_early_end_marker_is_detected(marker: bytes) -> None:
    block = line(did="a") + line(did="b")[:30] + b"\n" + marker + b"\n"
    rows, end, stats = decode(block)
    assert end.marker and not end.last_ok
    assert [r.distinct_id for r in rows] == ["a"]
    assert stats.bad_lines == 1  # the record Mixpanel cut
    assert stats.lines == 2  # the marker is no line of data


def test_client_side_filtering_of_window_and_names() -> None:
    block = (
        line(did="in")
        + line(did="before", t=T0 - 1)
        + line(did="at-end", t=int(W.end_ts))
        + line(event="Purchase", did="other-name")
    )
    rows, _, stats = decode(block, names=["Sign Up"])
    assert [r.distinct_id for r in rows] == ["in"]
    assert stats.skipped == 3


def test_time_as_string_or_milliseconds_and_numeric_ids() -> None:
    block = line(did=7, t=str(T0 + 1)) + line(did="m", t=(T0 + 2) * 1000) + line(t="soon")
    rows, _, stats = decode(block)
    assert [(r.distinct_id, r.time) for r in rows] == [("7", T0 + 1), ("m", T0 + 2)]
    assert stats.bad_lines == 1


def test_project_zone_times_are_shifted_back_to_utc() -> None:
    written = T0 + 60 - 8 * 3600  # 10:01 UTC as Los Angeles wall clock
    rows, _, _ = decode(line(t=written), zone="America/Los_Angeles")
    assert [r.time for r in rows] == [T0 + 60]


def test_insert_id_is_kept_for_deduplication() -> None:
    rows, _, _ = decode(line(**{"$insert_id": "abc"}) + line())
    assert [r.insert_id for r in rows] == ["abc", None]


def test_a_block_with_one_odd_line_keeps_every_good_line() -> None:
    """The strict fast path fails for the whole block; the lenient pass keeps the rest exact."""
    good = [line(did=f"u{i}", **{"$insert_id": f"i{i}"}) for i in range(50)]
    odd = line(did="s", t=str(T0 + 9))  # time as a string: not for the strict decoder
    rows, _, stats = decode(b"".join(good[:25]) + odd + b"".join(good[25:]))
    assert [r.distinct_id for r in rows] == [f"u{i}" for i in range(25)] + ["s"] + [
        f"u{i}" for i in range(25, 50)
    ]
    assert stats.bad_lines == 0 and stats.lines == 51


def test_decoding_a_memoryview_block_matches_decoding_bytes() -> None:
    block = line(did="a", t=(T0 + 3) * 1000) + line(did=5) + line(did="x", t=T0 - 10)
    stats = LineStats()
    flt = EventFilter(W, None, ProjectTime("UTC"))
    from_view = flt.decode_block(memoryview(block), stats, BodyEnd())
    from_bytes = flt.decode_block(block, stats, BodyEnd())
    assert (
        list(from_view)
        == list(from_bytes)
        == [("Sign Up", "a", T0 + 3, None), ("Sign Up", "5", T0 + 5, None)]
    )
    assert stats.skipped == 2


rows_of_a_batch = st.lists(
    st.tuples(
        st.text(max_size=3),
        st.sampled_from(["a", "", "b"]),
        st.floats(0, 1e9),
        st.none() | st.text(max_size=3),
    ),
    max_size=5,
)


@given(st.lists(rows_of_a_batch, max_size=4))
def test_joined_batches_hold_every_row_in_order_and_leave_their_parts_alone(
    parts: list[list[tuple[str, str, float, str | None]]],
) -> None:
    batches = [Batch.of(p) for p in parts]
    before = [list(b) for b in batches]
    joined = Batch.join(batches)
    assert list(joined) == [r for p in parts for r in p]
    assert [list(b) for b in batches] == before
