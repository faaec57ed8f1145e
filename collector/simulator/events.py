"""Deterministic synthetic events, their rendering as export lines, and the ground truth.

Events are generated per UTC minute from a PRNG seeded by (seed, minute), so any window can be
produced on its own and `truth()` sees exactly the events the server sends. Lines are rendered
from pre-encoded JSON fragments with one `%` format per event: json.dumps per event would be
several times slower, and benchmarks stream millions of lines.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

from collector.simulator.config import SimConfig

# One generated event: (utc_time, name_index, user_index, $insert_id (ASCII bytes) or None,
# duplicated, bits).
# `bits` drives every rendered property that does not matter for counting, and whether the
# event has a user (see `anonymous`).
Event = tuple[int, int, int, bytes | None, bool, int]

VARIANTS = 64  # pre-rendered fragments per kind; picked with 6 bits of an event's `bits`
USER_CACHE_MAX = 200_000  # rendered user fragments kept; cleared wholesale beyond that

# Lines are built as bytes: encoding str lines that hold non-ASCII text costs more than the
# formatting itself.
_LINE = (
    b'{"event":%s,"properties":{"time":%d,"distinct_id":%s,"$insert_id":"%s",'
    b'"mp_processing_time_ms":%d,%s,%s,%s}}\n'
)
_LINE_NO_ID = (
    b'{"event":%s,"properties":{"time":%d,"distinct_id":%s,"mp_processing_time_ms":%d,%s,%s,%s}}\n'
)
# Events with no user: half say `"distinct_id":""`, half leave it out (both forms are seen).
_LINE_NO_USER = (
    b'{"event":%s,"properties":{"time":%d,"$insert_id":"%s","mp_processing_time_ms":%d,%s,%s}}\n'
)
_LINE_NO_USER_NO_ID = b'{"event":%s,"properties":{"time":%d,"mp_processing_time_ms":%d,%s,%s}}\n'
EXTRA_NAME = "Custom Event %d"
ANONYMOUS_SCALE = 1 << 11  # bits 53..63 of an event's `bits` decide it has no user

_BROWSERS = (("Chrome", 131), ("Safari", 18), ("Firefox", 133), ("Microsoft Edge", 131))
_OSES = ("Windows", "Mac OS X", "iOS", "Android", "Linux")
_LIBS = (("web", "2.58.0"), ("iphone", "4.3.0"), ("android", "7.5.2"))
_SCREENS = ((1920, 1080), (1440, 900), (390, 844), (412, 915), (2560, 1440))
# Non-ASCII city names keep readers honest about UTF-8.
_PLACES = (
    ("San Francisco", "California", "US"),
    ("New York", "New York", "US"),
    ("São Paulo", "São Paulo", "BR"),
    ("Zürich", "Zurich", "CH"),
    ("Kraków", "Lesser Poland", "PL"),
    ("Montréal", "Quebec", "CA"),
    ("Bengaluru", "Karnataka", "IN"),
    ("Tokyo", "Tokyo", "JP"),
)
_REFERRERS = (
    "$direct",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/",
)
_PATHS = ("/", "/pricing", "/products", "/products/sku-%d", "/blog/post-%d", "/cart", "/search")
_CAMPAIGNS = (("google", "cpc", "brand"), ("newsletter", "email", "weekly"), (None, None, None))
_QUERIES = ("running shoes", "blue dress", "usb-c cable", "gift card", "standing desk", "tent")
# U+2028/U+2029 are legal raw inside JSON strings but split by str.splitlines().
_ODD_TEXT = ("Summer\u2028Sale", "line\u2029break", 'say "hi"')


@dataclass(frozen=True)
class Truth:
    distinct_users: int
    events: int  # deduplicated
    by_event: dict[str, int]  # deduplicated; only names with a count > 0


def _fragment(props: dict[str, Any]) -> bytes:
    """Properties as UTF-8 JSON members without braces; U+2028 stays raw (ensure_ascii=False)."""
    return json.dumps(props, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()


class EventSource:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        names = config.event_names
        weights = [1.0 / (rank + 1) for rank in range(len(names))]
        total = sum(weights)
        self._cumulative = [w / total for w in accumulate(weights)][:-1]
        self._names_json = [json.dumps(n, ensure_ascii=False).encode() for n in names]
        self._anonymous_below = int(config.anonymous_rate * ANONYMOUS_SCALE)
        # Late events: those whose 8 bits at 28 fall below this; 16 bits at 36 spread their lag.
        self._late_below = round(config.late_rate * 256)
        self._late_ms_per_step = config.late_hours * 3_600_000 / 0x10000
        self._zone = None if config.project_timezone == "UTC" else config.zone
        self._users: dict[int, tuple[bytes, bytes]] = {}
        rng = random.Random(f"{config.seed}:fragments")
        self._pages = [self._page(rng, i) for i in range(VARIANTS)]
        self._extras = [[self._extra(n, rng, i) for i in range(VARIANTS)] for n in names]
        self._extras.append([self._extra(EXTRA_NAME % 0, rng, i) for i in range(VARIANTS)])

    # -- generation -----------------------------------------------------------------------------

    def minute(self, minute: int) -> list[Event]:
        """Every event whose true UTC time falls in this minute (epoch // 60), in creation order."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}:{minute}")
        rnd, getbits = rng.random, rng.getrandbits
        cumulative, users = self._cumulative, cfg.users
        named, extra = len(cfg.event_names), cfg.extra_names
        no_id, dup_rate = cfg.no_insert_id_rate, cfg.duplicate_rate
        # Uniform in [0.5, 1.5) x mean, rounded stochastically: the mean stays exact.
        count = int(cfg.events_per_minute * (0.5 + rnd()) + rnd())
        base = minute * 60
        events: list[Event] = []
        for i in range(count):
            second = int(rnd() * 60)
            drawn = rnd()
            # With extra names, every name of the larger set is equally likely.
            name = int(drawn * (named + extra)) if extra else bisect_right(cumulative, drawn)
            user = int(users * rnd() ** 2)  # skewed: a few users are very active
            bits = getbits(64)
            keyed = rnd() >= no_id
            duplicated = rnd() < dup_rate and keyed
            # Minute and index make ids unique by construction, so the dedupe key never collides.
            insert_id = b"%012x-%x-%x" % (getbits(48), minute, i) if keyed else None
            events.append((base + second, name, user, insert_id, duplicated, bits))
        return events

    def offset(self, minute: int) -> int:
        """Project-zone UTC offset (s) at the start of this minute; zones shift on whole minutes."""
        if self._zone is None:
            return 0
        offset = datetime.fromtimestamp(minute * 60, self._zone).utcoffset()
        return int(offset.total_seconds()) if offset else 0

    def anonymous(self, bits: int) -> bool:
        """True if the event with these `bits` has no user (empty or missing distinct_id)."""
        return bits >> 53 < self._anonymous_below

    def name_of(self, index: int) -> str:
        names = self.config.event_names
        return names[index] if index < len(names) else EXTRA_NAME % (index - len(names))

    def indices(self, names: set[str] | frozenset[str]) -> set[int]:
        """The name indices of these event names (unknown names have none)."""
        known = self.config.event_names
        found = {i for i, n in enumerate(known) if n in names}
        prefix = EXTRA_NAME.split("%")[0]
        for name in names:
            tail = name[len(prefix) :] if name.startswith(prefix) else ""
            if tail.isdigit() and int(tail) < self.config.extra_names and str(int(tail)) == tail:
                found.add(len(known) + int(tail))
        return found

    def processed_ms(self, t: int, bits: int) -> int:
        """When the event with this `time` and these `bits` reached the export (epoch ms): a
        few seconds after `time`, or hours later for an offline device or a late event."""
        lag = 120 + (bits >> 12 & 0xFFFF)  # ingestion lag in ms
        if (bits >> 28 & 0xFF) < self._late_below:
            lag += int((bits >> 36 & 0xFFFF) * self._late_ms_per_step)
        elif not bits >> 28 & 0xFF:  # offline: up to 18 hours
            lag += (bits >> 36 & 0xFFFF) * 1000
        return t * 1000 + lag

    def truth(
        self,
        start: float,
        end: float,
        names: set[str] | None = None,
        arrived_by: float | Callable[[int], float] | None = None,
    ) -> Truth:
        """Ground truth for true UTC times in [start, end); with `arrived_by`, only of the
        events processed by then (epoch seconds, or a function of the event's time to it).

        Every generated event is one deduplicated event: a duplicate line repeats its original's
        (event, distinct_id, time, $insert_id), ids are unique, and events without $insert_id are
        never repeated. Events with no user count as events, not as users (Mixpanel's rule).
        """
        wanted = None if names is None else self.indices(names)
        counts: dict[int, int] = {}
        users: set[int] = set()
        by = arrived_by if callable(arrived_by) or arrived_by is None else lambda _t: arrived_by
        for minute in range(math.floor(start / 60), math.ceil(end / 60)):
            for t, name, user, _id, _dup, bits in self.minute(minute):
                if by is not None and self.processed_ms(t, bits) > by(t) * 1000:
                    continue
                if start <= t < end and (wanted is None or name in wanted):
                    counts[name] = counts.get(name, 0) + 1
                    if not self.anonymous(bits):
                        users.add(user)
        by_event = {self.name_of(i): c for i, c in sorted(counts.items())}
        return Truth(distinct_users=len(users), events=sum(counts.values()), by_event=by_event)

    # -- rendering ------------------------------------------------------------------------------

    def render(self, timed: list[tuple[int, Event]]) -> list[bytes]:
        """One line per (written_time, event); written_time is `time` as the project shows it."""
        pages, extras, user_of = self._pages, self._extras, self._user
        name_json, known, anonymous = self.name_json, len(self._names_json), self._anonymous_below
        late_below, late_step = self._late_below, self._late_ms_per_step
        lines = []
        append = lines.append
        for written, (t, index, user, insert_id, _dup, bits) in timed:
            distinct_id, user_props = user_of(user)
            name = min(index, known)  # extra names share one set of property fragments
            # Stamped at ingestion, so taken as true UTC even in shifted (legacy) projects.
            # processed_ms(), inline: this loop renders millions of lines for the benchmarks.
            processed = t * 1000 + 120 + (bits >> 12 & 0xFFFF)
            if (bits >> 28 & 0xFF) < late_below:
                processed += int((bits >> 36 & 0xFFFF) * late_step)
            elif not bits >> 28 & 0xFF:
                processed += (bits >> 36 & 0xFFFF) * 1000
            page, extra = pages[bits & 63], extras[name][bits >> 6 & 63]
            event = name_json(index)
            if bits >> 53 < anonymous:
                if bits >> 52 & 1:  # the other half say `"distinct_id":""`
                    distinct_id = b'""'
                elif insert_id is None:
                    append(_LINE_NO_USER_NO_ID % (event, written, processed, page, extra))
                    continue
                else:
                    append(_LINE_NO_USER % (event, written, insert_id, processed, page, extra))
                    continue
            if insert_id is None:
                args = (event, written, distinct_id, processed, user_props, page, extra)
                append(_LINE_NO_ID % args)
            else:
                args = (event, written, distinct_id, insert_id, processed, user_props, page)
                append(_LINE % (*args, extra))
        return lines

    def name_json(self, index: int) -> bytes:
        if index < len(self._names_json):
            return self._names_json[index]
        return json.dumps(self.name_of(index)).encode()

    def distinct_id(self, user: int) -> str:
        return f"u-{user}"

    def _user(self, user: int) -> tuple[bytes, bytes]:
        cached = self._users.get(user)
        if cached is None:
            if len(self._users) >= USER_CACHE_MAX:
                self._users.clear()
            cached = self._users[user] = self._render_user(user)
        return cached

    def _render_user(self, user: int) -> tuple[bytes, bytes]:
        rng = random.Random(f"{self.config.seed}:user:{user}")
        browser, version = rng.choice(_BROWSERS)
        lib, lib_version = rng.choice(_LIBS)
        width, height = rng.choice(_SCREENS)
        city, region, country = rng.choice(_PLACES)
        referrer = rng.choice(_REFERRERS)
        device = "-".join(f"{rng.getrandbits(b * 4):0{b}x}" for b in (11, 14, 8, 6, 11))
        props = {
            "$device_id": device,
            "$browser": browser,
            "$browser_version": version,
            "$os": rng.choice(_OSES),
            "$city": city,
            "$region": region,
            "mp_country_code": country,
            "$screen_width": width,
            "$screen_height": height,
            "mp_lib": lib,
            "$lib_version": lib_version,
            "$initial_referrer": referrer,
            "plan": rng.choice(("free", "free", "pro", "enterprise")),
        }
        return json.dumps(self.distinct_id(user)).encode(), _fragment(props)

    @staticmethod
    def _page(rng: random.Random, variant: int) -> bytes:
        path = rng.choice(_PATHS)
        path = path % rng.randrange(1000) if "%d" in path else path
        source, medium, campaign = rng.choice(_CAMPAIGNS)
        title = f"Example Shop | {path.strip('/').title() or 'Home'}"
        odd = {7: 0, 41: 1, 23: 2}.get(variant)  # ~3% of events: raw U+2028 / U+2029, quotes
        if odd is not None:
            title = f"{title} {_ODD_TEXT[odd]}"
        referrer = rng.choice(_REFERRERS)
        props: dict[str, Any] = {
            "$current_url": f"https://shop.example.com{path}",
            "$title": title,
            "$referrer": referrer,
            "$referring_domain": referrer.split("/")[2] if "//" in referrer else referrer,
            "$session_id": f"{rng.getrandbits(64):016x}",
        }
        if source:
            props |= {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
        return _fragment(props)

    @staticmethod
    def _extra(name: str, rng: random.Random, variant: int) -> bytes:
        sku = f"sku-{rng.randrange(1000)}"
        by_name: dict[str, dict[str, Any]] = {
            "Page View": {"page_type": rng.choice(("home", "product", "blog", "checkout"))},
            "Sign Up": {"signup_method": rng.choice(("email", "google", "apple"))},
            "Purchase": {
                "product_id": sku,
                "amount": round(rng.uniform(3, 300), 2),
                "currency": rng.choice(("USD", "EUR", "BRL")),
                "quantity": rng.randrange(1, 4),
            },
            "Search": {
                "query": _ODD_TEXT[0] if variant == 5 else rng.choice(_QUERIES),
                "results": rng.randrange(0, 80),
            },
            "Add To Cart": {"product_id": sku, "price": round(rng.uniform(3, 300), 2)},
        }
        props = by_name.get(name, {"source": rng.choice(("web", "app")), "value": variant})
        props["$duration_ms"] = rng.randrange(5, 60_000)
        return _fragment(props)
