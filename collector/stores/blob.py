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

ABSENT: Any = 0  # as `if_version`: write only if there is no object yet
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=/-]*$")


class BlobStore(Protocol):
    """Objects by name; `get` gives the bytes and their version, `put` may be conditional.
    Every call may be given `seconds`: what the caller may still spend waiting on the store."""

    local: bool  # a directory on this machine: it answers at once, and can be probed at start-up

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, Any] | None: ...

    def put(
        self, name: str, data: bytes, *, if_version: Any = None, seconds: float | None = None
    ) -> Any: ...

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]: ...

    def delete(self, name: str, *, seconds: float | None = None) -> None: ...

    def describe(self) -> str: ...


def probe(store: BlobStore, seconds: float | None = None) -> None:
    """Raise StoreError unless an object can be written and removed in `store` (before work
    whose point is to keep what it writes). Leaves nothing behind."""
    name = f"probe/{os.getpid()}-{secrets.token_hex(4)}"
    store.put(name, b"", if_version=ABSENT, seconds=seconds)
    store.delete(name, seconds=seconds)


def check_name(name: str) -> None:
    """ValueError unless `name` is an object name every store can keep (no `..`, no odd
    characters)."""
    if not _NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"not an object name: {name!r}")
