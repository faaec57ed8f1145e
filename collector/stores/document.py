"""A JSON document on a blob store (the rule state): loaded with its version, saved only on it.

Every save is conditional on the version that was loaded, so two overlapping `/check` runs cannot
silently overwrite each other: the loser gets `StoreConflict`, and `update()` reloads and applies
its change again to the fresh document. The bytes are sorted, indented JSON: stable (so a
directory's version, their hash, changes only with the content) and readable by a person.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from collector.errors import CorruptState, StoreConflict
from collector.stores.blob import ABSENT, BlobStore

T = TypeVar("T")


class DocumentStore(Protocol):
    """A JSON document with a version; `save` succeeds only on the version it was loaded at
    (a `Document`, or a dry run's stand-in that keeps what it is given)."""

    def load(self) -> tuple[dict[str, Any], Any]: ...

    def save(self, doc: dict[str, Any], version: Any) -> Any: ...

    def describe(self) -> str: ...


class Document:
    """One JSON object kept as the object `name` of `store`."""

    def __init__(self, store: BlobStore, name: str) -> None:
        self.store, self.name = store, name

    def describe(self) -> str:
        return f"{self.store.describe()}/{self.name}"

    def __repr__(self) -> str:
        return f"Document({self.describe()!r})"

    def load(self) -> tuple[dict[str, Any], Any]:
        """The document and its version: ({}, ABSENT) while there is none; CorruptState if
        what is there is not a JSON object."""
        found = self.store.get(self.name)
        if found is None:
            return {}, ABSENT
        data, version = found
        return decode(data, self.describe()), version

    def save(self, doc: dict[str, Any], version: Any) -> Any:
        """Write `doc` if the document is still at `version` (StoreConflict if not; None, as
        ABSENT: only if there is none yet); the new version. Never unconditional: two runs
        must not overwrite each other's state."""
        return self.store.put(
            self.name,
            encode(doc),
            if_version=ABSENT if version is None else version,
            content_type="application/json",
        )


def update(
    document: DocumentStore, mutate: Callable[[dict[str, Any]], T], *, attempts: int = 5
) -> T:
    """Read-modify-write: load, call mutate(doc) (which changes doc in place and returns a result),
    save with the version; on StoreConflict reload and call mutate again on the fresh document;
    after `attempts` conflicts raise StoreConflict."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for _ in range(attempts):
        doc, version = document.load()
        result = mutate(doc)
        try:
            document.save(doc, version)
        except StoreConflict:
            continue
        return result
    raise StoreConflict(
        f"{document.describe()} changed under every one of {attempts} attempts to update it"
    )


def encode(doc: dict[str, Any]) -> bytes:
    """The document's bytes as every store keeps them."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def decode(data: bytes, where: str) -> dict[str, Any]:
    """The document of stored bytes; CorruptState, naming `where` and what to do, if they are
    not a JSON object."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptState(
            f"{where} is not valid JSON ({exc}); fix it or move it aside to start from empty state"
        ) from None
    if not isinstance(doc, dict):
        raise CorruptState(
            f"{where} holds a JSON {type(doc).__name__}, not an object; "
            "fix it or move it aside to start from empty state"
        )
    return doc
