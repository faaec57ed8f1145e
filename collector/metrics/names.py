"""Event names as small integer codes, for grouping in numpy.

A window can hold a million distinct names. As str objects in a dict they would cost about
140 bytes each; here a name costs its UTF-8 bytes and an offset in one buffer, and 12 bytes in
two sorted arrays (its hash and its code). Names of a block are looked up by hash in C; only
names not yet merged into the arrays go through a small dict, merged into them as it grows.
"""

from __future__ import annotations

from array import array

import numpy as np

from collector.metrics.hashing import text_hashes


class NameCodes:
    """Code of each event name, in order of first sight; `name(code)` is the name back.

    Names are told apart by their stable 64-bit hash (`collector.metrics.hashing`).
    """

    __slots__ = ("_codes", "_ends", "_hashes", "_recent", "_text")

    def __init__(self) -> None:
        self._text = bytearray()  # every name's UTF-8, one after the other
        self._ends = array("q")  # where each name's bytes end in `_text`
        self._hashes = np.empty(0, dtype=np.int64)  # sorted
        self._codes = np.empty(0, dtype=np.int32)  # the code of each of `_hashes`
        self._recent: dict[int, int] = {}  # hash -> code, not merged into the arrays yet

    def __len__(self) -> int:
        return len(self._ends)

    def name(self, code: int) -> str:
        start = self._ends[code - 1] if code else 0
        # surrogatepass: a JSON escape can make a lone surrogate, which is still a name here
        return self._text[start : self._ends[code]].decode("utf-8", "surrogatepass")

    def codes(self, names: list[str], hashes: np.ndarray | None = None) -> np.ndarray:
        """The code of every name of a block (new names get the next codes); `hashes`, one
        per name, if the caller has them (`collector.metrics.hashing.name_hashes`)."""
        n = len(names)
        if hashes is None:
            hashes = text_hashes(names, n)
        codes = np.empty(n, dtype=np.int32)
        known = len(self._hashes)
        hit = np.zeros(n, dtype=bool)
        if known:
            at = np.minimum(np.searchsorted(self._hashes, hashes), known - 1)
            hit = self._hashes[at] == hashes
            codes[hit] = self._codes[at[hit]]
        misses = np.flatnonzero(~hit)
        if len(misses):
            recent = self._recent
            for i, h in zip(misses.tolist(), hashes[misses].tolist(), strict=True):
                code = recent.get(h)
                if code is None:
                    code = recent[h] = len(self._ends)
                    self._text += names[i].encode("utf-8", "surrogatepass")
                    self._ends.append(len(self._text))
                codes[i] = code
            # Merged once the dict holds an eighth as many names as the arrays: rows of names
            # still in the dict are looked up one by one, so it must stay a small share.
            if len(recent) > known // 8:
                self._merge()
        return codes

    def _merge(self) -> None:
        fresh = np.fromiter(self._recent.keys(), np.int64, len(self._recent))
        fresh_codes = np.fromiter(self._recent.values(), np.int32, len(self._recent))
        order = np.argsort(fresh)
        fresh, fresh_codes = fresh[order], fresh_codes[order]
        at = np.searchsorted(self._hashes, fresh)
        self._hashes = np.insert(self._hashes, at, fresh)
        self._codes = np.insert(self._codes, at, fresh_codes)
        self._recent = {}
