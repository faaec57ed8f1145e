"""Every problem of a rules file, collected so that one error names them all, each with where
it is (the rule's name, or its index when the name is the problem) and the field.

The messages follow the settings' (collector/config.py): a misspelt field or value says which
one was meant (collector/suggest.py), and is then not also reported as missing; a field that is
absent says "missing"; a wrong value says what was found and what to give.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from collector.suggest import closest


class Problems:
    """The problems found so far, in the order of the file."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._meant: set[tuple[str, str]] = set()  # (where, field) a misspelt field stands for

    def add(self, where: str, text: str) -> None:
        """One problem, at `where` (a rule or section; empty for the file as a whole)."""
        self.items.append(f"{where}: {text}" if where else text)

    def unknown(
        self,
        where: str,
        given: Iterable[Any],
        known: Collection[str],
        whose: str,
        what: str = "field",
    ) -> dict[str, Any]:
        """One problem per field of `given` that is not `known`, with the field it most
        likely stands for (that field is then not reported missing, see `missing`), else the
        fields there are: `whose` names them ("a rule's fields"). Returns each field meant and
        the misspelt key that stands for it."""
        stands_for: dict[str, Any] = {}
        for key in (k for k in given if k not in known):
            meant = closest(key, known) if isinstance(key, str) else None
            if meant is None:
                self.add(where, f"unknown {what} {shown(key)} ({whose}: {', '.join(known)})")
                continue
            self._meant.add((where, meant))
            stands_for.setdefault(meant, key)
            self.add(where, f"unknown {what} {shown(key)}: did you mean '{meant}'?")
        return stands_for

    def missing(self, where: str, field: str, give: str) -> None:
        """A required field is absent, unless a misspelt field already stands for it."""
        if (where, field) not in self._meant:
            self.add(where, f"field '{field}' is missing: give {give}")

    def meant(self, where: str, fields: Iterable[str]) -> bool:
        """Whether a misspelt field stands for one of `fields`."""
        return any((where, field) in self._meant for field in fields)

    def wrong(
        self, where: str, field: str, value: Any, give: str, choices: Collection[str] = ()
    ) -> None:
        """`field` holds `value`, which is not `give`; among `choices`, the one it was most
        likely meant to be."""
        meant = closest(value, choices) if isinstance(value, str) else None
        if meant is None:
            self.add(where, f"field '{field}' is {shown(value)}: give {give}")
        else:
            self.add(where, f"field '{field}' is {shown(value)}: did you mean '{meant}'?")


def shown(value: Any) -> str:
    """A value from the file, as a message shows it: quoted and bounded if text, else its
    kind (a list, a mapping), safe to log whatever bytes it held."""
    if isinstance(value, str):
        return ascii(value[:60])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return ascii(value)
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"  # a date: YAML reads 2026-01-01 as one
