"""What a read reports: its figures over every attempt, and why it is partial if it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collector.export.retry import Failure


@dataclass
class ExportReport:
    """The figures of one read, over all its attempts (see the README's answer fields)."""

    complete: bool = False
    attempts: int = 0
    lines: int = 0
    events: int = 0
    skipped: int = 0
    bad_lines: int = 0
    unreadable: int = 0  # of the bad lines, those that could not be read (they make it partial)
    duplicates: int | None = None  # rows read but not counted, where the sink knows it
    bytes: int = 0
    seconds: float = 0.0
    errors: list[Failure] = field(default_factory=list)
    bad_line_samples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    note: str | None = None  # why the answer is a lower bound, when it is

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": self.attempts, "events": self.events}
        if self.duplicates is not None:
            out["duplicates"] = self.duplicates
        out.update(
            bad_lines=self.bad_lines,
            unreadable=self.unreadable,
            skipped=self.skipped,
            lines=self.lines,
            bytes=self.bytes,
            seconds=round(self.seconds, 3),
            errors=[f.as_dict() for f in self.errors],
        )
        if self.warnings:
            out["warnings"] = self.warnings
        return out
