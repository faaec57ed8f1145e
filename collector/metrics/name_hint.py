"""The hint of an answer whose asked event names were not all read: names are exact and
case-sensitive, and the closest name the answer saw, if it saw one close enough.

A read from the export sees only the names it asked for (Mixpanel filters on the query's
`event`), so there a suggestion comes only from another asked name; a ledger answer sees every
name of the slices it keeps, so `sign up` there finds `Sign Up`.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.export.batch import Batch
from collector.export.reader import Sink
from collector.suggest import closest

SAMPLE_NAMES = 10_000  # names kept to suggest from: a window may hold a million
SHOWN_NAMES = 5  # missing names the hint spells out


class NamesSeen:
    """Which of the asked names occurred in what was read, and a bounded sample of every name
    seen, to suggest from."""

    def __init__(self, asked: Sequence[str]) -> None:
        self.asked = tuple(asked)
        self._asked = frozenset(asked)
        self.found: set[str] = set()
        self.sample: set[str] = set()

    def see(self, names: Sequence[str]) -> None:
        """Names read (a batch's, one per row, or a slice's): repeats cost nothing more."""
        if not self._asked:
            return
        self.found.update(self._asked.intersection(names))
        room = SAMPLE_NAMES - len(self.sample)
        if room > 0:
            self.sample.update(names[:room] if len(names) > room else names)

    def hint(self) -> str | None:
        """What to check, if an asked name was not read at all; None if every one was."""
        missing = [name for name in self.asked if name not in self.found]
        if not missing:
            return None
        shown = [self._shown(name) for name in missing[:SHOWN_NAMES]]
        if len(missing) > SHOWN_NAMES:
            shown.append(f"{len(missing) - SHOWN_NAMES} more")
        listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        return (
            f"no event named {listed} was read in the window: event names are exact and "
            "case-sensitive; /events without event= lists the window's names in by_event"
        )

    def _shown(self, name: str) -> str:
        close = closest(name, sorted(self.sample))
        return f"{name[:60]!r}" + (f" (did you mean {close!r}?)" if close else "")


class Watched:
    """A sink that also tells `seen` the names of every batch it is given."""

    def __init__(self, sink: Sink, seen: NamesSeen) -> None:
        self.sink, self.seen = sink, seen

    def new_attempt(self) -> None:
        self.sink.new_attempt()

    def add(self, rows: Batch) -> None:
        self.seen.see(rows.names)
        self.sink.add(rows)
