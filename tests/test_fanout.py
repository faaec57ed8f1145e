"""One stream, many rules: each slot counts exactly its own rows, and equal slots share one set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from collector.export.batch import Batch, Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.fanout import Fanout, Slot
from collector.window import Window

T0 = datetime(2026, 11, 22, tzinfo=UTC)
DAY = Window(T0, T0 + timedelta(days=1))
HOUR = Window(T0 + timedelta(hours=23), T0 + timedelta(days=1))

rows_st = st.lists(
    st.tuples(
        st.sampled_from(["Sign Up", "Purchase", "View"]),
        st.sampled_from(["u1", "u2", "u3", "u4"]),
        st.sampled_from([DAY.start_ts + 10.0, HOUR.start_ts + 5.0, DAY.end_ts - 1.0]),
        st.sampled_from(["i1", "i2", "i3", None]),
    ),
    max_size=40,
)


def slots() -> list[Slot]:
    return [
        Slot("distinct_users", DAY, ()),
        Slot("events", DAY, ()),
        Slot("active_users", DAY, ()),
        Slot("events", DAY, ("Purchase",)),
        Slot("distinct_users", HOUR, ()),
        Slot("events", HOUR, ("Purchase", "View")),
    ]


def alone(slot: Slot, rows: list[Row]) -> int:
    """The slot's value from its own rows only, with an aggregator of its own."""
    agg = EventCounts() if slot.metric == "events" else DistinctUsers()
    agg.new_attempt()
    mine = [
        r
        for r in rows
        if slot.start <= r[2] < slot.end and (slot.names is None or r[0] in slot.names)
    ]
    agg.add(mine)
    return agg.value()


@given(st.lists(rows_st, max_size=3), st.integers(1, 3))
def test_every_slot_counts_what_it_would_alone(blocks: list[list[Row]], attempts: int) -> None:
    fanout = Fanout(slots(), DAY)
    for _ in range(attempts):  # re-reads, as retries do: nothing may count twice
        fanout.new_attempt()
        for block in blocks:
            fanout.add(Batch.of(block))
    every = [r for block in blocks for r in block]
    for slot in fanout.slots:
        assert slot.value() == alone(slot, every), slot.metric
    counts = EventCounts()
    counts.new_attempt()
    counts.add(every)
    assert fanout.duplicates() == attempts * len(every) - counts.value()


def test_slots_that_count_the_same_thing_share_one_set() -> None:
    users, events, active, purchases, *_ = (fanout := Fanout(slots(), DAY)).slots
    assert users.agg is active.agg  # distinct and active users of one window: one set
    assert fanout.counts is events.agg  # the query-level count is the whole-window slot's
    assert purchases.agg is not events.agg
    assert len({id(s.agg) for s in fanout.slots}) == 5
    # Without the query window, the query-level count is its own.
    assert Fanout(slots()).counts is not Fanout(slots()).slots[1].agg
