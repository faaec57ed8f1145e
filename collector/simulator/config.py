"""SimConfig: every knob of the simulator. Output is a pure function of this value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

DEFAULT_EVENT_NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    events_per_minute: float = 40  # mean; each UTC minute draws its own count around it
    users: int = 500  # size of the distinct_id pool
    event_names: tuple[str, ...] = DEFAULT_EVENT_NAMES  # weighted 1/rank: first is most common
    duplicate_rate: float = 0.02  # keyed events whose line is sent twice
    no_insert_id_rate: float = 0.01  # events without $insert_id (never duplicated)
    malformed_per_query: int = 2  # lines that are not events, per non-empty response body
    anonymous_rate: float = 0.005  # events with an empty or missing distinct_id (no user)
    extra_names: int = 0  # more event names, "Custom Event <k>", drawn uniformly (cardinality)
    # Events that reach the export late (offline devices, /import): about this share of them
    # (in steps of 1/256) is processed up to `late_hours` after its `time`, uniformly. Only a
    # simulator given a clock (`Simulator.set_clock`) holds them back until then.
    late_rate: float = 0.0
    late_hours: float = 48.0
    username: str = "sim-user"
    secret: str = "sim-secret"
    project_id: str = "1"
    api_secret: str | None = None  # enables the legacy auth form (user=api_secret, no password)
    project_timezone: str = "UTC"  # days and written `time` values are in this zone
    honour_where: bool = True
    honour_event_filter: bool = True
    today: date | None = None  # None: the real current date in the project zone

    def __post_init__(self) -> None:
        if self.events_per_minute < 0:
            raise ValueError("events_per_minute must be >= 0")
        if self.users < 1:
            raise ValueError("users must be >= 1")
        if not self.event_names or len(set(self.event_names)) != len(self.event_names):
            raise ValueError("event_names must be non-empty and unique")
        for name in ("duplicate_rate", "no_insert_id_rate", "anonymous_rate", "late_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.malformed_per_query < 0:
            raise ValueError("malformed_per_query must be >= 0")
        if self.extra_names < 0:
            raise ValueError("extra_names must be >= 0")
        if self.late_hours <= 0:
            raise ValueError("late_hours must be > 0")
        ZoneInfo(self.project_timezone)  # fail at construction, not on the first query

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.project_timezone)  # ZoneInfo caches instances per key
