""" "Did you mean ...?": the known name closest to a misspelt one, for every validation message
(the settings' variable names and values, the rules file's fields and values)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.75  # difflib's similarity: close enough that the suggestion is rarely a surprise


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name `word` was most likely meant to be, or None.

    A close spelling (`windw_minutes`: window_minutes), else the one name that `word` begins
    (`lag`: lag_minutes), since a shortened name is far from the whole in difflib's terms.
    """
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(word, names, n=1, cutoff=CUTOFF)
    if close:
        return close[0]
    longer = [name for name in names if len(word) >= 3 and name.startswith(word)]
    return longer[0] if len(longer) == 1 else None
