"""Named byte objects with versions, in a local directory or under a Cloud Storage prefix.

The slice ledger and the shared query budget keep many small objects; two writers must never
lose each other's work. Every write can be conditional on the version read (`if_version`): a
Cloud Storage generation (`ifGenerationMatch`, applied atomically by the service), or for a
directory the SHA-256 of the bytes, checked and replaced under one lock. `if_version=ABSENT`
creates only if nothing is there. A conditional write that loses raises `StoreConflict`; any
other failure raises `StoreError` naming the store. The Cloud Storage store is in
`collector.gcs_blobs`, loaded only when a store is on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from collector.errors import StoreConflict, StoreError

if TYPE_CHECKING:
    from google.cloud import storage

ABSENT: Any = 0  # as `if_version`: write only if there is no object yet
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=/-]*$")


class BlobStore(Protocol):
    """Objects by name; `get` gives the bytes and their version, `put` may be conditional."""

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, Any] | None: ...

    def put(
        self, name: str, data: bytes, *, if_version: Any = None, seconds: float | None = None
    ) -> Any: ...

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]: ...

    def delete(self, name: str, *, seconds: float | None = None) -> None: ...

    def describe(self) -> str: ...


def blob_store_from_url(url: str, setting: str, client: storage.Client | None = None) -> BlobStore:
    """`gs://bucket/prefix`, `file:/abs/dir` or an absolute directory path."""
    url = url.strip()
    if url.startswith("gs://"):
        bucket, _, prefix = url[len("gs://") :].partition("/")
        if not bucket:
            raise ValueError(f"{setting}={url!r} needs a bucket: gs://<bucket>/<prefix>")
        # Cloud Storage's client library is loaded only where a store is on it: it is a large
        # share of a process's start-up.
        from collector.gcs_blobs import GcsBlobStore

        return GcsBlobStore(bucket, prefix.strip("/"), client)
    path = url[len("file:") :] if url.startswith("file:") else url
    if path.startswith("//"):
        path = path[2:]
    if not path or not os.path.isabs(path):
        raise ValueError(f"{setting}={url!r} must be gs://<bucket>/<prefix> or an absolute path")
    return DirBlobStore(Path(path))


def check_writable(store: BlobStore, seconds: float | None = None) -> None:
    """Raise StoreError unless an object can be written and removed in `store` (before work
    whose point is to keep what it writes). Leaves nothing behind."""
    probe = f"probe/{os.getpid()}-{secrets.token_hex(4)}"
    store.put(probe, b"", if_version=ABSENT, seconds=seconds)
    store.delete(probe, seconds=seconds)


def check_name(name: str) -> None:
    """ValueError unless `name` is an object name every store can keep (no `..`, no odd
    characters)."""
    if not _NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"not an object name: {name!r}")


# -- a local directory -------------------------------------------------------------------------


class DirBlobStore:
    """Files under a directory; a version is the SHA-256 of a file's bytes.

    Writes go to a temporary file and `os.replace`, under one exclusive lock for the store, so
    a version check and its write cannot interleave with another process's. `seconds` is
    accepted and not needed: a local disk answers at once or fails.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"file:{self.root}"

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, str] | None:
        check_name(name)
        try:
            data = (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.describe()}/{name}: {exc.strerror}") from exc
        return data, _digest(data)

    def put(
        self, name: str, data: bytes, *, if_version: Any = None, seconds: float | None = None
    ) -> str:
        check_name(name)
        path = self.root / name
        try:
            with self._locked():  # the directory too: a delete may be removing it, empty
                path.parent.mkdir(parents=True, exist_ok=True)
                if if_version is not None:
                    current = self.get(name)
                    now = ABSENT if current is None else current[1]
                    if now != if_version:
                        raise StoreConflict(f"{self.describe()}/{name} changed since it was read")
                _replace(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.describe()}/{name}: {exc.strerror}") from exc
        return _digest(data)

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        try:
            for path in self.root.rglob("*"):
                rel = path.relative_to(self.root).as_posix()
                hidden = rel.startswith(".") or "/." in rel  # the lock, temporary files
                if path.is_file() and not hidden and rel.startswith(prefix):
                    found.append(rel)
        except OSError as exc:
            raise StoreError(f"cannot list {self.describe()}: {exc.strerror}") from exc
        return sorted(found)

    def delete(self, name: str, *, seconds: float | None = None) -> None:
        check_name(name)
        path = self.root / name
        try:
            with self._locked():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                _remove_empty_parents(path, self.root)
        except OSError as exc:
            raise StoreError(f"cannot delete {self.describe()}/{name}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _remove_empty_parents(path: Path, root: Path) -> None:
    """Directories left empty go too (a pruned day, a probe), up to `root`; under the store's
    lock, so that a write cannot find its directory gone."""
    for parent in path.parents:
        if parent == root or root not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:
            return  # not empty (or gone): what is above is not empty either


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
