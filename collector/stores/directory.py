"""The blob store in a local directory: one machine's ledger, budget or rule state."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.errors import StoreConflict, StoreError
from collector.stores.blob import ABSENT, check_name


class DirBlobStore:
    """Files under a directory; a version is the SHA-256 of a file's bytes.

    Writes go to a temporary file and `os.replace`, under one exclusive lock for the store, so
    a version check and its write cannot interleave with another process's, and a crash leaves
    the old bytes or the new, never half of them. `seconds` is accepted and not needed: a local
    disk answers at once or fails. `lock` names the lock file (hidden by default; a document
    beside other files keeps its own, `<name>.lock`).
    """

    local = True

    def __init__(self, root: Path, lock: str = ".lock") -> None:
        self.root = Path(root)
        self.lock = lock

    def describe(self) -> str:
        return f"file:{self.root}"

    def __repr__(self) -> str:
        return f"DirBlobStore({str(self.root)!r})"

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, str] | None:
        """The file's bytes and their SHA-256, or None if there is none."""
        check_name(name)
        try:
            data = (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(
                f"cannot read {self.describe()}/{name}: {exc.strerror or exc}"
            ) from exc
        return data, _digest(data)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_version: Any = None,
        seconds: float | None = None,
        content_type: str = "application/octet-stream",
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
            raise StoreError(
                f"cannot write {self.describe()}/{name}: {exc.strerror or exc}"
            ) from exc
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
            raise StoreError(f"cannot list {self.describe()}: {exc.strerror or exc}") from exc
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
            raise StoreError(
                f"cannot delete {self.describe()}/{name}: {exc.strerror or exc}"
            ) from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A lock file of its own: the objects themselves are replaced, so a lock on one of them
        # would be lost with it.
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


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
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse, which costs only durability.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
