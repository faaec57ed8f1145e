from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from collector.window import (
    EmptyWindow,
    ProjectTime,
    Window,
    export_days,
    parse_instant,
    where_clause,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_parse_instant_accepts_iso_and_epoch() -> None:
    assert parse_instant("2026-11-23T10:00:00Z", "from") == utc(2026, 11, 23, 10)
    assert parse_instant("2026-11-23T11:00:00+01:00", "from") == utc(2026, 11, 23, 10)
    assert parse_instant("2026-11-23T10:00:00", "from") == utc(2026, 11, 23, 10)
    assert parse_instant("1763892000", "from") == utc(2025, 11, 23, 10)
    with pytest.raises(ValueError, match="from='yesterday'"):
        parse_instant("yesterday", "from")


def test_empty_window_is_refused() -> None:
    with pytest.raises(EmptyWindow, match="must be before"):
        Window(utc(2026, 1, 1, 1), utc(2026, 1, 1, 1))


def test_utc_days_and_half_open_end() -> None:
    w = Window(utc(2026, 11, 22, 23), utc(2026, 11, 23, 0))
    days = export_days(w, ProjectTime("UTC"), now=utc(2026, 11, 23, 5))
    assert days == (date(2026, 11, 22), date(2026, 11, 22))  # [23:00, 00:00) is one day


def test_to_date_is_clamped_to_project_today() -> None:
    w = Window(utc(2026, 11, 23, 0), utc(2026, 11, 24, 0))
    days = export_days(w, ProjectTime("UTC"), now=utc(2026, 11, 23, 5))
    assert days == (date(2026, 11, 23), date(2026, 11, 23))


def test_project_zone_days_follow_the_zone() -> None:
    # 02:00-03:00 UTC on the 23rd is still the 22nd in Los Angeles.
    w = Window(utc(2026, 11, 23, 2), utc(2026, 11, 23, 3))
    days = export_days(w, ProjectTime("America/Los_Angeles"), now=utc(2026, 11, 23, 12))
    assert days == (date(2026, 11, 22), date(2026, 11, 22))


def test_project_zone_time_values_convert_back_to_utc() -> None:
    pt = ProjectTime("America/Los_Angeles")
    true_utc = utc(2026, 11, 23, 10).timestamp()
    written = true_utc - 8 * 3600  # PST: local wall clock read as UTC
    assert pt.to_utc(written) == true_utc
    assert pt.shift_for(Window(utc(2026, 11, 23, 9), utc(2026, 11, 23, 11))) == -8 * 3600
    # A window across the DST change has no single shift: per-event conversion applies.
    assert pt.shift_for(Window(utc(2026, 11, 1, 0), utc(2026, 11, 1, 12))) is None


def test_where_clause_spans_the_window() -> None:
    w = Window(utc(2026, 11, 23, 10), utc(2026, 11, 23, 11))
    start, end = int(w.start_ts), int(w.end_ts)
    assert where_clause(w, ProjectTime("UTC")) == (
        f'properties["$time"] >= datetime({start}) and properties["$time"] < datetime({end})'
    )
    wide = where_clause(w, ProjectTime("Asia/Kolkata"))  # +05:30: covers both readings
    assert f"datetime({start})" in wide
    assert f"datetime({end + 5 * 3600 + 1800})" in wide
