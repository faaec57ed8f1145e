"""Where rule state lives between runs: a JSON document in a local file or a Cloud Storage object.

Every save is conditional on the version that was loaded, so two overlapping `/check` runs cannot
silently overwrite each other: the loser gets `StoreConflict`, and `update()` reloads and applies
its change again to the fresh document. The Cloud Storage store is in
`collector.alerting.gcs_state`, loaded only when the store is on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from collector.errors import CorruptState, StoreConflict, StoreError

if TYPE_CHECKING:
    from google.cloud import storage

T = TypeVar("T")

# Marks who wrote a GCS generation, to recognise our own write behind a 412
# (see `collector.alerting.gcs_state`).
WRITE_ID_KEY = "collector-write-id"


class StateStore(Protocol):
    """A JSON document with a version; `save` succeeds only on the version it was loaded at."""

    def load(self) -> tuple[dict[str, Any], Any]: ...

    def save(self, doc: dict[str, Any], version: Any) -> Any: ...

    def describe(self) -> str: ...


def update(store: StateStore, mutate: Callable[[dict[str, Any]], T], *, attempts: int = 5) -> T:
    """Read-modify-write: load, call mutate(doc) (which changes doc in place and returns a result),
    save with the version; on StoreConflict reload and call mutate again on the fresh document;
    after `attempts` conflicts raise StoreConflict."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for _ in range(attempts):
        doc, version = store.load()
        result = mutate(doc)
        try:
            store.save(doc, version)
        except StoreConflict:
            continue
        return result
    raise StoreConflict(
        f"{store.describe()} changed under every one of {attempts} attempts to update it"
    )


def store_from_url(url: str, *, gcs_client: storage.Client | None = None) -> StateStore:
    """`gs://bucket/path/state.json`, `file:path/state.json` or a plain path."""
    url = url.strip()
    if url.startswith("gs://"):
        bucket, _, name = url[len("gs://") :].partition("/")
        if not bucket or not name or name.endswith("/"):
            raise ValueError(
                f"STATE_STORE={url!r} needs a bucket and an object: gs://<bucket>/<path>"
            )
        # Cloud Storage's client library is loaded only where the store is on it.
        from collector.alerting.gcs_state import GcsStateStore

        return GcsStateStore(bucket, name, client=gcs_client)
    if url.startswith("file:"):
        path = url[len("file:") :]
        if path.startswith("//"):  # file:///abs/path.json
            path = path[2:]
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
        raise ValueError(f"STATE_STORE={url!r} must be file:<path> or gs://<bucket>/<object>")
    else:
        path = url
    if not path or path.endswith("/"):
        raise ValueError(f"STATE_STORE={url!r} needs a file name: file:<path>")
    return FileStateStore(Path(path))


def encode(doc: dict[str, Any]) -> bytes:
    """The document's bytes as every store keeps them."""
    # Sorted and indented: stable bytes (so the hash is a version) that a person can read and diff.
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


# -- a local file ----------------------------------------------------------------------------


class FileStateStore:
    """A JSON file; the version is the SHA-256 of its bytes (None while there is no file).

    Writes go to a temporary file in the same directory, then `os.replace`, so a crash leaves
    either the old or the new document, never half of one. The version check and the replace
    happen under an exclusive lock on `<file>.lock`, so two processes cannot both win.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def describe(self) -> str:
        return f"file:{self.path}"

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.path)!r})"

    def check_writable(self) -> None:
        """Raise StoreError unless the state, its lock and a replacement can be written here.

        Run at start-up: a store that cannot be written would let every /check spend its
        Export query and then fail. Nothing is left behind but the lock file.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644))
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            os.close(fd)
            os.unlink(tmp)
            if self.path.exists() and not os.access(self.path, os.R_OK):
                raise PermissionError(13, "Permission denied", str(self.path))
        except OSError as exc:
            raise StoreError(f"cannot write {self.describe()}: {exc.strerror or exc}") from None

    def load(self) -> tuple[dict[str, Any], str | None]:
        data = self._read()
        if data is None:
            return {}, None
        return decode(data, self.describe()), _digest(data)

    def save(self, doc: dict[str, Any], version: str | None) -> str:
        data = encode(doc)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                current = self._read()
                if (None if current is None else _digest(current)) != version:
                    raise StoreConflict(f"{self.describe()} changed since it was loaded")
                self._replace(data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.describe()}: {exc.strerror or exc}") from exc
        return _digest(data)

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.describe()}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A separate lock file: the state file itself is replaced, so a lock on it would be lost.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _replace(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse, which costs only durability.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
