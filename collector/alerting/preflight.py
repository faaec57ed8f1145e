"""The state store, checked before a run spends anything, and its failures as 503 answers.

A run loads the state, checks its shape and writes it back unchanged before its Export query:
that proves the store readable, the document usable and the store writable. A store that fails
then, or later in the run, answers 503 `state_store_unavailable` saying what was done and what
to do; the document is never reset to make a run go through.
"""

from __future__ import annotations

from typing import Any

from collector.alerting.state import validate
from collector.errors import CorruptState, StateStoreUnavailable, StoreConflict, StoreError
from collector.stores import DocumentStore as StateStore
from collector.stores import update


def preflight(store: StateStore) -> None:
    """Raise StateStoreUnavailable unless the state can be read, used and written."""
    where = store.describe()
    try:
        update(store, lambda doc: validate(doc, where))
    except StoreError as exc:
        raise unavailable(
            store, exc, "no Export query was spent and no rule state changed", queries=0
        ) from None


def read_state(store: StateStore, outcome: str) -> dict[str, Any]:
    """The stored state, read and checked as a run checks it, and not written (a dry run,
    GET /rules); StateStoreUnavailable saying `outcome` if it cannot be read or used."""
    where = store.describe()
    try:
        doc, _ = store.load()
        validate(doc, where)
    except StoreError as exc:
        raise unavailable(store, exc, outcome, queries=0) from None
    return doc


def unavailable(
    store: StateStore,
    exc: StoreError,
    outcome: str,
    *,
    queries: int,
    export: list[dict[str, Any]] | None = None,
) -> StateStoreUnavailable:
    """The 503 for a store failure: the problem, what to do, and what the run did (`outcome`)."""
    where = store.describe()
    text = str(exc)
    if isinstance(exc, StoreConflict):
        text += "; other runs kept changing it: retry"
    elif not isinstance(exc, CorruptState):  # a corrupt document's message says what to do
        text += "; " + (
            "the service's account needs roles/storage.objectUser on the bucket, and the "
            "bucket must exist"
            if store.describe().startswith("gs://")
            else "the service's user must be able to read and write it and its directory"
        )
    return StateStoreUnavailable(
        f"rule state store unavailable: {text} ({outcome})",
        store=where,
        detail={"queries": queries},
        export=export,
    )
