"""Planning and bookkeeping of the reads an answer makes: which pieces of time go in which
Export query, how rows reach their slice, and the figures of all the reads added up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from collector.errors import UpstreamUnavailable
from collector.export.batch import Batch
from collector.ledger.state import SliceCollector

MAX_PIECES = 16  # pieces of time in one query's `where`: it stays a URL of reasonable length


@dataclass
class Range:
    start: int
    end: int
    keep: bool  # to keep in the ledger once read (not an edge, and the store works)
    edge: bool = False  # an unaligned edge of the window, read for this answer only


class Parts:
    """A sink that routes each row to the part (slice or edge) its time falls in.

    `parts` are disjoint (routed by binary search); each of `overlays` gets every row of its
    own span as well, whatever part it is in (a window's edge inside a slice that another
    window reads whole)."""

    def __init__(
        self, parts: list[SliceCollector], overlays: list[SliceCollector] | None = None
    ) -> None:
        self.parts = sorted(parts, key=lambda p: p.start)
        self.overlays = overlays or []
        self.starts = np.array([p.start for p in self.parts], dtype=np.float64)
        self.ends = np.array([p.end for p in self.parts], dtype=np.float64)

    def new_attempt(self) -> None:
        for part in (*self.parts, *self.overlays):
            part.new_attempt()

    def add(self, rows: Batch) -> None:
        for overlay in self.overlays:
            inside = (rows.times >= overlay.start) & (rows.times < overlay.end)
            if inside.any():
                overlay.add(rows if inside.all() else rows.select(inside))
        if not self.parts:
            return
        # A row between parts (in an overlay's span only) belongs to no part.
        index = np.searchsorted(self.starts, rows.times, side="right") - 1
        inside = (index >= 0) & (rows.times < self.ends[np.maximum(index, 0)])
        if len(self.parts) == 1 and inside.all():
            self.parts[0].add(rows)
            return
        for k in np.unique(index[inside]).tolist():
            self.parts[k].add(rows.select(inside & (index == k)))


def merged(spans: list[tuple[int, int]]) -> list[Range]:
    """Overlapping spans united, as disjoint ranges in order; spans that only touch stay apart
    (so that a long run of slices can still be cut into queries)."""
    out: list[Range] = []
    for start, end in sorted(spans):
        if out and start < out[-1].end:
            out[-1].end = max(out[-1].end, end)
        else:
            out.append(Range(start, end, keep=False))
    return out


def queries(pieces: list[list[Range]], longest: int) -> list[list[list[Range]]]:
    """Pieces grouped into queries: at most MAX_PIECES each, none spanning more than `longest`
    seconds (MAX_WINDOW_DAYS: one query of a month would be a month of bytes at once)."""
    queries: list[list[list[Range]]] = []
    for piece in pieces:
        for part in split(piece, longest):
            last = queries[-1] if queries else None
            if (
                last is not None
                and len(last) < MAX_PIECES
                and part[-1].end - last[0][0].start <= longest
            ):
                last.append(part)
            else:
                queries.append([part])
    return queries


def split(piece: list[Range], longest: int) -> list[list[Range]]:
    parts: list[list[Range]] = [[]]
    for r in piece:
        if parts[-1] and r.end - parts[-1][0].start > longest:
            parts.append([])
        parts[-1].append(r)
    return parts


def touching(ranges: list[Range]) -> list[list[Range]]:
    groups: list[list[Range]] = []
    for r in ranges:
        if groups and groups[-1][-1].end == r.start:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Figures:
    """The export figures of every read an answer made, added up."""

    def __init__(self) -> None:
        self.totals: dict[str, Any] = {
            "attempts": 0,
            "events": 0,
            "bad_lines": 0,
            "unreadable": 0,
            "skipped": 0,
            "lines": 0,
            "bytes": 0,
        }
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.queries = 0
        self.error: UpstreamUnavailable | None = None

    def add(self, export: dict[str, Any]) -> None:
        self.queries += export.get("attempts", 0)  # queries sent: a spent budget sends none
        for key in self.totals:
            self.totals[key] += export.get(key, 0)
        self.errors.extend(export.get("errors", []))
        self.warnings.extend(w for w in export.get("warnings", []) if w not in self.warnings)

    def failed(self, exc: UpstreamUnavailable) -> None:
        self.error = self.error or exc
        if exc.export:
            self.add(exc.export)

    def as_dict(self, seconds: float) -> dict[str, Any]:
        out = {**self.totals, "seconds": round(seconds, 3), "errors": self.errors}
        if self.warnings:
            out["warnings"] = self.warnings
        return out
