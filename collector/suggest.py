""" "Did you mean ...?": the known name closest to a misspelt one, for every validation message
(the settings' variable names and values, the rules file's fields and values) and for the hint
of an event name that matched nothing."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

CUTOFF = 0.75  # difflib's similarity: close enough that the suggestion is rarely a surprise
SEPARATORS = re.compile(r"[\s_.-]+")


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name `word` was most likely meant to be, or None.

    The same but for case and separators (`sign_up`, `SignUp`: Sign Up), else a close spelling
    whatever the case (`windw_minutes`: window_minutes), else the one name that `word` begins
    (`lag`: lag_minutes), since a shortened name is far from the whole in difflib's terms. The
    first of `known` wins a tie.
    """
    names = list(dict.fromkeys(known))
    loose: dict[str, str] = {}
    folded: dict[str, str] = {}
    for name in names:
        loose.setdefault(_loose(name), name)
        folded.setdefault(name.casefold(), name)
    same = loose.get(_loose(word))
    if same is not None and same != word:
        return same
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=CUTOFF)
    if close:
        return folded[close[0]]
    longer = [name for name in names if len(word) >= 3 and name.startswith(word)]
    return longer[0] if len(longer) == 1 else None


def _loose(name: str) -> str:
    return SEPARATORS.sub("", name.casefold())
