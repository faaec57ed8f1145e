"""`by_event` of an answer: counts per event name, kept as arrays until the answer is sent.

A window can hold a million event names. As a dict they would cost a string, an entry and an
int object each on top of the counting state; here the answer reads the names and counts the
aggregator already holds, and is encoded straight to JSON bytes (`to_json`) when it is sent.
It is a read-only `Mapping`, so code and tests use it like the dict it stands for. Names come
most counted first (ties in the order they were first read), which needs no object per name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import msgspec
import numpy as np

if TYPE_CHECKING:
    from collector.metrics.names import NameCodes

_encode = msgspec.json.encode


class NameCounts(Mapping[str, int]):
    """Names with a count above zero and their counts, most counted first."""

    __slots__ = ("_counts", "_index", "_names", "_order")

    def __init__(self, names: NameCodes, counts: np.ndarray) -> None:
        self._names = names
        present = np.flatnonzero(counts)
        self._order = present[np.argsort(-counts[present], kind="stable")]
        self._counts = counts
        self._index: dict[str, int] | None = None  # built only if someone looks a name up

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return map(self._names.name, self._order.tolist())

    def __getitem__(self, name: str) -> int:
        if self._index is None:
            self._index = dict(self.items())
        return self._index[name]

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]
        order = self._order.tolist()
        return zip(map(self._names.name, order), self._counts[order].tolist(), strict=True)

    def total(self) -> int:
        return int(self._counts[self._order].sum())

    def top(self, n: int) -> dict[str, int]:
        """The `n` most counted names."""
        order = self._order[:n].tolist()
        return dict(zip(map(self._names.name, order), self._counts[order].tolist(), strict=True))

    def to_json(self) -> bytearray:
        """The JSON object, written name by name into one buffer."""
        out = bytearray(b"{")
        name, counts = self._names.name, self._counts
        for code in self._order.tolist():
            if len(out) > 1:
                out += b","
            out += _encode(name(code))
            out += b":%d" % counts[code]
        out += b"}"
        return out

    def __repr__(self) -> str:
        return f"NameCounts({dict(self.items())!r})"
