"""Named byte objects with versions: the protocol every store of the service keeps to.

Every write can be conditional on the version read (`if_version`): a Cloud Storage generation
(`ifGenerationMatch`, applied atomically by the service), or for a directory the SHA-256 of the
bytes, checked and replaced under one lock. `if_version=ABSENT` creates only if nothing is
there. A conditional write that loses raises `StoreConflict`; any other failure raises
`StoreError` naming the store. Two writers therefore never lose each other's work.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any, Protocol

from collector.errors import StoreError

ABSENT: Any = 0  # as `if_version`: write only if there is no object yet
# Control characters and backslashes in a name: no store's business, and a log line's risk.
_ODD = re.compile(r"[\x00-\x1f\x7f\\]")


class BlobStore(Protocol):
    """Objects by name; `get` gives the bytes and their version, `put` may be conditional.
    Every call may be given `seconds`: what the caller may still spend waiting on the store."""

    local: bool  # a directory on this machine: it answers at once, and can be probed at start-up

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, Any] | None:
        """The object's bytes and version, or None if there is none."""
        ...

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_version: Any = None,
        seconds: float | None = None,
        content_type: str = "application/octet-stream",
    ) -> Any:
        """Write the object, only if it is still at `if_version` when given (StoreConflict if
        not); its new version. `content_type` is what a store that keeps one shows."""
        ...

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]:
        """The names of the objects under `prefix`, sorted (hidden ones left out)."""
        ...

    def delete(self, name: str, *, seconds: float | None = None) -> None:
        """Remove the object; nothing to do if it is gone."""
        ...

    def describe(self) -> str:
        """Where the store is, for messages: `file:/dir` or `gs://bucket/prefix`."""
        ...


def probe(store: BlobStore, seconds: float | None = None, beside: str = "") -> None:
    """Raise StoreError unless an object can be written and removed in `store` (before work
    whose point is to keep what it writes), beside the object `beside` if given. Leaves
    nothing behind."""
    where, _, last = beside.rpartition("/")
    hidden = f".{last}.probe-{os.getpid()}-{secrets.token_hex(4)}"  # hidden from `names`
    name = f"{where}/{hidden}" if where else hidden
    try:
        store.put(name, b"", if_version=ABSENT, seconds=seconds)
        store.delete(name, seconds=seconds)
    except StoreError as exc:
        if not beside:
            raise
        # Named after what it stands for: the object that could not be written there.
        reason = exc.message.split(f"{name}: ", 1)[-1]
        raise StoreError(f"cannot write {store.describe()}/{beside}: {reason}") from None


def check_name(name: str) -> None:
    """ValueError unless `name` is an object name every store can keep: a relative path with
    no `..` part, no empty part, no control character (a rule state's file name may be any
    other, as it could be in 0.3.0: `.state.json`, `état.json`)."""
    parts = name.split("/")
    if not name or _ODD.search(name) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not an object name: {name!r}")
